#!/usr/bin/env bash
# Make the virtual environment of the Cellpose peer (benchmarks/cellpose_peer.py), apart from
# napari-cellseq's: cellpose==3.1.1.3 pins numpy<2.1, napari-cellseq's environment has numpy 2.x.
# torch==2.13.0 goes in first, so the CPU wheel is used and pip does not pull CUDA packages for
# cellpose's bare "torch" requirement (on a GPU machine install the CUDA build of torch 2.13.0
# first, or set TORCH_SPEC). Nothing else is downloaded: the peer trains from random weights.
#
# Usage: bash benchmarks/setup_cellpose.sh [VENV_DIR]    (default: $CELLPOSE_VENV or .bench/cellpose-venv)
# Prints the path of the environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-${CELLPOSE_VENV:-.bench/cellpose-venv}}"
PY="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install "$TORCH_SPEC"
"${PIP[@]}" install "cellpose==3.1.1.3"
if [ "${ALLOW_CUDA:-0}" != 1 ] && "$VENV/bin/python" -m pip list 2>/dev/null | grep -iE '^(nvidia-|triton )'; then
    echo "setup_cellpose.sh: CUDA packages were pulled in (listed above); install torch==2.13.0 (CPU) first" >&2
    exit 1
fi
"$VENV/bin/python" -c "from cellpose.version import version; import torch; print('cellpose', version, 'torch', torch.__version__)" >&2
echo "$VENV/bin/python"
