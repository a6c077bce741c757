"""Train a built-in starting model (U-Net or U-LSTM) from scratch on synthetic movies only.

Reproduces ``src/napari_cellseq/builtin_weights/unet.pt`` and ``ulstm.pt``: a seeded pool of
synthetic movies in random styles (:mod:`napari_cellseq.core.synthetic_styles`: fluorescent
nuclei, bright-field and phase-contrast cells, rods like bacteria; touching, dividing and dim
cells; uneven illumination, blur and noise at several levels; 8- and 16-bit), put end to end
along T (each movie normalised alone, no U-LSTM sequence crosses from one into the next:
``plan_run(movie_lengths=...)``), is trained on with the core's ``train`` for a fixed number of
steps (the network's default config, target ``3class``); the post-processing threshold is then
chosen on *held-out* synthetic movies of every style family (other seeds), and the file, with a
record of what made it, is written atomically::

    PYTHONPATH=src nice -n 5 python scripts/train_builtin.py --model unet --iterations 700 --overwrite

Same seed and arguments give the same file on the same machine (fixed steps, seeded data,
augmentation and initialisation). It prints the wall time, the cores and threads used and the
per-style table of the held-out movies (SEG / AP50 at the chosen threshold). No real data is
read: only the generator's movies, which the project may redistribute.

``--init builtin`` (or ``--init FILE``) continues a file instead of starting from random weights:
a second stage on a new pool, as ``unet.pt`` was made (``builtin_weights/README.md``); the
predecessor (name, SHA-256, steps, its command) is recorded in ``training.origin["init"]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from napari_cellseq.core.checkpoint import load_checkpoint, save_checkpoint
from napari_cellseq.core.config import TrainConfig
from napari_cellseq.core.data.normalize import normalize, percentile_range
from napari_cellseq.core.events import Done, Step
from napari_cellseq.core.inference import segmentation_predictor
from napari_cellseq.core.metrics import evaluate
from napari_cellseq.core.models import default_model_config, model_info
from napari_cellseq.core.postprocess import labels_from_probabilities
from napari_cellseq.core.synthetic_styles import FAMILIES, random_movie
from napari_cellseq.core.training import plan_run, train
from napari_cellseq.core.training.record import ThresholdChoice

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "napari_cellseq" / "builtin_weights"
# Candidate foreground thresholds tried on the held-out movies (None: the argmax).
CANDIDATES = (None, *np.round(np.arange(0.2, 0.81, 0.05), 2).tolist())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["unet", "ulstm"], required=True)
    p.add_argument("--iterations", type=int, required=True, help="optimiser steps (fixed: reproducible)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--movies", type=int, default=None, help="training movies (default: unet 64, ulstm 32)")
    p.add_argument("--frames", type=int, default=None, help="frames per movie (default: unet 4, ulstm 12)")
    p.add_argument("--side", type=int, default=256, help="frame side of the training movies (px)")
    p.add_argument("--heldout", type=int, default=2, help="held-out movies per style family")
    p.add_argument("--unroll", type=int, default=5,
                   help="U-LSTM truncated-BPTT chunk (default 5, the paper's, as ulstm.pt was made; "
                        "fine-tuning defaults to TrainConfig's)")
    p.add_argument("--precision", choices=["off", "auto", "bf16"], default="off",
                   help="autocast of the training steps (default off: float32, as ulstm.pt was made; unet.pt's "
                        "second stage was bf16, faster on CPUs with AMX, other weights)")
    p.add_argument("--init", default="random",
                   help="start from: random (default, from scratch), builtin (continue the shipped file of "
                        "--model: a second stage) or a model file of the same network")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="model file (default: builtin_weights/MODEL.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    p.add_argument("--log-every", type=int, default=50)
    return p.parse_args(argv)


def _recorded_args(argv: list[str]) -> list[str]:
    """The arguments that make the weights: ``--overwrite`` and ``--out FILE`` (where the file
    goes) and ``--log-every N`` (what is printed) are left out of the recorded command."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--out", "--log-every"):
            skip = True
        elif a != "--overwrite" and not a.startswith(("--out=", "--log-every=")):
            out.append(a)
    return out


