"""The whole napari flow on the plugin's sample data, with the four widgets docked from the plugin.

open sample -> create annotation layer -> paint (copied from the exact labels) -> train with
live preview -> segment all frames -> correct a frame -> use it as annotation -> continue
training -> export; ends with a screenshot of the window. Widgets are driven by their values.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tifffile

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.gui._run import RunState

from cellseq_gui_helpers import errors, set_tiny_budget, wait_idle

OUT = Path(__file__).resolve().parents[2] / "out"


def test_full_flow_with_screenshot(make_napari_viewer, qtbot, cellseq_plugin, trained_unet,
                                   tmp_path, notifications):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample("napari-cellseq", "synthetic_nuclei")
    truth = viewer.layers["synthetic nuclei labels"].data.copy()

    _, annotate = viewer.window.add_plugin_dock_widget("napari-cellseq", "Annotate")
    train_dock, train = viewer.window.add_plugin_dock_widget("napari-cellseq", "Train")
    _, segment = viewer.window.add_plugin_dock_widget("napari-cellseq", "Segment", tabify=True)
    _, export = viewer.window.add_plugin_dock_widget("napari-cellseq", "Export", tabify=True)
    viewer.layers["synthetic nuclei labels"].visible = False

    # annotate two frames (the exact labels stand in for painting)
    annotate.image.value = viewer.layers["synthetic nuclei"]
    annotate.create_button.clicked()
    annotations = viewer.layers["synthetic nuclei annotations"]
    assert annotate.annotations.value is annotations
    assert train.annotations.value is annotations  # a new annotation layer is the one to train on
    assert train.reason.value == "paint at least one frame of 'synthetic nuclei annotations'"
    for t in (0, 10):
        annotations.data[t] = truth[t]
    annotations.events.data(value=annotations.data)
    qtbot.waitUntil(lambda: annotate.annotated_frames() == [0, 10], timeout=5_000)
    qtbot.waitUntil(lambda: train.train_button.enabled, timeout=5_000)

    # train a few iterations of the default model (the U-Net, recommended for a movie too), preview on
    assert train.image.value is viewer.layers["synthetic nuclei"]
    assert train.model.value == "unet" and train.preview.value
    set_tiny_budget(train, iterations=3)
    train.model_file.value = str(tmp_path / "first.pt")
    viewer.dims.set_current_step(0, 4)
    train.train_button.clicked()
    wait_idle(qtbot, train)
    assert train.run.state is RunState.DONE, errors(notifications)
    assert load_checkpoint(tmp_path / "first.pt").training["iterations"] == 3
    assert train.preview_layer.name == "synthetic nuclei (preview)" and train.preview_layer.translate[0] == 4

    # a few iterations find nothing yet: segment with a better model loaded from a file
    assert export.load_model(trained_unet)
    assert segment.model.value == trained_unet
    segment.image.value = viewer.layers["synthetic nuclei"]
    segment.device.value = "cpu"
    segment.run_button.clicked()
    wait_idle(qtbot, segment, timeout=180_000)
    result = viewer.layers["synthetic nuclei (segmentation)"]
    assert result.data.shape == truth.shape
    assert sum(int(result.data[t].max() > 0) for t in range(truth.shape[0])) >= 15

    # correct frame 3 (delete one object) and use it as annotation
    viewer.dims.set_current_step(0, 3)
    frame = result.data[3]
    first = int(frame[frame > 0][0])
    frame[frame == first] = 0
    result.refresh()
    assert annotate.segmentation.value is result
    annotate.annotations.value = annotations
    annotate.copy_button.clicked()
    assert np.array_equal(annotations.data[3], result.data[3])
    assert annotate.annotated_frames() == [0, 3, 10]

    # continue training from the current model (the loaded U-Net)
    train.start_from.value = "current"
    assert not train.model.enabled and train.model.value == "unet"
    set_tiny_budget(train, iterations=2)
    train.model_file.value = str(tmp_path / "continued.pt")
    train.train_button.clicked()
    wait_idle(qtbot, train)
    assert train.run.state is RunState.DONE, errors(notifications)
    continued = load_checkpoint(tmp_path / "continued.pt")
    assert continued.model_config.name == "unet"
    assert continued.training["iterations"] == load_checkpoint(trained_unet).training["iterations"] + 2
    assert train.state.model_path == str(tmp_path / "continued.pt")

    # export
    export.labels_layer.value = result
    export.format.value = "stack"
    export.path.value = str(tmp_path / "segmentation.tif")
    stack = export.export_labels()
    assert np.array_equal(tifffile.imread(stack[0]), result.data)
    export.format.value = "ctc"
    export.path.value = str(tmp_path / "01_RES")
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
