"""Helpers shared by the GUI tests (imported by name: tests/gui is on sys.path)."""

from __future__ import annotations


def errors(seen: list[tuple[str, str]]) -> list[str]:
    """The messages of error notifications in ``seen``."""
    return [m for s, m in seen if s.lower() == "error"]


def set_tiny_budget(widget, iterations: int = 3, crop: int = 64, batch: int = 2) -> None:
    """Configure a TrainWidget for a test-sized run on the CPU."""
    widget.budget_unit.setCurrentText("iterations")
    widget.budget_spin.setValue(iterations)
    widget.crop_spin.setValue(crop)
    widget.batch_spin.setValue(batch)
    widget.device_combo.setCurrentText("cpu")


def wait_idle(qtbot, widget, timeout: int = 120_000) -> None:
    """Wait until a TrainWidget's run has ended (done or failed)."""
    qtbot.waitUntil(lambda: not widget.state.train_state.busy and widget.job is None, timeout=timeout)


def counting_job(*, n: int, fail_at: int | None = None, delay: float = 0.0, stop):
    """A job function for worker tests: yields 0..n-1, raising ValueError at ``fail_at``."""
    import time

    for i in range(n):
        if stop():
            return
        if i == fail_at:
            raise ValueError(f"failed at {i}: do something else")
        time.sleep(delay)
        yield i
