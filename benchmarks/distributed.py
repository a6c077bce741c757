"""Beyond one machine, measured in one run on this machine (README, "Beyond one machine").

1. Training on several processes: the same U-Net on HeLa (painted frames 0-4, scored on
   10-19) for the same time budget, as one process with 2 torch threads and as
   ``torchrun --nproc_per_node=2`` with 1 thread each (DDP, gloo); steps/s, crops/s and SEG.
   The arms alternate (``--repeats``), so that a shared machine's load hits both alike.
2. Many movies: ``--movies`` copies of the HeLa movie (20 x 700 x 1100) segmented with the
   U-Net of the first 1x2 arm, in this process (2 threads) and on a LocalCluster of 2 workers x 1
   thread; wall time, and whether the files are byte-identical.
3. Frame ranges of a U-LSTM (trained ``--ulstm-time`` s): the movie cut into tasks of 5 frames
   with 0, 2 and 5 context frames; SEG of the range labels against the whole-movie labels.
4. A frame larger than a tile: a 4096 x 4096 mosaic of HeLa frames 10-19 (ground truth likewise),
   whole-frame vs block-wise (1024-pixel blocks, stitched) in this process and on the cluster:
   time, SEG against the ground truth and of one against the other, cells joined at seams.

    python benchmarks/distributed.py --data /work/data_cache --json out/distributed.json
    python benchmarks/distributed.py --ddp-time 60 --ulstm-time 60 --movies 8 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
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


def ddp_arms(work: Path, image_path: Path, gt_path: Path, image, gt, seconds: float, repeats: int) -> tuple[list, Path]:
    rows, first = [], None
    arms = [(1, 2), (2, 1)]
    for r in range(repeats):
        for processes, threads in (arms if r % 2 == 0 else arms[::-1]):
            out = work / f"unet-{processes}x{threads}-{r}.pt"
            row = train(out, image_path, gt_path, seconds, "unet", processes, threads)
            row.update(score(out, image, gt), repeat=r)
            print(json.dumps({"ddp": row}), flush=True)
            rows.append(row)
            if first is None and processes == 1:
                first = out
    return rows, first


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


def ulstm_ranges(work: Path, image_path: Path, gt_path: Path, gt, seconds: float) -> dict:
    model = work / "ulstm.pt"
    row = train(model, image_path, gt_path, seconds, "ulstm", 1, 2)
    whole = segment(tifffile.imread(image_path), model, device="cpu")
    out = {"train": row, "whole_seg_vs_gt": round(evaluate(gt, whole, frames=SCORED)["seg"], 4)}
    for context in (0, 2, 5):
        target = work / f"ranges-{context}"
        segment_movies([image_path], model, target, None, device="cpu", frames_per_task=5, context=context)
        labels = tifffile.imread(target / image_path.name)
        out[f"context_{context}"] = {"seg_vs_whole": round(seg_score(whole, labels), 4),
                                     "seg_vs_gt": round(evaluate(gt, labels, frames=SCORED)["seg"], 4)}
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


def blocks(work: Path, image, gt, model: Path, side: int) -> dict:
    img = mosaic(image[SCORED], side)
    truth = _unique_copies(mosaic(gt[SCORED], side), image.shape[1:])
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    whole = segment(img, model, device="cpu")
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    r_here = segment_blocks(img, model, work / "blocks-here.zarr", block=1024)
    t_here = time.perf_counter() - t0
    with open_client("local:2") as client:
        t0 = time.perf_counter()
        r_cluster = segment_blocks(img, model, work / "blocks-cluster.zarr", client, block=1024)
        t_cluster = time.perf_counter() - t0
    import zarr

    lab = zarr.open_array(str(work / "blocks-here.zarr"), mode="r")[:]
    lab2 = zarr.open_array(str(work / "blocks-cluster.zarr"), mode="r")[:]
    row = {"shape": list(img.shape), "block": 1024, "overlap": 64, "whole_s": round(t_whole, 1),
           "blocks_in_process_s": round(t_here, 1), "blocks_cluster_2x1_s": round(t_cluster, 1),
           "cells": r_here.cells, "joined_at_seams": r_here.joined,
           "seg_whole_vs_gt": round(seg_score(truth, whole), 4), "seg_blocks_vs_gt": round(seg_score(truth, lab), 4),
           "seg_blocks_vs_whole": round(seg_score(whole, lab), 4), "seg_whole_vs_blocks": round(seg_score(lab, whole), 4),
           "cluster_equals_in_process": bool(np.array_equal(lab, lab2)), "cluster_cells": r_cluster.cells}
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="folder with hela_img.tif / hela_gt.tif")
    p.add_argument("--ddp-time", type=float, default=90.0, help="training seconds of each DDP arm")
    p.add_argument("--ulstm-time", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=1, help="pairs of DDP arms (order alternates)")
    p.add_argument("--movies", type=int, default=8)
    p.add_argument("--frames", type=int, default=None, help="first N frames of each movie (default all 20)")
    p.add_argument("--side", type=int, default=4096, help="side of the mosaic frame segmented block-wise")
    p.add_argument("--model", type=Path, help="a trained U-Net for movies and blocks (default: the 1x2 arm's)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: ddp,movies,ranges,blocks")
    p.add_argument("--json", type=Path, help="write all figures here")
    args = p.parse_args()
    image_path, gt_path = hela_paths(args.data)
    image, gt = tifffile.imread(image_path), tifffile.imread(gt_path)
    skip = set(filter(None, args.skip.split(",")))
    results: dict = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="cellseq-dist-") as tmp:
        work = Path(tmp)
        model = args.model
        if "ddp" not in skip:
            results["ddp"], first = ddp_arms(work, image_path, gt_path, image, gt, args.ddp_time,
                                             max(1, args.repeats))
            model = model or first
        elif model is None and ("movies" not in skip or "blocks" not in skip):  # the U-Net of a 1x2 arm
            model = work / "unet.pt"
            results["unet"] = train(model, image_path, gt_path, args.ddp_time, "unet", 1, 2)
        if "movies" not in skip:
            results["movies"] = many_movies(work, image_path, model, args.movies, args.frames)
        if "ranges" not in skip:
            results["ulstm_ranges"] = ulstm_ranges(work, image_path, gt_path, gt, args.ulstm_time)
        if "blocks" not in skip:
            results["blocks"] = blocks(work, image, gt, model, args.side)
    results["load_avg_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
