"""Writing TIFF files, whole or frame by frame (napari_cellseq.core.io.writers)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import (
    OutputExistsError,
    label_dtype,
    label_stack_writer,
    read_image,
    read_labels,
    write_tiff_atomic,
)


def test_round_trip_uint16_movie_is_imagej_time_series(tmp_path, movie, listing):
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


def test_round_trip_uint32_labels_and_2d_float(tmp_path, movie):
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


def test_write_creates_parent_folders(tmp_path, movie):
    p = tmp_path / "a" / "b" / "x.tif"
    write_tiff_atomic(p, movie())
    assert p.is_file()


def test_write_errors_are_input_errors(tmp_path, movie, listing):
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


@pytest.mark.parametrize("shape", [(3, 20, 24), (20, 24)])
def test_label_stack_writer_writes_the_file_write_tiff_atomic_writes(tmp_path, shape, listing):
    labels = np.random.default_rng(1).integers(0, 300, shape).astype(np.uint16)
    frames = labels[None] if labels.ndim == 2 else labels
    with label_stack_writer(tmp_path / "s.tif", shape) as writer:
        for t in reversed(range(len(frames))):
            writer.write(t, frames[t])
        assert [n for n in listing(tmp_path) if not n.startswith(".")] == []  # nothing visible yet
    write_tiff_atomic(tmp_path / "ref.tif", labels)
    assert (tmp_path / "s.tif").read_bytes() == (tmp_path / "ref.tif").read_bytes()
    assert listing(tmp_path) == ["ref.tif", "s.tif"]


def test_label_stack_writer_upcasts_when_ids_exceed_uint16(tmp_path, listing):
    labels = np.zeros((3, 20, 24), np.uint32)
    labels[0, :5, :5] = 7
    labels[1, 5:, 5:] = 70_000
    with label_stack_writer(tmp_path / "s.tif", labels.shape) as writer:
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


def test_label_stack_writer_failure_keeps_the_old_file(tmp_path, listing):
    p = tmp_path / "s.tif"
    p.write_bytes(b"old labels")
    with pytest.raises(OutputExistsError):
        with label_stack_writer(p, (2, 20, 24)):
            pass
    with pytest.raises(KeyboardInterrupt):
        with label_stack_writer(p, (2, 20, 24), overwrite=True) as writer:
            writer.write(0, np.ones((20, 24), np.uint16))
            raise KeyboardInterrupt
    with pytest.raises(InputError, match="does not fit"):
        with label_stack_writer(p, (2, 20, 24), overwrite=True) as writer:
            writer.write(2, np.ones((20, 24), np.uint16))
    assert p.read_bytes() == b"old labels" and listing(tmp_path) == ["s.tif"]



def test_label_dtype_is_the_one_rule():
    assert [label_dtype(n) for n in (0, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1)] == [
        np.uint16, np.uint16, np.uint32, np.uint32, np.uint64, np.uint64]
    assert label_dtype(np.uint64(2**63 + 1)) == np.uint64
    with pytest.raises(ValueError, match=">= 0"):
        label_dtype(-1)
