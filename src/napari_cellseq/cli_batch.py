"""The CLI beyond one machine: ``segment`` for many movies (several ``--image`` or a quoted glob,
``--out DIR``, ``--scheduler none|local|local:N|tcp://host:port``), ``segment --blocks`` for one
frame larger than memory (``--out LABELS.zarr``), and ``train`` as one rank of a ``torchrun`` run.

Called from :mod:`napari_cellseq.cli` (which keeps the single-movie path); the work is
:func:`napari_cellseq.core.distributed.batch.segment_movies_events` or
:func:`napari_cellseq.core.distributed.blocks.segment_blocks_events`, drained here into the
CLI's progress bar. Each failed movie is one line on stderr; the summary goes to stdout as
JSON; the exit code is 1 when any movie failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("napari_cellseq.cli")

EXIT_SOME_FAILED = 1
_GLOB_CHARS = set("*?[")
DEFAULT_OVERLAP = 64


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low} pixels, got {text}")
        return value

    return parse


def add_segment_options(p: argparse.ArgumentParser, positive_int) -> None:
    """The batch options of ``segment`` (``--image`` itself is declared by the CLI, repeatable)."""
    p.add_argument("--scheduler", default="none", metavar="WHERE",
                   help="none (here, one movie after the other), local / local:N (a dask LocalCluster of N "
                        "worker processes on this machine), or the address of a running dask scheduler, "
                        "e.g. tcp://host:8786 (a dask-jobqueue cluster on SLURM: see README); with several "
                        "movies, --out is a folder and each movie's labels are written as OUT/<image name>")
    p.add_argument("--frames-per-task", type=positive_int, metavar="N",
                   help="cut long movies into tasks of N frames (default: one task per movie); a U-LSTM "
                        "starts each task --context frames early")
    p.add_argument("--context", type=int, default=None, metavar="N",
                   help="frames a temporal model (U-LSTM) runs before each task's frames (default 5)")
    p.add_argument("--blocks", type=_at_least(64), metavar="PIXELS",
                   help="one frame larger than memory (a big TIFF, an OME-Zarr image or a zarr array; a movie's "
                        "frame picked with --frames N) segmented in blocks of PIXELS x PIXELS, on --scheduler's "
                        "workers, cells stitched across the block seams; --out is a new LABELS.zarr")
    p.add_argument("--overlap", type=_at_least(1), metavar="PIXELS",
                   help=f"with --blocks: pixels each block sees beyond its edges, wider than a cell "
                        f"(default {DEFAULT_OVERLAP})")


def wants_batch(args) -> bool:
    """Several movies, a glob, a folder for --out (without --ctc), a scheduler or frame ranges: the
    batch path."""
    images = list(args.image)
    out = str(args.out)
    # --ctc: a folder of masks; an OME-Zarr --out (a folder too): its labels group
    folder = not args.ctc and not out.rstrip("/\\").endswith(".zarr") and (Path(out).is_dir()
                                                                          or out.endswith(("/", "\\")))
    return (len(images) > 1 or any(_GLOB_CHARS & set(i) for i in images) or folder
            or (args.scheduler or "none").strip().lower() != "none" or args.frames_per_task is not None)


def segment_many(args, progress_factory) -> int:
    """Run the batch path of ``segment``; returns the exit code."""
    from .core.distributed import require
    from .core.distributed.batch import DEFAULT_CONTEXT, FramesDone, MovieDone, segment_movies_events
    from .core.distributed.cluster import open_client, parse_scheduler
    from .core.errors import CellseqError
    from .core.events import Done, Started

    if args.ctc:
        raise CellseqError("--ctc writes one movie's mask files: segment such movies one at a time, or drop --ctc "
                           "to write one label TIFF per movie into the --out folder")
    if getattr(args, "rois", None):
        raise CellseqError("--rois writes one movie's ROI set: segment that movie alone, or drop --rois")
    if args.frames:
        raise CellseqError("--frames selects frames of one movie: segment that movie alone, or drop --frames")
    if args.context is not None and args.context < 0:
        raise CellseqError(f"--context must be 0 or more, got {args.context}")
    kind, _ = parse_scheduler(args.scheduler)
    if kind != "none":
        require("dask", "distributed")
    bar = progress_factory("segment")
    failures, written = [], []
    with open_client(args.scheduler) as client:
        events = segment_movies_events(
            args.image, args.model, args.out, client, frames_per_task=args.frames_per_task,
            context=DEFAULT_CONTEXT if args.context is None else args.context, channel=args.channel,
            device=args.device, tile=args.tile, output=args.output, overwrite=args.overwrite)
        movies = 0
        for event in events:
            if isinstance(event, Started):
                total_frames = event.total or 0
                logger.info("segmenting %d frames on %s", total_frames, "this process" if client is None
                            else f"dask scheduler {client.scheduler.address}")
            elif isinstance(event, FramesDone):
                bar.update(event.done / max(event.total, 1), f"{event.done}/{event.total} frames, "
                                                                f"{movies} movies done")
            elif isinstance(event, MovieDone):
                movies = event.done
                result = event.result
                if result.ok:
                    written.append(result)
                else:
                    failures.append(result)
                    print(f"napari-cellseq segment: {result.image} failed: {result.error}", file=sys.stderr)
            elif isinstance(event, Done):
                bar.update(1.0, f"{movies} movies in {event.elapsed:.1f}s", force=True)
                bar.close()
    print(json.dumps({"movies": len(written) + len(failures), "written": len(written), "failed": len(failures),
                      "frames": sum(r.frames for r in written), "out": str(args.out),
                      "failures": [{"image": r.image, "error": r.error} for r in failures]}))
    if failures:
        print(f"napari-cellseq segment: {len(failures)} of {len(written) + len(failures)} movies failed "
              f"(listed above); the other {len(written)} are in {args.out}", file=sys.stderr)
        return EXIT_SOME_FAILED
    logger.info("wrote %d movies to %s", len(written), args.out)
    return 0


def segment_blockwise(args, progress_factory) -> int:
    """``segment --blocks``: one 2-D frame, block by block (on ``--scheduler``), into a zarr
    array; returns the exit code. Every bad combination is refused before any work."""
    from .core.builtin import segment_model
    from .core.distributed import require
    from .core.distributed.blocks import BlocksDone, BlocksStitched, open_plane, segment_blocks_events
    from .core.distributed.cluster import open_client, parse_scheduler
    from .core.errors import CellseqError
    from .core.events import Done, Started
    from .core.io import refuse_existing
    from .core.io.ome_zarr import is_ome_zarr
    from .core.pipeline import load_model

    how = "--blocks segments one frame in blocks into a zarr array"
    images = list(args.image)
    if len(images) > 1 or any(_GLOB_CHARS & set(i) for i in images):
        raise CellseqError(f"{how}: give one --image (segment many movies without --blocks)")
    if args.ctc:
        raise CellseqError(f"{how}, --ctc writes a movie's mask files: drop --ctc (or --blocks)")
    if args.rois:
        raise CellseqError(f"{how}, --rois writes a movie's ROI set: drop --rois (or --blocks)")
    if args.frames_per_task is not None or args.context is not None:
        option = "--frames-per-task" if args.frames_per_task is not None else "--context"
        raise CellseqError(f"{how}, {option} cuts a movie into ranges of frames: drop {option} (or --blocks)")
    if args.output == "classes":
        raise CellseqError(f"{how} of cell instances, not class maps: drop --output classes (or --blocks)")
    overlap = DEFAULT_OVERLAP if args.overlap is None else args.overlap
    if overlap > args.blocks:
        raise CellseqError(f"--overlap {overlap} must be at most --blocks ({args.blocks}) pixels: larger blocks or "
                           "a smaller overlap")
    frame = None
    if args.frames is not None:
        try:
            frame = int(args.frames)
        except ValueError:
            raise CellseqError(f"{how}: --frames picks the one frame of a movie, e.g. --frames 0, "
                               f"not {args.frames!r}") from None
    out = Path(args.out).expanduser()
    if out.suffix.lower() != ".zarr":
        raise CellseqError(f"{how}: --out {args.out} must be a .zarr folder to make, e.g. "
                           f"{out.with_suffix('.zarr').name}")
    if is_ome_zarr(out) or out.resolve() == Path(images[0]).expanduser().resolve():
        raise CellseqError(f"--out {args.out} is an image; {how} of its own: give a new name, e.g. labels.zarr")
    kind, _ = parse_scheduler(args.scheduler)
    require("dask", "zarr", "dask_image", *(("distributed",) if kind != "none" else ()))
    refuse_existing([out], args.overwrite, instead="another --out")
    ckpt = load_model(segment_model(args.model, n_frames=1))  # builtin: the U-Net, for one frame
    plane = open_plane(images[0], frame, args.channel)
    bar = progress_factory("segment")
    result = None
    with open_client(args.scheduler) as client:
        events = segment_blocks_events(plane, ckpt, out, client, block=args.blocks,
                                       overlap=overlap,
                                       device=args.device, tile=args.tile, overwrite=args.overwrite)
        for event in events:
            if isinstance(event, Started):
                logger.info("segmenting a %d x %d frame in %d blocks on %s", *plane.shape, event.total,
                            "this process" if client is None else f"dask scheduler {client.scheduler.address}")
            elif isinstance(event, BlocksDone):
                bar.update(event.done / max(event.total, 1), f"block {event.done}/{event.total}")
            elif isinstance(event, BlocksStitched):
                result = event.result
            elif isinstance(event, Done):
                bar.update(1.0, f"{event.iteration} blocks in {event.elapsed:.1f}s", force=True)
                bar.close()
    print(json.dumps({"out": str(out), "shape": [int(n) for n in plane.shape], "block": args.blocks,
                      "blocks": result.blocks, "cells": result.cells, "joined_at_seams": result.joined,
                      "seconds": round(result.seconds, 1)}))
    return 0


@contextmanager
def training_processes(device: str) -> Iterator:
    """``train`` under ``torchrun``: join the process group (DDP) for the run; yields None on
    rank 0 and in a single process (the CLI's progress bar), else a quiet drain of the events:
    only rank 0 reports (other ranks log warnings and errors only)."""
    from .core.distributed.ddp import launched, process_group, rank

    if not launched():
        yield None
        return
    with process_group(device):
        if rank() == 0:
            yield None
        else:
            logging.getLogger().setLevel(logging.WARNING)
            yield _drain


def _drain(events) -> None:
    for _ in events:
        pass
