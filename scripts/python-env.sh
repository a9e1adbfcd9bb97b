#!/usr/bin/env bash
# Create (idempotently) the Python venv used by the interop tests at $REPO/.venv.
#
# Usage: scripts/python-env.sh        # then use $REPO/.venv/bin/python
#
# The requirements are pinned below; a marker file inside the venv stores their
# hash, so a second run with nothing changed returns immediately.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PYTHON="${PYTHON:-python3}"

# Pinned requirements (rosbags brings its own deps: numpy, lz4, zstandard, ruamel.yaml).
REQUIREMENTS="rosbags==0.11.9 python-socketio[client]==5.11.4 websocket-client==1.8.0"

HASH="$(printf '%s\n' "$REQUIREMENTS" | sha256sum | cut -d' ' -f1)"
MARKER="$VENV/.requirements.sha256"

if [[ -x "$VENV/bin/python" && -f "$MARKER" && "$(cat "$MARKER")" == "$HASH" ]]; then
    echo "python-env: $VENV is up to date ($REQUIREMENTS)"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "python-env: creating venv at $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

echo "python-env: installing $REQUIREMENTS"
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $REQUIREMENTS
printf '%s\n' "$HASH" > "$MARKER"
echo "python-env: done ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("rosbags", m.version("rosbags"))'))"
