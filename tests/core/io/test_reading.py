"""Reading TIFF files: the refusals of files that are not (good) TIFFs (napari_cellseq.core.io.reading, .tiff_file)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import open_image, read_image, read_labels, write_tiff_atomic

try:
    import imagecodecs  # noqa: F401

    _HAS_IMAGECODECS = True
except ImportError:
    _HAS_IMAGECODECS = False


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


def test_read_truncated_tiff(tmp_path, movie):
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
def test_read_tiff_needing_imagecodecs(tmp_path, movie):
    p = tmp_path / "lzw.tif"
    tifffile.imwrite(p, movie(t=1)[0], compression="zlib")
    zlib_tag = b"\x03\x01\x03\x00\x01\x00\x00\x00\x08\x00"  # Compression (259) = 8, little-endian
    data = p.read_bytes()
    assert data.count(zlib_tag) == 1
    p.write_bytes(data.replace(zlib_tag, zlib_tag[:-2] + b"\x05\x00"))  # claim LZW (5)
    with pytest.raises(InputError, match="needs the 'imagecodecs' package; run `pip install imagecodecs`"):
        read_image(p)


def test_read_returns_array_as_stored(tmp_path, movie):
    p = tmp_path / "single.tif"
    a = movie(t=1)  # a leading singleton axis is kept, nothing is squeezed
    tifffile.imwrite(p, a, metadata={"axes": "TYX"})
    out = read_image(p)
    assert out.dtype == np.uint16 and out.shape == (1, 20, 24)
    np.testing.assert_array_equal(out, a)
    np.testing.assert_array_equal(read_image(str(p)), a)  # str paths work too
    write_tiff_atomic(tmp_path / "ours.tif", a)  # and our own writer keeps it
    assert read_image(tmp_path / "ours.tif").shape == (1, 20, 24)


def test_open_image_errors_are_input_errors(tmp_path, movie):
    with pytest.raises(InputError, match="no such file"):
        with open_image(tmp_path / "missing.tif"):
            pass
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(InputError, match="not a TIFF file .*PNG"):
        with open_image(tmp_path / "a.png"):
            pass
    tifffile.imwrite(tmp_path / "z.tif", movie(), photometric="minisblack", compression="zlib")
    (tmp_path / "t.tif").write_bytes((tmp_path / "z.tif").read_bytes()[:-200])
    with pytest.raises(InputError, match="truncated or corrupt"):
        with open_image(tmp_path / "t.tif") as lazy:
            for t in range(lazy.shape[0]):
                lazy[t]

