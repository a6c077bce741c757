"""Command line: ``napari-cellseq train | segment | evaluate | models | demo``.

A thin shell over :mod:`napari_cellseq.core`; the only place logging is configured. Progress
goes to stderr, results (scores as JSON) to stdout; user errors are one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger("napari_cellseq.cli")

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Progress:
    """A one-line progress bar on stderr (redrawn at most 4 times a second)."""

    def __init__(self, label: str, stream=sys.stderr):
        self.label, self.stream = label, stream
        self.last = 0.0
        self.tty = stream.isatty()

    def update(self, fraction: float, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.25 if self.tty else 5.0):
            return
        self.last = now
        width = 30
        filled = int(round(width * min(max(fraction, 0.0), 1.0)))
        bar = "#" * filled + "-" * (width - filled)
        line = f"{self.label} [{bar}] {100 * fraction:5.1f}% {text}"
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _check_out(path: Path, overwrite: bool) -> None:
    from .core.errors import CellseqError

    if path.exists() and not overwrite:
        raise CellseqError(f"{path} exists: pass --overwrite or choose another --out")


def _model_config(args):
    from .core.models import default_model_config

    overrides = {}
    if args.width is not None:
        overrides["base_channels"] = args.width
    return default_model_config(args.model, **overrides)


def _cmd_train(args) -> int:
    from dataclasses import replace

    from .core.config import DataConfig, TrainConfig
    from .core.events import CheckpointSaved, Done, Started, Step
    from .core.io import check_image, check_labels, parse_frames, read_image, read_labels
    from .core.training import train

    out = Path(args.out)
    _check_out(out, args.overwrite)
    image = check_image(read_image(args.image))
    labels = check_labels(read_labels(args.labels), image.shape)
    n = 1 if image.ndim == 2 else image.shape[0]
    frames = parse_frames(args.frames, n) if args.frames else None
    max_time = args.max_time
    if max_time is None and args.iterations is None:
        max_time = 600.0
    train_config = TrainConfig(
        iterations=args.iterations, max_time=max_time, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, seed=args.seed, device=args.device,
    )
    if args.lr is None:
        train_config = replace(train_config, lr=1e-3 if args.optimizer == "adam" else 1e-4)
    data_config = DataConfig(target=args.target, crop_size=args.crop)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: _first_interrupt(stop, previous))
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bar = _Progress("train")
    last_loss = float("nan")
    for event in train(image, labels, out, model_config=_model_config(args) if not args.init else None,
                       data_config=data_config, train_config=train_config, frames=frames,
                       init=args.init, stop=stop.is_set):
        if isinstance(event, Started):
            logger.info("training on %s", event.device)
        elif isinstance(event, Step):
            last_loss = event.loss
            bar.update(event.fraction, f"step {event.iteration} loss {event.loss:.4f} {event.elapsed:.0f}s")
        elif isinstance(event, CheckpointSaved):
            logger.debug("checkpoint at step %d -> %s", event.iteration, event.path)
        elif isinstance(event, Done):
            bar.update(1.0 if event.reason != "stopped" else 0.0,
                       f"step {event.iteration} loss {last_loss:.4f} {event.elapsed:.0f}s", force=True)
            bar.close()
            logger.info("done (%s) after %d steps, %.0f s: %s", event.reason, event.iteration,
                        event.elapsed, event.path)
    return EXIT_INTERRUPTED if stop.is_set() else 0


def _first_interrupt(stop: threading.Event, previous) -> None:
    """First Ctrl-C: stop after the current step and save; second: abort at once."""
    if stop.is_set():
        signal.signal(signal.SIGINT, previous)
        raise KeyboardInterrupt
    logger.warning("stopping after this step and saving the model (Ctrl-C again to abort)")
    stop.set()


def _cmd_segment(args) -> int:
    from .core.checkpoint import load_checkpoint
    from .core.events import Done, FrameDone
    from .core.io import check_image, parse_frames, read_image, write_ctc_masks, write_tiff_atomic
    from .core.pipeline import segment

    out = Path(args.out)
    if not args.ctc:
        _check_out(out, args.overwrite)
    ckpt = load_checkpoint(args.model)
    image = check_image(read_image(args.image))
    frames = None
    if args.frames:
        frames = parse_frames(args.frames, 1 if image.ndim == 2 else image.shape[0])
    bar = _Progress("segment")

    def on_event(event) -> None:
        if isinstance(event, FrameDone):
            bar.update(event.index / max(event.total, 1), f"frame {event.index + 1}/{event.total}")
        elif isinstance(event, Done):
            bar.update(1.0, f"{event.iteration} frames in {event.elapsed:.1f}s", force=True)
            bar.close()

    labels = segment(image, ckpt, device=args.device, on_event=on_event, frames=frames)
    if args.ctc:
        write_ctc_masks(out, labels, overwrite=args.overwrite)
    else:
        write_tiff_atomic(out, labels, overwrite=args.overwrite)
    logger.info("wrote %s", out)
    return 0


def _cmd_evaluate(args) -> int:
    from .core.io import parse_frames, read_labels
    from .core.metrics import evaluate

    gt, pred = read_labels(args.gt), read_labels(args.pred)
    frames = None
    if args.frames:
        frames = parse_frames(args.frames, 1 if gt.ndim == 2 else gt.shape[0])
    print(json.dumps(evaluate(gt, pred, frames=frames)))
    return 0


def _cmd_models(args) -> int:
    from .core.models import available_models, default_model_config, model_info, parameter_count

    for name in available_models():
        info = model_info(name)
        params = parameter_count(default_model_config(name))
        print(f"{name:10s} {params:>12,d} parameters  {info.input_kind:11s} {info.paper}")
    return 0


def _cmd_demo(args) -> int:
    """Train on a few frames of the built-in synthetic movie, segment all, score, write TIFF."""
    from .core.config import DataConfig, TrainConfig
    from .core.metrics import evaluate
    from .core.pipeline import segment
    from .core.synthetic import synthetic_timelapse
    from .core.training import fit
    from .core.io import write_tiff_atomic
    from .core.models import default_model_config

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image, truth = synthetic_timelapse(n_frames=args.frames, seed=args.seed)
    painted = truth.copy()
    painted[args.annotated:] = 0  # the "user" painted only the first frames
    write_tiff_atomic(out / "image.tif", image, overwrite=True)
    write_tiff_atomic(out / "painted.tif", painted, overwrite=True)
    model_file = out / f"{args.model}.pt"
    bar = _Progress(f"train {args.model}")

    def on_event(event):
        from .core.events import Step

        if isinstance(event, Step):
            bar.update(event.fraction, f"step {event.iteration} loss {event.loss:.4f}")

    ckpt = fit(image, painted, model_file, model_config=default_model_config(args.model),
               data_config=DataConfig(crop_size=128),
               train_config=TrainConfig(iterations=args.iterations, max_time=None, seed=args.seed,
                                        device=args.device, batch_size=4),
               on_event=on_event)
    bar.close()
    labels = segment(image, ckpt, device=args.device)
    write_tiff_atomic(out / "labels.tif", labels, overwrite=True)
    held_out = list(range(args.annotated, args.frames))
    scores = evaluate(truth, labels, frames=held_out)
    scores["held_out_frames"] = f"{held_out[0]}-{held_out[-1]}"
    scores["labels"] = str(out / "labels.tif")
    scores["model"] = str(model_file)
    print(json.dumps(scores))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="napari-cellseq", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-cellseq {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a network on the annotated frames of a movie")
    p.add_argument("--image", required=True, help="image TIFF, (Y,X) or (T,Y,X)")
    p.add_argument("--labels", required=True, help="labels TIFF of the same shape (0 = unpainted)")
    p.add_argument("--frames", help="frames to learn from, e.g. 0-4,7 (default: every frame with labels)")
    p.add_argument("--model", default="unet", help="network (see `napari-cellseq models`)")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--max-time", type=float, help="training seconds at most (default 600 unless --iterations)")
    p.add_argument("--iterations", type=int, help="optimiser steps at most")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="model file to continue training from")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", type=int, default=160, help="training crop side in pixels (paper: 160)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3 adam, 1e-4 rmsprop)")
    p.add_argument("--optimizer", choices=["adam", "rmsprop"], default="adam")
    p.add_argument("--width", type=int, help="base channels of the network")
    p.add_argument("--target", choices=["3class", "2class"], default="3class")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("segment", help="segment every frame of a movie with a trained model")
    p.add_argument("--model", required=True, help="model file from `train`")
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True, help="labels TIFF (or a folder with --ctc)")
    p.add_argument("--frames", help="only these frames, e.g. 10-19 (others stay 0)")
    p.add_argument("--device", default="auto")
    p.add_argument("--ctc", action="store_true", help="write maskNNN.tif files into the --out folder")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser("evaluate", help="score predicted labels against ground truth (JSON line)")
    p.add_argument("--gt", required=True)
    p.add_argument("--pred", required=True)
    p.add_argument("--frames", help="frames to score, e.g. 10-19")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("models", help="list the available networks")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("demo", help="train on the built-in synthetic movie, segment, score")
    p.add_argument("--out", default="cellseq-demo", help="folder for the files it writes")
    p.add_argument("--model", default="unet")
    p.add_argument("--frames", type=int, default=12, help="length of the synthetic movie")
    p.add_argument("--annotated", type=int, default=3, help="the first N frames are 'painted'")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-cellseq`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .core.errors import CellseqError

    try:
        return args.func(args)
    except CellseqError as err:
        print(f"napari-cellseq {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"napari-cellseq {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
