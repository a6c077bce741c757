"""Checks of user input: images, labels, channels (napari_cellseq.core.io.checks)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import check_image, check_labels, read_labels
from napari_cellseq.core.io.checks import check_finite, check_not_constant


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
        (np.where(np.eye(16) > 0, np.nan, 1.0), r"image contains NaN or infinite values \(16 NaN, 0 infinite\); replace them \(e.g. np.nan_to_num\(image\)\)"),
        (np.where(np.eye(16) > 0, np.inf, 1.0), r"contains NaN or infinite values \(0 NaN, 16 infinite\)"),
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



def test_check_finite_and_constant_name_where():
    frame = np.ones((16, 16), np.float32)
    frame[2, 3] = np.nan
    frame[4, 5] = -np.inf
    with pytest.raises(InputError, match=r"^frame 3 of image contains NaN or infinite values \(1 NaN, 1 infinite\); "
                                         r"replace them \(e.g. np.nan_to_num\) or export"):
        check_finite(frame, "frame 3 of image")
    check_finite(np.ones((4, 4), np.uint16) * 7)  # integers are always finite
    with pytest.raises(InputError, match=r"^cells is constant \(all values = 7 in every frame looked at\)"):
        check_not_constant(np.uint16(7), np.uint16(7), "cells", " in every frame looked at")
    check_not_constant(0, 1)


HUGE = 2**63 + 5  # an id that any int64 computation turns negative


def test_uint64_instance_ids_above_int64_are_renumbered_in_order(tmp_path, caplog):
    lab = np.zeros((2, 16, 16), np.uint64)
    lab[0, 2:6, 2:6] = HUGE
    lab[0, 8:12, 8:12] = 7
    lab[1, 1:4, 1:4] = 2**64 - 1
    lab[1, 9:14, 2:5] = HUGE
    tifffile.imwrite(tmp_path / "lab.tif", lab)  # a real uint64 TIFF
    stored = read_labels(tmp_path / "lab.tif")
    assert stored.dtype == np.uint64 and int(stored.max()) == 2**64 - 1
    with caplog.at_level(logging.WARNING, logger="napari_cellseq.core.io"):
        out = check_labels(stored, (2, 16, 16))
    assert "above 2**63-1" in caplog.text
    assert out.dtype == np.uint16
    # the same pixels share an id as before, background stays 0, and the order of ids is kept
    assert out[0, 8, 8] == 1 and out[0, 2, 2] == 2 and out[1, 10, 3] == 2 and out[1, 1, 1] == 3
    assert (out == 0).sum() == (lab == 0).sum()


def test_uint64_ids_without_background_start_at_one():
    lab = np.full((8, 8), HUGE, np.uint64)
    lab[:4] = HUGE + 1
    out = check_labels(lab, (8, 8))
    assert sorted(np.unique(out)) == [1, 2] and out[0, 0] == 2


def test_uint64_labels_that_fit_int64_are_unchanged():
    lab = np.zeros((8, 8), np.uint64)
    lab[2, 2] = 2**63 - 1
    assert check_labels(lab, (8, 8)) is lab


def test_uint64_class_values_above_int64_are_refused():
    lab = np.ones((8, 8), np.uint64)
    lab[3, 3] = HUGE
    with pytest.raises(InputError, match=rf"^labels hold value {HUGE}, but with target 'classes' each label value "
                                         r"is a class: paint class values 1, 2, 3"):
        check_labels(lab, (8, 8), classes=True)
