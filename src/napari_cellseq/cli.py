"""Command line: ``napari-cellseq train | segment | evaluate | export-bioimageio | models | demo``.

A thin shell over :mod:`napari_cellseq.core`; the only place logging is configured. Progress
goes to stderr, results (scores as JSON) to stdout; user errors are one line and exit code 2.
No existing file is replaced without ``--overwrite`` (checked before any work starts), and every
file is written atomically. ``train`` stops cleanly on Ctrl-C or SIGTERM: it saves the model
so far and exits with 130 (Ctrl-C) or 143 (SIGTERM); ``--init`` continues from that file. Every
other command treats SIGTERM as Ctrl-C: it stops, removes its unfinished (hidden temporary)
output files and exits with 143.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import signal
import sys
import threading
import time
import contextlib
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("napari_cellseq.cli")

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``with`` block cleans up as on Ctrl-C
    (a BaseException like KeyboardInterrupt: no ``except Exception`` swallows it)."""


@contextmanager
def _sigterm_stops():
    """While active, SIGTERM raises :class:`_Terminated` in the main thread (once: a second
    SIGTERM is ignored, so that the clean-up is not cut short). Not installed outside the main
    thread (e.g. ``main`` called from a worker thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


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


def _check_out(path: Path, overwrite: bool, option: str = "--out") -> None:
    """Refuse, before any work, an output that exists (without --overwrite) or cannot be written."""
    import os

    from .core.errors import CellseqError
    from .core.io import refuse_existing

    if path.is_dir():
        raise CellseqError(f"{path} is a folder: give a file name for {option}, e.g. {path / 'out.tif'}")
    refuse_existing([path], overwrite, instead=f"another {option}")
    _check_folder(path.parent)
    if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
        raise CellseqError(f"cannot write to folder {path.parent}: permission denied; choose another {option}")


def _check_folder(folder: Path) -> None:
    from .core.errors import CellseqError

    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise CellseqError(f"{parent} is a file, not a folder; choose another output folder")
            return


@contextmanager
def _new_folders_removed_on_error(folder: Path):
    """Folders up to ``folder`` that do not exist yet (and are made for an output) are removed
    again, if still empty, when the ``with`` block fails or is stopped: nothing is left behind."""
    new = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for path in new:  # deepest first
            try:
                path.rmdir()
            except OSError:  # not empty, or already gone
                pass
        raise


def _number(kind, low, name_low, high=None):
    """An argparse type: a finite ``kind`` (int or float) of at least ``low`` (and below ``high``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not low <= value < (math.inf if high is None else high):  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"must be {name_low}, got {text}")
        return value

    return parse


_POSITIVE_INT = _number(int, 1, "at least 1")
_POSITIVE = _number(float, 1e-12, "positive")
_CHANNEL = _number(int, 0, "0 or more (channels are counted from 0)")
_SEED = _number(int, 0, "a whole number from 0 to 2**64 - 1", high=1 << 64)


def _device(text: str) -> str:
    """An argparse type: one of the devices of the vocabulary, optionally ``cuda:N``."""
    from .core.config import check_device
    from .core.errors import InputError

    try:
        return check_device(text.lower())
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _model_config(args):
    from .core.models import default_model_config

    overrides = {}
    if args.width is not None:
        overrides["base_channels"] = args.width
    return default_model_config(args.model or "unet", **overrides)


def _cmd_train(args) -> int:
    from .core.builtin import BUILTIN, RANDOM, resolve_init
    from .core.errors import CellseqError
    from .core.io.sources import open_movie, open_training_labels

    out = Path(args.out)
    _check_out(out, args.overwrite)
    # an unknown --model fails here, before the images are read; continuing keeps the file's network
    # (a model file or a built-in's name brings its network; builtin and random take --model's)
    model_config = _model_config(args) if args.model or args.init in (None, BUILTIN, RANDOM) else None
    # the starting point too (a model file read, the built-in of --model and --target chosen)
    init = resolve_init(args.init, (model_config.name if model_config else "unet"), args.target, model_config)
    if init.builtin and args.width is not None and args.width != init.checkpoint.model_config.base_channels:
        raise CellseqError(f"--width {args.width}: the built-in {init.builtin} has width "
                           f"{init.checkpoint.model_config.base_channels}; drop --width or start from "
                           "random weights (--init random)")
    # The movie and the labels stay on disk, open for the whole run (memory-mapped or page by
    # page): training reads only the frames it needs, so a movie larger than memory trains.
    with contextlib.ExitStack() as files:
        image = files.enter_context(open_movie(args.image, args.channel))  # TIFF, CTC folder or OME-Zarr
        # frames: from CTC man_seg names
        labels, frames = files.enter_context(open_training_labels(args.labels, tuple(image.shape)))
        return _train_opened(args, out, image, labels, frames, model_config, init)


