"""Closing napari while training or segmenting runs ends the worker cleanly, in both worker modes.

The viewer is closed mid-run (its dock widgets are deleted, which stops their job): the worker
thread or child process must end, no exception may escape, and a model file left behind must
load.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading

import numpy as np
import pytest

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.gui.segment_widget import SegmentWidget
from napari_cellseq.gui.train_widget import TrainWidget

from napari_cellseq.gui import _backend

from cellseq_gui_helpers import dock, set_tiny_budget


def _children(monkeypatch) -> list:
    """The worker processes started during the test."""
    started: list = []
    original = _backend._start_child

    def recording(*args):
        out = original(*args)
        started.append(out[0])
        return out

    monkeypatch.setattr(_backend, "_start_child", recording)
    return started


@pytest.fixture
def thread_errors(monkeypatch):
    """Exceptions that escape any thread during the test."""
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_closing_napari_during_training_ends_the_worker(make_napari_viewer, qtbot, gui_movie, tmp_path,
                                                        monkeypatch, thread_errors, mode):
    monkeypatch.setenv("NAPARI_CELLSEQ_WORKER", mode)
    children = _children(monkeypatch)
    image, labels = gui_movie
    annotations = np.zeros_like(labels, dtype=np.uint16)
    annotations[:2] = labels[:2]
    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    viewer.add_labels(annotations, name="cells annotations")
    widget = dock(viewer, TrainWidget)
    set_tiny_budget(widget, iterations=100_000)
    widget.model.value = "unet"
    model = tmp_path / "closing.pt"
    widget.model_file.value = str(model)
    widget.train_button.clicked()
    assert widget.run.place == mode
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=120_000)
    ended, controls = widget.run._ended, widget.run.controls
    assert len(children) == (mode == "process")

    viewer.close()
    qtbot.waitUntil(ended.is_set, timeout=30_000)

    assert controls.stopped()
    for process in children:
        assert process.exitcode == 0  # it stopped by itself, it was not killed
        assert process not in mp.active_children()
        with pytest.raises(ProcessLookupError):
            os.kill(process.pid, 0)  # reaped: no zombie, no orphan
    # Stopping saves the weights: the file is complete and loads; no temporary file is left.
    ckpt = load_checkpoint(model)
    assert 1 <= ckpt.training["iterations"] < 100_000
    assert [p.name for p in tmp_path.iterdir()] == ["closing.pt"]
    assert not thread_errors


def test_closing_napari_during_segmentation_ends_the_worker(make_napari_viewer, qtbot, trained_unet,
                                                            thread_errors):
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, _ = synthetic_timelapse(n_frames=40, shape=(128, 128), n_cells=8, radius_range=(5.0, 9.0))
    viewer = make_napari_viewer()
    viewer.add_image(image, name="movie")
    widget = dock(viewer, SegmentWidget)
    widget.load_model(trained_unet)
    widget.device.value = "cpu"
    widget.run_button.clicked()
    qtbot.waitUntil(lambda: widget._frames_done >= 1, timeout=60_000)
    ended, controls = widget.run._ended, widget.run.controls
    assert widget.run.place == "thread" and not ended.is_set()

    viewer.close()
    qtbot.waitUntil(ended.is_set, timeout=30_000)

    assert controls.stopped()
    assert not thread_errors
