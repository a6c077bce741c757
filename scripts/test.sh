#!/usr/bin/env bash
# Install with the test extras, then run the whole test suite (GUI tests under Xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v xvfb-run >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth libgl1-mesa-dri \
            libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 >/dev/null
    else
        echo "test.sh: xvfb-run is missing; install xvfb (e.g. apt-get install xvfb) for the GUI tests" >&2
        exit 1
    fi
fi
bash scripts/install.sh testing
unset QT_QPA_PLATFORM
# pytest exits 5 when no test ran: that is a failure here, as is any other non-zero code.
exec xvfb-run -a -s "-screen 0 1600x1000x24" "${VENV:-.venv}/bin/python" -m pytest -q "$@"
