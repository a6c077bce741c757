"""Annotate widget: annotation layer, annotated-frame list, partial frames, corrections."""

from __future__ import annotations

import numpy as np

from napari_cellseq.gui import _layers
from napari_cellseq.gui.annotate_widget import AnnotateWidget

from cellseq_gui_helpers import dock


def test_create_layer_list_frames_and_jump(make_napari_viewer, qtbot, gui_movie):
    image, labels = gui_movie
    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    widget = dock(viewer, AnnotateWidget)
    widget.create_button.clicked()
    layer = viewer.layers["cells annotations"]
    assert layer.name == "cells annotations"
    assert layer.data.shape == image.shape and layer.data.dtype == np.uint16
    assert layer.metadata[_layers.PARTIAL_KEY] == []
    assert widget.annotations.value is layer
    assert widget.create_annotation_layer().name == "cells annotations [2]"  # never overwrites
    widget.annotations.value = layer

    layer.data[2] = labels[2]
    layer.data[3, 10:20, 10:20] = 5
    layer.events.data(value=layer.data)  # napari emits this on set; painting emits paint events
    qtbot.waitUntil(lambda: widget.annotated_frames() == [2, 3], timeout=3000)
    assert widget.frames.native.item(1).text() == "frame 3: 1 cell"

    widget.frames.value = [2]  # choose a frame: the viewer shows it
    assert viewer.dims.current_step[0] == 2
    widget.partial.value = True
    assert _layers.partial_frames(layer) == (2,)
    assert "(partial)" in widget.frames.native.item(0).text()
    viewer.dims.set_current_step(0, 3)
    assert not widget.partial.value

    layer.paint((1, 40, 40), new_label=9, refresh=True)  # a brush stroke on frame 1
    qtbot.waitUntil(lambda: widget.annotated_frames() == [1, 2, 3], timeout=3000)

    widget.background.value = 60000
    assert _layers.background_label(layer) == 60000
    widget.background_button.clicked()
    assert layer.selected_label == 60000


def test_copy_corrected_frame(make_napari_viewer, gui_movie, notifications):
    image, labels = gui_movie
    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    widget = dock(viewer, AnnotateWidget)
    annotations = widget.create_annotation_layer()
    assert not widget.copy_button.enabled and "same layer" in widget.reason.value  # the only Labels layer
    _layers.set_partial(annotations, 1, True)
    segmentation = viewer.add_labels(labels.astype(np.uint16), name="cells (segmentation)")
    assert widget.segmentation.value is segmentation  # new segmentation layers are preferred
    widget.annotations.value = annotations
    assert widget.copy_button.enabled
    viewer.dims.set_current_step(0, 1)
    widget.copy_button.clicked()
    assert np.array_equal(annotations.data[1], labels[1])
    assert not annotations.data[0].any() and not annotations.data[2].any()
    assert _layers.partial_frames(annotations) == ()  # a copied frame is complete
    assert widget.annotated_frames() == [1]


def test_unique_names_and_put_frame_upcasts(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((2, 8, 8), np.uint16), name="a (segmentation)")
    assert _layers.unique_name(viewer, "a (segmentation)") == "a (segmentation) [2]"
    assert _layers.unique_name(viewer, "b") == "b"
    layer = viewer.layers[0]
    _layers.put_frame(layer, 1, np.full((8, 8), 70_000, np.uint32))
    assert layer.data.dtype == np.uint32 and layer.data[1].max() == 70_000
    assert _layers.frame_summary(layer.data) == {1: 1}
