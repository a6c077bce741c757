"""Train widget driven by its values: tiny run with preview, Stop keeps the weights, reasons, errors."""

from __future__ import annotations

import numpy as np

from napari_cellseq.core.builtin import DEFAULT_INIT
from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.gui import _layers
from napari_cellseq.gui._run import RunState
from napari_cellseq.gui.train_widget import TrainWidget, default_model_for

from cellseq_gui_helpers import dock, errors, set_tiny_budget, wait_idle


def _viewer_with_annotations(make_napari_viewer, gui_movie, frames=(0, 1)):
    image, labels = gui_movie
    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    annotations = np.zeros_like(labels, dtype=np.uint16)
    for t in frames:
        annotations[t] = labels[t]
    viewer.add_labels(annotations, name="cells annotations")
    return viewer


def test_default_model_follows_data():
    # the U-Net for movies too, by measurement (core.models.recommend); the U-LSTM one choice away
    assert default_model_for(3, ["ulstm", "unet"]) == "unet"
    assert default_model_for(2, ["ulstm", "unet"]) == "unet"
    assert default_model_for(3, ["ulstm"]) == "ulstm"


def test_train_tiny_run_with_validation_and_live_preview(make_napari_viewer, qtbot, gui_movie, tmp_path,
                                                         notifications):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    widget = dock(viewer, TrainWidget)
    assert widget.image.value is viewer.layers["cells"]  # napari's layer choices
    assert widget.annotations.value is viewer.layers["cells annotations"]
    assert widget.model.value == "unet"  # recommended for a (T, Y, X) movie too (core.models.recommend)
    widget.model.value = "ulstm"  # the time-lapse network, one choice away
    assert not widget.stop_button.enabled and widget.train_button.enabled
    set_tiny_budget(widget, iterations=2)
    widget.model_file.value = str(tmp_path / "model.pt")
    widget.validation.value = 1
    viewer.dims.set_current_step(0, 3)  # the frame on screen is previewed
    assert widget.preview.value
    widget.train_button.clicked()
    assert widget.run.state is RunState.RUNNING
    assert not widget.train_button.enabled and widget.stop_button.enabled
    assert not widget.image.enabled  # inputs are locked while training
    wait_idle(qtbot, widget)
    assert not errors(notifications), notifications
    assert widget.run.state is RunState.DONE
    assert widget.state.model_path == str(tmp_path / "model.pt")
    ckpt = load_checkpoint(widget.state.model_path)
    assert ckpt.model_config.name == "ulstm" and ckpt.training["iterations"] == 2
    assert ckpt.training["frames"] == [0]  # frame 1 is held out for validation
    assert len(widget.plot.losses) == 2
    assert len(widget.plot.validation) == 1 and "validation SEG" in widget.validation_text.value
    preview = widget.preview_layer
    assert preview is not None and preview.name == "cells (preview)"
    assert preview.data.shape == (1, 96, 96) and preview.translate[0] == 3  # drawn on frame 3 only
    assert [layer.name for layer in viewer.layers] == ["cells", "cells annotations", "cells (preview)"]
    assert viewer.layers["cells annotations"].data[2:].max() == 0  # the user's layers are untouched
    assert widget.train_button.enabled and not widget.stop_button.enabled
    # the next run must not replace this model: a numbered name is offered
    assert widget.model_file.value.name == "model-2.pt"


def test_preview_follows_the_frame_and_updates_one_layer(make_napari_viewer, qtbot, gui_movie, tmp_path):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    widget = dock(viewer, TrainWidget)
    set_tiny_budget(widget, iterations=1)
    widget.model.value = "unet"
    widget.model_file.value = str(tmp_path / "a.pt")
    viewer.dims.set_current_step(0, 1)
    widget.train_button.clicked()
    wait_idle(qtbot, widget)
    first = widget.preview_layer
    assert first.translate[0] == 1
    viewer.dims.set_current_step(0, 2)  # moving on: the next checkpoint previews that frame
    widget.train_button.clicked()
    wait_idle(qtbot, widget)
    assert widget.preview_layer is first and first.translate[0] == 2  # updated in place
    assert sum(layer.name.endswith("(preview)") for layer in viewer.layers) == 1
    widget.preview.value = False
    widget.train_button.clicked()
    assert widget.run.controls.frame() is None  # off: nothing to preview
    wait_idle(qtbot, widget)


def test_stop_keeps_a_loadable_model(make_napari_viewer, qtbot, gui_movie, tmp_path):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    widget = dock(viewer, TrainWidget)
    set_tiny_budget(widget, iterations=10_000)
    widget.model.value = "unet"
    widget.model_file.value = str(tmp_path / "stopped.pt")
    widget.train_button.clicked()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=120_000)
    widget.stop_button.clicked()
    assert widget.run.state is RunState.STOPPING
    assert not widget.stop_button.enabled and not widget.train_button.enabled
    wait_idle(qtbot, widget, timeout=60_000)
    assert widget.run.state is RunState.DONE
    ckpt = load_checkpoint(tmp_path / "stopped.pt")
    assert 1 <= ckpt.training["iterations"] < 10_000
    assert "stopped" in widget.status.value


