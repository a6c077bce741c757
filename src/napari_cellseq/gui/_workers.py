"""Run a core event generator off the GUI thread and deliver its events on the GUI thread.

This module is the one place that decides *where* long work runs:

``"thread"`` (default for segmentation)
    a daemon :class:`threading.Thread` in the napari process. Torch releases the GIL inside
    its kernels, so the event loop stays responsive (measured by
    ``benchmarks/gui_responsiveness.py``).
``"process"`` (default for training, see :func:`default_mode`)
    a child process from the ``spawn`` context. The job function and its arguments are pickled
    to the child, events come back pickled. Costs a few seconds of start-up (the child imports
    torch) but shares no GIL with the GUI.

Set ``NAPARI_CELLSEQ_WORKER=thread|process`` (or pass ``mode=``) to choose for every job.

In both modes the worker puts ``("event", e)``, ``("error", exc, traceback)`` and finally
``("end",)`` into a queue; a :class:`~qtpy.QtCore.QTimer` on the GUI thread drains it and
re-emits :attr:`Job.received`, :attr:`Job.failed` and :attr:`Job.finished`. The worker never
touches a widget or a layer. Stopping is cooperative: the job function receives ``stop``, a
zero-argument callable that turns True after :meth:`Job.stop`.

A job function is a module-level callable ``func(*, stop, **kwargs) -> Iterator[Event]`` (it
must be importable by name for the process mode).
"""

from __future__ import annotations

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
from functools import partial
from typing import Any

from qtpy.QtCore import QObject, QTimer, Signal

logger = logging.getLogger(__name__)

__all__ = ["Job", "default_mode", "MODES"]

MODES = ("thread", "process")
_POLL_MS = 25
_DRAIN_BUDGET_S = 0.02  # at most this long delivering events per timer tick
_JOIN_TIMEOUT_S = 10.0


def default_mode(fallback: str = "thread") -> str:
    """``NAPARI_CELLSEQ_WORKER`` if set to a valid mode, else ``fallback``.

    Training passes ``fallback="process"``: measured on 2 idle cores (U-Net, 160 px crops,
    ``benchmarks/gui_responsiveness.py``), a thread trained at 87-89 % of the headless speed
    (the Python parts of each step share the GIL with the GUI), a child process at 96 %, both
    with the longest event-loop stall near 30 ms; the process costs ~5 s to start. Segmentation
    stays in a thread, which starts at once.
    """
    mode = os.environ.get("NAPARI_CELLSEQ_WORKER", fallback).strip().lower()
    return mode if mode in MODES else fallback


