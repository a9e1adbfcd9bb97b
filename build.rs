//! Link settings for the `ros2` feature only (nothing happens without it).
//!
//! ROS 2 installed from the PyPI wheels (`scripts/ros2-env.sh`) needs two things at link time
//! that a system install does not: the wheels' `librcl.so` uses libpython symbols without
//! linking libpython, and their libraries live outside the loader's paths. The env script
//! exports `RMF_DASH_ROS2_LINK_LIB` (e.g. `python3.11`) and `RMF_DASH_ROS2_RPATH` (directories,
//! `:`-separated); with a system ROS (`source /opt/ros/<distro>/setup.bash`) both are unset.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RMF_DASH_ROS2_LINK_LIB");
    println!("cargo:rerun-if-env-changed=RMF_DASH_ROS2_RPATH");
    if std::env::var_os("CARGO_FEATURE_ROS2").is_none() {
        return;
    }
    let rpath: Vec<String> = std::env::var("RMF_DASH_ROS2_RPATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    for dir in &rpath {
        println!("cargo:rustc-link-search=native={dir}");
    }
    if !rpath.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", rpath.join(":"));
    }
    // As a link argument (kept in this order) rather than a link-lib: nothing in rmf-dash refers
    // to libpython, so the linker's --as-needed would drop it otherwise.
    if let Ok(lib) = std::env::var("RMF_DASH_ROS2_LINK_LIB")
        && !lib.is_empty()
    {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-l{lib}");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
