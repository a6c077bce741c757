"""GUI of issue 5: label meaning, loss and crop sampling in Train; output kind in Segment."""

from __future__ import annotations

import numpy as np

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.gui.segment_widget import SegmentWidget
from napari_cellseq.gui.train_widget import TrainWidget

from cellseq_gui_helpers import dock, errors, set_tiny_budget, wait_idle


def _semantic(labels: np.ndarray) -> np.ndarray:
    """Painted classes on frames 0-1: 1 background, 2 cells, 3 the cell with id 2."""
    sem = np.where(labels > 0, 2, 1).astype(np.uint16)
    sem[labels == 2] = 3
    sem[2:] = 0
    return sem


def _train_widget_on_classes(viewer, image, labels):
    """The viewer with the image and its painted classes, and a Train widget docked on it."""
    viewer.add_image(image, name="cells")
    viewer.add_labels(_semantic(labels), name="classes")
    return viewer, dock(viewer, TrainWidget)


def test_train_options_reach_the_job(make_napari_viewer, gui_movie):
    image, labels = gui_movie
    viewer, widget = _train_widget_on_classes(make_napari_viewer(), image, labels)
    widget.model.value = "gruunet"
    assert widget.loss.native.itemText(0) == "model's paper (normalized focal (GRUU-Net paper))"
    kwargs = widget.job_kwargs()
    assert kwargs["train_config"].loss is None  # the model's paper decides
    assert kwargs["data_config"].target == "3class" and kwargs["data_config"].sampling == "uniform"
    widget.target.value = "classes"
    widget.loss.value = "edge_weighted"
    widget.sampling.value = "balanced"
    kwargs = widget.job_kwargs()
    assert kwargs["data_config"].target == "classes" and kwargs["data_config"].sampling == "balanced"
    assert kwargs["train_config"].loss == "edge_weighted"


def test_train_semantic_model_with_validation_then_segment_classes(
        make_napari_viewer, qtbot, gui_movie, tmp_path, notifications, monkeypatch):
    monkeypatch.setenv("NAPARI_CELLSEQ_WORKER", "thread")
    image, labels = gui_movie
    viewer, widget = _train_widget_on_classes(make_napari_viewer(), image, labels)
    widget.model.value = "unet"
    set_tiny_budget(widget, iterations=2)
    widget.target.value = "classes"
    widget.sampling.value = "balanced"
    widget.validation.value = 1
    widget.model_file.value = str(tmp_path / "classes.pt")
    widget.train_button.clicked()
    wait_idle(qtbot, widget)
    assert not errors(notifications), notifications
    ckpt = load_checkpoint(tmp_path / "classes.pt")
    assert ckpt.data_config.target == "classes" and ckpt.model_config.num_classes == 3
    assert "validation mean Dice" in widget.validation_text.value

    seg = dock(viewer, SegmentWidget)
    assert seg.load_model(str(tmp_path / "classes.pt"))
    seg.image.value = viewer.layers["cells"]
    seg.device.value = "cpu"
    seg.run_button.clicked()  # the model's kind: a class map
    wait_idle(qtbot, seg)
    out = viewer.layers["cells (segmentation)"].data
    assert out.min() >= 1 and out.max() <= 3
    seg.output.value = "instances"
    seg.run_button.clicked()
    wait_idle(qtbot, seg)
    assert viewer.layers["cells (segmentation) [2]"].data.shape == image.shape
    assert not errors(notifications), notifications