def init_record(init: str, model: str):
    """What ``--init`` started from, for ``training.origin["init"]``: ``"random"``, or the
    predecessor file (name, SHA-256, steps and the command recorded in it), so that a file made
    in stages can be traced back to its from-scratch first stage."""
    if init == "random":
        return "random"
    path = WEIGHTS / f"{model}.pt" if init == "builtin" else Path(init)
    prior = load_checkpoint(path)
    if prior.model_config.name != model:
        raise SystemExit(f"error: --init {init} is a {prior.model_config.name} model file, not {model}")
    origin = prior.training.origin or {}
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "steps": prior.training.iterations, "command": str(origin.get("command", "unknown")),
            "init": origin.get("init", "random" if prior.training.started_from is None else "unknown")}


def training_pool(seed: int, n_movies: int, n_frames: int, side: int):
    """``(image (T, side, side) float32, labels (T, side, side) uint16, lengths, families)``:
    ``n_movies`` movies of random styles end to end (grey values kept, each movie its own)."""
    rng = np.random.default_rng([seed, 0])
    images, labels, families = [], [], []
    for _ in range(n_movies):
        movie = random_movie(rng, n_frames, (side, side))
        images.append(movie.image.astype(np.float32))
        labels.append(movie.labels)
        families.append(movie.style.family)
    return np.concatenate(images), np.concatenate(labels), tuple([n_frames] * n_movies), families


def heldout_movies(seed: int, per_family: int, n_frames: int, side: int):
    """``per_family`` movies of every style family, from a seed stream the pool never uses."""
    rng = np.random.default_rng([seed, 1])
    return [random_movie(rng, n_frames, (side, side), family=f) for f in FAMILIES for _ in range(per_family)]


def heldout_probabilities(ckpt, movies, device: torch.device) -> list[list[np.ndarray]]:
    """Class probabilities of every frame of every held-out movie, as ``segment`` computes them."""
    model = ckpt.build(device).eval()
    predictor = segmentation_predictor(model, device)
    out = []
    for movie in movies:
        norm = normalize(movie.image, percentile_range(movie.image, ckpt.data_config.percentiles))
        out.append([probs for _, probs in predictor.predict(norm, list(range(norm.shape[0])))])
    return out


def per_style_scores(movies, probabilities, threshold, min_size: int) -> dict[str, dict[str, float]]:
    """Mean SEG / AP50 per style family of the held-out movies at ``threshold``."""
    table: dict[str, list[dict]] = {}
    for movie, probs in zip(movies, probabilities):
        pred = np.stack([labels_from_probabilities(p, "3class", min_size, threshold=threshold) for p in probs])
        table.setdefault(movie.style.family, []).append(evaluate(movie.labels, pred))
    return {f: {"seg": float(np.nanmean([s["seg"] for s in rows])), "ap50": float(np.mean([s["ap50"] for s in rows]))}
            for f, rows in table.items()}


