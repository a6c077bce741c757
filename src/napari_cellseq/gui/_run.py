"""One run controller, shared by the Train and Segment widgets.

A :class:`RunController` runs one job at a time in a napari generator worker
(:func:`napari.qt.threading.create_worker` over :func:`._backend.run_events`): events arrive
through the worker's ``yielded``, errors through ``errored`` (shown as one napari error
notification that says what failed and what to do), the end through ``finished``. Its :class:`RunState` (idle, running, stopping,
done, failed) is what the widgets' buttons follow. Stop is cooperative: the core sees
``stop()`` turn True at its next step and ends with its weights saved. :meth:`shutdown` (napari
closing) stops the work and waits for it, so no worker outlives the viewer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any

from psygnal import Signal

from ..core.errors import CellseqError
from ._backend import Controls, place_for, run_events

logger = logging.getLogger(__name__)

__all__ = ["RunState", "RunController"]

_SHUTDOWN_S = 20.0


class RunState(Enum):
    """Life cycle of a run; drives which buttons are enabled."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"
    FAILED = "failed"

    @property
    def busy(self) -> bool:
        """True while a worker exists (``running`` or ``stopping``)."""
        return self in (RunState.RUNNING, RunState.STOPPING)


def _cooperative_worker() -> type:
    """napari's GeneratorWorker whose ``quit()`` is a cooperative Stop.

    napari cancels every running task when its window closes (``worker.quit``): a plain
    generator worker would then stop iterating, leaving training suspended mid-run (a child
    process still working). Here quitting asks the work to stop at its next step, so it saves
    its weights and ends as after Stop.
    """
    from napari.qt.threading import GeneratorWorker

    class CooperativeWorker(GeneratorWorker):
        controls: Controls | None = None

        def quit(self) -> None:
            if self.controls is not None:
                self.controls.request_stop()
            else:  # pragma: no cover - always set by RunController.start
                super().quit()

    return CooperativeWorker


class RunController:
    """Start, stop and shut down one job at a time; report its events and state.

    Parameters
    ----------
    kind : ``"training"`` or ``"segmentation"`` (decides where it computes, see :mod:`._backend`).

    Signals
    -------
    state_changed(RunState) : after every change of :attr:`state`.
    event(object) : each event of the job, on the GUI thread, in order.
    """

    state_changed = Signal(object)
    event = Signal(object)

    def __init__(self, kind: str):
        self.kind = kind
        self.state = RunState.IDLE
        self.error: BaseException | None = None
        self.place: str | None = None
        self.worker = None
        self.controls: Controls | None = None
        self._ended: threading.Event | None = None

    def _set(self, state: RunState) -> None:
        self.state = state
        self.state_changed.emit(state)

    def start(self, func: Callable[..., Iterator[Any]], kwargs: dict, place: str | None = None,
              preview_frame: int | None = None) -> None:
        """Run ``func(stop=, frame=, **kwargs)`` (a :mod:`._jobs` function on snapshots)."""
        from napari.qt.threading import create_worker

        if self.state.busy:
            raise RuntimeError("a run is already going on")
        self.place = place or place_for(self.kind)
        self.controls = Controls(self.place)
        self.controls.set_frame(preview_frame)
        self._ended = threading.Event()
        self.error = None
        worker = create_worker(run_events, func, kwargs, self.controls, self._ended,
                               _start_thread=False, _ignore_errors=True, _worker_class=_cooperative_worker())
        worker.controls = self.controls
        try:  # napari's own relay would show a second notification (with a traceback)
            worker.errored.disconnect(worker._relay_error)  # noqa: SLF001
        except (AttributeError, TypeError, RuntimeError):
            pass
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set(RunState.RUNNING)
        worker.start()

    def stop(self) -> None:
        """Ask the work to end at its next step (it keeps what it has done)."""
        if self.state is RunState.RUNNING and self.controls is not None:
            self.controls.request_stop()
            self._set(RunState.STOPPING)

    def set_preview_frame(self, frame: int | None) -> None:
        """The frame the work previews at its next checkpoint (None: none)."""
        if self.controls is not None:
            self.controls.set_frame(frame)

    def shutdown(self, timeout: float = _SHUTDOWN_S) -> None:
        """Stop the work and wait up to ``timeout`` s for it to end (napari is closing).

        Nothing is delivered afterwards: the widgets may already be gone.
        """
        worker, ended = self.worker, self._ended
        if worker is None:
            return
        for signal, slot in ((worker.yielded, self._on_yielded), (worker.errored, self._on_errored),
                             (worker.finished, self._on_finished)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):  # already disconnected / deleted
                pass
        if self.controls is not None:
            self.controls.request_stop()
        if ended is not None and not ended.wait(timeout):
            logger.warning("the %s worker did not stop in %.0f s", self.kind, timeout)
        self.worker = None
        self.state = RunState.IDLE

    # ------------------------------------------------------------ worker signals
    def _on_yielded(self, event: Any) -> None:
        self.event.emit(event)

    def _on_errored(self, exc: BaseException) -> None:
        """Keep the error for the state and show it: a CellseqError's message says what to do."""
        from napari.utils.notifications import show_error

        self.error = exc
        if isinstance(exc, CellseqError):
            show_error(f"{self.kind} failed: {exc}")
        else:  # unexpected: keep the traceback for bug reports
            logger.error("%s failed", self.kind, exc_info=(type(exc), exc, exc.__traceback__))
            show_error(f"{self.kind} failed ({type(exc).__name__}: {exc})")

    def _on_finished(self) -> None:
        self.worker = None
        self.controls = None
        self._set(RunState.FAILED if self.error is not None else RunState.DONE)
