"""Peak memory of ``napari-cellseq segment`` on a synthetic movie: does it grow with the movie?

Writes a ``(T, Y, X)`` uint16 movie as TIFF (uncompressed, so it is memory-mapped, or
``--compress`` for zlib, read page by page), trains a tiny U-Net for 2 steps, then runs
``napari-cellseq segment`` in a fresh child process per measurement and prints, as JSON:

* ``peak_rss_mib``: the child's peak resident set size (``ru_maxrss``), torch included;
* ``peak_traced_mib``: in a second run, the peak of Python/numpy allocations traced by
  ``tracemalloc`` during the command, imports included (torch's own allocator is not traced);
* ``movie_mib``: the size of the movie as stored.

Run::

    PYTHONPATH=src python -m benchmarks.segment_memory --frames 400 --size 256
    # compare with another checkout: --src /path/to/other/src

Memory-mapped frames count in the RSS while they are mapped (clean file pages the kernel may
drop at any time); ``peak_traced_mib`` is the memory the command itself allocates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, os, resource, sys, tracemalloc
from napari_cellseq.cli import main
traced = os.environ.get("TRACE") == "1"
if traced:
    tracemalloc.start()
code = main(sys.argv[1:])
if traced:
    print(json.dumps({"code": code, "peak_traced_mib": tracemalloc.get_traced_memory()[1] / 2**20}))
else:
    print(json.dumps({"code": code, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--compress", action="store_true", help="zlib-compressed movie (read page by page)")
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"),
                        help="the napari-cellseq source folder to measure")
    args = parser.parse_args()

    import numpy as np
    import tifffile

    from napari_cellseq.core.config import DataConfig, TrainConfig
    from napari_cellseq.core.models import default_model_config
    from napari_cellseq.core.synthetic import synthetic_timelapse
    from napari_cellseq.core.training import fit

    with tempfile.TemporaryDirectory() as folder:
        d = Path(folder)
        image, labels = synthetic_timelapse(n_frames=8, shape=(args.size, args.size), n_cells=12, seed=0)
        fit(image, labels, d / "m.pt", model_config=default_model_config("unet", base_channels=4),
            data_config=DataConfig(crop_size=64),
            train_config=TrainConfig(iterations=2, max_time=None, batch_size=1, device="cpu"))
        movie = np.asarray(image)[np.arange(args.frames) % len(image)]
        tifffile.imwrite(d / "movie.tif", movie, photometric="minisblack",
                         compression="zlib" if args.compress else None)
        result = {}
        for trace in ("0", "1"):  # tracemalloc's own bookkeeping would inflate the RSS: two runs
            env = dict(os.environ, PYTHONPATH=args.src, OMP_NUM_THREADS="1", TRACE=trace)
            (d / "labels.tif").unlink(missing_ok=True)
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, "segment", "--model", str(d / "m.pt"), "--image",
                 str(d / "movie.tif"), "--out", str(d / "labels.tif"), "--device", "cpu"],
                env=env, capture_output=True, text=True, check=True,
            )
            result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        result.update(movie_mib=(d / "movie.tif").stat().st_size / 2**20, frames=args.frames,
                      size=args.size, compressed=args.compress, src=args.src)
        labels_out = tifffile.imread(d / "labels.tif")
        result["labels_shape"] = list(labels_out.shape)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