def _train_opened(args, out: Path, image, labels, frames, model_config, init) -> int:
    """``train`` on the opened movie and labels (see :func:`_cmd_train`)."""
    from .core.config import DataConfig, TrainConfig
    from .core.io import parse_frames
    from .core.training import plan_run, train

    n_frames = 1 if len(image.shape) == 2 else max(int(image.shape[0]), 1)
    # an empty value ("") is not the absent flag: parse_frames refuses it ("empty frame selection")
    if args.frames is not None:
        frames = parse_frames(args.frames, n_frames)
    validation_frames = parse_frames(args.val_frames, n_frames) if args.val_frames is not None else None
    max_time = args.max_time
    if max_time is None and args.iterations is None:
        max_time = 600.0
    lr = args.lr if args.lr is not None else (TrainConfig().lr if args.optimizer == "adam" else 1e-4)
    train_config = TrainConfig(
        iterations=args.iterations, max_time=max_time, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=lr, unroll=args.unroll, seed=args.seed, device=args.device,
        checkpoint_every=args.checkpoint_every, loss=args.loss, calibrate=args.calibrate,
        holdout=TrainConfig().holdout if args.holdout is None else args.holdout,
        amp=args.precision,
    )
    data_config = DataConfig(target=args.target, crop_size=args.crop, sampling=args.sampling)
    # the one place the inputs are checked and the run resolved (train does not check again)
    plan = plan_run(image, labels, model_config=model_config, data_config=data_config,
                    train_config=train_config, frames=frames, init=init,
                    validation_frames=validation_frames)
    stop = threading.Event()
    received: list[int] = []
    handlers = _install_stop_handlers(stop, received)
    from .cli_batch import training_processes

    try:
        with training_processes(args.device) as drain:  # torchrun: one rank of several (DDP)
            (drain or _train_loop)(train(out_path=out, stop=stop.is_set, plan=plan))
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if stop.is_set():
        name = "SIGTERM" if received and received[0] == signal.SIGTERM else "Ctrl-C"
        print(f"napari-cellseq train: stopped by {name}; the model trained so far is in {out} "
              f"(continue with --init {out})", file=sys.stderr)
        return EXIT_TERMINATED if name == "SIGTERM" else EXIT_INTERRUPTED
    return 0


