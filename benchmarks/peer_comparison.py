"""Our networks against Cellpose 3 trained from scratch: same painted frames, same time budget.

In one run (so the ratios are measured on one machine in one state):

1. trains our U-Net (and the U-LSTM with ``--ulstm``) on the ground truth of the training
   frames for ``--max-time`` seconds (``hela_accuracy.train_on_painted_frames``), segments the
   test frames with :func:`napari_cellseq.core.pipeline.segment`;
2. runs ``benchmarks/cellpose_peer.py`` (a plain script, no napari_cellseq import) with the Python of the Cellpose environment
   (``--cellpose-python``, made by ``benchmarks/setup_cellpose.sh``) on the same frames and
   budget; Cellpose uses its own normalisation, augmentation and post-processing;
3. scores every prediction with :func:`napari_cellseq.core.metrics.evaluate` on the test frames,
   prints a table and the ratios (our SEG / Cellpose's SEG at equal training time, our
   inference frames/s / Cellpose's), and writes everything to ``--json``.

Inference time is the median wall time per test frame (network and post-processing to
instance labels), the first frame excluded as warm-up.

    python -m benchmarks.peer_comparison --max-time 600 --ulstm \\
        --cellpose-python .bench/cellpose-venv/bin/python --json out/peer_comparison.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
import torch

from ._task import (
    CELLPOSE_PEER,
    DEFAULT_CELLPOSE_PYTHON,
    add_task_arguments,
    cellpose_env,
    held_out_frames,
    hela_paths,
    load_hela,
    scores,
    segment_timed,
    train_on_painted_frames,
)


def scores_row(name: str, gt: np.ndarray, pred: np.ndarray, frames: list[int], **extra) -> dict:
    return {"model": name, **extra, **scores(gt, pred, frames)}


def run_ours(name: str, image, gt, args, workdir: Path) -> dict:
    model_file = workdir / f"peer_{name}.pt"
    steps, seconds = train_on_painted_frames(name, image, gt, args, model_file)
    frames = held_out_frames(args)
    pred, per_frame = segment_timed(image, model_file, args.device, frames=frames)
    tifffile.imwrite(workdir / f"peer_{name}_pred.tif", pred, compression="zlib")
    return scores_row(name, gt, pred, frames, train_steps=steps, train_seconds=round(seconds, 1),
                      seconds_per_frame=round(per_frame, 3))


def run_cellpose(img_path: Path, gt_path: Path, gt, args, workdir: Path) -> dict:
    out_dir = workdir / "cellpose"
    cmd = [str(args.cellpose_python), str(CELLPOSE_PEER),
           "--image", str(img_path), "--labels", str(gt_path),
           "--train-frames", *map(str, args.train_frames), "--test-frames", *map(str, args.test_frames),
           "--max-time", str(args.max_time), "--out-dir", str(out_dir),
           "--device", args.cellpose_device or args.device, "--threads", str(args.threads),
           "--seed", str(args.seed), "--calib-epochs", str(args.cellpose_calib_epochs)]
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env=cellpose_env(), stdout=subprocess.DEVNULL)
    report = json.loads((out_dir / "cellpose_peer.json").read_text())
    pred = tifffile.imread(report["predictions"])
    row = scores_row("cellpose", gt, pred, held_out_frames(args), train_steps=report["steps"],
                     train_seconds=report["train_seconds"],
                     seconds_per_frame=report["seconds_per_frame_median"])
    row["epochs"] = report["epochs"]
    row["cut_at_budget"] = report["cut_at_budget"]
    return row, report


def table(rows: list[dict]) -> str:
    cols = ("model", "train_steps", "train_seconds", "seg", "ap50", "dice", "seconds_per_frame")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-time", type=float, default=600.0, help="training seconds for every model")
    p.add_argument("--ulstm", action="store_true", help="also train and score the U-LSTM")
    p.add_argument("--cellpose-python", type=Path, default=Path(os.environ.get("CELLPOSE_PYTHON", DEFAULT_CELLPOSE_PYTHON)),
                   help="python of the Cellpose environment (benchmarks/setup_cellpose.sh)")
    p.add_argument("--cellpose-device", help="device for Cellpose (default: --device; auto = CUDA if available)")
    p.add_argument("--cellpose-calib-epochs", type=int, default=4, help="see cellpose_peer.py")
    p.add_argument("--skip-cellpose", action="store_true")
    add_task_arguments(p)
    p.add_argument("--workdir", default="out/peer", help="models and predictions go here")
    p.add_argument("--json", default="out/peer_comparison.json")
    args = p.parse_args()
    if args.cellpose_device is None and args.device == "auto":
        args.cellpose_device = "auto"
    torch.set_num_threads(args.threads)
    img_path, gt_path = hela_paths()
    image, gt = load_hela()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    rows = []
    for name in ["unet"] + (["ulstm"] if args.ulstm else []):
        print(f"{name}: training {args.max_time:g} s ...", file=sys.stderr, flush=True)
        rows.append(run_ours(name, image, gt, args, workdir))
    peer_report = None
    if not args.skip_cellpose:
        if not Path(args.cellpose_python).exists():
            raise SystemExit(f"no Cellpose python at {args.cellpose_python}: run bash benchmarks/setup_cellpose.sh "
                             "or pass --cellpose-python")
        row, peer_report = run_cellpose(img_path, gt_path, gt, args, workdir)
        rows.append(row)

    print(table(rows))
    ratios = {}
    cp = next((r for r in rows if r["model"] == "cellpose"), None)
    if cp is not None:
        for r in rows:
            if r is cp:
                continue
            ratios[r["model"]] = {
                "seg_ratio": round(r["seg"] / cp["seg"], 3) if cp["seg"] else float("nan"),
                "ap50_ratio": round(r["ap50"] / cp["ap50"], 3) if cp["ap50"] else float("nan"),
                "frames_per_second_ratio": round(cp["seconds_per_frame"] / r["seconds_per_frame"], 2),
            }
            print(f"{r['model']} / cellpose at {args.max_time:g} s of training: SEG x{ratios[r['model']]['seg_ratio']}, "
                  f"AP50 x{ratios[r['model']]['ap50_ratio']}, inference frames/s x{ratios[r['model']]['frames_per_second_ratio']}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                               "torch": torch.__version__, "results": rows, "ratios": ratios,
                               "cellpose_report": peer_report}, indent=2))


if __name__ == "__main__":
    main()
