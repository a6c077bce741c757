#!/usr/bin/env bash
# Install napari-cellseq into a virtual environment (.venv at the repository root, or $VENV).
# torch==2.13.0 is installed first: a bare torch requirement would pull several GB of CUDA
# packages where no torch is installed yet. Usage: bash scripts/install.sh [pip extras, e.g. testing]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
EXTRAS="${1:-pyqt6}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip >/dev/null 2>&1 || true
"${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install -e ".[${EXTRAS}]"
if "$VENV/bin/python" -m pip list 2>/dev/null | grep -iE '^(nvidia-|triton )'; then
    echo "install.sh: CUDA packages were pulled in (listed above); install torch==2.13.0 (CPU) first" >&2
    exit 1
fi
echo "install.sh: napari-cellseq installed in $VENV" >&2