def _picklable_error(exc: BaseException) -> BaseException:
    """``exc`` itself if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _drive(func: Callable[..., Iterator[Any]], kwargs: dict, put: Callable[[tuple], None],
           stop: Callable[[], bool]) -> None:
    """Run ``func(stop=stop, **kwargs)`` to the end, putting every event, error and the end."""
    try:
        for event in func(stop=stop, **kwargs):
            put(("event", event))
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI
        put(("error", _picklable_error(exc), traceback.format_exc()))
    finally:
        put(("end",))


def _child_main(in_queue, out_queue, stop_event) -> None:
    """Entry point of the child process (process mode): read the job, run it."""
    func, kwargs = in_queue.get()
    _drive(func, kwargs, out_queue.put, stop_event.is_set)


def _spawn(handle: "_Handle", func: Callable, kwargs: dict) -> None:
    """Start the child process of ``handle`` and send it the job.

    The job (with its array snapshots) goes through a queue, whose feeder thread writes it in the
    background: passing it as a Process argument would block the GUI until the child has started
    and read it. The child gets ``OMP_WAIT_POLICY=PASSIVE`` unless set otherwise, so its OpenMP
    threads do not spin on cores the GUI needs (measured: up to 10x slower training under load).
    """
    ctx = mp.get_context("spawn")
    handle.in_queue = ctx.Queue()
    handle.in_queue.put((func, kwargs))
    handle.process = ctx.Process(
        target=_child_main, args=(handle.in_queue, handle.queue, handle.stop_event),
        daemon=True, name="napari-cellseq worker",
    )
    added = "OMP_WAIT_POLICY" not in os.environ
    if added:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        with _main_module_hidden():
            handle.process.start()
    finally:
        if added:
            del os.environ["OMP_WAIT_POLICY"]


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Keep a spawned child from re-running the parent's ``__main__`` script.

    ``spawn`` re-imports the main module in the child; a user script that opens a viewer
    without an ``if __name__ == "__main__":`` guard would open napari again there and crash the
    worker. The job functions live in importable modules, so the child does not need it: hide
    ``__main__``'s file and spec while the child is started (spawn reads them in ``start()``).
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


class _Handle:
    """The non-Qt parts of a running job (so cleanup works after the widget is gone)."""

    def __init__(self, mode: str):
        self.mode = mode
        if mode == "process":
            ctx = mp.get_context("spawn")
            self.queue = ctx.Queue()
            self.stop_event = ctx.Event()
        else:
            self.queue = queue_mod.SimpleQueue()
            self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.process = None
        self.in_queue = None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.is_alive()
        return self.thread is not None and self.thread.is_alive()

    def shutdown(self, timeout: float = _JOIN_TIMEOUT_S) -> None:
        """Ask the worker to stop and wait up to ``timeout`` s (a child process is then killed).

        While waiting for a child process its messages are read and dropped: a child exits only
        once everything it put into the queue has gone through the pipe, so a full pipe that
        nobody reads would keep it alive (and block its final save) until it is killed.
        """
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                logger.warning("worker thread did not stop in %.0f s; it ends with napari", timeout)
        if self.process is not None:
            deadline = time.monotonic() + timeout
            while self.process.is_alive() and time.monotonic() < deadline:
                self._drain()
                self.process.join(0.05)
            if self.process.is_alive():
                logger.warning("worker process did not stop in %.0f s: terminating it", timeout)
                self.process.terminate()
                self.process.join(2.0)
                if self.process.is_alive():  # pragma: no cover - SIGTERM ignored
                    self.process.kill()
                    self.process.join(2.0)
            self._drain()

    def _drain(self) -> None:
        """Read and drop what the worker has put into the queue so far."""
        try:
            while True:
                self.queue.get_nowait()
        except (queue_mod.Empty, OSError, ValueError, EOFError):
            pass


def _shutdown_handle(handle: _Handle, *_args) -> None:
    """Slot for ``QObject.destroyed``: end the worker of a widget that is being deleted."""
    if handle.alive():
        handle.shutdown()


class Job(QObject):
    """One run of a job function in a worker; events arrive as Qt signals on the GUI thread.

    Parameters
    ----------
    func : module-level job function ``func(*, stop, **kwargs) -> Iterator[Event]``.
    kwargs : its arguments (snapshots of layer data, configs, paths; never layers or widgets).
    mode : ``"thread"`` or ``"process"``; default :func:`default_mode`.
    parent : the widget that owns the job; when it is destroyed (napari closes) the worker is
        told to stop and joined, so closing napari never hangs on or orphans a worker.

    Signals
    -------
    received(object) : each event yielded by ``func``, in order.
    failed(object, str) : the exception raised by ``func`` and its formatted traceback.
    finished() : always emitted once, last (after the final event or after ``failed``).
    """

    received = Signal(object)
    failed = Signal(object, str)
    finished = Signal()

    def __init__(self, func: Callable[..., Iterator[Any]], kwargs: dict, mode: str | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        mode = mode or default_mode()
        if mode not in MODES:
            raise ValueError(f"unknown worker mode {mode!r}: use one of {MODES}")
        self.mode = mode
        self._func = func
        self._kwargs = kwargs
        self._handle = _Handle(mode)
        self._ended = False
        self._timer = QTimer(self)
        self._timer.setInterval(_POLL_MS)
        self._timer.timeout.connect(self._poll)
        if parent is not None:
            parent.destroyed.connect(partial(_shutdown_handle, self._handle))

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :attr:`finished` has been emitted."""
        return self._timer.isActive()

    def start(self) -> None:
        """Start the worker and the polling timer."""
        h = self._handle
        if h.mode == "process":
            _spawn(h, self._func, self._kwargs)
        else:
            h.thread = threading.Thread(
                target=_drive, args=(self._func, self._kwargs, h.queue.put, h.stop_event.is_set),
                daemon=True, name="napari-cellseq worker",
            )
            h.thread.start()
        self._kwargs = None  # drop the snapshots: the worker holds them now
        self._timer.start()

    def stop(self) -> None:
        """Ask the work to end at its next step (cooperative; weights are kept by the core)."""
        self._handle.stop_event.set()

    def shutdown(self, timeout: float = _JOIN_TIMEOUT_S) -> None:
        """Stop and wait for the worker (used when the owner closes); no further signals."""
        self._timer.stop()
        self._handle.shutdown(timeout)

    def _poll(self) -> None:
        """Deliver queued messages for at most ``_DRAIN_BUDGET_S`` seconds."""
        deadline = time.perf_counter() + _DRAIN_BUDGET_S
        q = self._handle.queue
        while time.perf_counter() < deadline:
            try:
                message = q.get_nowait()
            except queue_mod.Empty:
                break
            if self._deliver(message):
                return
        else:
            return
        # Queue empty: a child that died without saying "end" (killed, crashed) is an error.
        if self._handle.process is not None and not self._handle.process.is_alive():
            code = self._handle.process.exitcode
            try:
                message = q.get(timeout=0.2)  # the feeder thread may still be flushing
            except queue_mod.Empty:
                message = None
            if message is not None:
                self._deliver(message)
                return
            self._deliver(("error", RuntimeError(
                f"the worker process ended unexpectedly (exit code {code}); "
                "it may have run out of memory: try a smaller crop size or batch size"), ""))
            self._deliver(("end",))

    def _deliver(self, message: tuple) -> bool:
        """Emit the signal for one queue message; True once the job has ended."""
        kind = message[0]
        if kind == "event":
            self.received.emit(message[1])
            return False
        if kind == "error":
            self.failed.emit(message[1], message[2])
            return False
        self._timer.stop()
        if self._handle.thread is not None:
            self._handle.thread.join(1.0)
        if self._handle.process is not None:
            self._handle.process.join(2.0)
        if not self._ended:
            self._ended = True
            self.finished.emit()
        return True
