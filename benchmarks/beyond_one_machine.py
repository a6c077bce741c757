"""Beyond one machine, measured in one run on this machine (README, "Beyond one machine").

(Not named ``distributed.py``: run as a script, its folder comes first on ``sys.path`` and such
a file would shadow the ``distributed`` package, which broke every cluster part.)

1. Training on several processes: the same U-Net on HeLa (painted frames 0-4, scored on
   10-19) for the same time budget, as one process with 2 torch threads and as
   ``torchrun --nproc_per_node=2`` with 1 thread each (DDP, gloo); steps/s, crops/s and SEG.
   The arms alternate (``--repeats``), so that a shared machine's load hits both alike.
2. Frame ranges of a U-LSTM (trained ``--ulstm-time`` s): the movie cut into tasks of 5 frames
   with 0, 2 and 5 context frames; SEG of the range labels against the whole-movie labels.
3. A frame larger than a tile: a ``--side``\ ² (4096) mosaic of HeLa frames 10-19 (ground truth
   likewise), whole-frame vs block-wise (``--block`` 1024-pixel blocks, stitched) in this process
   and on the cluster: time, SEG against the ground truth and of one against the other, cells
   joined at seams.
4. Many movies: ``--movies`` copies of the HeLa movie (20 x 700 x 1100) segmented with the
   U-Net of the first 1x2 arm, in this process (2 threads) and on a LocalCluster of 2 workers x 1
   thread; wall time, and whether the files are byte-identical. Last, as the longest part.

Each part prints its figures as soon as it has them (one JSON line) and they are written into
``--json`` at once, so a run that is stopped or runs out of time still leaves the figures of the
parts it finished; a part that fails is recorded with its error and the others still run.
Full size takes about 12 minutes on a quiet 2-core machine; ``--quick`` is a smoke run (2 short
movies, a 1024\ ² mosaic, 20 s budgets) of 3-5 minutes.

    python benchmarks/beyond_one_machine.py --data /work/data_cache --json out/beyond_one_machine.json
    python benchmarks/beyond_one_machine.py --data /work/data_cache --quick --json /tmp/beyond-quick.json
    python benchmarks/beyond_one_machine.py --skip ddp,movies --model unet.pt   # ranges and blocks only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hela_data import hela_paths  # noqa: E402

from napari_cellseq.core.distributed.batch import segment_movies  # noqa: E402
from napari_cellseq.core.distributed.blocks import segment_blocks  # noqa: E402
from napari_cellseq.core.distributed.cluster import open_client  # noqa: E402
from napari_cellseq.core.metrics import evaluate, seg_score  # noqa: E402
from napari_cellseq.core.pipeline import segment  # noqa: E402

SCORED = list(range(10, 20))
DONE = re.compile(r"done \((\w+)\) after (\d+) steps, (\d+) s")


def _env(threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def train(out: Path, image: Path, gt: Path, seconds: float, model: str, processes: int, threads: int) -> dict:
    """One training run through the CLI (``torchrun`` for several processes); steps and time."""
    args = ["train", "--image", str(image), "--labels", str(gt), "--frames", "0-4", "--model", model,
            "--max-time", str(seconds), "--out", str(out), "--device", "cpu", "--overwrite"]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "napari_cellseq", *args]
    else:
        cmd = [sys.executable, "-m", "napari_cellseq", *args]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"training failed ({' '.join(cmd)}):\n{run.stderr[-3000:]}")
    m = DONE.search(run.stderr)
    steps = int(m.group(2)) if m else 0
    return {"processes": processes, "threads": threads, "steps": steps, "budget_s": seconds, "wall_s": round(wall, 1),
            "steps_per_s": round(steps / seconds, 3), "crops_per_s": round(steps * processes * 4 / seconds, 2)}


def score(model: Path, image: np.ndarray, gt: np.ndarray) -> dict:
    labels = segment(image, model, device="cpu", frames=SCORED)
    s = evaluate(gt, labels, frames=SCORED)
    return {"seg": round(s["seg"], 4), "ap50": round(s.get("ap50", float("nan")), 4)}


def ddp_arms(work: Path, image_path: Path, gt_path: Path, image, gt, seconds: float, repeats: int,
             report) -> list:
    """The arms in turn; the U-Net of the first 1x2 arm is ``work / "unet-1x2-0.pt"``."""
    rows = []
    arms = [(1, 2), (2, 1)]
    torch.set_num_threads(2)
    for r in range(repeats):
        for processes, threads in (arms if r % 2 == 0 else arms[::-1]):
            out = work / f"unet-{processes}x{threads}-{r}.pt"
            row = train(out, image_path, gt_path, seconds, "unet", processes, threads)
            row.update(score(out, image, gt), repeat=r)
            print(json.dumps({"ddp": row}), flush=True)
            rows.append(row)
            report.partial("ddp", rows)
    return rows


def many_movies(work: Path, image_path: Path, model: Path, n: int, frames: int | None) -> dict:
    folder = work / "movies"
    folder.mkdir()
    paths = []
    movie = tifffile.imread(image_path)[:frames]
    for k in range(n):
        p = folder / f"hela{k:02d}.tif"
        tifffile.imwrite(p, movie)
        paths.append(p)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    here = segment_movies(paths, model, work / "out-here", None, device="cpu")
    t_here = time.perf_counter() - t0
    print(json.dumps({"movies_in_process": {"movies": n, "frames": len(movie) * n, "in_process_s": round(t_here, 1)}}),
          flush=True)
    t0 = time.perf_counter()
    with open_client("local:2") as client:
        t_up = time.perf_counter() - t0
        t1 = time.perf_counter()
        there = segment_movies(paths, model, work / "out-cluster", client, device="cpu")
        t_cluster = time.perf_counter() - t1
    same = all((work / "out-here" / p.name).read_bytes() == (work / "out-cluster" / p.name).read_bytes() for p in paths)
    row = {"movies": n, "frames": len(movie) * n, "in_process_s": round(t_here, 1), "cluster_2x1_s": round(t_cluster, 1),
           "cluster_start_s": round(t_up, 1), "speedup": round(t_here / t_cluster, 2), "identical_files": same,
           "all_ok": all(r.ok for r in here + there)}
    print(json.dumps({"movies": row}), flush=True)
    return row


def ulstm_ranges(work: Path, image_path: Path, gt_path: Path, gt, seconds: float, frames: int | None,
                 report) -> dict:
    """U-LSTM on the first ``frames`` frames (all 20 by default), cut into tasks of 5 frames."""
    model = work / "ulstm.pt"
    row = train(model, image_path, gt_path, seconds, "ulstm", 1, 2)
    movie = tifffile.imread(image_path)[:frames]
    scored = [t for t in SCORED if t < len(movie)] or list(range(5, len(movie)))  # not trained on 0-4
    source = work / "ranges-movie" / image_path.name
    source.parent.mkdir()
    tifffile.imwrite(source, movie)
    torch.set_num_threads(2)
    whole = segment(movie, model, device="cpu")
    out = {"train": row, "frames": len(movie), "frames_per_task": 5, "scored_frames": f"{scored[0]}-{scored[-1]}"
           if scored else None,
           "whole_seg_vs_gt": round(evaluate(gt, whole, frames=scored)["seg"], 4) if scored else None}
    for context in (0, 2, 5):
        target = work / f"ranges-{context}"
        segment_movies([source], model, target, None, device="cpu", frames_per_task=5, context=context)
        labels = tifffile.imread(target / source.name)
        out[f"context_{context}"] = {"seg_vs_whole": round(seg_score(whole, labels), 4),
                                     "seg_vs_gt": round(evaluate(gt, labels, frames=scored)["seg"], 4) if scored
                                     else None}
        report.partial("ulstm_ranges", out)
    print(json.dumps({"ulstm_ranges": out}), flush=True)
    return out


def mosaic(frames: np.ndarray, side: int) -> np.ndarray:
    """Frames tiled row by row, cropped to ``side x side``."""
    t, h, w = frames.shape
    rows, cols = -(-side // h), -(-side // w)
    out = np.zeros((rows * h, cols * w), dtype=frames.dtype)
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = frames[k % t]
    return out[:side, :side]


def blocks(work: Path, image, gt, model: Path, side: int, block: int, report) -> dict:
    import zarr

    img = mosaic(image[SCORED], side)
    truth = _unique_copies(mosaic(gt[SCORED], side), image.shape[1:])
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    whole = segment(img, model, device="cpu")
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    r_here = segment_blocks(img, model, work / "blocks-here.zarr", block=block)
    t_here = time.perf_counter() - t0
    lab = zarr.open_array(str(work / "blocks-here.zarr"), mode="r")[:]
    row = {"shape": list(img.shape), "block": block, "overlap": 64, "whole_s": round(t_whole, 1),
           "blocks_in_process_s": round(t_here, 1), "cells": r_here.cells, "joined_at_seams": r_here.joined,
           "seg_whole_vs_gt": round(seg_score(truth, whole), 4), "seg_blocks_vs_gt": round(seg_score(truth, lab), 4),
           "seg_blocks_vs_whole": round(seg_score(whole, lab), 4), "seg_whole_vs_blocks": round(seg_score(lab, whole), 4)}
    print(json.dumps({"blocks_in_process": row}), flush=True)
    report.partial("blocks", row)
    # the frame goes to the workers as a zarr store (what a frame larger than memory is), not
    # pickled into the task graph
    source = work / "mosaic.zarr"
    zarr.open_array(str(source), mode="w", shape=img.shape, chunks=(block, block), dtype=img.dtype)[:] = img
    with open_client("local:2") as client:
        t0 = time.perf_counter()
        r_cluster = segment_blocks(source, model, work / "blocks-cluster.zarr", client, block=block)
        t_cluster = time.perf_counter() - t0
    lab2 = zarr.open_array(str(work / "blocks-cluster.zarr"), mode="r")[:]
    row.update(blocks_cluster_2x1_s=round(t_cluster, 1), cluster_equals_in_process=bool(np.array_equal(lab, lab2)),
               cluster_cells=r_cluster.cells)
    print(json.dumps({"blocks": row}), flush=True)
    return row


def _unique_copies(labels: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """Ground truth of a mosaic: each tile's ids offset so that repeated frames get new ids."""
    h, w = tile
    out = labels.astype(np.int64)
    k = 0
    for y in range(0, out.shape[0], h):
        for x in range(0, out.shape[1], w):
            part = out[y:y + h, x:x + w]
            part[part > 0] += k * 10_000_000
            k += 1
    return out


