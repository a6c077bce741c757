"""Train networks on HeLa frames 0-4 with the same time budget, score held-out frames 10-19.

Prints, per model: training steps, SEG / AP50 / Dice on the held-out frames, and inference
seconds per 700x1100 frame (network + post-processing), then writes the figures to a JSON file.
U-Net and U-LSTM are measured in the same run, so their ratio is meaningful on this machine.

    python benchmarks/hela_accuracy.py --models unet,ulstm --max-time 600 --out out/hela.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hela_data import hela_paths  # noqa: E402

from napari_cellseq.core.config import DataConfig, TrainConfig  # noqa: E402
from napari_cellseq.core.events import Done, Step  # noqa: E402
from napari_cellseq.core.metrics import evaluate  # noqa: E402
from napari_cellseq.core.models import default_model_config  # noqa: E402
from napari_cellseq.core.pipeline import FrameLabels, segment_events  # noqa: E402
from napari_cellseq.core.training import train  # noqa: E402


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the HeLa benchmarks: budget, network size, frames, device, threads."""
    p.add_argument("--iterations", type=int, help="also stop after this many steps")
    p.add_argument("--width", type=int, help="override base channels")
    p.add_argument("--batch-size", type=int, help="default: 4 crops or 2 sequences (TrainConfig)")
    p.add_argument("--crop", type=int, default=DataConfig().crop_size, help="training crop side")
    p.add_argument("--lr", type=float, help="default: TrainConfig's")
    p.add_argument("--target", default="3class")
    p.add_argument("--loss", choices=["weighted_ce", "normalized_focal", "edge_weighted"],
                   help="default: the loss of the model's paper (TrainConfig.loss = None)")
    p.add_argument("--sampling", choices=["uniform", "balanced"], default="uniform")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-frames", type=int, nargs=2, default=(0, 4))
    p.add_argument("--test-frames", type=int, nargs=2, default=(10, 19))
    p.add_argument("--threads", type=int, default=2)


def held_out_frames(args) -> list[int]:
    """The held-out frames to score."""
    return list(range(args.test_frames[0], args.test_frames[1] + 1))


def train_on_painted_frames(name: str, image, gt, args, model_file: Path, on_event=None,
                            checkpoint_every: float | None = None) -> tuple[int, float]:
    """Train ``name`` on the ground truth of the training frames only; (steps, seconds).

    ``on_event`` sees every training event; ``checkpoint_every`` overrides TrainConfig's seconds
    between model-file writes.
    """
    train_frames = list(range(args.train_frames[0], args.train_frames[1] + 1))
    painted = np.zeros_like(gt)
    painted[train_frames] = gt[train_frames]
    overrides = {"base_channels": args.width} if args.width else {}
    cfg = TrainConfig(max_time=args.max_time, iterations=args.iterations, device=args.device,
                      seed=args.seed, batch_size=args.batch_size, loss=args.loss,
                      **({"lr": args.lr} if args.lr else {}),
                      **({"checkpoint_every": checkpoint_every} if checkpoint_every else {}))
    steps, seconds = 0, float("nan")
    for event in train(image, painted, model_file, model_config=default_model_config(name, **overrides),
                       data_config=DataConfig(target=args.target, sampling=args.sampling, crop_size=args.crop),
                       train_config=cfg):
        if on_event is not None:
            on_event(event)
        if isinstance(event, Step):
            steps = event.iteration
            if steps % 50 == 0:
                print(f"  {name}: step {steps} loss {event.loss:.4f} {event.elapsed:.0f}s", file=sys.stderr)
        elif isinstance(event, Done):
            seconds = event.elapsed
    return steps, seconds


def run(name: str, image, gt, args, workdir: Path) -> dict:
    t0 = time.perf_counter()
    model_file = workdir / f"{name}.pt"
    steps, train_seconds = train_on_painted_frames(name, image, gt, args, model_file)
    pred = np.zeros_like(gt)
    frame_times = []
    last = time.perf_counter()
    for event in segment_events(image, model_file, device=args.device):
        if isinstance(event, FrameLabels):
            now = time.perf_counter()
            frame_times.append(now - last)
            last = now
            pred[event.index] = event.labels
    tifffile.imwrite(workdir / f"{name}_labels.tif", pred)
    scores = evaluate(gt, pred, frames=held_out_frames(args))
    return {
        "model": name,
        "train_steps": steps,
        "train_seconds": round(train_seconds, 1),
        "seg": round(scores["seg"], 4),
        "ap50": round(scores["ap50"], 4),
        "dice": round(scores["dice"], 4),
        "seconds_per_frame": round(float(np.median(frame_times[1:] or frame_times)), 3),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="unet,ulstm")
    p.add_argument("--max-time", type=float, default=600.0)
    add_task_arguments(p)
    p.add_argument("--out", default="out/hela_accuracy.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    img_path, gt_path = hela_paths()
    image, gt = tifffile.imread(img_path), tifffile.imread(gt_path)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = [run(name, image, gt, args, out.parent) for name in args.models.split(",")]
    for r in results:
        print(json.dumps(r))
    if len(results) == 2:
        a, b = results
        print(f"{b['model']}/{a['model']}: SEG {b['seg'] / a['seg']:.3f}, inference time "
              f"{b['seconds_per_frame'] / a['seconds_per_frame']:.2f}x")
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
