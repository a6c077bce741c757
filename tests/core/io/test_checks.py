"""Checks of user input: images, labels, channels (napari_cellseq.core.io.checks)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import check_image, check_labels


def test_check_image_accepts_and_returns_unchanged(movie):
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

