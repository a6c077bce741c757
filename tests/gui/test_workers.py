"""The worker in both modes: events in order, errors, cooperative stop, owner destruction."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QWidget

from napari_cellseq.core.errors import CellseqError
from napari_cellseq.gui._workers import Job, default_mode

from cellseq_gui_helpers import counting_job


class Recorder:
    def __init__(self, job: Job):
        self.events, self.errors, self.finished = [], [], 0
        job.received.connect(self.events.append)
        job.failed.connect(self.on_failed)
        job.finished.connect(self.on_finished)

    def on_failed(self, error, trace):
        self.errors.append(error)

    def on_finished(self):
        self.finished += 1


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_events_in_order_then_finished(qtbot, mode):
    job = Job(counting_job, dict(n=50), mode=mode)
    rec = Recorder(job)
    job.start()
    qtbot.waitUntil(lambda: rec.finished == 1, timeout=60_000)
    assert rec.events == list(range(50)) and rec.errors == []
    assert not job.running


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_error_is_delivered_not_raised(qtbot, mode):
    job = Job(counting_job, dict(n=10, fail_at=3), mode=mode)
    rec = Recorder(job)
    job.start()
    qtbot.waitUntil(lambda: rec.finished == 1, timeout=60_000)
    assert rec.events == [0, 1, 2]
    assert isinstance(rec.errors[0], ValueError) and "failed at 3" in str(rec.errors[0])


def test_cellseq_error_survives_the_process_boundary(qtbot, tmp_path):
    from napari_cellseq.gui._jobs import segment_job
    import numpy as np

    job = Job(segment_job, dict(image=np.zeros((32, 32), np.uint16), model_path=str(tmp_path / "none.pt")),
              mode="process")
    rec = Recorder(job)
    job.start()
    qtbot.waitUntil(lambda: rec.finished == 1, timeout=60_000)
    assert isinstance(rec.errors[0], CellseqError) and "no model file" in str(rec.errors[0])


def test_stop_and_owner_destruction(qtbot):
    owner = QWidget()
    job = Job(counting_job, dict(n=10_000, delay=0.01), mode="thread", parent=owner)
    rec = Recorder(job)
    job.start()
    qtbot.waitUntil(lambda: len(rec.events) >= 3, timeout=10_000)
    handle = job._handle
    owner.deleteLater()  # napari closing: the owner widget goes, the worker must end
    qtbot.waitUntil(lambda: not handle.alive(), timeout=10_000)
    assert handle.stop_event.is_set()


def test_default_mode_from_environment(monkeypatch):
    monkeypatch.setenv("NAPARI_CELLSEQ_WORKER", "process")
    assert default_mode() == "process"
    monkeypatch.setenv("NAPARI_CELLSEQ_WORKER", "nonsense")
    assert default_mode() == "thread"
    with pytest.raises(ValueError):
        Job(counting_job, {}, mode="gpu")