def test_start_from_the_builtin_then_a_network_without_one(make_napari_viewer, qtbot, gui_movie, tmp_path,
                                                          notifications):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    widget = dock(viewer, TrainWidget)
    assert widget.model.value == "unet" and "recommended" in widget.model_kind.value
    widget.model.value = "ulstm"  # one choice away
    assert "recommended" not in widget.model_kind.value
    assert widget.start_from.value == DEFAULT_INIT
    assert widget.start_file.native.isHidden()  # shown for "model file…" only
    widget.start_from.value = "builtin"
    assert widget.model.enabled and widget.train_button.enabled  # the network picks its built-in
    set_tiny_budget(widget, iterations=2)
    widget.model_file.value = str(tmp_path / "tuned.pt")
    widget.train_button.clicked()
    wait_idle(qtbot, widget)
    assert widget.run.state is RunState.DONE, errors(notifications)
    ckpt = load_checkpoint(tmp_path / "tuned.pt")
    assert ckpt.model_config.name == "ulstm" and ckpt.training.started_from == "builtin-ulstm"
    assert ckpt.training["iterations"] == 2  # this run's steps only

    widget.model.value = "segnet"  # no built-in: falls back to random weights, and says so
    assert widget.start_from.value == "random" and "no built-in weights for segnet" in widget.start_note.value
    widget.model.value = "unet"
    assert widget.start_from.value == "builtin" and widget.start_note.native.isHidden()
    widget.start_from.value = "file"
    assert not widget.start_file.native.isHidden() and "start file" in widget.reason.value
    widget.start_file.value = str(tmp_path / "tuned.pt")
    assert widget.model.value == "ulstm" and not widget.model.enabled  # the file decides the network
    assert widget.train_button.enabled


def test_reasons_disable_train_as_the_user_edits(make_napari_viewer, qtbot, gui_movie):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie, frames=())
    widget = dock(viewer, TrainWidget)
    assert not widget.train_button.enabled
    assert widget.reason.value == "paint at least one frame of 'cells annotations'"
    layer = viewer.layers["cells annotations"]
    layer.paint((1, 40, 40), new_label=3, refresh=True)  # a brush stroke
    qtbot.waitUntil(lambda: widget.train_button.enabled, timeout=5_000)
    assert widget.reason.value == "" and list(widget.validation.choices) == [None, 1]
    other = viewer.add_labels(np.zeros((4, 50, 50), np.uint16), name="small")
    widget.annotations.value = other
    assert not widget.train_button.enabled
    assert widget.reason.value.startswith("labels layer shape (4, 50, 50) differs from image (4, 96, 96)")
    widget.annotations.value = layer
    widget.start_from.value = "current"
    assert "no current model" in widget.reason.value and not widget.train_button.enabled


def test_error_in_the_worker_is_a_notification_and_returns_to_rest(make_napari_viewer, qtbot, gui_movie,
                                                                   tmp_path, notifications, monkeypatch):
    import torch

    from napari_cellseq.core.errors import CellseqError

    def broken(*_args, **_kwargs):
        raise CellseqError("the disk is full: free some space")

    monkeypatch.setenv("NAPARI_CELLSEQ_WORKER", "thread")
    monkeypatch.setattr(torch.Tensor, "backward", broken)  # fails inside the first step
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    widget = dock(viewer, TrainWidget)
    set_tiny_budget(widget)
    widget.model_file.value = str(tmp_path / "x.pt")
    widget.train_button.clicked()
    wait_idle(qtbot, widget, timeout=60_000)
    assert widget.run.state is RunState.FAILED
    assert errors(notifications) == ["training failed: the disk is full: free some space"]
    assert "failed" in widget.status.value
    assert widget.train_button.enabled and not widget.stop_button.enabled


def test_inputs_are_snapshots_with_partial_frames(make_napari_viewer, gui_movie):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    annotations = viewer.layers["cells annotations"]
    _layers.set_partial(annotations, 1, True)
    _layers.set_background_label(annotations, 4000)
    widget = dock(viewer, TrainWidget)
    widget.unit.value = "minutes"
    widget.budget.value = 2
    kwargs = widget.job_kwargs()
    assert kwargs["partial_frames"] == (1,) and kwargs["background_label"] == 4000
    assert kwargs["train_config"].max_time == 120 and kwargs["train_config"].iterations is None
    assert kwargs["model_config"].name == "unet" and kwargs["init"] == DEFAULT_INIT  # the defaults
    annotations.data[3, :5, :5] = 9  # the user keeps painting: the snapshot does not change
    assert not kwargs["labels"][3].any()
    assert kwargs["image"] is not viewer.layers["cells"].data


