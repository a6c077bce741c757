"""Reading TIFF files, compressed ones included, and refusing files that are not (good) TIFFs.

(napari_cellseq.core.io.reading, .tiff_file)
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import open_image, read_image, read_labels, write_tiff_atomic


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


# Codecs microscope and analysis software write; all decoded by tifffile through imagecodecs.
LOSSLESS = ["lzw", "zstd", "adobe_deflate", "zlib", "packbits", "lzma"]


@pytest.mark.parametrize("codec", LOSSLESS)
def test_compressed_images_and_labels_are_read(tmp_path, movie, codec):
    image = movie()
    labels = movie(dtype=np.uint32) * 70  # ids above 65535: a uint32 label stack
    tifffile.imwrite(tmp_path / "img.tif", image, compression=codec, photometric="minisblack")
    tifffile.imwrite(tmp_path / "lab.tif", labels, compression=codec, photometric="minisblack")
    with tifffile.TiffFile(tmp_path / "img.tif") as tif:  # the file really is compressed so
        assert tif.pages[0].compression != 1
    out = read_image(tmp_path / "img.tif")
    assert out.dtype == np.uint16 and out.shape == (3, 20, 24)
    np.testing.assert_array_equal(out, image)
    lab = read_labels(tmp_path / "lab.tif")
    assert lab.dtype == np.uint32
    np.testing.assert_array_equal(lab, labels)


def test_imagej_lzw_stack_is_read(tmp_path, movie):
    """What Fiji writes with File > Save As > Tiff after choosing LZW (ImageJ hyperstack)."""
    image = movie(t=4)
    tifffile.imwrite(tmp_path / "fiji.tif", image, imagej=True, metadata={"axes": "TYX"}, compression="lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "fiji.tif"), image)


def test_jpeg_compressed_image_is_read(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (2, 32, 1))  # smooth: small JPEG error
    tifffile.imwrite(tmp_path / "j.tif", ramp, compression="jpeg", photometric="minisblack")
    out = read_image(tmp_path / "j.tif")
    assert out.dtype == np.uint8 and out.shape == (2, 32, 32)
    assert np.abs(out.astype(int) - ramp).max() <= 8  # lossy, but the same image


def test_missing_codec_is_one_line_naming_the_package(tmp_path, movie):
    """Should imagecodecs be missing (a broken install), reading an LZW file says what to install."""
    p = tmp_path / "lzw.tif"
    tifffile.imwrite(p, movie(), compression="lzw", photometric="minisblack")
    script = (
        "import sys; sys.modules['imagecodecs'] = None\n"  # as if it were not installed
        "from napari_cellseq.core.errors import InputError\n"
        "from napari_cellseq.core.io import open_image, read_image\n"
        "for read in (read_image, lambda p: open_image(p).__enter__()[1]):\n"
        "    try:\n"
        "        read(sys.argv[1])\n"
        "    except InputError as err:\n"
        "        print(err)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(p)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2  # whole-file and page-by-page reading
    for line in lines:
        assert "needs the 'imagecodecs' package" in line and "pip install --upgrade imagecodecs" in line


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

