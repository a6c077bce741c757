"""Train widget: a tiny run, Stop keeps the weights, errors return to idle (closing napari: test_lifecycle)."""

from __future__ import annotations

import numpy as np

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.gui._state import TrainState
from napari_cellseq.gui.train_widget import TrainWidget, default_model_for

from cellseq_gui_helpers import errors, set_tiny_budget, wait_idle


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
    assert default_model_for(3, ["ulstm", "unet"]) == "ulstm"
    assert default_model_for(2, ["ulstm", "unet"]) == "unet"
    assert default_model_for(3, ["unet"]) == "unet"


def test_train_tiny_run(make_napari_viewer, qtbot, gui_movie, tmp_path, notifications):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.model_combo.currentText() == "ulstm"  # a (T, Y, X) movie
    assert widget.stop_button.isEnabled() is False
    set_tiny_budget(widget, iterations=2)
    widget.path_edit.setText(str(tmp_path / "model.pt"))
    widget.validation_spin.setValue(1)
    widget.train_button.click()
    assert widget.state.train_state is TrainState.TRAINING
    assert not widget.train_button.isEnabled() and widget.stop_button.isEnabled()
    wait_idle(qtbot, widget)
    assert not errors(notifications), notifications
    assert widget.state.train_state is TrainState.DONE
    assert widget.state.model_path == str(tmp_path / "model.pt")
    ckpt = load_checkpoint(widget.state.model_path)
    assert ckpt.model_config.name == "ulstm"
    assert ckpt.training["iterations"] == 2
    assert ckpt.training["frames"] == [0]  # frame 1 is held out for validation
    assert len(widget.plot.losses) == 2
    assert len(widget.plot.validation) == 1 and "validation SEG" in widget.validation_label.text()
    assert widget.train_button.isEnabled() and not widget.stop_button.isEnabled()


def test_stop_keeps_a_loadable_model(make_napari_viewer, qtbot, gui_movie, tmp_path):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    widget = TrainWidget(viewer)
    set_tiny_budget(widget, iterations=10_000)
    widget.model_combo.setCurrentText("unet")
    widget.path_edit.setText(str(tmp_path / "stopped.pt"))
    widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=120_000)
    widget.stop_button.click()
    assert widget.state.train_state is TrainState.STOPPING
    assert not widget.stop_button.isEnabled()
    wait_idle(qtbot, widget, timeout=60_000)
    assert widget.state.train_state is TrainState.DONE
    ckpt = load_checkpoint(tmp_path / "stopped.pt")
    assert 1 <= ckpt.training["iterations"] < 10_000
    assert "stopped" in widget.status.text()


def test_all_zero_annotations_show_error_and_return_to_idle(make_napari_viewer, qtbot, gui_movie,
                                                            notifications):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie, frames=())
    widget = TrainWidget(viewer)
    set_tiny_budget(widget)
    widget.start()
    wait_idle(qtbot, widget, timeout=60_000)
    assert widget.state.train_state is TrainState.FAILED
    messages = errors(notifications)
    assert messages and "no annotated frame" in messages[0]
    assert widget.train_button.isEnabled() and not widget.stop_button.isEnabled()


def test_bad_validation_frame_is_reported(make_napari_viewer, qtbot, gui_movie, notifications):
    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie, frames=(0,))
    widget = TrainWidget(viewer)
    set_tiny_budget(widget)
    widget.validation_spin.setValue(0)  # the only annotated frame
    widget.start()
    wait_idle(qtbot, widget, timeout=60_000)
    assert widget.state.train_state is TrainState.FAILED
    assert "nothing is left to train on" in errors(notifications)[0]


def test_inputs_are_snapshots_with_partial_frames(make_napari_viewer, gui_movie):
    from napari_cellseq.gui import _layers

    viewer = _viewer_with_annotations(make_napari_viewer, gui_movie)
    annotations = viewer.layers["cells annotations"]
    _layers.set_partial(annotations, 1, True)
    _layers.set_background_label(annotations, 4000)
    widget = TrainWidget(viewer)
    widget.budget_unit.setCurrentText("minutes")
    widget.budget_spin.setValue(2)
    kwargs = widget.job_kwargs()
    assert kwargs["partial_frames"] == (1,) and kwargs["background_label"] == 4000
    assert kwargs["train_config"].max_time == 120 and kwargs["train_config"].iterations is None
    assert kwargs["model_config"].name == "ulstm" and kwargs["init"] is None
    annotations.data[3, :5, :5] = 9  # the user keeps painting: the snapshot does not change
    assert not kwargs["labels"][3].any()
    assert kwargs["image"] is not viewer.layers["cells"].data
    assert not widget.continue_radio.isEnabled()  # no current model yet
