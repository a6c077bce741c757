"""SEG on held-out HeLa frames against training seconds: U-Net and U-LSTM from their built-in
weights and from random weights (and Cellpose, optional).

Each network is trained once per starting point (``--init``, default ``builtin random``) for the
largest mark (``--marks``, default 15,30,60,120,240,600 s) on the ground truth of the training
frames (``hela_accuracy.train_on_painted_frames``). Training writes its model file every
``--checkpoint-every`` seconds (default 1 s, included in the training time); the first file
written at or after each mark is copied aside, with the training seconds and steps it holds. A
built-in is also scored untrained (mark 0: zero-shot). After training, every copy segments the
test frames and is scored with :func:`napari_cellseq.core.metrics.evaluate`; evaluation time is
not counted.

A snapshot at 30 s of a 600 s run is not a 30 s run: the learning rate decays (cosine) over the
whole budget, so early snapshots still train at a high rate, and a snapshot keeps the argmax
(the threshold is chosen when a run ends). ``--separate-runs`` trains a fresh model per mark
instead (the sum of the marks per curve: 1065 s with the default marks), which is what a user
with that budget gets. ``--checks`` runs the issue's two target checks as a user would
(``train --init builtin --max-time 15`` for the U-Net, ``--max-time 60`` for the U-LSTM, each a
separate run, plus zero-shot) and says whether SEG reaches ``--goal`` (0.85).

With ``--cellpose`` the Cellpose peer (``cellpose_peer.py`` in its own environment) is trained
for the largest mark with ``--snapshots`` (or once per mark with ``--separate-runs``) and scored
the same way. Writes a JSON file and, when matplotlib is installed, a PNG plot beside it (one
panel per network, both starting points).

    python -m benchmarks.time_to_accuracy --json out/time_to_accuracy.json          # ~55 min, 2 cores
    python -m benchmarks.time_to_accuracy --checks --json out/tta_checks.json       # ~4 min
    python -m benchmarks.time_to_accuracy --marks 30,60,120,240,600 --init random --cellpose \\
        --cellpose-python .bench/cellpose-venv/bin/python --json out/time_to_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tifffile
import torch

from napari_cellseq.core.builtin import BUILTIN, RANDOM, builtin_for, builtin_path
from napari_cellseq.core.events import CheckpointSaved, Step
from napari_cellseq.core.pipeline import segment

from ._task import (
    CELLPOSE_PEER,
    DEFAULT_CELLPOSE_PYTHON,
    add_task_arguments,
    cellpose_env,
    held_out_frames,
    hela_paths,
    load_hela,
    scores,
    train_on_painted_frames,
)

#: The issue's target checks: (network, seconds of training from the built-in).
CHECKS = (("unet", 15.0), ("ulstm", 60.0))


class Snapshots:
    """Copies the model file when training has passed each mark (on the next checkpoint)."""

    def __init__(self, marks: list[float], model_file: Path, workdir: Path, name: str):
        self.marks, self.model_file, self.workdir, self.name = sorted(marks), model_file, workdir, name
        self.step = (0, 0.0)
        self.taken: list[dict] = []

    def __call__(self, event) -> None:
        if isinstance(event, Step):
            self.step = (event.iteration, event.elapsed)
        elif isinstance(event, CheckpointSaved):
            steps, elapsed = self.step
            while self.marks and elapsed >= self.marks[0]:
                mark = self.marks.pop(0)
                path = self.workdir / f"tta_{self.name}_{mark:g}s.pt"
                shutil.copyfile(event.path, path)
                self.taken.append({"mark": mark, "seconds": round(elapsed, 2), "steps": steps, "path": str(path)})


def curve_name(network: str, init: str) -> str:
    return f"{network} from {'built-in' if init == BUILTIN else init}"


def run_ours(network: str, init: str, image, gt, args, marks: list[float], workdir: Path) -> list[dict]:
    """The points of one curve: ``network`` trained from ``init`` (``builtin`` or ``random``),
    scored at each mark (and untrained, mark 0, from a built-in)."""
    frames = held_out_frames(args)
    name = f"{network}_{init}"
    label = curve_name(network, init)
    points = []
    if init == BUILTIN:
        builtin = builtin_for(network, args.target)
        points.append({"mark": 0.0, "seconds": 0.0, "steps": 0, "path": str(builtin_path(builtin.name))})
    if args.separate_runs:
        for mark in marks:
            run_args = argparse.Namespace(**{**vars(args), "max_time": mark})
            model_file = workdir / f"tta_{name}_{mark:g}s.pt"
            print(f"{label}: training {mark:g} s ...", file=sys.stderr, flush=True)
            steps, seconds = train_on_painted_frames(network, image, gt, run_args, model_file, init=init)
            points.append({"mark": mark, "seconds": round(seconds, 2), "steps": steps, "path": str(model_file)})
    else:
        model_file = workdir / f"tta_{name}.pt"
        snaps = Snapshots(marks, model_file, workdir, name)
        run_args = argparse.Namespace(**{**vars(args), "max_time": max(marks)})
        print(f"{label}: training {max(marks):g} s, snapshots at {marks} ...", file=sys.stderr, flush=True)
        steps, seconds = train_on_painted_frames(network, image, gt, run_args, model_file, on_event=snaps,
                                                 checkpoint_every=args.checkpoint_every, init=init)
        points += snaps.taken
        if snaps.marks:  # marks at the very end: the final file (written after the last step)
            for mark in snaps.marks:
                path = workdir / f"tta_{name}_{mark:g}s.pt"
                shutil.copyfile(model_file, path)
                points.append({"mark": mark, "seconds": round(seconds, 2), "steps": steps, "path": str(path)})
    for point in points:
        pred = segment(image, point["path"], device=args.device, frames=frames)
        point.update(scores(gt, pred, frames))
        print(f"  {label} {point['seconds']:.0f} s ({point['steps']} steps): SEG {point['seg']:.3f} "
              f"AP50 {point['ap50']:.3f}", file=sys.stderr)
    return points


def run_checks(image, gt, args, workdir: Path) -> dict[str, list[dict]]:
    """The issue's target checks: each network from its built-in, zero-shot and after a separate
    run of its target seconds."""
    curves = {}
    for network, seconds in CHECKS:
        run_args = argparse.Namespace(**{**vars(args), "separate_runs": True})
        curves[curve_name(network, BUILTIN)] = run_ours(network, BUILTIN, image, gt, run_args, [seconds], workdir)
    return curves


def run_cellpose(img_path: Path, gt_path: Path, gt, args, marks: list[float], workdir: Path) -> list[dict]:
    frames = held_out_frames(args)
    env = cellpose_env()
    base = [str(args.cellpose_python), str(CELLPOSE_PEER), "--image", str(img_path),
            "--labels", str(gt_path), "--train-frames", *map(str, args.train_frames),
            "--test-frames", *map(str, args.test_frames), "--device", args.device if args.device != "auto" else "auto",
            "--threads", str(args.threads), "--seed", str(args.seed)]
    points = []
    if args.separate_runs:
        for mark in marks:
            out_dir = workdir / f"tta_cellpose_{mark:g}s"
            subprocess.run(base + ["--max-time", str(mark), "--out-dir", str(out_dir)], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            report = json.loads((out_dir / "cellpose_peer.json").read_text())
            pred = tifffile.imread(report["predictions"])
            points.append({"mark": mark, "seconds": report["train_seconds"], "steps": report["steps"],
                           **scores(gt, pred, frames)})
    else:
        out_dir = workdir / "tta_cellpose"
        subprocess.run(base + ["--max-time", str(max(marks)), "--out-dir", str(out_dir),
                               "--snapshots", ",".join(f"{m:g}" for m in marks if m < max(marks)),
                               "--eval-snapshots"], check=True, env=env, stdout=subprocess.DEVNULL)
        report = json.loads((out_dir / "cellpose_peer.json").read_text())
        for snap in report.get("snapshots", []):
            pred = tifffile.imread(snap["predictions"])
            points.append({"mark": snap["mark"], "seconds": snap["seconds"], "steps": snap["steps"],
                           **scores(gt, pred, frames)})
        pred = tifffile.imread(report["predictions"])
        points.append({"mark": max(marks), "seconds": report["train_seconds"], "steps": report["steps"],
                       **scores(gt, pred, frames)})
    for point in points:
        print(f"  cellpose {point['seconds']:.0f} s ({point['steps']} steps): SEG {point['seg']:.3f}", file=sys.stderr)
    return points


def plot(curves: dict[str, list[dict]], path: Path, title: str, marks: list[float]) -> bool:
    """One panel per network (``"unet from built-in"``, ``"unet from random"`` share a panel);
    zero-shot (mark 0) is drawn left of the first mark, at the tick "0"."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]')", file=sys.stderr)
        return False
    panels: dict[str, dict[str, list[dict]]] = {}
    for name, points in curves.items():
        panels.setdefault(name.split(" ")[0], {})[name] = points
    zero_x = min(marks) / 2
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), dpi=120, squeeze=False)
    for ax, (network, named) in zip(axes[0], panels.items()):
        for name, points in named.items():
            pts = sorted(points, key=lambda p: p["seconds"])
            xs = [p["seconds"] if p["mark"] > 0 else zero_x for p in pts]
            ax.plot(xs, [p["seg"] for p in pts], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xticks([zero_x, *marks], ["0", *(f"{m:g}" for m in marks)])
        ax.minorticks_off()
        ax.set_xlabel("training seconds (0: zero-shot)")
        ax.set_ylabel("SEG on held-out frames")
        ax.set_ylim(0, 1)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(network, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="unet,ulstm")
    p.add_argument("--init", nargs="+", choices=(BUILTIN, RANDOM), default=[BUILTIN, RANDOM],
                   help="starting points to compare (default both)")
    p.add_argument("--marks", default="15,30,60,120,240,600", help="training seconds at which to score")
    p.add_argument("--checkpoint-every", type=float, default=1.0, help="seconds between model-file writes")
    p.add_argument("--separate-runs", action="store_true", help="a fresh training run per mark")
    p.add_argument("--checks", action="store_true",
                   help="only the target checks: U-Net 15 s and U-LSTM 60 s from the built-in, separate runs, "
                        "and zero-shot")
    p.add_argument("--goal", type=float, default=0.85, help="SEG the target checks must reach")
    p.add_argument("--cellpose", action="store_true", help="also the Cellpose peer")
    p.add_argument("--cellpose-python", type=Path,
                   default=Path(os.environ.get("CELLPOSE_PYTHON", DEFAULT_CELLPOSE_PYTHON)))
    add_task_arguments(p)
    p.add_argument("--workdir", default="out/tta")
    p.add_argument("--json", default="out/time_to_accuracy.json", help="results; the plot goes beside it (.png)")
    args = p.parse_args()
    args.max_time = None  # set per run
    torch.set_num_threads(args.threads)
    marks = sorted(float(m) for m in args.marks.split(","))
    if args.checks:
        marks = sorted({s for _, s in CHECKS})
    if min(marks) <= 0:
        p.error("--marks are training seconds above 0 (zero-shot is scored for every built-in anyway)")
    img_path, gt_path = hela_paths()
    image, gt = load_hela()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    if args.checks:
        curves = run_checks(image, gt, args, workdir)
    else:
        curves = {curve_name(network, init): run_ours(network, init, image, gt, args, marks, workdir)
                  for network in args.models.split(",") if network for init in args.init}
    if args.cellpose and not args.checks:
        curves["cellpose"] = run_cellpose(img_path, gt_path, gt, args, marks, workdir)

    columns = [0.0, *marks]
    print("| model | " + " | ".join("zero-shot" if m == 0 else f"{m:g} s" for m in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, points in curves.items():
        by_mark = {pt["mark"]: pt for pt in points}
        cells = [f"{by_mark[m]['seg']:.3f}" if m in by_mark else "" for m in columns]
        print(f"| {name} SEG | " + " | ".join(cells) + " |")
    checks = []
    if args.checks:
        for network, seconds in CHECKS:
            points = {pt["mark"]: pt for pt in curves[curve_name(network, BUILTIN)]}
            seg = points[seconds]["seg"]
            checks.append({"network": network, "seconds": seconds, "seg": seg, "goal": args.goal,
                           "zero_shot_seg": points[0.0]["seg"], "passed": seg >= args.goal})
            print(f"{network} from the built-in, {seconds:g} s: SEG {seg:.3f} "
                  f"({'reaches' if seg >= args.goal else 'misses'} {args.goal}); zero-shot {points[0.0]['seg']:.3f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                               "torch": torch.__version__, "curves": curves, "checks": checks}, indent=2))
    frames = f"{args.train_frames[0]}-{args.train_frames[1]}"
    tests = f"{args.test_frames[0]}-{args.test_frames[1]}"
    if plot(curves, out.with_suffix(".png"), f"HeLa, trained on frames {frames}, SEG on frames {tests}"
            + (" (separate runs)" if args.separate_runs or args.checks else " (snapshots of one run)"), marks):
        print(f"plot: {out.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
