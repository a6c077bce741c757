"""Where the arithmetic of long work runs: in napari's worker thread, or in a child process it drains.

This module is the one place that decides it. :func:`run_events` is the generator a napari
generator worker (:mod:`napari.qt.threading`) runs; it yields the events of a job function
(:mod:`._jobs`), computed either

``"thread"``
    right there, in the worker thread. Starts at once; torch releases the GIL inside its
    kernels, so the viewer stays responsive.
``"process"``
    in a child process (``spawn``) that the worker thread starts and drains. Shares no GIL
    with the viewer, and its memory (GPU memory included) goes back to the system the moment
    training ends; costs a few seconds of start-up (the child imports torch).

Training defaults to :data:`TRAINING_RUNS_IN`, segmentation to :data:`SEGMENTATION_RUNS_IN`
(figures in README, "In napari"; ``benchmarks/gui_responsiveness.py`` measures both); the
environment variable ``NAPARI_CELLSEQ_WORKER=thread|process`` overrides both.

A job function is a module-level generator function ``func(*, stop, frame, **kwargs)``
(importable by name, so that the child process can find it); ``stop()`` turns True once Stop
is pressed (cooperative: the core keeps its weights) and ``frame()`` is the frame the viewer
shows (None while the live preview is off). :class:`Controls` carries both across threads or
processes.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core.errors import CellseqError

logger = logging.getLogger(__name__)

__all__ = ["WorkError", "PLACES", "TRAINING_RUNS_IN", "SEGMENTATION_RUNS_IN", "place_for", "Controls",
           "run_events", "release_memory"]

PLACES = ("thread", "process")
#: Where training computes (measured, see README "In napari"): ``"thread"`` or ``"process"``.
TRAINING_RUNS_IN = "process"
#: Where segmentation computes: it reads lazy (dask) layers frame by frame, so stays in-process.
SEGMENTATION_RUNS_IN = "thread"
ENV = "NAPARI_CELLSEQ_WORKER"
_POLL_S = 0.05
_JOIN_S = 10.0


def place_for(kind: str) -> str:
    """``"thread"`` or ``"process"`` for ``kind`` (``"training"`` or ``"segmentation"``)."""
    default = TRAINING_RUNS_IN if kind == "training" else SEGMENTATION_RUNS_IN
    asked = os.environ.get(ENV, "").strip().lower()
    return asked if asked in PLACES else default


class Controls:
    """Stop flag and preview frame shared by the GUI and the work (thread or child process).

    The GUI calls :meth:`request_stop` and :meth:`set_frame`; the work calls :meth:`stopped`
    and :meth:`frame`. In process mode both are shared-memory primitives of the spawn context.
    """

    def __init__(self, place: str):
        if place not in PLACES:
            raise ValueError(f"unknown place {place!r}: use one of {PLACES}")
        self.place = place
        if place == "process":
            ctx = mp.get_context("spawn")
            self._stop = ctx.Event()
            self._frame = ctx.Value("l", -1, lock=False)
        else:
            self._stop = threading.Event()
            self._frame = _Box(-1)

    def request_stop(self) -> None:
        self._stop.set()

    def stopped(self) -> bool:
        return self._stop.is_set()

    def set_frame(self, frame: int | None) -> None:
        """The frame to preview at the next checkpoint (None: no preview)."""
        self._frame.value = -1 if frame is None else int(frame)

    def frame(self) -> int | None:
        value = int(self._frame.value)
        return None if value < 0 else value


class _Box:
    """A value holder with the ``.value`` of ``multiprocessing.Value`` (thread mode)."""

    def __init__(self, value: int):
        self.value = value


def release_memory() -> None:
    """Collect garbage and give cached GPU memory back (after a run in this process)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class WorkError(Exception):
    """An unexpected ``RuntimeError`` of the work, re-raised as this (its ``__cause__``).

    napari's generator worker takes a ``RuntimeError`` for a deleted Qt object and then emits
    neither ``errored`` nor ``finished``: torch reports most failures as ``RuntimeError``.
    """


