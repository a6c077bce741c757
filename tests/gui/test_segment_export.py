"""Segment widget (new output layers, frames, stop, lazy dask layers) and Export widget (TIFF, CTC, models)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.builtin import builtin_path
from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.gui.export_widget import ExportWidget
from napari_cellseq.gui.segment_widget import SegmentWidget

from cellseq_gui_helpers import dock, errors, wait_idle as _wait_segment


def test_segment_all_then_current_frame(make_napari_viewer, qtbot, gui_movie, trained_unet,
                                        notifications):
    image, labels = gui_movie
    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    widget = dock(viewer, SegmentWidget)
    # before any training the built-in weights are offered, the recommended network's first (the U-Net)
    assert widget.model.value == str(builtin_path("builtin-unet")) and widget.run_button.enabled
    assert widget.load_model(trained_unet)
    assert widget.model.value == trained_unet
    assert set(widget.model.choices) == {trained_unet, str(builtin_path("builtin-ulstm")),
                                         str(builtin_path("builtin-unet"))}  # the built-ins stay offered
    assert widget.run_button.enabled
    widget.device.value = "cpu"
    widget.run_button.clicked()
    _wait_segment(qtbot, widget)
    assert not errors(notifications), notifications
    out = viewer.layers["cells (segmentation)"]
    assert out.data.shape == image.shape and out.data.dtype == np.uint16
    assert all(out.data[t].max() >= 3 for t in range(4))  # cells found in every frame
    assert widget.progress.value == 4

    viewer.dims.set_current_step(0, 2)
    widget.frames.value = "current"
    widget.run_button.clicked()
    _wait_segment(qtbot, widget)
    second = viewer.layers["cells (segmentation) [2]"]
    assert second.data[2].max() > 0 and not second.data[[0, 1, 3]].any()
    assert viewer.layers["cells (segmentation)"].data.any()  # the first result is untouched


def test_segment_before_training_with_the_builtin(make_napari_viewer, qtbot, gui_movie, notifications):
    """Nothing trained: Segment offers the built-in of the network recommended for the image (the
    U-Net, for a movie too: core.models.recommend) and segments with it; the U-LSTM's is one
    choice away."""
    image, _ = gui_movie
    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    widget = dock(viewer, SegmentWidget)
    ulstm, unet = str(builtin_path("builtin-ulstm")), str(builtin_path("builtin-unet"))
    assert list(widget.model.choices) == [unet, ulstm] and widget.model.value == unet
    assert widget.state.model_path == unet  # the session's current model (Train can fine-tune it)
    assert widget.reason.value == "" and widget.run_button.enabled
    widget.device.value = "cpu"
    widget.run_button.clicked()
    _wait_segment(qtbot, widget)
    assert not errors(notifications), notifications
    out = viewer.layers["cells (segmentation)"]
    assert out.data.shape == image.shape and out.metadata["cellseq_model"] == unet
    assert widget.progress.value == 4 and widget.status.value.startswith("done: 4 frame(s)")

    widget.model.value = ulstm  # the U-LSTM's built-in for the movie
    widget.run_button.clicked()
    _wait_segment(qtbot, widget)
    assert viewer.layers["cells (segmentation) [2]"].metadata["cellseq_model"] == ulstm

    viewer.add_image(image[0], name="one frame")  # a single image: the built-in U-Net fits
    widget.image.value = viewer.layers["one frame"]
    assert set(widget.model.choices) == {unet, ulstm} and widget.model.value == unet
    widget.model.value = ulstm  # the user's choice stays while the image stays
    widget.reset_choices()
    assert widget.model.value == ulstm


def test_segment_stop_keeps_finished_frames(make_napari_viewer, qtbot, trained_unet):
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, _ = synthetic_timelapse(n_frames=12, shape=(128, 128), n_cells=8, radius_range=(5.0, 9.0))
    viewer = make_napari_viewer()
    viewer.add_image(image, name="movie")
    widget = dock(viewer, SegmentWidget)
    widget.load_model(trained_unet)
    widget.device.value = "cpu"
    widget.run_button.clicked()
    assert widget.stop_button.enabled and not widget.run_button.enabled
    qtbot.waitUntil(lambda: widget._frames_done >= 1, timeout=60_000)
    widget.stop_button.clicked()
    assert not widget.stop_button.enabled
    _wait_segment(qtbot, widget)
    done = widget._frames_done
    assert 1 <= done < 12 and "stopped" in widget.status.value
    out = viewer.layers["movie (segmentation)"].data
    assert out[:done].any() and not out[done:].any()
    assert widget.run_button.enabled


def test_segment_bad_model_file_shows_error(make_napari_viewer, qtbot, gui_movie, tmp_path,
                                            notifications):
    viewer = make_napari_viewer()
    viewer.add_image(gui_movie[0], name="cells")
    widget = dock(viewer, SegmentWidget)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert not widget.load_model(str(bad))
    assert errors(notifications)
    widget.state.model_path = str(bad)  # e.g. the file was damaged after loading
    widget.run_button.clicked()
    _wait_segment(qtbot, widget)
    assert len(errors(notifications)) == 2 and "failed" in widget.status.value


def test_export_stack_ctc_and_models(make_napari_viewer, gui_movie, trained_unet, tmp_path,
                                     notifications):
    _, labels = gui_movie
    viewer = make_napari_viewer()
    viewer.add_labels(labels.astype(np.int32), name="result")
    widget = dock(viewer, ExportWidget)
    widget.format.value = "stack"
    widget.path.value = str(tmp_path / "labels.tif")
    paths = widget.export_labels()
    back = tifffile.imread(paths[0])
    assert back.dtype == np.uint16 and np.array_equal(back, labels)
    assert widget.export_labels() == []  # exists, overwrite not ticked
    assert "overwrite" in errors(notifications)[-1]
    widget.overwrite.value = True
    assert widget.export_labels() == paths

    widget.overwrite.value = False
    widget.format.value = "ctc"
    widget.path.value = str(tmp_path / "01_RES")
    paths = widget.export_labels()
    assert [p.name for p in paths] == ["mask000.tif", "mask001.tif", "mask002.tif", "mask003.tif"]
    for t, p in enumerate(paths):
        frame = tifffile.imread(p)
        assert frame.dtype == np.uint16 and np.array_equal(frame, labels[t])

    viewer.layers["result"].data = labels.astype(np.uint32) * 10_000  # ids above 65535
    widget.format.value = "stack"
    widget.path.value = str(tmp_path / "big.tif")
    assert tifffile.imread(widget.export_labels()[0]).dtype == np.uint32

    assert not widget.save_model_button.enabled
    assert widget.load_model(trained_unet)
    assert widget.save_model_button.enabled
    saved = widget.save_model(tmp_path / "copy.pt")
    assert load_checkpoint(saved).model_config.name == "unet"


def test_frame_choices(make_napari_viewer, gui_movie, trained_unet):
    viewer = make_napari_viewer()
    layer = viewer.add_image(gui_movie[0], name="cells")
    widget = dock(viewer, SegmentWidget)
    widget.load_model(trained_unet)
    assert widget.image.value is layer and widget.selected_frames() is None
    assert not widget.range_text.enabled
    widget.frames.value = "range"
    assert widget.range_text.enabled
    widget.range_text.value = "0, 2-3"
    assert widget.selected_frames() == [0, 2, 3]
    widget.range_text.value = "0-40"
    assert not widget.run_button.enabled and "out of range" in widget.reason.value
    viewer.dims.set_current_step(0, 1)
    widget.frames.value = "current"
    assert widget.selected_frames() == [1]


def test_segment_dask_layer_reads_one_frame_at_a_time(make_napari_viewer, qtbot, gui_movie, trained_unet,
                                                      monkeypatch, notifications):
    """A lazy (dask) layer, as napari gives for movies larger than memory, is never loaded whole:
    the widget hands it to the worker unread, which reads and drops one frame at a time."""
    import threading
    import weakref

    da = pytest.importorskip("dask.array")
    import dask

    from napari_cellseq.core import pipeline
    from napari_cellseq.core.pipeline import segment

    image = np.concatenate([gui_movie[0]] * 3)  # (12, 96, 96)
    n = image.shape[0]
    # percentiles from a subsample of frames, as for a long movie
    monkeypatch.setattr(pipeline, "_SAMPLE_PIXELS", 2 * 96 * 96)
    reads: dict[str, list[int]] = {"main": [], "worker": []}
    alive: set[int] = set()
    peak = [0]

    def load(block, block_info=None):
        """Hand out a fresh copy of one frame and track how many handed-out frames are alive."""
        frame = block.copy()
        who = "main" if threading.current_thread() is threading.main_thread() else "worker"
        reads[who].append(block_info[0]["chunk-location"][0])
        if who == "worker":
            alive.add(id(frame))
            weakref.finalize(frame, alive.discard, id(frame))
            peak[0] = max(peak[0], len(alive))
        return frame

    lazy = da.from_array(image, chunks=(1, 96, 96)).map_blocks(load, dtype=image.dtype)
    with dask.config.set(scheduler="synchronous"):  # blocks are computed in the calling thread
        viewer = make_napari_viewer()
        viewer.add_image(lazy, name="big", contrast_limits=(0, int(image.max())))
        widget = dock(viewer, SegmentWidget)
        widget.load_model(trained_unet)
        widget.device.value = "cpu"
        reads["main"].clear()
        widget.run_button.clicked()
        _wait_segment(qtbot, widget)
    assert not errors(notifications), notifications
    expected = segment(image, trained_unet, device="cpu")
    np.testing.assert_array_equal(viewer.layers["big (segmentation)"].data, expected)
    assert sorted(set(reads["worker"])) == list(range(n))  # the worker read the movie itself...
    assert peak[0] <= 2  # ...holding at most 2 frames at once (np.array(layer.data) holds all 12)
    assert len(reads["main"]) <= 2  # the GUI thread only draws the frame on screen


def test_export_follows_the_newest_labels_layer_but_not_the_preview(make_napari_viewer, gui_movie):
    """A segmentation that has just appeared is what the user wants to export; the training
    preview layer never is."""
    from napari_cellseq.gui._layers import PREVIEW_KEY

    _, labels = gui_movie
    viewer = make_napari_viewer()
    truth = viewer.add_labels(labels, name="truth")
    widget = dock(viewer, ExportWidget)
    assert widget.labels_layer.value is truth
    result = viewer.add_labels(labels, name="cells (segmentation)")
    assert widget.labels_layer.value is result
    viewer.add_labels(labels[:1], name="cells (preview)", metadata={PREVIEW_KEY: True})
    assert widget.labels_layer.value is result
    widget.labels_layer.value = truth  # the user's choice stays while no new layer comes
    viewer.layers.remove("cells (preview)")
    assert widget.labels_layer.value is truth
