"""Lazy views: open_image and TiffFrames read only the pages asked for; one channel of them stays lazy (napari_cellseq.core.io.views)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.io import TiffFrames, open_image, read_image, select_channel


@pytest.mark.parametrize("kind", ["plain", "zlib", "imagej", "tcyx-zlib", "yxc-zlib"])
def test_open_image_reads_lazily_what_read_image_reads(tmp_path, kind):
    data = np.arange(4 * 2 * 16 * 20, dtype=np.uint16).reshape(4, 2, 16, 20)
    p = tmp_path / "x.tif"
    if kind == "plain":
        data = data[:, 0]
        tifffile.imwrite(p, data, photometric="minisblack")
    elif kind == "zlib":
        data = data[:, 0]
        tifffile.imwrite(p, data, photometric="minisblack", compression="zlib")
    elif kind == "imagej":
        data = data[:, 0]
        tifffile.imwrite(p, data, imagej=True, metadata={"axes": "TYX"})
    elif kind == "tcyx-zlib":
        tifffile.imwrite(p, data, photometric="minisblack", compression="zlib", metadata={"axes": "TCYX"})
    else:
        data = np.moveaxis(data[0], 0, -1)  # (Y, X, C)
        tifffile.imwrite(p, data, photometric="minisblack", compression="zlib", metadata={"axes": "YXC"})
    with open_image(p) as lazy:
        assert isinstance(lazy, np.memmap if kind in ("plain", "imagej") else TiffFrames)
        assert lazy.shape == data.shape and lazy.dtype == data.dtype
        np.testing.assert_array_equal(np.asarray(lazy), read_image(p))
        np.testing.assert_array_equal(lazy[2], data[2])
        np.testing.assert_array_equal(lazy[1:3, ..., 4:9], data[1:3, ..., 4:9])
        if data.ndim == 4 or kind == "yxc-zlib":
            axis = 1 if data.ndim == 4 else 2
            channel = select_channel(lazy, 1)
            np.testing.assert_array_equal(np.asarray(channel), np.take(data, 1, axis=axis))
            np.testing.assert_array_equal(channel[3], np.take(data, 1, axis=axis)[3])


def test_tiff_frames_reads_only_the_pages_asked_for(tmp_path, monkeypatch):
    data = np.arange(5 * 2 * 16 * 20, dtype=np.uint16).reshape(5, 2, 16, 20)
    tifffile.imwrite(tmp_path / "x.tif", data, photometric="minisblack", compression="zlib",
                     metadata={"axes": "TCYX"})
    read = []
    original = tifffile.TiffPage.asarray

    def counting(page, *args, **kwargs):
        read.append(page.index)
        return original(page, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffPage, "asarray", counting)
    with open_image(tmp_path / "x.tif") as lazy:
        frame = select_channel(lazy, 1)[3]
    np.testing.assert_array_equal(frame, data[3, 1])
    assert read == [7]  # page t * C + c only

