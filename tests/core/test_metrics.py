"""Tests of napari_cellseq.core.metrics with hand-computed expected values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.metrics import (
    average_precision,
    dice,
    evaluate,
    match_instances,
    per_class_dice,
    pixel_accuracy,
    pixel_roc,
    seg_score,
)


def _square_gt() -> np.ndarray:
    gt = np.zeros((8, 8), np.uint16)
    gt[0:4, 0:4] = 1  # 16 px
    return gt


def test_partial_overlap_seg_and_ap():
    gt = _square_gt()
    pred = np.zeros_like(gt)
    pred[0:2, 0:4] = 7  # 8 px inside
    pred[2, 0:2] = 7  # 2 px inside -> 10 inside
    pred[0, 4:6] = 7  # 2 px outside -> |S| = 12, |R u S| = 18
    assert seg_score(gt, pred) == pytest.approx(10 / 18)
    assert average_precision(gt, pred) == 1.0
    m = match_instances(gt, pred)
    assert (m.tp, m.fp, m.fn, m.n_gt, m.n_pred) == (1, 0, 0, 1, 1)
    assert m.pairs[0][:2] == (1, 7)
    assert m.pairs[0][2] == pytest.approx(10 / 18)


def test_half_overlap_is_not_a_seg_match_but_is_ap50_match():
    gt = _square_gt()
    pred = np.zeros_like(gt)
    pred[0:2, 0:4] = 3  # exactly 8 of 16 px: not > half; IoU = 8/16 = 0.5
    assert seg_score(gt, pred) == 0.0
    assert average_precision(gt, pred, 0.5) == 1.0
    assert average_precision(gt, pred, 0.51) == 0.0


def test_merge_two_gt_into_one_pred():
    gt = np.zeros((6, 8), np.int32)
    gt[0:4, 0:4] = 1  # 16 px
    gt[0:4, 4:6] = 2  # 8 px
    pred = (gt > 0).astype(np.int32) * 9  # 24 px
    # A: 16 > 8 -> J = 16/24; B: 8 > 4 -> J = 8/24
    assert seg_score(gt, pred) == pytest.approx((16 / 24 + 8 / 24) / 2)
    m = match_instances(gt, pred)
    assert (m.tp, m.fp, m.fn) == (1, 0, 1)  # only A reaches IoU 2/3 >= 0.5
    assert average_precision(gt, pred) == pytest.approx(0.5)


def test_split_one_gt_into_two_preds():
    gt = _square_gt()
    pred = np.zeros_like(gt)
    pred[0:4, 0:3] = 1  # 12 px, IoU 12/16
    pred[0:4, 3] = 2  # 4 px, IoU 4/16
    assert seg_score(gt, pred) == pytest.approx(0.75)
    m = match_instances(gt, pred)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    assert average_precision(gt, pred) == pytest.approx(0.5)


def test_matching_maximises_total_iou():
    # one row of pixels: A = cols 0..9, B = cols 10..19; Y = cols 0..2, X = cols 3..13
    gt = np.zeros((1, 20), np.int32)
    gt[0, :10], gt[0, 10:] = 1, 2
    pred = np.zeros_like(gt)
    pred[0, 0:3], pred[0, 3:14] = 5, 6
    # IoU(A,X) = 7/14 = 0.5, IoU(B,X) = 4/17, IoU(A,Y) = 3/10: greedy A-X gives one match,
    # the optimum A-Y + B-X (0.535 > 0.5) gives two
    m = match_instances(gt, pred, iou_threshold=0.2)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert [(g, p) for g, p, _ in m.pairs] == [(1, 5), (2, 6)]
    assert sum(i for *_, i in m.pairs) == pytest.approx(0.3 + 4 / 17)
    m = match_instances(gt, pred, iou_threshold=0.5)
    assert [(g, p) for g, p, _ in m.pairs] == [(1, 6)]


def test_empty_cases():
    empty = np.zeros((5, 5), np.uint8)
    one = empty.copy()
    one[1:3, 1:3] = 4
    assert math.isnan(seg_score(empty, empty))
    assert average_precision(empty, empty) == 1.0
    assert dice(empty, empty) == 1.0
    assert pixel_accuracy(empty, empty) == 1.0
    assert math.isnan(seg_score(empty, one))
    assert average_precision(empty, one) == 0.0
    assert average_precision(one, empty) == 0.0
    assert seg_score(one, empty) == 0.0
    assert dice(one, empty) == 0.0
    assert pixel_accuracy(one, empty) == pytest.approx(21 / 25)


def test_dice_and_pixel_accuracy_ignore_ids():
    gt = np.zeros((4, 4), np.int64)
    gt[0, :] = 1  # 4 px
    pred = np.zeros_like(gt)
    pred[0, :2] = 2
    pred[1, :2] = 3  # 4 px, 2 shared
    assert dice(gt, pred) == pytest.approx(2 * 2 / 8)
    assert pixel_accuracy(gt, pred) == pytest.approx(12 / 16)


def test_stack_matches_only_within_frames():
    gt = np.zeros((2, 6, 6), np.int32)
    pred = np.zeros_like(gt)
    gt[0, 0:2, 0:2] = 1
    gt[1, 4:6, 4:6] = 1
    pred[0, 4:6, 4:6] = 1  # same place as gt frame 1, but in frame 0
    pred[1, 0:2, 0:2] = 1
    assert seg_score(gt, pred) == 0.0
    assert average_precision(gt, pred) == 0.0
    pred2 = pred.copy()
    pred2[1] = gt[1] * 3
    res = evaluate(gt, pred2)
    assert res["seg"] == pytest.approx(0.5)
    assert (res["tp"], res["fp"], res["fn"], res["n_gt"], res["n_pred"]) == (1, 1, 1, 2, 2)
    assert res["ap50"] == pytest.approx(1 / 3)
    only1 = evaluate(gt, pred2, frames=[1])
    assert only1["seg"] == 1.0 and only1["ap50"] == 1.0 and only1["n_gt"] == 1
    assert only1["dice"] == 1.0 and only1["pixel_accuracy"] == 1.0


def test_evaluate_is_json_serialisable_python_numbers():
    gt = _square_gt()
    res = evaluate(gt, gt)
    assert set(res) == {"seg", "ap50", "dice", "pixel_accuracy", "n_gt", "n_pred", "tp", "fp", "fn",
                        "area_ratio"}
    for key, value in res.items():
        assert type(value) in (float, int), key
    json.dumps(res)
    assert res == {"seg": 1.0, "ap50": 1.0, "dice": 1.0, "pixel_accuracy": 1.0, "n_gt": 1,
                   "n_pred": 1, "tp": 1, "fp": 0, "fn": 0, "area_ratio": 1.0}


def test_area_ratio_of_one_matched_pair():
    gt = np.zeros((20, 20), np.uint16)
    gt[2:12, 2:12] = 4  # 100 px
    pred = np.zeros_like(gt)
    pred[2:13, 2:13] = 9  # 121 px, IoU 100/121 >= 0.5
    assert evaluate(gt, pred)["area_ratio"] == pytest.approx(1.21)


def test_area_ratio_is_the_median_over_matched_pairs_of_all_frames():
    gt = np.zeros((2, 40, 40), np.uint16)
    pred = np.zeros_like(gt)
    gt[0, 0:10, 0:10] = 1  # 100 px -> 11x11: 1.21
    pred[0, 0:11, 0:11] = 5
    gt[0, 20:30, 20:30] = 2  # 100 px -> 9x9: 0.81
    pred[0, 20:29, 20:29] = 6
    gt[1, 0:10, 0:10] = 3  # frame 1: 100 px -> 10x12: 1.2
    pred[1, 0:10, 0:12] = 7
    gt[1, 20:30, 20:30] = 8  # 100 px -> 4x4 inside: IoU 0.16, not a pair (fn)
    pred[1, 22:26, 22:26] = 2
    pred[1, 32:40, 32:40] = 3  # on background: fp, not a pair
    res = evaluate(gt, pred)
    assert (res["tp"], res["fp"], res["fn"]) == (3, 2, 1)
    assert res["area_ratio"] == pytest.approx(1.2)  # median of 0.81, 1.2, 1.21
    assert evaluate(gt, pred, frames=[0])["area_ratio"] == pytest.approx((1.21 + 0.81) / 2)


def test_area_ratio_is_nan_without_a_matched_pair():
    gt = _square_gt()
    assert math.isnan(evaluate(gt, np.zeros_like(gt))["area_ratio"])
    assert math.isnan(evaluate(np.zeros_like(gt), gt)["area_ratio"])


def test_integral_floats_and_huge_ids_are_accepted():
    gt = _square_gt().astype(np.float32)
    pred = np.where(gt > 0, 10**12, 0).astype(np.int64)
    assert evaluate(gt, pred)["seg"] == 1.0


def test_many_objects_use_sparse_counting():
    # 2500 one-pixel-wide objects on each side: too many pairs for a dense histogram
    gt = np.arange(1, 5001, dtype=np.int32).reshape(50, 100)
    gt[:, ::2] = 0
    ids = np.unique(gt[gt > 0])
    perm = np.random.default_rng(0).permutation(ids.size)
    lut = np.zeros(gt.max() + 1, np.int64)
    lut[ids] = ids[perm] * 3 + 1
    res = evaluate(gt, lut[gt])
    assert (res["seg"], res["ap50"], res["tp"], res["fp"]) == (1.0, 1.0, 2500, 0)


@pytest.mark.parametrize(
    "gt, pred, frames, match",
    [
        (np.zeros((3, 4, 4)), np.zeros((3, 4, 5)), None, "same image"),
        (np.full((4, 4), 0.5), np.zeros((4, 4)), None, "integer instance ids"),
        (np.zeros((4, 4), bool), np.zeros((4, 4), int), None, "boolean mask"),
        (np.zeros((1, 2, 4, 4), int), np.zeros((1, 2, 4, 4), int), None, "(T, Y, X)"),
        (np.full((4, 4), -1), np.zeros((4, 4), int), None, "negative"),
        (np.zeros((2, 4, 4), int), np.zeros((2, 4, 4), int), [2], "out of range"),
        (np.zeros((2, 4, 4), int), np.zeros((2, 4, 4), int), [], "empty"),
        (np.zeros((2, 4, 4), int), np.zeros((2, 4, 4), int), [1, 1], "repeated"),
        (np.zeros((4, 4), int), np.zeros((4, 4), int), [0], "single"),
    ],
)
def test_evaluate_rejects_bad_input(gt, pred, frames, match):
    with pytest.raises(InputError, match=match):
        evaluate(gt, pred, frames=frames)


def test_match_instances_rejects_stacks_and_bad_threshold():
    with pytest.raises(InputError, match="one"):
        match_instances(np.zeros((2, 3, 3), int), np.zeros((2, 3, 3), int))
    with pytest.raises(InputError, match="iou_threshold"):
        match_instances(np.zeros((3, 3), int), np.zeros((3, 3), int), iou_threshold=0)


def test_per_class_dice_hand_computed():
    gt = np.array([[0, 0, 1, 1], [2, 2, 2, 0]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 0]])
    # class 0: gt 3, pred 3, both 2 -> 4/6; class 1: 2, 3, 2 -> 4/5; class 2: 3, 2, 2 -> 4/5
    assert per_class_dice(gt, pred, 4) == pytest.approx([4 / 6, 4 / 5, 4 / 5, 1.0])
    with pytest.raises(InputError, match="num_classes"):
        per_class_dice(gt, pred, 2)


def test_pixel_roc_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    truth = np.array([True, False, True, False])
    fpr, tpr, thr, auc = pixel_roc(scores, truth)
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    assert auc == pytest.approx(0.75)
    # ties: one point per distinct score, a tie between classes counts half
    fpr, tpr, thr, auc = pixel_roc(np.array([[0.5, 0.5], [0.1, 0.1]]), np.array([[1, 0], [1, 0]]))
    np.testing.assert_allclose(thr, [np.inf, 0.5, 0.1])
    assert auc == pytest.approx(0.5)
    with pytest.raises(InputError, match="one class"):
        pixel_roc(scores, np.ones(4, bool))


# --------------------------------------------------------------------------- properties

label_images = arrays(np.int32, st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8)),
                      elements=st.integers(0, 5))


@settings(max_examples=40, deadline=None)
@given(label_images)
def test_prediction_equal_to_gt_is_perfect(gt):
    res = evaluate(gt, gt)
    assert res["ap50"] == 1.0 and res["dice"] == 1.0 and res["pixel_accuracy"] == 1.0
    assert res["fp"] == 0 and res["fn"] == 0
    assert res["seg"] == 1.0 or (math.isnan(res["seg"]) and not gt.any())


@settings(max_examples=40, deadline=None)
@given(label_images, label_images, st.permutations(list(range(1, 6))))
def test_scores_do_not_depend_on_id_values(gt, pred, perm):
    pred = pred[: gt.shape[0], : gt.shape[1], : gt.shape[2]]
    gt = gt[: pred.shape[0], : pred.shape[1], : pred.shape[2]]
    lut = np.array([0] + [100 * p + 7 for p in perm])
    a, b = evaluate(gt, pred), evaluate(gt, lut[pred])
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], nan_ok=True), key


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(2, 30), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])),
       st.data())
def test_roc_auc_is_probability_of_correct_ranking(scores, data):
    truth = data.draw(arrays(bool, scores.shape))
    if truth.all() or not truth.any():
        return
    _, _, _, auc = pixel_roc(scores, truth)
    pos, neg = scores[truth][:, None], scores[~truth][None, :]
    expected = np.mean((pos > neg) + 0.5 * (pos == neg))
    assert auc == pytest.approx(expected)