class Report:
    """The figures so far, written to ``path`` (atomically) each time a part adds some."""

    def __init__(self, path: Path | None):
        self.path = path
        self.results: dict = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg(), "parts_s": {}}
        self.save()

    def partial(self, part: str, figures) -> None:
        self.results[part] = figures
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.results, indent=1))
        os.replace(tmp, self.path)

    def run(self, part: str, work, *args) -> object:
        """Run one part; its figures (or its error) go into the report at once."""
        t0 = time.perf_counter()
        print(f"--- {part} (load average {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        try:
            figures = work(*args)
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the other parts still run
            traceback.print_exc()
            so_far = self.results.get(part)
            figures = {"error": f"{type(err).__name__}: {err}"[:2000],
                       **({"so_far": so_far} if so_far is not None else {})}
        self.results["parts_s"][part] = round(time.perf_counter() - t0, 1)
        self.partial(part, figures)
        return figures


QUICK = {"ddp_time": 20.0, "ulstm_time": 20.0, "movies": 2, "frames": 5, "ranges_frames": 10, "side": 1024,
         "block": 512}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="folder with hela_img.tif / hela_gt.tif")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
                        + " (options given explicitly win)")
    p.add_argument("--ddp-time", type=float, default=None, help="training seconds of each DDP arm (default 90)")
    p.add_argument("--ulstm-time", type=float, default=None, help="U-LSTM training seconds (default 60)")
    p.add_argument("--repeats", type=int, default=1, help="pairs of DDP arms (order alternates)")
    p.add_argument("--movies", type=int, default=None, help="copies of the HeLa movie (default 8)")
    p.add_argument("--frames", type=int, default=None, help="first N frames of each movie (default all 20)")
    p.add_argument("--ranges-frames", type=int, default=None, help="first N frames for the U-LSTM ranges (default 20)")
    p.add_argument("--side", type=int, default=None, help="side of the mosaic frame segmented block-wise (default 4096)")
    p.add_argument("--block", type=int, default=None, help="block side for the mosaic (default 1024)")
    p.add_argument("--model", type=Path, help="a trained U-Net for movies and blocks (default: the 1x2 arm's)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: ddp,ranges,blocks,movies")
    p.add_argument("--json", type=Path, help="write the figures here (after each part)")
    args = p.parse_args()
    defaults = {"ddp_time": 90.0, "ulstm_time": 60.0, "movies": 8, "frames": None, "ranges_frames": None,
                "side": 4096, "block": 1024}
    for key, value in (QUICK if args.quick else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    image_path, gt_path = hela_paths(args.data)
    image, gt = tifffile.imread(image_path), tifffile.imread(gt_path)
    skip = set(filter(None, args.skip.split(",")))
    report = Report(args.json)
    report.results["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    with tempfile.TemporaryDirectory(prefix="cellseq-dist-") as tmp:
        work = Path(tmp)
        model = args.model
        if "ddp" not in skip:
            report.run("ddp", ddp_arms, work, image_path, gt_path, image, gt, args.ddp_time,
                       max(1, args.repeats), report)
            first = work / "unet-1x2-0.pt"
            model = model or (first if first.exists() else None)
        if model is None and ("movies" not in skip or "blocks" not in skip):  # the U-Net of a 1x2 arm
            model = work / "unet.pt"
            report.run("unet", train, model, image_path, gt_path, args.ddp_time, "unet", 1, 2)
        if "ranges" not in skip:
            report.run("ulstm_ranges", ulstm_ranges, work, image_path, gt_path, gt, args.ulstm_time,
                       args.ranges_frames, report)
        if "blocks" not in skip:
            report.run("blocks", blocks, work, image, gt, model, args.side, args.block, report)
        if "movies" not in skip:
            report.run("movies", many_movies, work, image_path, model, args.movies, args.frames)
    report.results["load_avg_end"] = os.getloadavg()
    report.save()
    print(json.dumps(report.results, indent=1))
    failed = [k for k, v in report.results.items() if isinstance(v, dict) and "error" in v]
    if failed:
        raise SystemExit(f"parts failed: {', '.join(failed)} (errors in the report)")


if __name__ == "__main__":
    main()