def _install_stop_handlers(stop: threading.Event, received: list[int]) -> dict:
    """Ctrl-C / SIGTERM: stop after the current step and save; a second Ctrl-C aborts at once.

    Returns the previous handlers (to restore). Only possible in the main thread; elsewhere
    (e.g. when ``main`` is called from a worker thread) nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {s: signal.getsignal(s) or signal.SIG_DFL for s in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum, frame):
        received.append(signum)
        if stop.is_set() and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, previous[signal.SIGINT])
            raise KeyboardInterrupt
        logger.warning("stopping after this step and saving the model (Ctrl-C again to abort)")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return previous


def _train_loop(events) -> None:
    """Drain the training events into a progress bar and log lines."""
    from .core.events import CheckpointSaved, Done, Started, Step, ThresholdChosen

    bar = _Progress("train")
    last_loss = float("nan")
    for event in events:
        if isinstance(event, Started):
            logger.info("training on %s%s", event.device, f" in {event.precision}" if event.precision else "")
        elif isinstance(event, Step):
            last_loss = event.loss
            bar.update(event.fraction, f"step {event.iteration} loss {event.loss:.4f} {event.elapsed:.0f}s")
        elif isinstance(event, ThresholdChosen):
            logger.info("post-processing: %s; stored in the model", event.choice.summary())
        elif isinstance(event, CheckpointSaved):
            logger.debug("checkpoint at step %d -> %s", event.iteration, event.path)
        elif isinstance(event, Done):
            bar.update(1.0 if event.reason != "stopped" else 0.0,
                       f"step {event.iteration} loss {last_loss:.4f} {event.elapsed:.0f}s", force=True)
            bar.close()
            logger.info("done (%s) after %d steps, %.0f s: %s", event.reason, event.iteration,
                        event.elapsed, event.path)


def _cmd_segment(args) -> int:
    """Segment frame by frame: the movie is read one frame at a time (memory-mapped or page by
    page) and each frame's labels go straight to a hidden temporary file next to ``--out``
    (renamed into place at the end), so memory does not grow with the movie's length."""
    from .core.errors import CellseqError
    from .core.events import Done, FrameDone
    from .core.io import (check_image_layout, ctc_mask_name, ctc_mask_writer, label_stack_writer, parse_frames,
                          refuse_existing)
    from .core.io.sources import open_movie
    from .core.pipeline import FrameLabels, load_model, segment_events
    from .cli_batch import segment_blockwise, segment_many, wants_batch
    from .core.builtin import segment_model

    if args.blocks is not None:  # one frame larger than memory, block by block, into zarr
        return segment_blockwise(args, _Progress)
    if args.overlap is not None:
        raise CellseqError("--overlap is the overlap of the blocks of --blocks PIXELS: add --blocks, or drop --overlap")
    if wants_batch(args):  # several movies, a glob, a folder for --out or a scheduler
        args.model = segment_model(args.model, n_frames=2)  # builtin: the one recommended for movies
        return segment_many(args, _Progress)
    args.image = args.image[0]
    out = Path(args.out)
    into_zarr = _exchange_outputs_checked(args, out)  # OME-Zarr labels group, --rois
    if into_zarr:
        pass  # checked above
    elif not args.ctc:
        _check_out(out, args.overwrite)
    elif out.exists() and not out.is_dir():
        raise CellseqError(f"{out} is a file, but --ctc writes mask files into a folder: give a folder for --out")
    else:
        _check_folder(out)
    with open_movie(args.image, args.channel) as image:  # TIFF, CTC sequence folder or OME-Zarr
        shape = tuple(int(v) for v in image.shape)
        check_image_layout(shape, image.dtype)
        n = 1 if len(shape) == 2 else shape[0]
        if args.ctc:
            refuse_existing([out / ctc_mask_name(t, n) for t in range(n)], args.overwrite, "another --out folder")
        ckpt = load_model(segment_model(args.model, n))  # builtin: the one that fits the movie
        frames = parse_frames(args.frames, n) if args.frames is not None else None
        bar = _Progress("segment")
        events = segment_events(image, ckpt, device=args.device, frames=frames, tile=args.tile,
                                output=args.output)
        first = next(events)  # the input is checked before the first event: no file is made for bad input
        if into_zarr:
            from .core.io.ome_zarr import ome_zarr_labels_writer

            sink = ome_zarr_labels_writer(out, args.labels_name, overwrite=args.overwrite)
        elif args.ctc:
            sink = ctc_mask_writer(out, n, overwrite=args.overwrite, shape=shape[-2:])
        else:
            sink = label_stack_writer(out, shape, overwrite=args.overwrite)
        with _new_folders_removed_on_error(out if args.ctc else out.parent), sink as writer, \
                _rois_sink(args, n) as rois:
            for event in itertools.chain([first], events):
                if isinstance(event, FrameLabels):
                    writer.write(event.index, event.labels)
                    if rois is not None:
                        rois.write(event.index, event.labels)
                if isinstance(event, FrameDone):
                    bar.update(event.index / max(event.total, 1), f"frame {event.index + 1}/{event.total}")
                elif isinstance(event, Done):
                    bar.update(1.0, f"{event.iteration} frames in {event.elapsed:.1f}s", force=True)
                    bar.close()
    logger.info("wrote %s", out)
    return 0


def _exchange_outputs_checked(args, out: Path) -> bool:
    """Check the exchange outputs of ``segment`` before any work; True when ``--out`` is an
    OME-Zarr image (the labels go into its ``labels/`` group)."""
    from .core.errors import CellseqError
    from .core.io import refuse_existing
    from .core.io.ome_zarr import is_ome_zarr

    if args.rois:
        rois = Path(args.rois)
        if rois.suffix.lower() != ".zip":
            raise CellseqError(f"--rois {rois}: an ImageJ ROI set is a .zip file, e.g. {rois.with_suffix('.zip').name}")
        _check_out(rois, args.overwrite, "--rois")
    if not is_ome_zarr(out):
        if out.suffix.lower() == ".zarr":
            raise CellseqError(f"--out {out} is not an OME-Zarr image: labels are written into the labels/ group of "
                               "an existing OME-Zarr image (e.g. the --image itself)")
        return False
    if args.ctc:
        raise CellseqError("--ctc writes mask files into a folder, not into an OME-Zarr image; drop one of them")
    target = out / "labels" / args.labels_name
    refuse_existing([target], args.overwrite, instead="another --labels-name")
    return True


