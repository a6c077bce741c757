"""Cellpose 3 trained from scratch on the same painted frames and wall-clock budget (the peer).

Runs with the Python of a separate virtual environment holding ``cellpose==3.1.1.3`` (made by
``benchmarks/setup_cellpose.sh``); it imports only numpy, tifffile, torch and cellpose, never
napari_cellseq. ``benchmarks/peer_comparison.py`` calls it and scores its output with our metrics.

What it does:

1. reads the image and the ground truth (``(T, Y, X)`` TIFFs) and keeps the training frames;
2. builds ``CellposeModel(pretrained_model=False, model_type=None)``: a CPnet with random weights
   (``nbase 32..256``, ``diam_mean 30``); ``CELLPOSE_LOCAL_MODELS_PATH`` points at an empty
   temporary folder, so no weights can be found or downloaded;
3. trains it with ``cellpose.train.train_seg`` and Cellpose's own choices: its normalisation
   (1st-99th percentile per image), flows computed from the labels, augmentation, AdamW
   (``learning_rate`` 0.005, ``weight_decay`` 1e-5, the ``train_seg`` defaults), 224-pixel crops,
   ``nimg_per_epoch = max(8, frames)`` as Cellpose's GUI does for a few images (with 5 frames
   and batch 8: one optimiser step of 8 crops per epoch);
4. fits the epochs to the budget: ``train_seg`` takes a fixed ``n_epochs`` and derives its
   learning-rate schedule from it (warm-up over 10 epochs, step decay over the last 50/100),
   so it cannot simply be stopped at a time. The clock starts before the flows are computed
   (they are part of Cellpose's training); a calibration ``train_seg`` of ``--calib-epochs``
   epochs on the same network measures the seconds per epoch (a forward pre-hook stamps every
   training step); the main ``train_seg`` then gets ``n_epochs = remaining budget / seconds per
   epoch``. Everything, calibration included, counts as training time. If the machine slows
   down and the budget runs out anyway, the hook stops training at the budget (the weights
   after the last full step are saved; ``"cut_at_budget": true`` in the JSON);
5. saves the network, then **reloads it from the file** with
   ``CellposeModel(pretrained_model=FILE)``, so evaluation uses the mean training diameter
   stored in the file (``diam_labels``: images are rescaled by ``diam_mean / diam_labels``);
6. segments the test frames one at a time (``eval(frame, channels=[0, 0])``, otherwise the
   defaults: flow threshold 0.4, cell-probability threshold 0, min size 15) and writes the
   predictions (a ``(T, Y, X)`` stack, zero outside the test frames) and a JSON report.

``--snapshots 30,60,120`` also saves copies of the weights when the training clock passes each
mark (for ``time_to_accuracy.py``), and with ``--eval-snapshots`` segments the test frames with
each of them (``snapshot_<s>.tif``); note that an early snapshot of a long run is not the same as
a short run, because the learning-rate schedule is stretched over the whole budget.

    .bench/cellpose-venv/bin/python benchmarks/cellpose_peer.py \\
        --image data_cache/hela_img.tif --labels data_cache/hela_gt.tif \\
        --train-frames 0 4 --test-frames 10 19 --max-time 600 --out-dir out/cellpose
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# Before cellpose is imported: its model folder is read at import time. An empty folder means no
# built-in or user model can be picked up, and nothing is downloaded.
os.environ.setdefault("CELLPOSE_LOCAL_MODELS_PATH", tempfile.mkdtemp(prefix="cellpose-models-"))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402
import torch  # noqa: E402


class BudgetSpent(Exception):
    """Raised from the forward pre-hook when the training budget is used up."""


class StepClock:
    """Forward pre-hook on the network: stamps training steps, saves snapshots, enforces the budget."""

    def __init__(self, t0: float, budget: float, net, snapshot_marks=(), snapshot_dir: Path | None = None):
        self.t0, self.budget, self.net = t0, budget, net
        self.stamps: list[float] = []
        self.marks = sorted(float(m) for m in snapshot_marks)
        self.snapshot_dir = snapshot_dir
        self.snapshots: list[dict] = []
        self.steps = 0
        self.enforce = False

    def __call__(self, module, inputs):
        if not module.training:
            return None
        now = time.perf_counter()
        elapsed = now - self.t0
        # weights now are those after ``self.steps`` optimiser steps
        while self.marks and elapsed >= self.marks[0]:
            mark = self.marks.pop(0)
            path = self.snapshot_dir / f"snapshot_{mark:g}s.pth"
            self.net.save_model(str(path))
            self.snapshots.append({"mark": mark, "seconds": round(elapsed, 2), "steps": self.steps, "path": str(path)})
        if self.enforce and elapsed >= self.budget:
            raise BudgetSpent
        self.stamps.append(now)
        self.steps += 1
        return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", required=True, help="(T, Y, X) image TIFF")
    p.add_argument("--labels", required=True, help="(T, Y, X) instance ground truth TIFF")
    p.add_argument("--train-frames", type=int, nargs=2, default=(0, 4), metavar=("FIRST", "LAST"))
    p.add_argument("--test-frames", type=int, nargs=2, default=(10, 19), metavar=("FIRST", "LAST"))
    p.add_argument("--max-time", type=float, default=600.0, help="training budget in seconds (wall clock)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--nimg-per-epoch", type=int, help="default max(8, training frames), as the Cellpose GUI")
    p.add_argument("--learning-rate", type=float, default=0.005)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--calib-epochs", type=int, default=4, help="epochs timed before the main run")
    p.add_argument("--snapshots", default="", help="comma-separated seconds at which to copy the weights")
    p.add_argument("--eval-snapshots", action="store_true", help="also segment the test frames with each snapshot")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def segment_frames(model_file: Path, image: np.ndarray, frames: list[int], device: torch.device):
    """Reload the model from its file (trained diameter) and segment ``frames``; (pred, seconds)."""
    from cellpose import models

    model = models.CellposeModel(pretrained_model=str(model_file), device=device, gpu=device.type == "cuda")
    pred = np.zeros(image.shape, dtype=np.uint32)
    seconds = []
    for t in frames:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        masks = model.eval(image[t], channels=[0, 0], diameter=None)[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t1)
        pred[t] = masks
    if pred.max() < 2**16:
        pred = pred.astype(np.uint16)
    info = {"diam_mean": float(model.diam_mean), "diam_labels": float(model.diam_labels)}
    return pred, seconds, info


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="cellpose-peer %(name)s: %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    from cellpose import dynamics, models, train
    from cellpose.version import version as cellpose_version

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = tifffile.imread(args.image)
    gt = tifffile.imread(args.labels)
    train_frames = list(range(args.train_frames[0], args.train_frames[1] + 1))
    test_frames = list(range(args.test_frames[0], args.test_frames[1] + 1))
    device = pick_device(args.device)
    gpu = device.type == "cuda"

    model = models.CellposeModel(gpu=gpu, device=device, pretrained_model=False, model_type=None)
    if model.pretrained_model:
        raise SystemExit(f"expected an untrained network, got weights from {model.pretrained_model}")
    net = model.net
    data = [np.asarray(image[t], dtype=np.float32) for t in train_frames]
    common = dict(
        train_data=data, channels=[0, 0], batch_size=args.batch_size,
        learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        nimg_per_epoch=args.nimg_per_epoch or max(8, len(data)),
        save_path=str(out), min_train_masks=1,
    )

    marks = [float(s) for s in args.snapshots.split(",") if s.strip()]
    t0 = time.perf_counter()
    clock = StepClock(t0, args.max_time, net, marks, out)
    handle = net.register_forward_pre_hook(clock)
    # Flows from the labels, once (train_seg skips them when they are given precomputed).
    flows = dynamics.labels_to_flows([np.asarray(gt[t]) for t in train_frames], device=device)
    flows_seconds = time.perf_counter() - t0

    clock.enforce = True
    cut = False
    n_epochs = 0
    try:
        train.train_seg(net, train_labels=flows, n_epochs=args.calib_epochs, model_name="calibration", **common)
        stamps = np.array(clock.stamps)
        steps_per_epoch = max(1, len(stamps) // args.calib_epochs)
        epoch_seconds = float(np.median(np.diff(stamps))) * steps_per_epoch if len(stamps) > 1 else float("inf")
        remaining = args.max_time - (time.perf_counter() - t0)
        n_epochs = int(remaining // epoch_seconds) if np.isfinite(epoch_seconds) else 0
        logging.getLogger("peer").info(
            "%.2f s per epoch; %d epochs fit the remaining %.1f s", epoch_seconds, n_epochs, remaining)
        if n_epochs >= 1:
            train.train_seg(net, train_labels=flows, n_epochs=n_epochs, model_name="cellpose_peer", **common)
    except BudgetSpent:
        cut = True
    train_seconds = time.perf_counter() - t0
    handle.remove()
    model_file = out / "cellpose_peer.pth"
    net.save_model(str(model_file))  # the weights as they are now, whichever way training ended

    pred, seconds, info = segment_frames(model_file, image, test_frames, device)
    tifffile.imwrite(out / "cellpose_pred.tif", pred, compression="zlib")
    report = {
        "peer": "cellpose",
        "cellpose_version": cellpose_version,
        "torch_version": torch.__version__,
        "device": str(device),
        "threads": args.threads,
        "train_frames": train_frames,
        "test_frames": test_frames,
        "budget_seconds": args.max_time,
        "train_seconds": round(train_seconds, 2),
        "flows_seconds": round(flows_seconds, 2),
        "calibration_epochs": args.calib_epochs,
        "epochs": args.calib_epochs + n_epochs,
        "main_run_epochs": n_epochs,
        "steps": clock.steps,
        "cut_at_budget": cut,
        "batch_size": args.batch_size,
        "nimg_per_epoch": common["nimg_per_epoch"],
        "learning_rate": args.learning_rate,
        "model_file": str(model_file),
        "predictions": str(out / "cellpose_pred.tif"),
        "seconds_per_frame": [round(s, 3) for s in seconds],
        "seconds_per_frame_median": round(float(np.median(seconds[1:] or seconds)), 3),
        **info,
    }
    if clock.snapshots:
        for snap in clock.snapshots:
            if args.eval_snapshots:
                snap_pred, _, _ = segment_frames(Path(snap["path"]), image, test_frames, device)
                snap["predictions"] = str(out / f"snapshot_{snap['mark']:g}s.tif")
                tifffile.imwrite(snap["predictions"], snap_pred, compression="zlib")
        report["snapshots"] = clock.snapshots
    (out / "cellpose_peer.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
