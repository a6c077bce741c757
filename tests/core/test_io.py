"""Tests of file input/output and input checks (napari_cellseq.core.io)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_cellseq.core import io as cio
from napari_cellseq.core.errors import CellseqError, InputError
from napari_cellseq.core.io import (
    OutputExistsError,
    atomic_path,
    atomic_write_bytes,
    check_image,
    check_labels,
    ctc_mask_name,
    parse_frames,
    read_image,
    read_labels,
    write_ctc_masks,
    write_tiff_atomic,
)


try:
    import imagecodecs  # noqa: F401

    _HAS_IMAGECODECS = True
except ImportError:
    _HAS_IMAGECODECS = False


def movie(t: int = 3, y: int = 20, x: int = 24, dtype=np.uint16) -> np.ndarray:
    return (np.arange(t * y * x) % 1000).reshape(t, y, x).astype(dtype)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------


def test_read_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"^no such file: .*nope\.tif; check the path"):
        read_image(tmp_path / "nope.tif")


def test_read_folder(tmp_path):
    with pytest.raises(InputError, match="is a folder, not a TIFF file"):
        read_image(tmp_path)


def test_read_text_file_is_not_a_tiff(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("hello, this is text")
    with pytest.raises(InputError) as err:
        read_image(p)
    msg = str(err.value)
    assert "is not a TIFF file" in msg and "Fiji" in msg and "File > Save As > Tiff" in msg


def test_read_png_names_the_format(tmp_path):
    p = tmp_path / "cells.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    with pytest.raises(InputError, match=r"is not a TIFF file \(it looks like a PNG image\); convert it to TIFF"):
        read_labels(p)


def test_read_empty_file(tmp_path):
    p = tmp_path / "empty.tif"
    p.write_bytes(b"")
    with pytest.raises(InputError, match=r"is empty \(0 bytes\)"):
        read_image(p)


def test_read_truncated_tiff(tmp_path):
    p = tmp_path / "cut.tif"
    tifffile.imwrite(p, movie(dtype=np.uint32))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt: export it again"):
        read_image(p)


def test_read_header_only_tiff(tmp_path):
    p = tmp_path / "header.tif"
    p.write_bytes(b"II*\x00\x08\x00\x00\x00" + b"\x00" * 20)
    with pytest.raises(InputError, match="contains no image data|truncated or corrupt"):
        read_image(p)


@pytest.mark.skipif(_HAS_IMAGECODECS, reason="LZW can be decoded when imagecodecs is installed")
def test_read_tiff_needing_imagecodecs(tmp_path):
    p = tmp_path / "lzw.tif"
    tifffile.imwrite(p, movie(t=1)[0], compression="zlib")
    zlib_tag = b"\x03\x01\x03\x00\x01\x00\x00\x00\x08\x00"  # Compression (259) = 8, little-endian
    data = p.read_bytes()
    assert data.count(zlib_tag) == 1
    p.write_bytes(data.replace(zlib_tag, zlib_tag[:-2] + b"\x05\x00"))  # claim LZW (5)
    with pytest.raises(InputError, match="needs the 'imagecodecs' package; run `pip install imagecodecs`"):
        read_image(p)


def test_read_returns_array_as_stored(tmp_path):
    p = tmp_path / "single.tif"
    a = movie(t=1)  # a leading singleton axis is kept, nothing is squeezed
    tifffile.imwrite(p, a, metadata={"axes": "TYX"})
    out = read_image(p)
    assert out.dtype == np.uint16 and out.shape == (1, 20, 24)
    np.testing.assert_array_equal(out, a)
    np.testing.assert_array_equal(read_image(str(p)), a)  # str paths work too
    write_tiff_atomic(tmp_path / "ours.tif", a)  # and our own writer keeps it
    assert read_image(tmp_path / "ours.tif").shape == (1, 20, 24)


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------


def test_round_trip_uint16_movie_is_imagej_time_series(tmp_path):
    a = movie()
    p = write_tiff_atomic(tmp_path / "stack.tif", a)
    assert p == tmp_path / "stack.tif"
    out = read_image(p)
    assert out.dtype == np.uint16 and out.shape == (3, 20, 24)
    np.testing.assert_array_equal(out, a)
    with tifffile.TiffFile(p) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "TYX"
        assert tif.imagej_metadata["frames"] == 3
    assert listing(tmp_path) == ["stack.tif"]  # no temporary file left


def test_round_trip_uint32_labels_and_2d_float(tmp_path):
    labels = movie(dtype=np.uint32) * 100_000
    write_tiff_atomic(tmp_path / "labels.tif", labels)
    out = read_labels(tmp_path / "labels.tif")
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out, labels)
    img = np.linspace(0, 1, 20 * 24, dtype=np.float32).reshape(20, 24)
    write_tiff_atomic(tmp_path / "img.tif", img, compression="zlib")
    np.testing.assert_array_equal(read_image(tmp_path / "img.tif"), img)
    with tifffile.TiffFile(tmp_path / "img.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "YX"


def test_bool_written_as_uint8(tmp_path):
    m = np.zeros((10, 10), bool)
    m[2:5, 3:7] = True
    out = read_image(write_tiff_atomic(tmp_path / "m.tif", m))
    assert out.dtype == np.uint8 and out.sum() == 12


def test_write_creates_parent_folders(tmp_path):
    p = tmp_path / "a" / "b" / "x.tif"
    write_tiff_atomic(p, movie())
    assert p.is_file()


def test_overwrite_refused_then_allowed(tmp_path):
    p = tmp_path / "x.tif"
    write_tiff_atomic(p, movie())
    before = p.read_bytes()
    with pytest.raises(OutputExistsError) as err:
        write_tiff_atomic(p, movie() + 1)
    assert isinstance(err.value, InputError) and isinstance(err.value, FileExistsError)
    assert isinstance(err.value, CellseqError)
    assert "already exists; pass --overwrite" in str(err.value) and "choose another name" in str(err.value)
    assert p.read_bytes() == before
    write_tiff_atomic(p, movie() + 1, overwrite=True)
    np.testing.assert_array_equal(read_image(p), movie() + 1)
    assert listing(tmp_path) == ["x.tif"]


def test_failure_mid_write_keeps_original_and_removes_temp(tmp_path, monkeypatch):
    p = tmp_path / "x.tif"
    write_tiff_atomic(p, movie())
    before = p.read_bytes()
    seen = []

    def broken_imwrite(path, *args, **kwargs):
        seen.append(Path(path))
        Path(path).write_bytes(b"II*\x00 half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cio.tifffile, "imwrite", broken_imwrite)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_tiff_atomic(p, movie() + 7, overwrite=True)
    # the writer got a hidden temporary file in the same folder, which is gone now
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".tmp-") and seen[0].name.endswith("x.tif")
    assert p.read_bytes() == before
    assert listing(tmp_path) == ["x.tif"]


def test_disk_full_becomes_input_error(tmp_path, monkeypatch):
    def full(path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cio.tifffile, "imwrite", full)
    with pytest.raises(InputError, match="could not write .*No space left on device; free disk space"):
        write_tiff_atomic(tmp_path / "x.tif", movie())
    assert listing(tmp_path) == []


def test_atomic_path_cleans_up_on_interrupt(tmp_path):
    p = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert listing(tmp_path) == []


def test_atomic_path_refuses_if_target_appears_meanwhile(tmp_path):
    p = tmp_path / "model.pt"
    with pytest.raises(OutputExistsError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"new")
            p.write_bytes(b"someone else")
    assert p.read_bytes() == b"someone else"
    assert listing(tmp_path) == ["model.pt"]


def test_atomic_write_bytes(tmp_path):
    p = tmp_path / "sub" / "model.pt"
    assert atomic_write_bytes(p, b"\x00\x01weights") == p
    assert p.read_bytes() == b"\x00\x01weights"
    with pytest.raises(OutputExistsError, match="already exists"):
        atomic_write_bytes(p, b"other")
    atomic_write_bytes(p, b"other", overwrite=True)
    assert p.read_bytes() == b"other"
    assert listing(p.parent) == ["model.pt"]


def test_write_errors_are_input_errors(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        write_tiff_atomic(tmp_path / "afile" / "x.tif", movie())
    with pytest.raises(InputError, match="is a folder; give a file name"):
        write_tiff_atomic(tmp_path, movie())
    with pytest.raises(InputError, match="TIFF compression 'bogus' is not available .*use compression=None or 'zlib'"):
        write_tiff_atomic(tmp_path / "c.tif", movie(), compression="bogus")
    with pytest.raises(InputError, match="dtype object"):
        write_tiff_atomic(tmp_path / "o.tif", np.array([[None, 1], [2, 3]], dtype=object))
    with pytest.raises(InputError, match=r"shape \(5,\)"):
        write_tiff_atomic(tmp_path / "v.tif", np.arange(5))
    with pytest.raises(InputError, match="axes 'YX' has 2 letters but the array has 3"):
        write_tiff_atomic(tmp_path / "a.tif", movie(), axes="YX")
    assert listing(tmp_path) == ["afile"]


# ----------------------------------------------------------------------------------------------
# Cell Tracking Challenge masks
# ----------------------------------------------------------------------------------------------


def test_ctc_mask_names():
    assert ctc_mask_name(0, 20) == "mask000.tif"
    assert ctc_mask_name(999, 1000) == "mask999.tif"
    assert ctc_mask_name(0, 1001) == "mask0000.tif"
    assert ctc_mask_name(1000, 1001) == "mask1000.tif"
    assert ctc_mask_name(7, 12, prefix="man_seg") == "man_seg007.tif"


def test_write_ctc_masks(tmp_path):
    labels = movie(t=3, dtype=np.uint32)
    paths = write_ctc_masks(tmp_path / "01_RES", labels)
    assert [p.name for p in paths] == ["mask000.tif", "mask001.tif", "mask002.tif"]
    assert listing(tmp_path / "01_RES") == ["mask000.tif", "mask001.tif", "mask002.tif"]
    for t, p in enumerate(paths):
        frame = tifffile.imread(p)
        assert frame.dtype == np.uint16 and frame.shape == (20, 24)
        np.testing.assert_array_equal(frame, labels[t])


def test_write_ctc_masks_single_frame_and_prefix(tmp_path):
    lab = np.zeros((16, 16), np.int32)
    lab[4:8, 4:8] = 3
    (p,) = write_ctc_masks(tmp_path, lab, prefix="man_seg")
    assert p.name == "man_seg000.tif"
    np.testing.assert_array_equal(tifffile.imread(p), lab)


def test_write_ctc_masks_refuses_large_ids(tmp_path):
    lab = np.zeros((2, 8, 8), np.uint32)
    lab[1, 0, 0] = 70_000
    with pytest.raises(InputError) as err:
        write_ctc_masks(tmp_path / "res", lab)
    msg = str(err.value)
    assert "label id 70000 is larger than 65535" in msg and "16-bit" in msg and "32-bit TIFF stack" in msg
    assert not (tmp_path / "res").exists()


def test_write_ctc_masks_refuses_overwrite_before_writing(tmp_path):
    out = tmp_path / "res"
    write_ctc_masks(out, movie(t=2))
    (out / "mask000.tif").unlink()  # only mask001 remains
    with pytest.raises(OutputExistsError, match="mask001.tif already exist; pass --overwrite"):
        write_ctc_masks(out, movie(t=3) + 5)
    assert listing(out) == ["mask001.tif"]  # nothing new was written
    write_ctc_masks(out, movie(t=3) + 5, overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(out / "mask002.tif"), movie(t=3)[2] + 5)


def test_write_ctc_masks_warns_about_stale_files(tmp_path, caplog):
    write_ctc_masks(tmp_path, movie(t=3))
    with caplog.at_level(logging.WARNING, logger="napari_cellseq.core.io"):
        write_ctc_masks(tmp_path, movie(t=2), overwrite=True)
    assert "1 older mask files (e.g. mask002.tif)" in caplog.text


def test_write_ctc_masks_bad_input(tmp_path):
    with pytest.raises(InputError, match=r"must be \(T, Y, X\) or \(Y, X\), got shape \(2, 3, 8, 8\)"):
        write_ctc_masks(tmp_path, np.zeros((2, 3, 8, 8), np.uint16))
    with pytest.raises(InputError, match="negative values"):
        write_ctc_masks(tmp_path, -np.ones((8, 8), np.int16))
    with pytest.raises(InputError, match="plain file name part"):
        write_ctc_masks(tmp_path, np.ones((8, 8), np.uint16), prefix="a/b")


# ----------------------------------------------------------------------------------------------
# frame selection
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("0-4,7", [0, 1, 2, 3, 4, 7]),
        (" 7 , 0 - 2 ", [0, 1, 2, 7]),
        ("3,3,1-3", [1, 2, 3]),
        ("9", [9]),
        ("5-5", [5]),
        ("1,,2,", [1, 2]),
        ("all", list(range(10))),
    ],
)
def test_parse_frames(spec, expected):
    assert parse_frames(spec, 10) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("a-b", r"'a-b' in 'a-b' is not a frame number or range; use numbers and ranges like '0-4,7' \(valid frames are 0..9\)"),
        ("5-2", r"frame range '5-2' in '5-2' goes backwards; write it as '2-5'"),
        ("-1", r"negative frame number in '-1'; frames are counted from 0 \(valid frames are 0..9\)"),
        ("2,-3", r"negative frame number"),
        ("10", r"frame 10 in '10' is out of range: the movie has 10 frames, valid frames are 0..9"),
        ("8-12", r"frame 12 .* out of range"),
        ("", r"empty frame selection; give frames like '0-4,7' \(valid frames are 0..9\)"),
        (" , ", r"empty frame selection"),
        ("1.5", r"'1.5' .* is not a frame number"),
    ],
)
def test_parse_frames_errors(spec, message):
    with pytest.raises(InputError, match=message):
        parse_frames(spec, 10)


def test_parse_frames_no_frames():
    with pytest.raises(InputError, match="the movie has no frames"):
        parse_frames("0", 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), data=st.data())
def test_parse_frames_round_trips_any_selection(n, data):
    frames = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10))
    spec = ", ".join(str(f) for f in frames)
    assert parse_frames(spec, n) == sorted(set(frames))
    lo, hi = sorted(data.draw(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))))
    assert parse_frames(f"{lo}-{hi}", n) == list(range(lo, hi + 1))


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def test_check_image_accepts_and_returns_unchanged():
    a = movie()
    assert check_image(a) is a
    b = np.random.default_rng(0).random((32, 40)).astype(np.float32)
    assert check_image(b) is b


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((64, 64, 3), np.uint8) + np.arange(3, dtype=np.uint8),
         r"image has shape \(64, 64, 3\), which looks like an RGB image .*convert it .*or split the channels"),
        (np.zeros((64, 64, 4), np.uint8) + np.arange(4, dtype=np.uint8), r"looks like an RGBA image"),
        (np.arange(2 * 2 * 16 * 16).reshape(2, 2, 16, 16),
         r"image has shape \(2, 2, 16, 16\) \(4 dimensions\), but napari-cellseq takes \(Y, X\) or \(T, Y, X\); "
         r"pick one channel or z-slice, e.g. image\[:, 0\]"),
        (np.arange(2 * 16 * 16 * 2 * 2).reshape(2, 2, 2, 16, 16), r"\(5 dimensions\)"),
        (np.zeros((0, 16, 16)), r"image is empty \(shape \(0, 16, 16\)\)"),
        (np.arange(10.0), r"shape \(10,\) \(1 dimension\)"),
        (np.full((16, 16), 7, np.uint16), r"image is constant \(all values = 7\): nothing to segment"),
        (np.where(np.eye(16) > 0, np.nan, 1.0), r"image contains 16 NaN and 0 infinite values; replace them"),
        (np.where(np.eye(16) > 0, np.inf, 1.0), r"contains 0 NaN and 16 infinite values"),
        (np.zeros((16, 16), np.complex64), r"image has complex values \(complex64\)"),
        (np.zeros((16, 16), bool), r"image is a boolean mask"),
        (np.array([["a"] * 16] * 16), r"image has unsupported dtype <U1"),
        (np.arange(100 * 5).reshape(100, 5), r"frames of 100x5 pixels are too small .*np.moveaxis\(image, -1, 0\)"),
    ],
)
def test_check_image_errors(array, message):
    with pytest.raises(InputError, match=message):
        check_image(array)


def test_check_image_uses_name():
    with pytest.raises(InputError, match=r"^nuclei is constant"):
        check_image(np.zeros((16, 16)), name="nuclei")


def test_check_labels():
    lab = np.zeros((2, 16, 16), np.uint16)
    lab[0, 2:5, 2:5] = 1
    assert check_labels(lab, (2, 16, 16)) is lab
    signed = lab.astype(np.int64)
    assert check_labels(signed, (2, 16, 16)) is signed


def test_check_labels_shape_message():
    with pytest.raises(InputError) as err:
        check_labels(np.zeros((16, 16), np.uint16), (3, 16, 16))
    assert str(err.value) == (
        "labels have shape (16, 16) but the image (3, 16, 16): paint on a Labels layer created from this image"
    )


def test_check_labels_casts_bool_and_integral_float(caplog):
    mask = np.zeros((16, 16), bool)
    mask[3, 4] = True
    out = check_labels(mask, (16, 16))
    assert out.dtype == np.uint8 and out[3, 4] == 1 and out.sum() == 1
    f = np.zeros((16, 16), np.float32)
    f[1, 1] = 12.0
    with caplog.at_level(logging.WARNING, logger="napari_cellseq.core.io"):
        out = check_labels(f, (16, 16))
    assert out.dtype == np.int32 and out[1, 1] == 12
    assert "float32" in caplog.text


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.full((16, 16), 0.5, np.float32),
         r"labels must be integer instance ids, got float32 with fractional values; save them as a 16-bit integer TIFF"),
        (np.full((16, 16), np.nan), r"labels contain NaN or infinite values"),
        (np.full((16, 16), -2, np.int32), r"labels contain negative values \(minimum -2\); instance ids must be 0"),
        (np.full((16, 16), -2.0), r"negative values"),
        (np.zeros((16, 16), np.complex128), r"must be integer instance ids, got dtype complex128"),
    ],
)
def test_check_labels_errors(labels, message):
    with pytest.raises(InputError, match=message):
        check_labels(labels, (16, 16))


# ----------------------------------------------------------------------------------------------
# property: any small integer / float array survives a write-read round trip bit for bit
# ----------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.uint32, np.int16, np.float32]),
        shape=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)) | st.tuples(st.integers(1, 9), st.integers(1, 9)),
        elements={"allow_nan": False, "allow_infinity": False},
    ),
    st.sampled_from([None, "zlib"]),
)
def test_tiff_round_trip_property(array, compression):
    with tempfile.TemporaryDirectory() as folder:
        p = Path(folder) / "a.tif"
        write_tiff_atomic(p, array, compression=compression)
        out = read_image(p)
        assert out.dtype == array.dtype and out.shape == array.shape
        np.testing.assert_array_equal(out, array)
        assert os.listdir(folder) == ["a.tif"]


# --------------------------------------------------------------------------------------------
# frame-by-frame reading and writing (segmenting movies larger than memory)
# --------------------------------------------------------------------------------------------


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
    with cio.open_image(p) as lazy:
        assert isinstance(lazy, np.memmap if kind in ("plain", "imagej") else cio.TiffFrames)
        assert lazy.shape == data.shape and lazy.dtype == data.dtype
        np.testing.assert_array_equal(np.asarray(lazy), read_image(p))
        np.testing.assert_array_equal(lazy[2], data[2])
        np.testing.assert_array_equal(lazy[1:3, ..., 4:9], data[1:3, ..., 4:9])
        if data.ndim == 4 or kind == "yxc-zlib":
            axis = 1 if data.ndim == 4 else 2
            channel = cio.select_channel(lazy, 1)
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
    with cio.open_image(tmp_path / "x.tif") as lazy:
        frame = cio.select_channel(lazy, 1)[3]
    np.testing.assert_array_equal(frame, data[3, 1])
    assert read == [7]  # page t * C + c only


def test_open_image_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        with cio.open_image(tmp_path / "missing.tif"):
            pass
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(InputError, match="not a TIFF file .*PNG"):
        with cio.open_image(tmp_path / "a.png"):
            pass
    tifffile.imwrite(tmp_path / "z.tif", movie(), photometric="minisblack", compression="zlib")
    (tmp_path / "t.tif").write_bytes((tmp_path / "z.tif").read_bytes()[:-200])
    with pytest.raises(InputError, match="truncated or corrupt"):
        with cio.open_image(tmp_path / "t.tif") as lazy:
            for t in range(lazy.shape[0]):
                lazy[t]


@pytest.mark.parametrize("shape", [(3, 20, 24), (20, 24)])
def test_label_stack_writer_writes_the_file_write_tiff_atomic_writes(tmp_path, shape):
    labels = np.random.default_rng(1).integers(0, 300, shape).astype(np.uint16)
    frames = labels[None] if labels.ndim == 2 else labels
    with cio.label_stack_writer(tmp_path / "s.tif", shape) as writer:
        for t in reversed(range(len(frames))):
            writer.write(t, frames[t])
        assert [n for n in listing(tmp_path) if not n.startswith(".")] == []  # nothing visible yet
    write_tiff_atomic(tmp_path / "ref.tif", labels)
    assert (tmp_path / "s.tif").read_bytes() == (tmp_path / "ref.tif").read_bytes()
    assert listing(tmp_path) == ["ref.tif", "s.tif"]


def test_label_stack_writer_upcasts_when_ids_exceed_uint16(tmp_path):
    labels = np.zeros((3, 20, 24), np.uint32)
    labels[0, :5, :5] = 7
    labels[1, 5:, 5:] = 70_000
    with cio.label_stack_writer(tmp_path / "s.tif", labels.shape) as writer:
        writer.write(0, labels[0].astype(np.uint16))
        assert writer.dtype == np.uint16
        writer.write(1, labels[1])
        assert writer.dtype == np.uint32
    back = read_labels(tmp_path / "s.tif")
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, labels)  # frame 0 survived, frame 2 stayed 0
    write_tiff_atomic(tmp_path / "ref.tif", labels)
    assert (tmp_path / "s.tif").read_bytes() == (tmp_path / "ref.tif").read_bytes()
    assert listing(tmp_path) == ["ref.tif", "s.tif"]


def test_label_stack_writer_failure_keeps_the_old_file(tmp_path):
    p = tmp_path / "s.tif"
    p.write_bytes(b"old labels")
    with pytest.raises(OutputExistsError):
        with cio.label_stack_writer(p, (2, 20, 24)):
            pass
    with pytest.raises(KeyboardInterrupt):
        with cio.label_stack_writer(p, (2, 20, 24), overwrite=True) as writer:
            writer.write(0, np.ones((20, 24), np.uint16))
            raise KeyboardInterrupt
    with pytest.raises(InputError, match="does not fit"):
        with cio.label_stack_writer(p, (2, 20, 24), overwrite=True) as writer:
            writer.write(2, np.ones((20, 24), np.uint16))
    assert p.read_bytes() == b"old labels" and listing(tmp_path) == ["s.tif"]


def test_ctc_mask_writer_writes_all_masks_at_the_end_or_none(tmp_path):
    labels = movie().astype(np.uint16)
    with cio.ctc_mask_writer(tmp_path / "res", 3) as writer:
        writer.write(1, labels[1])
        assert [n for n in listing(tmp_path / "res") if not n.startswith(".")] == []
    names = [ctc_mask_name(t, 3) for t in range(3)]
    assert listing(tmp_path / "res") == names
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "res" / names[1]), labels[1])
    assert not tifffile.imread(tmp_path / "res" / names[0]).any()
    before = {n: (tmp_path / "res" / n).read_bytes() for n in names}
    with pytest.raises(InputError, match="larger than 65535"):
        with cio.ctc_mask_writer(tmp_path / "res", 3, overwrite=True) as writer:
            writer.write(0, labels[0] + 1)
            writer.write(1, labels[1].astype(np.uint32) + 70_000)
    assert {n: (tmp_path / "res" / n).read_bytes() for n in names} == before
    assert listing(tmp_path / "res") == names


def test_temporary_files_of_killed_writers_are_removed_next_time(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".tmp-{dead_pid}-0123abcd-model.pt"
    other_file = tmp_path / f".tmp-{dead_pid}-0123abcd-other.pt"
    running = tmp_path / f".tmp-{os.getppid()}-0123abcd-model.pt"  # a live process is writing it
    old_style = tmp_path / ".tmp-0123abcd-model.pt"
    for p in (stale, other_file, running, old_style):
        p.write_bytes(b"partial")
    atomic_write_bytes(tmp_path / "model.pt", b"complete")
    assert (tmp_path / "model.pt").read_bytes() == b"complete"
    assert listing(tmp_path) == sorted(p.name for p in (other_file, running, old_style, tmp_path / "model.pt"))