def _friendly(exc: BaseException) -> BaseException:
    """``exc``, or what the GUI can report: a :class:`CellseqError` that says what to do for
    running out of memory, a :class:`WorkError` for a ``RuntimeError``."""
    if isinstance(exc, MemoryError):
        return CellseqError("training or segmentation ran out of memory: use a smaller crop size "
                            "or batch size (the last saved weights are kept)")
    if isinstance(exc, RuntimeError) and not isinstance(exc, CellseqError):
        error = WorkError(f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error
    return exc


def run_events(func: Callable[..., Iterator[Any]], kwargs: dict, controls: Controls,
               ended: threading.Event | None = None) -> Iterator[Any]:
    """Yield the events of ``func(stop=..., frame=..., **kwargs)``, computed at ``controls.place``.

    Run by a napari generator worker. Errors are raised here (the worker's ``errored``); the
    end of the generator is the worker's ``finished``. Once it ends, nothing it computed is
    still referenced: a child process has exited; in thread mode the job's frames are cleared
    (a traceback would otherwise keep the model alive) and :func:`release_memory` runs.
    ``ended`` is set last (the GUI waits on it when napari closes).
    """
    try:
        if controls.place == "process":
            try:
                yield from _in_child(func, kwargs, controls)
            except BaseException as exc:  # noqa: BLE001 - re-raised in a form the worker reports
                friendly = _friendly(exc)
                if friendly is exc:
                    raise
                raise friendly from exc
        else:
            try:
                yield from func(stop=controls.stopped, frame=controls.frame, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised below without its frames
                raise _without_frames(exc) from None
            finally:
                kwargs = None  # noqa: F841 - drop the snapshots before collecting
                release_memory()
    finally:
        if ended is not None:
            ended.set()


def _without_frames(exc: BaseException) -> BaseException:
    """What to report of ``exc`` raised by the work in this thread, holding none of its frames.

    A traceback keeps every frame it passed, and through a frame its function's closure (the
    training loop's network, optimiser and data): the GUI keeps the error for display, so it
    must not keep those. The traceback text goes along as a note (shown when it is logged).
    """
    trace = "".join(traceback.format_exception(exc))
    friendly = _friendly(exc)
    seen = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:  # the whole chain: cause and context
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    if friendly is not exc:
        friendly.__cause__ = None
        friendly.__suppress_context__ = True
    if not isinstance(friendly, CellseqError):
        friendly.add_note(f"in the worker:\n{trace}")
    return friendly


# ---------------------------------------------------------------- process mode
def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class _ChildControls:
    """The job's view of :class:`Controls` inside the child process."""

    def __init__(self, stop_event, frame_value):
        self._stop, self._frame = stop_event, frame_value

    def stopped(self) -> bool:
        return self._stop.is_set()

    def frame(self) -> int | None:
        value = int(self._frame.value)
        return None if value < 0 else value


def _child_main(in_queue, out_queue, stop_event, frame_value) -> None:
    """Entry point of the child process: read the job, run it, report events, error, end."""
    func, kwargs = in_queue.get()
    controls = _ChildControls(stop_event, frame_value)
    try:
        for event in func(stop=controls.stopped, frame=controls.frame, **kwargs):
            out_queue.put(("event", event))
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI
        out_queue.put(("error", _picklable(_friendly(exc)), traceback.format_exc()))
    finally:
        out_queue.put(("end",))


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Keep a spawned child from re-running the parent's ``__main__`` script.

    ``spawn`` re-imports the main module in the child; a user script that opens a viewer
    without an ``if __name__ == "__main__":`` guard would open napari again there. The job
    functions live in importable modules, so the child does not need it.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {key: main.__dict__[key] for key in ("__file__", "__spec__") if key in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _start_child(func: Callable, kwargs: dict, controls: Controls):
    """Start the child; the job goes through a queue (its feeder thread pickles the snapshots).

    The child gets ``OMP_WAIT_POLICY=PASSIVE`` unless set otherwise, so its OpenMP threads do
    not spin on cores the viewer needs (measured: up to 10x slower training under load).
    """
    ctx = mp.get_context("spawn")
    in_queue, out_queue = ctx.Queue(), ctx.Queue()
    in_queue.put((func, kwargs))
    process = ctx.Process(target=_child_main, args=(in_queue, out_queue, controls._stop, controls._frame),
                          daemon=True, name="napari-cellseq worker")
    added = "OMP_WAIT_POLICY" not in os.environ
    if added:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        with _main_module_hidden():
            process.start()
    finally:
        if added:
            del os.environ["OMP_WAIT_POLICY"]
    return process, in_queue, out_queue


def _in_child(func: Callable, kwargs: dict, controls: Controls) -> Iterator[Any]:
    """Run the job in a child process, yielding what it reports; the child is gone at the end.

    If this generator is closed early (the worker quits), the child is asked to stop, its
    queue drained while it finishes (a child exits only once its queue has gone through the
    pipe) and, after ``_JOIN_S`` seconds, terminated.
    """
    process, in_queue, out_queue = _start_child(func, kwargs, controls)
    kwargs = None  # noqa: F841 - the child has the snapshots now
    error: tuple | None = None
    try:
        while True:
            try:
                message = out_queue.get(timeout=_POLL_S)
            except queue_mod.Empty:
                if process.is_alive():
                    continue
                try:  # the feeder thread may still be flushing
                    message = out_queue.get(timeout=0.5)
                except queue_mod.Empty:
                    raise CellseqError(
                        f"the worker process ended unexpectedly (exit code {process.exitcode}); it may "
                        "have run out of memory: try a smaller crop size or batch size") from None
            kind = message[0]
            if kind == "event":
                yield message[1]
            elif kind == "error":
                error = message[1:]
            else:
                break
        if error is not None:
            exc, trace = error
            logger.debug("worker process failed:\n%s", trace)
            if not isinstance(exc, CellseqError):
                exc.add_note(f"in the worker process:\n{trace}")
            raise exc
    finally:
        _end_child(process, out_queue, controls)
        in_queue.close()


def _end_child(process, out_queue, controls: Controls) -> None:
    """Wait for the child to exit (asking it to stop if it is still working), then reap it."""
    if process.is_alive():
        controls.request_stop()
    deadline = time.monotonic() + _JOIN_S
    while process.is_alive() and time.monotonic() < deadline:
        _drain(out_queue)
        process.join(_POLL_S)
    if process.is_alive():
        logger.warning("worker process did not stop in %.0f s: terminating it", _JOIN_S)
        process.terminate()
        process.join(2.0)
        if process.is_alive():  # pragma: no cover - SIGTERM ignored
            process.kill()
            process.join(2.0)
    _drain(out_queue)
    process.join(1.0)
    out_queue.close()


def _drain(q) -> None:
    """Read and drop what is in ``q``."""
    try:
        while True:
            q.get_nowait()
    except (queue_mod.Empty, OSError, ValueError, EOFError):
        pass
