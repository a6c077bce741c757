import numpy as np
import pytest

from napari_cellseq.core.data.targets import class_targets, loss_weights, separation_weights


def two_touching():
    labels = np.zeros((12, 20), dtype=np.int32)
    labels[2:10, 2:10] = 1
    labels[2:10, 10:18] = 2
    return labels


def test_2class_is_foreground():
    labels = two_touching()
    assert np.array_equal(class_targets(labels, "2class"), (labels > 0).astype(np.uint8))


def test_3class_rim_separates_touching_cells():
    labels = two_touching()
    classes = class_targets(labels, "3class", boundary_width=1)
    # the outer rim and the shared edge are boundary; interiors are 1
    assert classes[2, 5] == 2 and classes[9, 5] == 2 and classes[5, 2] == 2
    assert classes[5, 9] == 2 and classes[5, 10] == 2
    assert classes[5, 5] == 1 and classes[5, 14] == 1
    interior = classes == 1
    # each cell's interior lies strictly inside that cell, so the two interiors never touch
    assert not np.any(interior[:, 9]) and not np.any(interior[:, 10])
    assert np.all(classes[labels == 0] == 0)


def test_3class_width_two():
    labels = two_touching()
    classes = class_targets(labels, "3class", boundary_width=2)
    assert classes[5, 8] == 2 and classes[5, 11] == 2 and classes[5, 7] == 1


def test_separation_weight_matches_eq8():
    labels = np.zeros((1, 30), dtype=np.int32)
    labels[0, 0:5] = 1
    labels[0, 15:20] = 2
    w = separation_weights(labels, w0=10.0, sigma0=5.0)
    # pixel 10: d1 = 6 (to pixel 4) ... d to cell 1 = 10-4 = 6, to cell 2 = 15-10 = 5
    assert w[0, 10] == pytest.approx(10 * np.exp(-((6 + 5) ** 2) / 25), rel=1e-5)
    # inside cell 1 at pixel 2: d1 = 0, d2 = 13
    assert w[0, 2] == pytest.approx(10 * np.exp(-(13**2) / 25), rel=1e-5)


def test_single_cell_has_no_separation_weight():
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[5:10, 5:10] = 1
    assert np.all(separation_weights(labels, 10.0, 5.0) == 0)


def test_loss_weights_add_class_weight():
    labels = two_touching()
    classes = class_targets(labels, "3class")
    w = loss_weights(classes, labels, (1.0, 2.0, 3.0), w0=10.0, sigma0=5.0)
    assert w[0, 0] >= 1.0
    # the shared edge gets the class weight of the boundary plus a strong separation weight
    assert w[5, 10] > 3.0 + 5.0
