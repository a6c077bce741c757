#!/usr/bin/env bash
# Install, then train a U-Net on the first 3 frames of the built-in synthetic time-lapse,
# segment every frame, print the scores on the other frames and write the label TIFF.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh pyqt6
exec "${VENV:-.venv}/bin/napari-cellseq" demo --out "${1:-cellseq-demo}"
