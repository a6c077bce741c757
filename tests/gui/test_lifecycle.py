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

from cellseq_gui_helpers import set_tiny_budget


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "napari-cellseq worker"]


@pytest.fixture
def thread_errors(monkeypatch):
    """Exceptions that escape any thread during the test."""
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_closing_napari_during_training_ends_the_worker(make_napari_viewer, qtbot, gui_movie, tmp_path,
                                                        monkeypatch, thread_errors, mode):
    if mode == "process":
        monkeypatch.delenv("NAPARI_CELLSEQ_WORKER", raising=False)  # the default for training
    else:
        monkeypatch.setenv("NAPARI_CELLSEQ_WORKER", "thread")
    image, labels = gui_movie
    annotations = np.zeros_like(labels, dtype=np.uint16)
    annotations[:2] = labels[:2]
    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    viewer.add_labels(annotations, name="cells annotations")
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    set_tiny_budget(widget, iterations=100_000)
    widget.model_combo.setCurrentText("unet")
    model = tmp_path / "closing.pt"
    widget.path_edit.setText(str(model))
    widget.start()
    assert widget.job.mode == mode
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=120_000)
    handle = widget.job._handle
    process = handle.process
    assert (process is not None) == (mode == "process")

    viewer.close()
    qtbot.waitUntil(lambda: not handle.alive(), timeout=30_000)

    assert handle.stop_event.is_set()
    assert not _worker_threads()
    if process is not None:
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
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.load_model(trained_unet)
    widget.device_combo.setCurrentText("cpu")
    widget.start()
    qtbot.waitUntil(lambda: widget._frames_done >= 1, timeout=60_000)
    handle = widget.job._handle
    assert handle.thread is not None and handle.thread.is_alive()

    viewer.close()
    qtbot.waitUntil(lambda: not handle.alive(), timeout=30_000)

    assert handle.stop_event.is_set()
    assert not _worker_threads()
    assert not thread_errors
