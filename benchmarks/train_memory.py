"""Peak memory of ``napari-cellseq train`` on a long movie with a few painted frames.

Writes a ``(T, Y, X)`` uint16 movie TIFF (default 1000 x 512 x 512, 500 MiB, uncompressed) and a
labels TIFF of the same shape with ``--painted`` painted frames, both frame by frame (writing
them needs a frame of memory, not the movie's), then runs ``napari-cellseq train`` once per
model and per source folder under ``/usr/bin/time -v`` and prints, as JSON lines, the child's
"Maximum resident set size" (torch included) with the command's exit code.

Run (it writes 1 GB into ``--folder`` and deletes it at the end)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python -m benchmarks.train_memory --iterations 30 \\
        --src /path/to/main/src --src src

Memory-mapped frames count in the RSS while they are mapped (clean file pages the kernel may
drop at any time); the painted frames are spread over the middle of the movie, close enough
for a U-LSTM's calibration (one stateful pass from the first to the last painted frame) to
stay short.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def write_movie(folder: Path, frames: int, size: int, painted: list[int]) -> tuple[Path, Path]:
    """``movie.tif`` (8 synthetic frames repeated) and ``labels.tif`` (labels on ``painted``
    only), written one frame at a time."""
    import numpy as np
    import tifffile

    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, labels = synthetic_timelapse(n_frames=8, shape=(size, size), n_cells=max(4, size * size // 6500), seed=0)
    image, labels = np.asarray(image, np.uint16), np.asarray(labels, np.uint16)
    movie, truth = folder / "movie.tif", folder / "labels.tif"
    blank = np.zeros((size, size), np.uint16)
    tifffile.imwrite(movie, (image[t % 8] for t in range(frames)), shape=(frames, size, size),
                     dtype=np.uint16, photometric="minisblack")
    tifffile.imwrite(truth, (labels[t % 8] if t in painted else blank for t in range(frames)),
                     shape=(frames, size, size), dtype=np.uint16, photometric="minisblack")
    return movie, truth


def peak_rss_mib(src: str, model: str, movie: Path, labels: Path, out: Path, iterations: int) -> dict:
    env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="1")
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "napari_cellseq", "train", "--image", str(movie),
         "--labels", str(labels), "--out", str(out), "--model", model, "--iterations", str(iterations),
         "--device", "cpu"],
        env=env, capture_output=True, text=True,
    )
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
    return {"src": src, "model": model, "code": proc.returncode,
            "peak_rss_mib": int(found.group(1)) / 1024 if found else None,
            "wall": wall.group(1) if wall else None,
            "error": proc.stderr.strip().splitlines()[-25] if proc.returncode else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--painted", type=int, nargs="+", default=[480, 500, 520])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["unet", "ulstm"])
    parser.add_argument("--src", action="append", help="napari-cellseq source folder(s) to measure "
                        "(repeat to compare checkouts; default: this checkout's)")
    parser.add_argument("--folder", default="/tmp/lazy_big", help="where the movie is written (deleted after)")
    args = parser.parse_args()
    sources = [str(Path(s).resolve()) for s in args.src or [Path(__file__).resolve().parents[1] / "src"]]
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=False)
    try:
        movie, labels = write_movie(folder, args.frames, args.size, args.painted)
        print(json.dumps({"movie_mib": movie.stat().st_size / 2**20, "frames": args.frames, "size": args.size,
                          "painted": args.painted, "iterations": args.iterations}), flush=True)
        for model in args.models:
            for src in sources:
                print(json.dumps(peak_rss_mib(src, model, movie, labels, folder / "m.pt", args.iterations)),
                      flush=True)
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
