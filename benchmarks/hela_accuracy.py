"""Train networks on HeLa frames 0-4 with the same time budget, score held-out frames 10-19.

Prints, per model: training steps, SEG / AP50 / Dice on the held-out frames, and inference
seconds per 700x1100 frame (network + post-processing), then writes the figures to a JSON file.
U-Net and U-LSTM are measured in the same run, so their ratio is meaningful on this machine.

    python -m benchmarks.hela_accuracy --models unet,ulstm --max-time 600 --out out/hela.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tifffile
import torch

from ._task import add_task_arguments, held_out_frames, load_hela, scores, segment_timed, train_on_painted_frames


def run(name: str, image, gt, args, workdir: Path) -> dict:
    t0 = time.perf_counter()
    model_file = workdir / f"{name}.pt"
    steps, train_seconds = train_on_painted_frames(name, image, gt, args, model_file)
    pred, per_frame = segment_timed(image, model_file, args.device)
    tifffile.imwrite(workdir / f"{name}_labels.tif", pred)
    s = scores(gt, pred, held_out_frames(args))
    return {
        "model": name,
        "train_steps": steps,
        "train_seconds": round(train_seconds, 1),
        "seg": s["seg"],
        "ap50": s["ap50"],
        "dice": s["dice"],
        "seconds_per_frame": round(per_frame, 3),
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
    image, gt = load_hela()
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
