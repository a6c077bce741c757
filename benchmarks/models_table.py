"""One table comparing every registered network on the same HeLa task and time budget.

Each model is trained with :func:`napari_cellseq.core.training.train` on the same painted
frames (HeLa frames 0-4, see ``_task.py``) for the same wall-clock budget (``--max-time``,
default 120 s), segments the held-out frames 10-19 with
:func:`napari_cellseq.core.pipeline.segment`, and is scored with
:func:`napari_cellseq.core.metrics.evaluate`. Columns:

* ``params``: trainable parameters of the trained network (the model's default configuration,
  or ``--width`` as base channels);
* ``steps/s``: optimiser steps per second of training (batch ``--batch-size`` crops, or
  sequences for time-lapse models);
* ``ms/frame``: median wall time per 700x1100 frame of ``segment`` (network, tiling, and
  post-processing to instance labels), the first frame excluded as warm-up;
* ``SEG``, ``AP50``: Cell Tracking Challenge SEG and AP at IoU 0.5 on frames 10-19.

With a fixed time budget, faster networks get more steps: the table measures what each
architecture delivers in that budget on this machine, not its accuracy at convergence.

    python -m benchmarks.models_table --max-time 120 --out out/models_table.json
    python -m benchmarks.models_table --max-time 5 --models segnet   # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.models import available_models, parameter_count

from ._task import add_task_arguments, held_out_frames, load_hela, scores, segment_timed, train_on_painted_frames

COLUMNS = ("model", "params", "steps/s", "ms/frame", "SEG", "AP50")


def measure(name: str, image: np.ndarray, gt: np.ndarray, args, workdir: Path) -> dict:
    """Train ``name`` on the painted frames, segment and score the test frames; one table row."""
    frames = held_out_frames(args)
    model_file = workdir / f"models_table_{name}.pt"
    steps, seconds = train_on_painted_frames(name, image, gt, args, model_file)
    params = parameter_count(load_checkpoint(model_file).model_config)

    pred, per_frame = segment_timed(image, model_file, args.device, frames=frames)
    s = scores(gt, pred, frames)
    return {
        "model": name,
        "params": params,
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "steps/s": round(steps / seconds, 3) if seconds > 0 else float("nan"),
        "ms/frame": round(1000 * per_frame, 1),
        "SEG": s["seg"],
        "AP50": s["ap50"],
    }


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (parameters with thousands separators)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r["model"], f"{r['params']:,d}", f"{r['steps/s']:.2f}", f"{r['ms/frame']:.0f}",
                 f"{r['SEG']:.3f}", f"{r['AP50']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma-separated names (default: every registered model)")
    p.add_argument("--max-time", type=float, default=120.0, help="training seconds per model")
    add_task_arguments(p)
    p.add_argument("--out", default="out/models_table.json", help="JSON results; a .md table is written beside it")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else available_models()
    image, gt = load_hela()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        print(f"{name}: training {args.max_time:g} s ...", file=sys.stderr, flush=True)
        rows.append(measure(name, image, gt, args, out.parent))
    table = markdown(rows)
    print(table)
    out.write_text(json.dumps({"args": vars(args), "results": rows}, indent=2))
    out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