def _rois_sink(args, n_frames: int):
    from contextlib import nullcontext

    if not args.rois:
        return nullcontext(None)
    from .core.io.imagej_rois import imagej_roi_writer

    return imagej_roi_writer(args.rois, n_frames, overwrite=args.overwrite)


def _cmd_evaluate(args) -> int:
    from .core.io import parse_frames, read_labels
    from .core.metrics import evaluate, evaluate_classes

    gt, pred = read_labels(args.gt), read_labels(args.pred)
    frames = parse_frames(args.frames, 1 if gt.ndim == 2 else gt.shape[0]) if args.frames is not None else None
    if args.classes:
        print(json.dumps(evaluate_classes(gt, pred, frames=frames)))
    else:
        print(json.dumps(evaluate(gt, pred, frames=frames)))
    return 0


def _cmd_models(args) -> int:
    from .core.builtin import BUILTINS
    from .core.errors import CellseqError
    from .core.losses import default_loss
    from .core.models import available_models, default_model_config, model_info, parameter_count
    from .core.models.recommend import recommendation

    names = available_models()
    width = max(len(n) for n in names)
    for name in names:
        info = model_info(name)
        params = parameter_count(default_model_config(name))
        loss = default_loss(name)
        print(f"{name:{width}s} {params:>12,d} parameters  {info.input_kind:11s} "
              f"loss {loss:16s} {info.paper}")
    print()
    print(recommendation())
    print()
    print("built-in weights (train --init builtin|NAME, segment --model builtin|NAME):")
    width = max(len(b.name) for b in BUILTINS)
    for b in BUILTINS:
        try:
            size = f"{b.size_bytes() / 1e6:5.1f} MB"
        except CellseqError:
            size = "MISSING (broken installation: reinstall napari-cellseq)"
        print(f"{b.name:{width}s} {b.network:6s} target {b.target:7s} {size}  learned from {b.learned_from}")
    return 0


def _cmd_demo(args) -> int:
    """Train on a few frames of the built-in synthetic movie, segment all, score, write TIFF."""
    from .core.config import DataConfig, TrainConfig
    from .core.errors import CellseqError
    from .core.io import refuse_existing, write_tiff_atomic
    from .core.metrics import evaluate
    from .core.models import default_model_config
    from .core.pipeline import segment
    from .core.synthetic import synthetic_timelapse
    from .core.training import fit

    if not 1 <= args.annotated < args.frames:
        raise CellseqError(
            f"--annotated {args.annotated} must be at least 1 and less than --frames {args.frames}, "
            "so that some frames are left to score"
        )
    default_model_config(args.model)  # unknown names fail here, before anything is written
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CellseqError(f"{out} is a file, not a folder: choose another --out folder")
    model_file = out / f"{args.model}.pt"
    targets = [out / "image.tif", out / "painted.tif", model_file, out / "labels.tif"]
    refuse_existing(targets, args.overwrite, instead="another --out folder")
    _check_folder(out)
    image, truth = synthetic_timelapse(n_frames=args.frames, seed=args.seed)
    painted = truth.copy()
    painted[args.annotated:] = 0  # the "user" painted only the first frames
    write_tiff_atomic(out / "image.tif", image, overwrite=args.overwrite)
    write_tiff_atomic(out / "painted.tif", painted, overwrite=args.overwrite)
    bar = _Progress(f"train {args.model}")

    def on_event(event):
        from .core.events import Step

        if isinstance(event, Step):
            bar.update(event.fraction, f"step {event.iteration} loss {event.loss:.4f}")

    ckpt = fit(image, painted, model_file, model_config=default_model_config(args.model),
               data_config=DataConfig(crop_size=128),
               train_config=TrainConfig(iterations=args.iterations, max_time=None, seed=args.seed,
                                        device=args.device),
               on_event=on_event)
    bar.close()
    labels = segment(image, ckpt, device=args.device)
    write_tiff_atomic(out / "labels.tif", labels, overwrite=args.overwrite)
    held_out = list(range(args.annotated, args.frames))
    scores = evaluate(truth, labels, frames=held_out)
    scores["held_out_frames"] = f"{held_out[0]}-{held_out[-1]}"
    scores["labels"] = str(out / "labels.tif")
    scores["model"] = str(model_file)
    print(json.dumps(scores))
    return 0


