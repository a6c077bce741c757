"""Tests of napari_cellseq.core.postprocess with hand-built class maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.postprocess import (
    instances_from_classes,
    labels_from_probabilities,
    smallest_label_dtype,
)


def _cell(cm: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> None:
    """Paint a rectangle cell: 1-px boundary ring (class 2) around interior (class 1)."""
    cm[y0:y1, x0:x1] = 2
    cm[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = 1


def test_touching_cells_split_at_shared_boundary():
    cm = np.zeros((10, 18), np.uint8)
    _cell(cm, 1, 9, 1, 9)  # 8x8 = 64 px, interior 6x6
    _cell(cm, 1, 9, 9, 17)  # touches the first along columns 8 | 9 (both class 2)
    out = instances_from_classes(cm, min_size=15)
    expected = np.zeros_like(out)
    expected[1:9, 1:9], expected[1:9, 9:17] = 1, 2
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, expected)
    assert np.array_equal(out > 0, cm > 0)


def test_boundary_rim_goes_to_nearest_seed():
    # interiors at columns 1..2 and 8; the boundary strip in between splits by path distance
    cm = np.array([[1, 1, 2, 2, 2, 2, 2, 2, 1]], np.uint8)
    out = instances_from_classes(cm, min_size=1, min_seed_size=1)
    np.testing.assert_array_equal(out, [[1, 1, 1, 1, 1, 2, 2, 2, 2]])


def test_lone_boundary_ring_is_one_object_if_large_enough():
    cm = np.zeros((7, 7), np.uint8)
    cm[1:6, 1:6] = 2
    cm[2:5, 2:5] = 0  # 5x5 ring of 16 px, no interior
    out = instances_from_classes(cm, min_size=15)
    np.testing.assert_array_equal(out, (cm > 0).astype(np.uint16))
    assert not instances_from_classes(cm, min_size=17).any()


def test_flood_only_through_connected_foreground():
    cm = np.zeros((7, 12), np.uint8)
    _cell(cm, 0, 7, 0, 5)  # seeded cell, 35 px
    cm[0:7, 6:8] = 2  # boundary strip one background column away: 14 px, no seed
    cm[0, 11] = 2  # lone pixel touching nothing
    out = instances_from_classes(cm, min_size=14)
    assert out.max() == 2
    assert len(np.unique(out[0:7, 0:5])) == 1 and out[0, 0] > 0
    assert len(np.unique(out[0:7, 6:8])) == 1 and out[0, 6] not in (0, out[0, 0])
    assert out[0, 11] == 0
    # a diagonal-only contact is no connection with connectivity 1, but is with 2
    cm = np.zeros((4, 4), np.uint8)
    cm[0:2, 0:2] = 1
    cm[2:4, 2:4] = 2
    assert instances_from_classes(cm, min_size=1).max() == 2
    np.testing.assert_array_equal(
        instances_from_classes(cm, min_size=1, connectivity=2), (cm > 0).astype(np.uint16)
    )


def test_small_seeds_are_not_split_off():
    cm = np.zeros((8, 12), np.uint8)
    _cell(cm, 0, 8, 0, 12)
    cm[1:7, 1:8] = 1  # big interior
    cm[1:7, 8:11] = 2
    cm[3, 10] = 1  # one-pixel interior speck next to the ring: not a seed by default
    assert instances_from_classes(cm).max() == 1
    split = instances_from_classes(cm, min_size=1, min_seed_size=1, seed_fraction=0.0)
    assert split.max() == 2 and np.array_equal(split > 0, cm > 0)


def test_small_objects_removed_and_relabelled_consecutively():
    cm = np.zeros((10, 10), np.uint8)
    cm[0:2, 0:2] = 1  # 4 px
    cm[5:10, 0:4] = 1  # 20 px
    cm[0:4, 6:10] = 1  # 16 px
    out = instances_from_classes(cm, target="2class", min_size=15)
    assert sorted(np.unique(out)) == [0, 1, 2]
    assert not out[0:2, 0:2].any()
    assert sorted(np.bincount(out.ravel())[1:]) == [16, 20]


def test_2class_connected_components():
    cm = np.zeros((5, 5), bool)
    cm[0, 0] = cm[1, 1] = True  # diagonal neighbours
    cm[3:5, 3:5] = True
    out = instances_from_classes(cm, target="2class", min_size=1)
    assert out.max() == 3
    out8 = instances_from_classes(cm, target="2class", min_size=1, connectivity=2)
    assert out8.max() == 2 and out8[0, 0] == out8[1, 1]


def test_dtype_switches_at_65536_objects():
    assert smallest_label_dtype(0) == np.uint16
    assert smallest_label_dtype(65535) == np.uint16
    assert smallest_label_dtype(65536) == np.uint32
    assert smallest_label_dtype(2**32) == np.uint64
    cm = np.zeros((512, 512), np.uint8)
    cm[::2, ::2] = 1  # 65536 isolated pixels
    out = instances_from_classes(cm, target="2class", min_size=1)
    assert out.dtype == np.uint32 and out.max() == 65536
    cm[0, 0] = 0
    out = instances_from_classes(cm, target="2class", min_size=1)
    assert out.dtype == np.uint16 and out.max() == 65535


@pytest.mark.parametrize("target", ["2class", "3class"])
def test_empty_input_gives_zeros(target):
    out = instances_from_classes(np.zeros((6, 9), np.int64), target=target)
    assert out.shape == (6, 9) and out.dtype == np.uint16 and not out.any()


def test_labels_from_probabilities_matches_argmax():
    cm = np.zeros((10, 18), np.uint8)
    _cell(cm, 1, 9, 1, 9)
    _cell(cm, 1, 9, 9, 17)
    probs = np.eye(3, dtype=np.float32)[cm].transpose(2, 0, 1) * 0.8 + 0.1
    np.testing.assert_array_equal(labels_from_probabilities(probs), instances_from_classes(cm))
    two = probs[:2]
    np.testing.assert_array_equal(
        labels_from_probabilities(two, target="2class", min_size=1),
        instances_from_classes((cm == 1).astype(np.uint8), target="2class", min_size=1),
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: instances_from_classes(np.full((3, 3), 3)), "classes 0..2"),
        (lambda: instances_from_classes(np.full((3, 3), 2), target="2class"), "classes 0..1"),
        (lambda: instances_from_classes(np.zeros((2, 3, 3), int)), "class_map"),
        (lambda: instances_from_classes(np.zeros((3, 3))), "dtype"),
        (lambda: instances_from_classes(np.zeros((0, 3), int)), "empty"),
        (lambda: instances_from_classes(np.zeros((3, 3), int), target="4class"), "target"),
        (lambda: instances_from_classes(np.zeros((3, 3), int), min_size=-1), "min_size"),
        (lambda: instances_from_classes(np.zeros((3, 3), int), connectivity=3), "connectivity"),
        (lambda: labels_from_probabilities(np.zeros((2, 3, 3))), "needs 3"),
        (lambda: labels_from_probabilities(np.zeros((3, 3))), "(K, Y, X)"),
        (lambda: labels_from_probabilities(np.full((3, 2, 2), np.nan)), "NaN"),
    ],
)
def test_bad_input_raises_input_error(call, match):
    with pytest.raises(InputError, match=match):
        call()


# --------------------------------------------------------------------------- properties

class_maps = arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                    elements=st.integers(0, 2))


@settings(max_examples=60, deadline=None)
@given(class_maps, st.integers(0, 6), st.sampled_from([1, 2]))
def test_output_properties(cm, min_size, connectivity):
    out = instances_from_classes(cm, min_size=min_size, connectivity=connectivity)
    assert out.shape == cm.shape and out.dtype == np.uint16
    assert not out[cm == 0].any()  # background class is never labelled
    ids = np.unique(out[out > 0])
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))  # consecutive 1..n
    structure = ndi.generate_binary_structure(2, connectivity)
    for i in ids:
        mask = out == i
        assert mask.sum() >= min_size
        assert ndi.label(mask, structure=structure)[1] == 1  # every object is connected
    if min_size <= 1:
        np.testing.assert_array_equal(out > 0, cm > 0)  # nothing of the foreground is lost


@settings(max_examples=40, deadline=None)
@given(class_maps)
def test_2class_equals_connected_components(cm):
    fg = cm == 1
    out = instances_from_classes(fg.astype(np.uint8), target="2class", min_size=1)
    ref, n = ndi.label(fg)
    assert out.max() == n
    # same partition: each reference component maps to exactly one output id and back
    pairs = {(int(a), int(b)) for a, b in zip(ref.ravel(), out.ravel())}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_object_enclosed_by_another_is_merged_into_it():
    """A ring of boundary class inside a nucleus must not cut out a cell within the cell."""
    cm = np.zeros((40, 40), dtype=np.uint8)
    cm[5:35, 5:35] = 2  # the rim of a big nucleus
    cm[7:33, 7:33] = 1  # its interior ...
    cm[15:25, 15:25] = 2  # ... with a ring of boundary class inside
    cm[17:23, 17:23] = 1  # around an inner interior patch
    labels = instances_from_classes(cm, "3class", min_size=1)
    assert labels.max() == 1
    assert np.array_equal(labels > 0, cm > 0)


def test_touching_neighbours_are_not_merged():
    cm = np.zeros((20, 30), dtype=np.uint8)
    cm[5:15, 5:25] = 2
    cm[6:14, 6:14] = 1
    cm[6:14, 16:24] = 1
    labels = instances_from_classes(cm, "3class", min_size=1)
    assert labels.max() == 2


def _ringed_frame():
    """Six large cells (interior 20x20 in a boundary ring) and one compact cell that is nearly all
    boundary class with two 3x3 specks of interior: what a network gives a small bright nucleus."""
    cm = np.zeros((120, 200), np.uint8)
    for k in range(6):
        y, x = 10 + (k // 3) * 50, 10 + (k % 3) * 40
        cm[y:y + 26, x:x + 26] = 2
        cm[y + 3:y + 23, x + 3:x + 23] = 1
    cm[60:80, 150:175] = 2
    cm[63:66, 153:156] = 1
    cm[74:77, 169:172] = 1
    return cm


def test_interior_specks_far_below_the_frames_seeds_do_not_split_a_cell():
    cm = _ringed_frame()
    labels = instances_from_classes(cm, "3class", min_size=16)
    assert labels.max() == 7
    assert np.unique(labels[60:80, 150:175]).size == 1  # one object, no fragments
    # the absolute floor alone (the behaviour before) splits it in two
    split = instances_from_classes(cm, "3class", min_size=16, seed_fraction=0.0)
    assert split.max() == 8 and np.unique(split[60:80, 150:175]).size == 2


def test_the_seed_rule_is_relative_small_cells_among_small_cells_stay_apart():
    small = np.zeros((40, 80), np.uint8)
    for k in range(4):  # four touching 3x3-interior cells in one boundary strip
        small[10:20, 5 + 18 * k:23 + 18 * k] = 2
    for k in range(4):
        small[13:16, 12 + 18 * k:15 + 18 * k] = 1
    labels = instances_from_classes(small, "3class", min_size=4)
    assert labels.max() == 4


def test_seed_fraction_is_checked():
    with pytest.raises(InputError, match="seed_fraction"):
        instances_from_classes(_ringed_frame(), "3class", seed_fraction=1.5)
