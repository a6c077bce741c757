"""Sample data through the plugin manifest, and the labels writer."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_cellseq.gui.writer import write_labels


def test_open_sample_via_plugin(make_napari_viewer, cellseq_plugin):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellseq", "synthetic_nuclei")
    names = [layer.name for layer in viewer.layers]
    assert names == ["synthetic nuclei", "synthetic nuclei labels"]
    image, labels = viewer.layers
    assert image.data.shape == labels.data.shape == (20, 256, 256)
    assert labels.data.max() > 0
    assert type(labels).__name__ == "Labels"


def test_write_labels_16_and_32_bit(tmp_path):
    small = np.zeros((2, 16, 16), np.int32)
    small[0, 2:5, 2:5] = 7
    out = write_labels(str(tmp_path / "a.tif"), small, {})
    back = tifffile.imread(out[0])
    assert back.dtype == np.uint16 and np.array_equal(back, small)
    big = small.copy()
    big[1, 8:10, 8:10] = 70_000
    out = write_labels(str(tmp_path / "b.tif"), big, {})
    back = tifffile.imread(out[0])
    assert back.dtype == np.uint32 and np.array_equal(back, big)


def test_writer_through_napari_save(make_napari_viewer, cellseq_plugin, tmp_path):
    viewer = make_napari_viewer()
    data = np.zeros((3, 20, 20), np.uint16)
    data[1, 5:9, 5:9] = 4
    viewer.add_labels(data, name="cells")
    written = viewer.layers.save(str(tmp_path / "cells.tif"), plugin="napari-cellseq")
    assert written == [str(tmp_path / "cells.tif")]
    assert np.array_equal(tifffile.imread(written[0]), data)


def test_manifest_widgets_dock(make_napari_viewer, cellseq_plugin):
    from napari_cellseq.gui.annotate_widget import AnnotateWidget
    from napari_cellseq.gui.export_widget import ExportWidget
    from napari_cellseq.gui.segment_widget import SegmentWidget
    from napari_cellseq.gui.train_widget import TrainWidget

    viewer = make_napari_viewer()
    expected = {"Annotate": AnnotateWidget, "Train": TrainWidget, "Segment": SegmentWidget,
                "Export": ExportWidget}
    for name, cls in expected.items():
        _, widget = viewer.window.add_plugin_dock_widget("napari-cellseq", name)
        assert isinstance(widget, cls)


def test_widget_modules_are_magicgui_containers_without_a_polling_worker():
    from pathlib import Path

    from magicgui.widgets import Container

    from napari_cellseq.gui import annotate_widget, export_widget, segment_widget, train_widget

    for module in (annotate_widget, export_widget, segment_widget, train_widget):
        text = Path(module.__file__).read_text()
        assert "from magicgui" in text and "QTimer" not in text and "LayerPicker" not in text
    assert all(issubclass(c, Container) for c in (annotate_widget.AnnotateWidget, train_widget.TrainWidget,
                                                  segment_widget.SegmentWidget, export_widget.ExportWidget))
    gui = Path(annotate_widget.__file__).parent
    assert not (gui / "_workers.py").exists()
    assert "napari.qt.threading" in (gui / "_run.py").read_text()


def test_gui_package_import_does_not_import_qt():
    import subprocess
    import sys

    code = "import sys, napari_cellseq.gui; print(any(m.split('.')[0] in ('qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'napari') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
