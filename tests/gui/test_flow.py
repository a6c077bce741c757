"""The whole napari flow on the plugin's sample data, with the four widgets docked.

open sample -> create annotation layer -> paint (copied from the exact labels) -> train ->
segment all frames -> correct a frame -> use it as annotation -> continue training ->
export; ends with a screenshot of the window.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tifffile

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.gui._state import TrainState
from napari_cellseq.gui.annotate_widget import AnnotateWidget
from napari_cellseq.gui.export_widget import CTC, STACK, ExportWidget
from napari_cellseq.gui.segment_widget import SegmentWidget
from napari_cellseq.gui.train_widget import TrainWidget

from cellseq_gui_helpers import errors, set_tiny_budget, wait_idle

OUT = Path(__file__).resolve().parents[2] / "out"


def test_full_flow_with_screenshot(make_napari_viewer, qtbot, cellseq_plugin, trained_unet,
                                   tmp_path, notifications):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample("napari-cellseq", "synthetic_nuclei")
    truth = viewer.layers["synthetic nuclei labels"].data.copy()

    annotate, train = AnnotateWidget(viewer), TrainWidget(viewer)
    segment, export = SegmentWidget(viewer), ExportWidget(viewer)
    viewer.window.add_dock_widget(annotate, name="Annotate", area="right")
    train_dock = viewer.window.add_dock_widget(train, name="Train", area="right")
    viewer.window.add_dock_widget(segment, name="Segment", area="right", tabify=True)
    viewer.window.add_dock_widget(export, name="Export", area="right", tabify=True)

    # annotate two frames (the exact labels stand in for painting)
    annotate.image_picker.set_layer(viewer.layers["synthetic nuclei"])
    annotations = annotate.create_annotation_layer()
    assert annotations.name == "synthetic nuclei annotations"
    for t in (0, 10):
        annotations.data[t] = truth[t]
    annotations.refresh()
    annotate.refresh()
    assert annotate.annotated_frames() == [0, 10]

    # train a few iterations of the default model (U-LSTM for a movie)
    train.image_picker.set_layer(viewer.layers["synthetic nuclei"])
    train.labels_picker.set_layer(annotations)
    assert train.model_combo.currentText() == "ulstm"
    set_tiny_budget(train, iterations=3)
    train.path_edit.setText(str(tmp_path / "ulstm.pt"))
    train.train_button.click()
    wait_idle(qtbot, train)
    assert train.state.train_state is TrainState.DONE, errors(notifications)
    assert load_checkpoint(tmp_path / "ulstm.pt").training["iterations"] == 3

    # a few iterations find nothing yet: segment with a better model loaded from a file
    assert export.load_model(trained_unet)
    assert segment.model_label.text() == Path(trained_unet).name
    segment.image_picker.set_layer(viewer.layers["synthetic nuclei"])
    segment.device_combo.setCurrentText("cpu")
    segment.run_button.click()
    qtbot.waitUntil(lambda: not segment.state.segmenting, timeout=180_000)
    result = viewer.layers["synthetic nuclei (segmentation)"]
    assert result.data.shape == truth.shape
    assert sum(int(result.data[t].max() > 0) for t in range(truth.shape[0])) >= 15

    # correct frame 3 (delete one object) and use it as annotation
    viewer.dims.set_current_step(0, 3)
    frame = result.data[3]
    first = int(frame[frame > 0][0])
    frame[frame == first] = 0
    result.refresh()
    assert annotate.source_picker.layer() is result
    annotate.labels_picker.set_layer(annotations)
    assert annotate.copy_current_frame() == 3
    assert np.array_equal(annotations.data[3], result.data[3])
    assert annotate.annotated_frames() == [0, 3, 10]

    # continue training from the current model (the loaded U-Net)
    train.continue_radio.setChecked(True)
    assert not train.model_combo.isEnabled()
    set_tiny_budget(train, iterations=2)
    train.path_edit.setText(str(tmp_path / "continued.pt"))
    train.start()
    wait_idle(qtbot, train)
    assert train.state.train_state is TrainState.DONE, errors(notifications)
    continued = load_checkpoint(tmp_path / "continued.pt")
    assert continued.model_config.name == "unet"
    assert continued.training["iterations"] == load_checkpoint(trained_unet).training["iterations"] + 2
    assert train.state.model_path == str(tmp_path / "continued.pt")

    # export
    export.labels_picker.set_layer(result)
    export.format_combo.setCurrentText(STACK)
    export.path_edit.setText(str(tmp_path / "segmentation.tif"))
    stack = export.export_labels()
    assert np.array_equal(tifffile.imread(stack[0]), result.data)
    export.format_combo.setCurrentText(CTC)
    export.path_edit.setText(str(tmp_path / "01_RES"))
    masks = export.export_labels()
    assert len(masks) == truth.shape[0]
    assert np.array_equal(tifffile.imread(masks[3]), result.data[3])
    assert not errors(notifications), notifications

    # screenshot with the widgets docked
    viewer.layers.selection.active = result
    viewer.dims.set_current_step(0, 3)
    train_dock.raise_()
    qtbot.wait(200)
    shot = viewer.screenshot(path=str(tmp_path / "gui_screenshot.png"), canvas_only=False)
    assert shot.ndim == 3 and shot.shape[0] > 500
    OUT.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "gui_screenshot.png", OUT / "gui_screenshot.png")
