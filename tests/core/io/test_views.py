"""Lazy views: open_image, TiffFrames and one channel of them read only the pages asked for.

(napari_cellseq.core.io.views)
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.io import ChannelView, TiffFrames, open_image, read_image, select_channel


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



@pytest.mark.parametrize("codec", ["lzw", "zstd"])
def test_compressed_movie_is_read_page_by_page(tmp_path, monkeypatch, codec):
    """LZW (T, Y, X) and (T, C, Y, X) movies are opened lazily (segment), also with --channel."""
    movie = np.random.default_rng(0).integers(0, 4000, (5, 16, 20)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", movie, compression=codec, photometric="minisblack")
    channels = np.random.default_rng(1).integers(0, 4000, (5, 3, 16, 20)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", channels, compression=codec, photometric="minisblack",
                     metadata={"axes": "TCYX"})
    read = []
    original = tifffile.TiffPage.asarray

    def counting(page, *args, **kwargs):
        read.append(page.index)
        return original(page, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffPage, "asarray", counting)
    with open_image(tmp_path / "m.tif") as lazy:
        assert isinstance(lazy, TiffFrames) and lazy.shape == movie.shape
        np.testing.assert_array_equal(lazy[3], movie[3])
        assert read == [3]
    read.clear()
    with open_image(tmp_path / "c.tif") as lazy:
        green = select_channel(lazy, 2)
        assert isinstance(green, ChannelView) and green.shape == (5, 16, 20) and len(green) == 5
        np.testing.assert_array_equal(green[4], channels[4, 2])
        assert read == [4 * 3 + 2]
        np.testing.assert_array_equal(np.asarray(green), channels[:, 2])
        np.testing.assert_array_equal(green[-1, ..., 5:9], channels[-1, 2, :, 5:9])


def test_lazy_views_share_one_index_rule(tmp_path):
    data = np.arange(4 * 2 * 16 * 20, dtype=np.uint16).reshape(4, 2, 16, 20)
    tifffile.imwrite(tmp_path / "c.tif", data, compression="zlib", photometric="minisblack",
                     metadata={"axes": "TCYX"})
    with open_image(tmp_path / "c.tif") as lazy:
        channel = select_channel(lazy, 0)
        for view, ref in ((lazy, data), (channel, data[:, 0])):
            assert view.ndim == ref.ndim and len(view) == 4
            for key in (1, -1, (slice(1, 3),), (Ellipsis, 2), (0, Ellipsis, slice(None, None, 2)), np.int64(2)):
                np.testing.assert_array_equal(view[key], ref[key])
            np.testing.assert_array_equal(np.asarray(view, dtype=np.float32), ref.astype(np.float32))
            with pytest.raises(IndexError, match="takes integers, slices and ... as indices"):
                view[np.array([0, 1])]
            with pytest.raises(IndexError):
                view[(0,) * (ref.ndim + 1)]


def test_painted_frames_hold_only_painted_frames():
    import pickle

    from napari_cellseq.core.io import PaintedFrames, is_lazy

    stack = np.zeros((50, 16, 20), np.uint16)
    stack[3, 2:5, 2:5] = 7
    stack[40, 0, 0] = 2
    view = PaintedFrames.of(stack, [3, 40, 41])  # frame 41 is held but blank: not painted
    assert view.painted == (3, 40) and view.shape == stack.shape and view.dtype == np.uint16
    assert is_lazy(view) and not is_lazy(stack) and is_lazy(stack.view(np.memmap))
    np.testing.assert_array_equal(view[3], stack[3])
    np.testing.assert_array_equal(view[-10], stack[40])
    np.testing.assert_array_equal(view[10], 0)
    np.testing.assert_array_equal(view[2:6, 2:4], stack[2:6, 2:4])
    np.testing.assert_array_equal(np.asarray(view), stack)
    stack[3] = 0  # a copy: painting on does not change it
    assert view[3].any()
    view[3][:] = 0  # nor does writing into what it hands out
    assert view[3].any()
    assert len(pickle.dumps(view)) < 4 * stack[0].nbytes
    with pytest.raises(IndexError, match="outside"):
        view[50]
    with pytest.raises(ValueError, match="shape"):
        PaintedFrames({0: np.zeros((3, 3))}, (2, 4, 4), np.uint8)