def test_default_model_file_survives_closing_napari(make_napari_viewer, qtbot, gui_movie, tmp_path,
                                                    user_data_home):
    """Train with the default model file, close the viewer, open a new one: the model is offered."""
    import tifffile

    from napari_cellseq.gui.segment_widget import SegmentWidget

    image, labels = gui_movie
    path = tmp_path / "experiment" / "cells.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, image)
    viewer = make_napari_viewer()
    viewer.open(str(path))
    annotations = np.zeros_like(labels, dtype=np.uint16)
    annotations[:2] = labels[:2]
    viewer.add_labels(annotations, name="cells annotations")
    widget = dock(viewer, TrainWidget)
    assert widget.model_file.value == path.parent / "cells-cellseq.pt"  # beside the image, shown
    set_tiny_budget(widget, iterations=1)
    widget.model.value = "unet"
    widget.train_button.clicked()
    wait_idle(qtbot, widget)
    assert (path.parent / "cells-cellseq.pt").is_file()
    viewer.close()

    viewer = make_napari_viewer()
    viewer.open(str(path))
    segment = dock(viewer, SegmentWidget)
    assert segment.model.value == str(path.parent / "cells-cellseq.pt")  # found again
    train = dock(viewer, TrainWidget)
    assert train.model_file.value == path.parent / "cells-cellseq-2.pt"  # never replaces it
    train.start_from.value = "current"
    assert train.current.value.startswith("current: unet, 1 iterations")


def test_sample_without_a_file_goes_to_the_user_data_folder(make_napari_viewer, cellseq_plugin, user_data_home):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellseq", "synthetic_nuclei")
    widget = dock(viewer, TrainWidget)
    assert str(widget.model_file.value).startswith(str(user_data_home))
    assert widget.model_file.value.name == "synthetic nuclei-cellseq.pt"


def test_lazy_movie_trains_from_painted_frames_only(make_napari_viewer, qtbot, gui_movie, tmp_path, monkeypatch,
                                                    notifications):
    """A dask movie is not loaded: training reads the painted frames and the normalisation sample;
    of a long annotation layer only the painted frames are copied and sent to the worker."""
    import pickle
    import threading

    import pytest

    da = pytest.importorskip("dask.array")
    import dask

    from napari_cellseq.core import pipeline
    from napari_cellseq.core.io import PaintedFrames

    image, truth = gui_movie
    n, painted = 60, [5, 41]
    movie = image[np.arange(n) % len(image)]
    monkeypatch.setattr(pipeline, "_SAMPLE_PIXELS", 8 * 96 * 96)  # an 8-frame sample
    monkeypatch.setenv("NAPARI_CELLSEQ_WORKER", "thread")  # to count the worker's reads here
    reads: dict[str, list[int]] = {"main": [], "worker": []}

    def load(block, block_info=None):
        who = "main" if threading.current_thread() is threading.main_thread() else "worker"
        reads[who].append(block_info[0]["chunk-location"][0])
        return block.copy()

    lazy = da.from_array(movie, chunks=(1, 96, 96)).map_blocks(load, dtype=movie.dtype)
    annotations = np.zeros((n, 96, 96), dtype=np.uint16)
    for t in painted:
        annotations[t] = truth[t % len(image)]
    with dask.config.set(scheduler="synchronous"):
        viewer = make_napari_viewer()
        viewer.add_image(lazy, name="big", contrast_limits=(0, int(movie.max())))
        viewer.add_labels(annotations, name="big annotations")
        widget = dock(viewer, TrainWidget)
        set_tiny_budget(widget, iterations=1)
        widget.model.value = "unet"
        widget.model_file.value = str(tmp_path / "m.pt")
        reads["main"].clear()
        kwargs = widget.job_kwargs()
        assert kwargs["image"] is lazy and not reads["main"]  # handed over unread
        labels = kwargs["labels"]
        assert isinstance(labels, PaintedFrames) and labels.painted == tuple(painted)
        assert len(pickle.dumps(labels)) < 3 * annotations[0].nbytes  # of 60 frames
        annotations[5, :3, :3] = 77  # painting on: the snapshot keeps what was painted at Train
        assert not labels[5][:3, :3].any() and not labels[6].any()
        widget.train_button.clicked()
        wait_idle(qtbot, widget)
    assert widget.run.state is RunState.DONE, errors(notifications)
    assert load_checkpoint(tmp_path / "m.pt").training.frames == tuple(painted)
    sample = set(np.unique(np.linspace(0, n - 1, 8).round().astype(int)).tolist())
    shown = {widget.shown_frame()} if widget.preview.value else set()  # the live preview segments it
    assert reads["worker"] and set(reads["worker"]) <= sample | set(painted) | shown
