"""Many movies, one task each (or one per range of frames), on a ``distributed.Client`` or here.

:func:`segment_movies_events` yields :class:`FramesDone` (progress) and one :class:`MovieDone`
per movie, then ``Done``; :func:`segment_movies` drains it and returns the
:class:`MovieResult` list. Each movie's labels go to ``out_dir / <image file name>``, written
(atomically, frame by frame: :func:`~napari_cellseq.core.io.label_stack_writer`) by the worker
that segmented it, so the file equals what ``napari-cellseq segment`` writes for that movie
alone. A movie that fails (unreadable file, bad layout, a crash) is reported with its error
while the others go on.

Long movies can be cut into ranges of ``frames_per_task`` frames, one task each; each range
writes a hidden part file beside the output and a last task per movie joins the parts into the
output file (atomically) and removes them. Frame models give exactly the labels of the whole-
movie run (normalisation always uses the whole movie's percentiles). A temporal model (U-LSTM)
starts each range ``context`` frames early, so that its memory is primed on the frames before
the range like in the whole-movie run (those frames' outputs are dropped); its labels then
differ slightly from the whole-movie run's (measured: ``benchmarks/beyond_one_machine.py``, README).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint
from ..errors import CellseqError, InputError
from ..events import Done, Event, Started
from ..io import OutputExistsError, check_image_layout, label_stack_writer, open_image
from ..io.sources import open_movie
from ..pipeline import FrameLabels, load_model, segment_events

logger = logging.getLogger(__name__)

__all__ = [
    "FrameRange", "MovieResult", "MovieDone", "FramesDone", "plan_ranges", "expand_images",
    "segment_movies_events", "segment_movies", "DEFAULT_CONTEXT",
]

# Frames a temporal model sees before each range of frames (their outputs are dropped).
DEFAULT_CONTEXT = 5
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class FrameRange:
    """Frames ``[start, stop)`` of a movie, run from ``first`` (``start - context``, at least 0)."""

    start: int
    stop: int
    first: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class MovieResult:
    """What became of one movie: ``out`` written with ``frames`` frames, or ``error`` (one line)."""

    image: str
    out: str
    frames: int
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class MovieDone(Event):
    """Movie ``result`` is finished (written or failed); ``done`` of ``total`` movies so far."""

    result: MovieResult
    done: int
    total: int


@dataclass(frozen=True)
class FramesDone(Event):
    """``done`` of ``total`` frames of all movies are segmented (or were given up with a failed movie)."""

    done: int
    total: int


def plan_ranges(n_frames: int, frames_per_task: int | None = None, context: int = 0) -> list[FrameRange]:
    """Ranges of at most ``frames_per_task`` frames covering ``0..n_frames-1`` (one when None);
    each range after the first is run from ``context`` frames before it."""
    if frames_per_task is not None and (isinstance(frames_per_task, bool) or int(frames_per_task) < 1):
        raise InputError(f"frames per task must be at least 1, got {frames_per_task!r}")
    if int(context) < 0:
        raise InputError(f"context frames must be 0 or more, got {context!r}")
    step = n_frames if frames_per_task is None else int(frames_per_task)
    return [FrameRange(s, min(s + step, n_frames), max(0, s - int(context))) for s in range(0, n_frames, step)]


def expand_images(patterns: Iterable[str | os.PathLike]) -> list[Path]:
    """Image paths from paths and glob patterns (``movies/*.tif``, sorted); duplicates dropped.

    A pattern that matches nothing raises :class:`InputError`; a plain path is kept as it is
    (a missing file is then reported as that movie's failure).
    """
    paths: list[Path] = []
    for pattern in patterns:
        text = os.path.expanduser(str(pattern))
        if _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"no file matches {pattern}: check the pattern (quote it so that the shell "
                                 "does not expand it)")
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(Path(text))
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if not unique:
        raise InputError("no image given: name at least one movie (--image)")
    return unique


def _one_line(err: BaseException) -> str:
    text = str(err) if isinstance(err, CellseqError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split()) or type(err).__name__


def _outputs(images: Sequence[Path], out_dir: Path, overwrite: bool) -> list[Path]:
    """``out_dir / <image name>`` for each image; clashing names and (without ``overwrite``)
    existing files refused before any work starts."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file, but several movies need an output folder: give a folder for --out")
    outs = [out_dir / p.name for p in images]
    seen: dict[Path, Path] = {}
    for image, out in zip(images, outs):
        if out in seen:
            raise InputError(f"{seen[out]} and {image} would both be written to {out}: rename one of them or "
                             "segment them into different --out folders")
        seen[out] = image
        if out.resolve() == image:
            raise InputError(f"{out} is the input movie itself: choose another --out folder")
    existing = [o for o in outs if o.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]}{more} exist: pass --overwrite or choose another --out folder")
    return outs


def _probe(image: Path, channel: int | None) -> tuple[int, ...]:
    """Shape of the (channel-selected) movie, checked without reading its pixels."""
    with open_movie(image, channel) as array:  # TIFF, CTC sequence folder or OME-Zarr
        shape = tuple(int(v) for v in array.shape)
        check_image_layout(shape, array.dtype)
    return shape


def _part_path(out: Path, rng: FrameRange) -> Path:
    return out.parent / f".parts-{out.name}" / f"{rng.start:07d}-{rng.stop:07d}.tif"


def _frames_of(image: Path, ckpt: Checkpoint, target: Path, shape: tuple[int, ...], rng: FrameRange | None,
               options: dict[str, Any], overwrite: bool) -> Iterator[int]:
    """Segment ``image`` (all of it, or ``rng``) into ``target``; yields after each frame kept."""
    with open_movie(image, options.get("channel")) as array:
        frames = None
        if rng is not None:
            # up to the warm-up's reach after ``first`` too: the lead-in of a temporal model is
            # then the whole-movie run's (frames past ``stop`` are not written)
            n = 1 if len(shape) == 2 else shape[0]
            frames = list(range(rng.first, max(rng.stop, min(n, rng.first + _warmup() + 1))))
        offset = 0 if rng is None else rng.start
        out_shape = shape if rng is None else (rng.size,) + tuple(shape[-2:])
        events = segment_events(array, ckpt, device=options.get("device", "auto"), frames=frames,
                                tile=options.get("tile"), output=options.get("output"))
        first = next(events)  # input checked before any file is made
        del first
        with label_stack_writer(target, out_shape, overwrite=overwrite) as writer:
            for event in events:
                if isinstance(event, FrameLabels) and offset <= event.index < offset + out_shape[0]:
                    writer.write(event.index - offset, event.labels)
                    yield event.index
    logger.debug("wrote %s", target)


def _warmup() -> int:
    """Lead-in frames of temporal models in segmentation (the Predictor's ``warmup``)."""
    import inspect

    from ..inference import Predictor

    return int(inspect.signature(Predictor).parameters["warmup"].default)


def _threads(options: dict[str, Any]) -> None:
    threads = options.get("torch_threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _segment_task(image: str, ckpt: Checkpoint, target: str, shape: tuple[int, ...], rng: FrameRange | None,
                  options: dict[str, Any], overwrite: bool) -> int:
    """Worker task: segment a movie (or a range of it) into ``target``; returns the frames written."""
    _threads(options)
    return sum(1 for _ in _frames_of(Path(image), ckpt, Path(target), shape, rng, options, overwrite))


def _join_task(target: str, shape: tuple[int, ...], parts: list[tuple[int, str]], overwrite: bool,
               *written: int) -> int:
    """Worker task: join part files ``[(start, path)]`` into ``target`` frame by frame, atomically;
    the parts are removed afterwards. ``written`` (the part tasks' results) orders it after them."""
    with label_stack_writer(target, shape, overwrite=overwrite) as writer:
        for start, path in parts:
            with open_image(path) as part:
                for i in range(part.shape[0]):
                    writer.write(start + i, part[i])
    _remove_parts(Path(target))
    return int(sum(written))


def _remove_parts(out: Path) -> None:
    shutil.rmtree(out.parent / f".parts-{out.name}", ignore_errors=True)


def _is_temporal(ckpt: Checkpoint) -> bool:
    from ..models import build_model

    return bool(getattr(build_model(ckpt.model_config), "temporal", False))


def segment_movies_events(
    images: Iterable[str | os.PathLike],
    model: Checkpoint | str | os.PathLike,
    out_dir: str | os.PathLike,
    client: Any = None,
    *,
    frames_per_task: int | None = None,
    context: int = DEFAULT_CONTEXT,
    channel: int | None = None,
    device: str = "auto",
    tile: int | None = None,
    output: str | None = None,
    overwrite: bool = False,
    torch_threads: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[Event]:
    """Segment every movie of ``images`` into ``out_dir``, yielding events.

    Parameters
    ----------
    images : TIFF paths or glob patterns (see :func:`expand_images`); each ``(Y, X)`` or
        ``(T, Y, X)`` (or multichannel with ``channel``).
    model : a model file or :class:`~napari_cellseq.core.checkpoint.Checkpoint`.
    out_dir : folder for the label files, ``out_dir / <image file name>``.
    client : a ``distributed.Client`` (tasks run on its workers, which must see the same files),
        or None: every task runs here, one after the other.
    frames_per_task : cut movies into ranges of this many frames (None: one task per movie).
    context : frames a temporal model runs before each range (ignored for frame models).
    channel, device, tile, output : as ``napari-cellseq segment``.
    overwrite : replace existing label files (otherwise refused before any work).
    torch_threads : torch threads in each task (None: leave the worker's setting).
    stop : checked between events; True cancels what has not finished (``Done`` reason ``stopped``).

    Yields ``Started`` (total = frames of all readable movies), :class:`FramesDone` as frames
    finish (per frame here, per task on a cluster), one :class:`MovieDone` per movie (failed
    ones too), and ``Done`` (``iteration`` = movies written).

    Raises :class:`InputError` before any work for: no image, a pattern matching nothing,
    clashing or existing outputs, an unreadable model file, bad ``frames_per_task``.
    """
    paths = expand_images(images)
    out_dir = Path(out_dir).expanduser()
    outs = _outputs(paths, out_dir, overwrite)
    ckpt = load_model(model)
    options = {"channel": channel, "device": device, "tile": tile, "output": output, "torch_threads": torch_threads}
    temporal = _is_temporal(ckpt)
    context = context if temporal else 0
    if frames_per_task is not None:
        plan_ranges(1, frames_per_task, context)  # checks the numbers before any work
    t0 = time.perf_counter()
    shapes: list[tuple[int, ...] | None] = []
    failed_early: list[MovieResult] = []
    for image, out in zip(paths, outs):
        try:
            shapes.append(_probe(image, channel))
        except Exception as err:  # noqa: BLE001 - reported as this movie's failure
            shapes.append(None)
            failed_early.append(MovieResult(str(image), str(out), 0, 0.0, _one_line(err)))
    counts = [0 if s is None else (1 if len(s) == 2 else s[0]) for s in shapes]
    total_frames, total = sum(counts), len(paths)
    yield Started(total=total_frames, max_time=None, device=device if client is None else "dask")
    done_movies = 0
    for result in failed_early:
        done_movies += 1
        yield MovieDone(result, done_movies, total)
    jobs = [(i, p, o, s) for i, (p, o, s) in enumerate(zip(paths, outs, shapes)) if s is not None]
    runner = _run_here if client is None else _run_on_cluster
    written = frames_done = 0
    stopped = False
    for event in runner(jobs, ckpt, counts, frames_per_task, context, options, overwrite, client, stop):
        if isinstance(event, FramesDone):  # the runners count frames; the totals are kept here
            frames_done += event.done
            yield FramesDone(frames_done, total_frames)
        elif isinstance(event, MovieResult):
            done_movies += 1
            written += event.ok
            if not event.ok:
                logger.debug("%s failed: %s", event.image, event.error)
            yield MovieDone(event, done_movies, total)
        elif event == "stopped":
            stopped = True
    yield Done(reason="stopped" if stopped else "finished", iteration=written, elapsed=time.perf_counter() - t0)


def _movie_tasks(shape: tuple[int, ...], n: int, frames_per_task: int | None,
                 context: int) -> tuple[list[FrameRange], bool]:
    """The ranges of one movie and whether they need joining (more than one range)."""
    if len(shape) == 2 or frames_per_task is None or frames_per_task >= n:
        return [FrameRange(0, n, 0)], False
    return plan_ranges(n, frames_per_task, context), True


def _run_here(jobs, ckpt, counts, frames_per_task, context, options, overwrite, client, stop) -> Iterator[Any]:
    """Every task in this process, in order; progress per frame."""
    del client
    for i, image, out, shape in jobs:
        t0 = time.perf_counter()
        ranges, split = _movie_tasks(shape, counts[i], frames_per_task, context)
        kept = 0
        try:
            _threads(options)
            parts = []
            for rng in ranges:
                target = _part_path(out, rng) if split else out
                for _ in _frames_of(image, ckpt, target, shape, rng if split else None, options,
                                    overwrite or split):
                    kept += 1
                    yield FramesDone(1, 0)
                    if stop is not None and stop():
                        raise KeyboardInterrupt
                parts.append((rng.start, str(target)))
            if split:
                _join_task(str(out), shape, parts, overwrite)
        except KeyboardInterrupt:
            _remove_parts(out)
            yield "stopped"
            return
        except Exception as err:  # noqa: BLE001 - reported as this movie's failure
            _remove_parts(out)
            yield FramesDone(counts[i] - kept, 0)
            yield MovieResult(str(image), str(out), 0, time.perf_counter() - t0, _one_line(err))
            continue
        yield MovieResult(str(image), str(out), counts[i], time.perf_counter() - t0)


def _run_on_cluster(jobs, ckpt, counts, frames_per_task, context, options, overwrite, client, stop) -> Iterator[Any]:
    """One task per movie or range on ``client``'s workers (plus one join task per split movie);
    progress per finished task."""
    from distributed import as_completed

    model = client.scatter(ckpt, broadcast=True, hash=False)
    frames_of: dict[Any, tuple[int, int]] = {}  # segmenting future -> (movie, frames it covers)
    movie_of: dict[Any, tuple[int, Path, Path, float]] = {}  # final future -> movie
    futures = []
    for i, image, out, shape in jobs:
        ranges, split = _movie_tasks(shape, counts[i], frames_per_task, context)
        started = time.perf_counter()
        if not split:
            fut = client.submit(_segment_task, str(image), model, str(out), shape, None, options, overwrite,
                                pure=False)
            frames_of[fut] = (i, counts[i])
            movie_of[fut] = (i, image, out, started)
            futures.append(fut)
            continue
        parts, part_futures = [], []
        for rng in ranges:
            target = _part_path(out, rng)
            fut = client.submit(_segment_task, str(image), model, str(target), shape, rng, options, True,
                                pure=False)
            frames_of[fut] = (i, rng.size)
            parts.append((rng.start, str(target)))
            part_futures.append(fut)
        join = client.submit(_join_task, str(out), shape, parts, overwrite, *part_futures, pure=False)
        movie_of[join] = (i, image, out, started)
        futures.extend(part_futures)
        futures.append(join)
    reported = dict.fromkeys(range(len(counts)), 0)  # frames reported done, per movie
    finished: set[int] = set()
    pending = set(futures)
    try:
        for fut in as_completed(futures):
            pending.discard(fut)
            if stop is not None and stop():
                yield "stopped"
                return
            error = fut.exception() if fut.status == "error" else None
            if fut in frames_of and error is None:
                i, n = frames_of[fut]
                if i not in finished:
                    reported[i] += n
                    yield FramesDone(n, 0)
            if fut in movie_of:
                i, image, out, started = movie_of[fut]
                finished.add(i)
                seconds = time.perf_counter() - started
                if error is not None or fut.status != "finished":
                    _remove_parts(out)
                    yield FramesDone(max(0, counts[i] - reported[i]), 0)  # given up with the movie
                    message = _one_line(error) if error is not None else f"task {fut.status}"
                    yield MovieResult(str(image), str(out), 0, seconds, message)
                else:
                    yield MovieResult(str(image), str(out), counts[i], seconds)
    finally:
        if pending:
            client.cancel(list(pending))


def segment_movies(images: Iterable[str | os.PathLike], model: Checkpoint | str | os.PathLike,
                   out_dir: str | os.PathLike, client: Any = None,
                   on_event: Callable[[Event], None] | None = None, **kwargs) -> list[MovieResult]:
    """Segment every movie of ``images`` into ``out_dir`` (see :func:`segment_movies_events`) and
    return one :class:`MovieResult` per movie, in the order of ``images``."""
    results = []
    for event in segment_movies_events(images, model, out_dir, client, **kwargs):
        if on_event is not None:
            on_event(event)
        if isinstance(event, MovieDone):
            results.append(event.result)
    order = {str(p): k for k, p in enumerate(expand_images(images))}
    return sorted(results, key=lambda r: order.get(r.image, len(order)))
