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