def _cmd_export_bioimageio(args) -> int:
    from .core.bioimageio.export import export_bioimageio, require_bioimageio
    from .core.io import read_image, select_channel

    require_bioimageio()  # a missing extra is one line, before anything is read
    out = Path(args.out)
    _check_out(out, args.overwrite)
    image = select_channel(read_image(args.image), args.channel) if args.image else None
    export_bioimageio(args.model, out, image, name=args.name, authors=args.author or ("napari-cellseq user",),
                      window=args.window, frame=args.frame, overwrite=args.overwrite, test=args.test)
    logger.info("wrote %s (validated offline with bioimageio.spec%s)", out,
                " and its model test passed with bioimageio.core" if args.test else "")
    return 0


def _add_export_bioimageio_parser(sub) -> None:
    from .core.bioimageio.export import DEFAULT_WINDOW

    p = sub.add_parser("export-bioimageio", help="write a model as a BioImage Model Zoo package (.zip, format 0.5)")
    p.add_argument("model", help="model file from `train`")
    p.add_argument("--out", required=True, help="package to write, NAME.zip")
    p.add_argument("--image", help="sample image TIFF whose frames (centre crop <= 256x256) become the "
                   "package's test input (default: the built-in synthetic movie)")
    p.add_argument("--channel", type=_CHANNEL, metavar="N", help="channel N of a multichannel --image")
    p.add_argument("--frame", type=_number(int, 0, "0 or more"), default=0,
                   help="first frame of --image used as test input (default 0)")
    p.add_argument("--window", type=_POSITIVE_INT, default=DEFAULT_WINDOW,
                   help=f"U-LSTM only: frames on the package's time axis (default {DEFAULT_WINDOW}, the "
                        "paper's unroll length); the recurrent state starts at zero in each window")
    p.add_argument("--name", help="package name (default: napari-cellseq NETWORK)")
    p.add_argument("--author", action="append", metavar="NAME", help="author name (repeat for several)")
    p.add_argument("--no-test", dest="test", action="store_false",
                   help="skip bioimageio.core's model test (the package is still validated)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_export_bioimageio)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``napari-cellseq train: error: ...``), exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .core.builtin import BUILTIN, BUILTINS, DEFAULT_INIT
    from .core.config import (CROP_BATCH, DEVICES, LOSSES, OPTIMIZERS, OUTPUTS, PRECISIONS, SAMPLINGS, SEQUENCE_BATCH,
                              TARGETS, UNROLL)

    devices = "|".join(DEVICES)

    parser = _Parser(prog="napari-cellseq", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-cellseq {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a network on the annotated frames of a movie")
    p.add_argument("--image", required=True, help="image TIFF, (Y,X) or (T,Y,X); or a Cell Tracking Challenge "
                   "sequence folder (DATA/01 with t000.tif, ...); or an OME-Zarr image (.zarr, level 0)")
    p.add_argument("--channel", type=_CHANNEL, metavar="N",
                   help="use channel N (from 0) of a multichannel image: (Y,X,C), (T,Y,X,C) or (T,C,Y,X) "
                        "with fewer than 8 channels, e.g. --channel 1 for the green of an RGB image")
    p.add_argument("--labels", required=True, help="labels TIFF of the same shape (0 = unpainted), or a Cell "
                   "Tracking Challenge ground truth folder (DATA/01_GT/SEG with man_seg000.tif, ...: the annotated "
                   "frames are those with a file)")
    p.add_argument("--frames", help="frames to learn from, e.g. 0-4,7 (default: every frame with labels)")
    p.add_argument("--model", default=None, help="network (see `napari-cellseq models`; default unet, "
                   "or the network of --init)")
    p.add_argument("--out", required=True, help="model file to write (saved every --checkpoint-every seconds, "
                   "at the end, and on Ctrl-C / SIGTERM)")
    p.add_argument("--max-time", type=_POSITIVE, help="training seconds at most (default 600 unless --iterations)")
    p.add_argument("--iterations", type=_POSITIVE_INT, help="optimiser steps at most")
    p.add_argument("--device", type=_device, default="auto", help=f"{devices} (or cuda:N)")
    p.add_argument("--seed", type=_SEED, default=0, help="seeds the network's initial weights and the crops")
    p.add_argument("--init", metavar="builtin|random|NAME|FILE",
                   help="what the weights start from: builtin (the built-in weights of --model for cell "
                        f"targets: {', '.join(f'{b.network} ({b.name})' for b in BUILTINS)}; see `models`), "
                        "a built-in's NAME, random, or a model FILE to continue from (e.g. one left by an "
                        f"interrupted run); default: {DEFAULT_INIT}"
                        + (" (random where no built-in fits)" if DEFAULT_INIT == BUILTIN else ""))
    p.add_argument("--batch-size", type=_POSITIVE_INT,
                   help=f"crops (frame models, default {CROP_BATCH}) or sequences (U-LSTM and other "
                        f"temporal models, default {SEQUENCE_BATCH}) per step")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="mixed precision of the training steps (default auto: bfloat16 on GPUs, and on CPUs "
                        "with bfloat16 matrix units such as Intel AMX, where it makes ~1.4x the steps; "
                        "float32 elsewhere); off: always float32")
    p.add_argument("--unroll", type=_POSITIVE_INT, default=UNROLL,
                   help=f"U-LSTM and other temporal models: frames per truncated-BPTT chunk; sequences "
                        f"are 4 chunks (default {UNROLL}: more steps in minutes of CPU; the paper: 5)")
    p.add_argument("--crop", type=_number(int, 16, "at least 16"), default=160,
                   help="training crop side in pixels (paper: 160); frames smaller than it are padded")
    p.add_argument("--lr", type=_POSITIVE, help="learning rate (default 3e-3 adam, 1e-4 rmsprop as in the paper)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    p.add_argument("--width", type=_POSITIVE_INT, help="base channels of the network")
    p.add_argument("--target", choices=TARGETS, default="3class",
                   help="3class/2class: labels are cell instances (3class adds a boundary class that "
                        "separates touching cells); classes: each label value is a class (1 = background, "
                        "2, 3, ... e.g. nucleus, cytoplasm; 0 = unpainted, ignored)")
    p.add_argument("--loss", choices=LOSSES,
                   help="weighted_ce (U-LSTM paper eq. 8-9), normalized_focal (GRUU-Net) or edge_weighted "
                        "(FCN-GoogLeNet blog); default: the loss of the model's paper (see `models`), or "
                        "that of --init")
    p.add_argument("--sampling", choices=SAMPLINGS, default="uniform",
                   help="crop centres: uniform, or balanced (each class equally likely at the centre)")
    p.add_argument("--val-frames", metavar="FRAMES",
                   help="annotated frames held out of training, e.g. 5,6; for cell (instance) targets the "
                        "foreground threshold is chosen on them by a pixel-wise ROC (AUC is reported)")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="keep the argmax: do not choose the foreground threshold on the painted frames "
                        "after training (it is chosen by default; validation frames choose it by ROC)")
    p.add_argument("--holdout", type=_number(float, 0.0, "from 0 to 0.45", high=0.45 + 1e-9), metavar="FRACTION",
                   help="the threshold is chosen on painted cells held out of training: a band this fraction of "
                        "the frame wide in up to 4 painted frames, with the cells it touches (default 0.15); "
                        "0: hold nothing out and choose on the trained pixels")
    p.add_argument("--checkpoint-every", type=_POSITIVE, default=30.0, metavar="SECONDS",
                   help="advanced: seconds between model files saved during training (default 30)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("segment", help="segment every frame of a movie (or of many) with a trained model")
    p.add_argument("--model", required=True, metavar="FILE|builtin|NAME",
                   help="model file from `train`; or builtin: the built-in weights of the recommended network, "
                        "before any training (the U-Net, for movies too: see `models`); or "
                        f"a built-in's NAME ({', '.join(b.name for b in BUILTINS)}; see `models`)")
    p.add_argument("--image", required=True, action="append",
                   help="image TIFF, (Y,X) or (T,Y,X); or a Cell Tracking Challenge sequence folder (DATA/01 with "
                        "t000.tif, ...); or an OME-Zarr image (.zarr, level 0); repeat it, or give a quoted glob such "
                        "as 'movies/*.tif', to segment many movies into the --out folder")
    p.add_argument("--channel", type=_CHANNEL, metavar="N",
                   help="use channel N (from 0) of a multichannel image: (Y,X,C), (T,Y,X,C) or (T,C,Y,X) "
                        "with fewer than 8 channels")
    p.add_argument("--out", required=True, help="labels TIFF, a folder with --ctc or several movies, an OME-Zarr "
                   "image (the labels go into its labels/ group), or a new LABELS.zarr with --blocks")
    p.add_argument("--frames", help="only these frames, e.g. 10-19 (others stay 0); with --blocks: the one frame "
                   "of a movie to segment, e.g. 0")
    p.add_argument("--device", type=_device, default="auto", help=f"{devices} (or cuda:N)")
    p.add_argument("--tile", type=_number(int, 32, "at least 32"), default=None, metavar="PIXELS",
                   help="largest tile side; bigger frames are cut into overlapping tiles (default 512 on "
                        "CPU, 1536 on GPUs; made smaller automatically when the device runs out of memory)")
    p.add_argument("--output", choices=OUTPUTS,
                   help="instances: cell labels 1..n per frame; classes: the class map as painted values "
                        "(1 = background, 2, 3, ...); default: classes for a model trained with --target "
                        "classes, else instances")
    p.add_argument("--ctc", action="store_true", help="write maskNNN.tif files into the --out folder "
                   "(Cell Tracking Challenge results, e.g. --image DATA/01 --out DATA/01_RES)")
    p.add_argument("--rois", metavar="FILE.zip", help="also write an ImageJ / Fiji ROI set: one polygon per cell "
                   "and frame, the frame as its position (open it in Fiji's ROI Manager)")
    p.add_argument("--labels-name", default="cellseq", metavar="NAME",
                   help="when --out is an OME-Zarr image: the labels are written to OUT/labels/NAME (default cellseq)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    from .cli_batch import add_segment_options

    add_segment_options(p, _POSITIVE_INT)
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser("evaluate", help="score predicted labels against ground truth (JSON line)")
    p.add_argument("--gt", required=True)
    p.add_argument("--pred", required=True)
    p.add_argument("--frames", help="frames to score, e.g. 10-19")
    p.add_argument("--classes", action="store_true",
                   help="score class maps (painted values, 1 = background, 0 = unpainted and not scored): "
                        "per-class Dice, mean Dice and pixel accuracy")
    p.set_defaults(func=_cmd_evaluate)

    _add_export_bioimageio_parser(sub)

    p = sub.add_parser("models", help="list the available networks and the built-in weights")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("demo", help="train on the built-in synthetic movie, segment, score")
    p.add_argument("--out", default="cellseq-demo", help="folder for the files it writes")
    p.add_argument("--model", default="unet")
    p.add_argument("--frames", type=_number(int, 2, "at least 2"), default=12, help="length of the synthetic movie")
    p.add_argument("--annotated", type=_POSITIVE_INT, default=3, help="the first N frames are 'painted'")
    p.add_argument("--iterations", type=_POSITIVE_INT, default=300)
    p.add_argument("--device", type=_device, default="auto", help=f"{devices} (or cuda:N)")
    p.add_argument("--seed", type=_SEED, default=0, help="seeds the synthetic movie and the training")
    p.add_argument("--overwrite", action="store_true", help="replace files of an earlier demo in --out")
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
        with _sigterm_stops():
            return args.func(args)
    except CellseqError as err:
        message = " ".join(str(err).split())  # always one line, whatever the message holds
        print(f"napari-cellseq {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, RuntimeError) as err:
        from .core.inference import is_out_of_memory

        if not (isinstance(err, MemoryError) or is_out_of_memory(err)):
            raise
        print(f"napari-cellseq {args.command}: error: out of memory; use smaller images (crop or split the "
              "movie) or, for training, a smaller --crop / --batch-size / --width", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"napari-cellseq {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print(f"napari-cellseq {args.command}: stopped by SIGTERM; unfinished output files were removed",
              file=sys.stderr)
        return EXIT_TERMINATED


if __name__ == "__main__":
    sys.exit(main())
