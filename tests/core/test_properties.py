"""Property-based tests (hypothesis) of post-processing, metrics, IO and training targets.

Small random arrays, at most 30 examples per property, so the file runs in seconds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from napari_cellseq.core.data.targets import class_targets
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import (
    OutputExistsError,
    atomic_write_bytes,
    parse_frames,
    read_labels,
    write_ctc_masks,
    write_tiff_atomic,
)
from napari_cellseq.core.metrics import average_precision, dice, evaluate, pixel_accuracy, seg_score
from napari_cellseq.core.postprocess import instances_from_classes

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

side = st.integers(2, 12)
frame_shape = st.tuples(side, side)


def label_images(max_id: int = 5, shape=frame_shape):
    return arrays(np.int32, shape, elements=st.integers(0, max_id))


def class_maps(k: int):
    return arrays(np.uint8, frame_shape, elements=st.integers(0, k - 1))


# ------------------------------------------------------------------------------- post-processing


@SETTINGS
@given(class_maps(3), st.integers(0, 6), st.sampled_from([1, 2]))
def test_instances_3class(cm, min_size, connectivity):
    labels = instances_from_classes(cm, "3class", min_size=min_size, connectivity=connectivity)
    assert labels.shape == cm.shape and labels.dtype == np.uint16
    assert not labels[cm == 0].any(), "background pixels are never labelled"
    ids = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))  # numbered 1..n
    structure = ndi.generate_binary_structure(2, connectivity)
    for i in ids:
        obj = labels == i
        assert obj.sum() >= max(min_size, 1)
        assert ndi.label(obj, structure=structure)[1] == 1, "every object is connected"
    # with no size filter every foreground pixel belongs to an object
    if min_size <= 1:
        full = instances_from_classes(cm, "3class", min_size=0, min_seed_size=1, connectivity=connectivity)
        assert np.array_equal(full > 0, cm > 0)


@SETTINGS
@given(class_maps(2), st.integers(0, 6))
def test_instances_2class_are_the_components(cm, min_size):
    labels = instances_from_classes(cm, "2class", min_size=min_size)
    comps, n = ndi.label(cm == 1)
    sizes = np.bincount(comps.ravel())[1:]
    assert labels.max() == int(np.sum(sizes >= max(min_size, 1)))
    for c in range(1, n + 1):
        values = np.unique(labels[comps == c])
        assert values.size == 1 and (values[0] > 0) == (sizes[c - 1] >= max(min_size, 1))


@SETTINGS
@given(class_maps(4))
def test_instances_refuse_classes_out_of_range(cm):
    if cm.max() >= 3:
        with pytest.raises(InputError, match="classes 0..2"):
            instances_from_classes(cm, "3class")
    else:
        instances_from_classes(cm, "3class")


# ------------------------------------------------------------------------------- metrics


def _permute_ids(labels: np.ndarray, seed: int) -> np.ndarray:
    ids = np.unique(labels[labels > 0])
    new = np.random.default_rng(seed).permutation(np.arange(1, ids.size + 1)) * 7
    lut = np.zeros(labels.max() + 1, np.int64)
    lut[ids] = new
    return lut[labels]


@SETTINGS
@given(label_images(), label_images(), st.integers(0, 100))
def test_metrics_bounds_symmetry_and_relabel_invariance(gt, pred, seed):
    if gt.shape != pred.shape:
        pred = np.resize(pred, gt.shape)
    scores = evaluate(gt, pred)
    for key in ("ap50", "dice", "pixel_accuracy"):
        assert 0.0 <= scores[key] <= 1.0
    assert np.isnan(scores["seg"]) == (not gt.any())
    if gt.any():
        assert 0.0 <= scores["seg"] <= 1.0
        assert scores["seg"] == pytest.approx(seg_score(gt, pred))
    assert scores["ap50"] == pytest.approx(average_precision(gt, pred))
    assert scores["tp"] + scores["fn"] == scores["n_gt"] and scores["tp"] + scores["fp"] == scores["n_pred"]
    assert dice(gt, pred) == pytest.approx(dice(pred, gt))
    assert pixel_accuracy(gt, pred) == pytest.approx(pixel_accuracy(pred, gt))
    assert average_precision(gt, pred) == pytest.approx(average_precision(pred, gt))
    relabelled = evaluate(_permute_ids(gt, seed), _permute_ids(pred, seed + 1))
    for key in ("ap50", "dice", "pixel_accuracy", "tp", "fp", "fn"):
        assert relabelled[key] == pytest.approx(scores[key])


@SETTINGS
@given(label_images())
def test_perfect_prediction_scores_one(gt):
    scores = evaluate(gt, gt)
    assert scores["ap50"] == 1.0 and scores["dice"] == 1.0 and scores["pixel_accuracy"] == 1.0
    assert scores["fp"] == 0 and scores["fn"] == 0
    if gt.any():
        assert scores["seg"] == 1.0


# ------------------------------------------------------------------------------- IO


@SETTINGS
@given(st.text(max_size=12), st.integers(1, 20))
def test_parse_frames_on_any_text_gives_frames_or_a_clear_error(spec, n):
    try:
        frames = parse_frames(spec, n)
    except InputError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert frames == sorted(set(frames)) and frames and all(0 <= t < n for t in frames)


@SETTINGS
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_atomic_write_keeps_the_old_file_unless_overwrite(old, new):
    with tempfile.TemporaryDirectory() as folder:
        p = Path(folder) / "f.bin"
        atomic_write_bytes(p, old)
        with pytest.raises(OutputExistsError):
            atomic_write_bytes(p, new)
        assert p.read_bytes() == old
        atomic_write_bytes(p, new, overwrite=True)
        assert p.read_bytes() == new
        assert os.listdir(folder) == ["f.bin"], "no temporary file is left behind"


@SETTINGS
@given(arrays(np.uint16, st.tuples(st.integers(1, 5), side, side), elements=st.integers(0, 65535)))
def test_tiff_and_ctc_round_trips_keep_every_frame(labels):
    with tempfile.TemporaryDirectory() as folder:
        stack = write_tiff_atomic(Path(folder) / "labels.tif", labels)
        np.testing.assert_array_equal(read_labels(stack), labels)
        paths = write_ctc_masks(Path(folder) / "res", labels)
        assert [p.name for p in paths] == [f"mask{t:03d}.tif" for t in range(labels.shape[0])]
        for t, p in enumerate(paths):
            np.testing.assert_array_equal(read_labels(p), labels[t])


# ------------------------------------------------------------------------------- training targets


@SETTINGS
@given(label_images(max_id=4, shape=st.tuples(st.integers(3, 14), st.integers(3, 14))), st.integers(1, 3))
def test_3class_interiors_of_different_cells_never_touch(labels, width):
    classes = class_targets(labels, "3class", boundary_width=width)
    assert classes.dtype == np.uint8 and set(np.unique(classes)) <= {0, 1, 2}
    np.testing.assert_array_equal(classes > 0, labels > 0)  # classes only where labels > 0
    interior = np.where(classes == 1, labels, 0)
    padded = np.pad(interior, 1)
    h, w = labels.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            clash = (interior > 0) & (shifted > 0) & (shifted != interior)
            assert not clash.any(), "interior pixels of two cells are 8-neighbours"


@SETTINGS
@given(label_images(max_id=4))
def test_2class_is_the_foreground(labels):
    np.testing.assert_array_equal(class_targets(labels, "2class"), (labels > 0).astype(np.uint8))
