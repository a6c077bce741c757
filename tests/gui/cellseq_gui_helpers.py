"""Helpers shared by the GUI tests (imported by name: tests/gui is on sys.path)."""

from __future__ import annotations


def errors(seen: list[tuple[str, str]]) -> list[str]:
    """The messages of error notifications in ``seen``."""
    return [m for s, m in seen if s.lower() == "error"]


def dock(viewer, cls):
    """``cls(viewer)`` docked in ``viewer`` (so its layer choices follow the layer list)."""
    widget = cls(viewer)
    viewer.window.add_dock_widget(widget, name=cls.__name__)
    widget.reset_choices()
    return widget


def set_tiny_budget(widget, iterations: int = 3, crop: int = 64, batch: int = 2) -> None:
    """Configure a TrainWidget for a test-sized run on the CPU (by its values)."""
    widget.unit.value = "iterations"
    widget.budget.value = iterations
    widget.crop.value = crop
    widget.batch.value = batch
    widget.device.value = "cpu"


def wait_idle(qtbot, widget, timeout: int = 120_000) -> None:
    """Wait until a Train or Segment widget's run has ended (done or failed)."""
    qtbot.waitUntil(lambda: not widget.run.state.busy, timeout=timeout)


def counting_job(*, n: int, fail_at: int | None = None, delay: float = 0.0, stop, frame=None):
    """A job function for worker tests: yields 0..n-1, raising ValueError at ``fail_at``."""
    import time

    for i in range(n):
        if stop():
            return
        if i == fail_at:
            raise ValueError(f"failed at {i}: do something else")
        time.sleep(delay)
        yield i
