"""The HeLa task the benchmarks share: data, painted frames, training, timed segmentation, scores.

Ground truth of the training frames (default 0-4) is "painted", the network is trained on it with
:func:`napari_cellseq.core.training.train`, the held-out frames (default 10-19) are segmented with
:func:`napari_cellseq.core.pipeline.segment` and scored with
:func:`napari_cellseq.core.metrics.evaluate`. The Cellpose peer runs in its own environment:
:data:`CELLPOSE_PEER` with :func:`cellpose_env`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_cellseq.core.config import LOSSES, SAMPLINGS, TARGETS, DataConfig, TrainConfig
from napari_cellseq.core.events import Done, Step
from napari_cellseq.core.metrics import evaluate
from napari_cellseq.core.models import default_model_config
from napari_cellseq.core.pipeline import FrameLabels, segment
from napari_cellseq.core.training import train

from .hela_data import hela_paths

__all__ = [
    "CELLPOSE_PEER",
    "DEFAULT_CELLPOSE_PYTHON",
    "add_task_arguments",
    "cellpose_env",
    "drain_training",
    "held_out_frames",
    "hela_paths",
    "load_hela",
    "scores",
    "segment_timed",
    "train_on_painted_frames",
]

HERE = Path(__file__).resolve().parent
#: The Cellpose side of the peer comparison, run by the Python of its own environment.
CELLPOSE_PEER = HERE / "cellpose_peer.py"
#: Where ``benchmarks/setup_cellpose.sh`` puts that environment's Python by default.
DEFAULT_CELLPOSE_PYTHON = HERE.parent / ".bench" / "cellpose-venv" / "bin" / "python"


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the HeLa benchmarks: budget, network size, frames, device, threads."""
    p.add_argument("--iterations", type=int, help="also stop after this many steps")
    p.add_argument("--width", type=int, help="override base channels")
    p.add_argument("--batch-size", type=int, help="default: TrainConfig's (crops or sequences per step)")
    p.add_argument("--crop", type=int, default=DataConfig().crop_size, help="training crop side")
    p.add_argument("--lr", type=float, help="default: TrainConfig's")
    p.add_argument("--target", choices=TARGETS, default="3class")
    p.add_argument("--loss", choices=LOSSES, help="default: the loss of the model's paper (TrainConfig.loss = None)")
    p.add_argument("--sampling", choices=SAMPLINGS, default="uniform")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-frames", type=int, nargs=2, default=(0, 4))
    p.add_argument("--test-frames", type=int, nargs=2, default=(10, 19))
    p.add_argument("--threads", type=int, default=2)


def load_hela() -> tuple[np.ndarray, np.ndarray]:
    """``(image, gt)``: the HeLa movie and its instance ground truth, ``(20, 700, 1100)`` uint16."""
    img_path, gt_path = hela_paths()
    return tifffile.imread(img_path), tifffile.imread(gt_path)


def held_out_frames(args) -> list[int]:
    """The held-out frames to score."""
    return list(range(args.test_frames[0], args.test_frames[1] + 1))


def train_on_painted_frames(name: str, image, gt, args, model_file: Path, on_event=None,
                            checkpoint_every: float | None = None, init: str | None = None) -> tuple[int, float]:
    """Train ``name`` on the ground truth of the training frames only; (steps, seconds).

    ``on_event`` sees every training event; ``checkpoint_every`` overrides TrainConfig's seconds
    between model-file writes; ``init`` is what the weights start from (``"builtin"``,
    ``"random"``, a model file; None: ``core.builtin.DEFAULT_INIT``).
    """
    train_frames = list(range(args.train_frames[0], args.train_frames[1] + 1))
    painted = np.zeros_like(gt)
    painted[train_frames] = gt[train_frames]
    overrides = {"base_channels": args.width} if args.width else {}
    cfg = TrainConfig(max_time=args.max_time, iterations=args.iterations, device=args.device,
                      seed=args.seed, batch_size=args.batch_size, loss=args.loss,
                      **({"lr": args.lr} if args.lr else {}),
                      **({"checkpoint_every": checkpoint_every} if checkpoint_every else {}))
    events = train(image, painted, model_file, model_config=default_model_config(name, **overrides),
                   data_config=DataConfig(target=args.target, sampling=args.sampling, crop_size=args.crop),
                   train_config=cfg, init=init)
    return drain_training(events, name, every=50, on_event=on_event)


def drain_training(events, label: str, every: int = 50, on_event=None) -> tuple[int, float]:
    """Run training ``events`` to the end, printing the loss every ``every`` steps to stderr;
    ``(steps, seconds)`` of the run. ``on_event`` sees every event."""
    steps, seconds = 0, float("nan")
    for event in events:
        if on_event is not None:
            on_event(event)
        if isinstance(event, Step):
            steps = event.iteration
            if steps % every == 0:
                print(f"  {label}: step {steps} loss {event.loss:.4f} {event.elapsed:.0f}s", file=sys.stderr)
        elif isinstance(event, Done):
            seconds = event.elapsed
    return steps, seconds


def segment_timed(image, model_file: Path, device: str, frames: list[int] | None = None) -> tuple[np.ndarray, float]:
    """``(labels, seconds per frame)``: :func:`~napari_cellseq.core.pipeline.segment` of ``frames``
    (default all) and the median wall time between consecutive frames (network, tiling and
    post-processing; the first frame, which also pays for loading and warm-up, has no interval
    before it; nan for a single frame)."""
    stamps: list[float] = []
    pred = segment(image, model_file, device=device, frames=frames,
                   on_event=lambda e: stamps.append(time.perf_counter()) if isinstance(e, FrameLabels) else None)
    per_frame = float(np.median(np.diff(stamps))) if len(stamps) > 1 else float("nan")
    return pred, per_frame


def scores(gt: np.ndarray, pred: np.ndarray, frames: list[int]) -> dict:
    """SEG, AP50 and Dice (4 decimals) and object counts of ``pred`` on ``frames``."""
    s = evaluate(gt, pred, frames=frames)
    return {"seg": round(s["seg"], 4), "ap50": round(s["ap50"], 4), "dice": round(s["dice"], 4),
            "n_gt": s["n_gt"], "n_pred": s["n_pred"]}


def cellpose_env() -> dict[str, str]:
    """The environment for the Cellpose peer: ours minus PYTHONPATH (which points at our src),
    so the child does not pick up this environment's packages."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