def choose_threshold(movies, probabilities, min_size: int):
    """The candidate threshold with the best mean SEG over the style families (each family
    weighs the same), with its table and the argmax's table."""
    best = None
    tables = {}
    for t in CANDIDATES:
        table = per_style_scores(movies, probabilities, t, min_size)
        tables[t] = table
        score = float(np.mean([row["seg"] for row in table.values()]))
        if best is None or score > best[0] + 1e-9:
            best = (score, t)
    return best[1], tables[best[1]], tables[None]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    temporal = model_info(args.model).temporal
    n_movies = args.movies or (32 if temporal else 64)
    n_frames = args.frames or (12 if temporal else 4)
    out = args.out or WEIGHTS / f"{args.model}.pt"
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists: pass --overwrite to replace it, or --out another file", file=sys.stderr)
        return 2
    init = init_record(args.init, args.model)  # a wrong --init fails before the pool is made
    cores = os.cpu_count()
    print(f"{args.model}: {args.iterations} steps, seed {args.seed}, {n_movies} movies x {n_frames} frames "
          f"of {args.side}x{args.side}; {args.threads} torch threads on a {cores}-core machine", flush=True)

    t0 = time.perf_counter()
    image, labels, lengths, families = training_pool(args.seed, n_movies, n_frames, args.side)
    counts = {f: families.count(f) for f in FAMILIES}
    t_data = time.perf_counter() - t0
    print(f"training pool made in {t_data:.0f} s: {json.dumps(counts)}", flush=True)

    origin = {
        "script": "scripts/train_builtin.py",
        "command": " ".join(["scripts/train_builtin.py", *_recorded_args(sys.argv[1:] if argv is None else argv)]),
        "seed": args.seed,
        "steps": args.iterations,
        "data": "synthetic only (napari_cellseq.core.synthetic_styles.random_movie)",
        "movies": n_movies,
        "frames_per_movie": n_frames,
        "side": args.side,
        "styles": counts,
        "torch_threads": args.threads,
        "cores": cores,
        "torch": str(torch.__version__),
        "init": init,
    }
    config = TrainConfig(iterations=args.iterations, max_time=None, seed=args.seed, calibrate=False, unroll=args.unroll,
                         checkpoint_every=300.0, amp=args.precision)
    plan = plan_run(image, labels, model_config=default_model_config(args.model), train_config=config,
                    init=args.init, movie_lengths=lengths, origin=origin, roc_threshold=False)
    del image, labels
    tmp = out.with_name(f".{out.name}.training")
    t1 = time.perf_counter()
    done = None
    for event in train(plan=plan, out_path=tmp):
        if isinstance(event, Step) and (event.iteration % args.log_every == 0 or event.iteration == 1):
            print(f"step {event.iteration}/{args.iterations} loss {event.loss:.4f} {event.elapsed:.0f} s "
                  f"({event.iteration / max(event.elapsed, 1e-9):.2f} steps/s)", flush=True)
        elif isinstance(event, Done):
            done = event
    t_train = time.perf_counter() - t1
    del plan
    print(f"trained {done.iteration} steps in {t_train:.0f} s", flush=True)

    ckpt = load_checkpoint(tmp)
    movies = heldout_movies(args.seed, args.heldout, 12 if temporal else 6, args.side)
    device = torch.device("cpu")
    probabilities = heldout_probabilities(ckpt, movies, device)
    min_size = ckpt.postprocess_config.min_size
    threshold, table, argmax_table = choose_threshold(movies, probabilities, min_size)
    mean = {k: float(np.mean([row[k] for row in table.values()])) for k in ("seg", "ap50")}
    mean_argmax = {k: float(np.mean([row[k] for row in argmax_table.values()])) for k in ("seg", "ap50")}
    wall = time.perf_counter() - t0
    origin = {**ckpt.training.origin, "train_seconds": round(t_train, 1), "wall_seconds": round(wall, 1),
              "threshold_chosen_on": f"{len(movies)} held-out synthetic movies ({args.heldout} per style family, "
                                     "seed stream [seed, 1]), best mean SEG over the families",
              "heldout_per_style": {f: {k: round(v, 4) for k, v in row.items()} for f, row in table.items()}}
    choice = ThresholdChoice("calibration", threshold, (), seg=mean["seg"], ap50=mean["ap50"],
                             argmax_seg=mean_argmax["seg"], argmax_ap50=mean_argmax["ap50"])
    ckpt = replace(ckpt, postprocess_config=replace(ckpt.postprocess_config, threshold=threshold),
                   training=replace(ckpt.training, threshold=choice, origin=origin))
    save_checkpoint(ckpt, out)
    tmp.unlink()
    print(f"threshold {threshold} (argmax: mean SEG {mean_argmax['seg']:.3f}); held-out synthetic movies:")
    print(f"  {'style':22s}  SEG    AP50")
    for f, row in table.items():
        print(f"  {f:22s}  {row['seg']:.3f}  {row['ap50']:.3f}")
    print(f"  {'mean':22s}  {mean['seg']:.3f}  {mean['ap50']:.3f}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {wall:.0f} s wall ({t_train:.0f} s training), "
          f"{args.threads} torch threads, {cores} cores", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
