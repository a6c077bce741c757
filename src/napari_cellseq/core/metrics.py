"""Scores of instance label images against a reference (ground truth).

Instance label images are integer arrays of shape ``(Y, X)`` (one image) or ``(T, Y, X)`` (a
stack of frames): 0 is background, every other value is the id of one object. Ids are arbitrary
(not necessarily consecutive, not linked across frames); matching of objects is always within a
frame, so the same id in two frames counts as two objects.

Object overlaps are counted once per frame with :func:`numpy.bincount` on the joint labels (no
loop over object pairs), so a 700x1100 frame with a few hundred objects is scored in a few
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .errors import InputError

__all__ = [
    "MatchResult",
    "seg_score",
    "match_instances",
    "average_precision",
    "dice",
    "pixel_accuracy",
    "evaluate",
    "per_class_dice",
    "evaluate_classes",
    "pixel_roc",
]

# A dense (n_gt + 1) x (n_pred + 1) overlap histogram is used up to this many cells; above it the
# overlapping pixels' pair codes are counted with np.unique instead.
_DENSE_PAIRS_MAX = 1 << 22


@dataclass(frozen=True)
class MatchResult:
    """One-to-one matching of the objects of one frame (see :func:`match_instances`).

    tp : matched pairs; fp : predicted objects left unmatched; fn : reference objects left
    unmatched; n_gt / n_pred : objects in the reference / prediction.
    pairs : ``(gt_id, pred_id, iou)`` of every matched pair, ids as in the input arrays, sorted by
    ``gt_id``.
    """

    tp: int
    fp: int
    fn: int
    n_gt: int
    n_pred: int
    pairs: tuple[tuple[int, int, float], ...]


@dataclass(frozen=True)
class _Overlap:
    """Object ids, areas and non-zero pairwise intersections of one frame (1-D arrays)."""

    gt_ids: np.ndarray
    gt_areas: np.ndarray
    pred_ids: np.ndarray
    pred_areas: np.ndarray
    gi: np.ndarray  # index into gt_ids of each overlapping pair
    pj: np.ndarray  # index into pred_ids of each overlapping pair
    inter: np.ndarray  # intersection in pixels of each pair (> 0)

    def iou(self) -> np.ndarray:
        union = self.gt_areas[self.gi] + self.pred_areas[self.pj] - self.inter
        return self.inter / union


# --------------------------------------------------------------------------- validation


def _as_labels(arr: Any, name: str) -> np.ndarray:
    """``arr`` as a non-negative integer array (integral floats are cast to int64)."""
    a = np.asarray(arr)
    if a.dtype == bool:
        raise InputError(
            f"{name} is a boolean mask but instance labels are needed: label its connected "
            "components first (e.g. skimage.measure.label)"
        )
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.floor(a)):
            raise InputError(
                f"{name} has non-integer values (dtype {a.dtype}): labels must be integer "
                "instance ids; pass a label image, not a probability or intensity image"
            )
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise InputError(
            f"{name} has dtype {a.dtype}: labels must be integer instance ids; pass an integer "
            "label image"
        )
    if a.size == 0:
        raise InputError(f"{name} is empty (shape {a.shape}): pass a non-empty label image")
    if a.dtype.kind == "i" and a.min() < 0:
        raise InputError(
            f"{name} has negative values: labels must be 0 (background) or positive instance ids"
        )
    if a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max:
        raise InputError(f"{name} has ids above 2**63-1: relabel it with smaller ids")
    return a


def _check_pair(gt: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(gt, pred)`` of equal shape ``(Y, X)`` or ``(T, Y, X)``, as ``(T, Y, X)``."""
    g = _as_labels(gt, "gt")
    p = _as_labels(pred, "pred")
    if g.ndim not in (2, 3):
        raise InputError(
            f"gt has {g.ndim} dimensions (shape {g.shape}): pass a (Y, X) image or a (T, Y, X) "
            "stack of frames"
        )
    if g.shape != p.shape:
        raise InputError(
            f"gt has shape {g.shape} but pred {p.shape}: pass a prediction of the same image"
        )
    if g.ndim == 2:
        g, p = g[None], p[None]
    return g, p


def _check_frames(frames: Sequence[int] | None, n_frames: int, ndim: int) -> list[int]:
    if frames is None:
        return list(range(n_frames))
    if ndim == 2:
        raise InputError(
            "frames was given but gt is a single (Y, X) image: pass frames=None, or pass "
            "(T, Y, X) stacks"
        )
    out = []
    for f in frames:
        if isinstance(f, (bool, np.bool_)) or not isinstance(f, (int, np.integer)):
            raise InputError(f"frame index {f!r} is not an integer: pass integer frame indices")
        if not 0 <= f < n_frames:
            raise InputError(
                f"frame index {f} is out of range: the stack has {n_frames} frames, pass "
                f"indices 0..{n_frames - 1}"
            )
        out.append(int(f))
    if not out:
        raise InputError("frames is empty: pass at least one frame index, or None for all frames")
    if len(set(out)) != len(out):
        raise InputError(f"frames {out} has repeated indices: pass each frame index once")
    return out


# --------------------------------------------------------------------------- overlaps


def _compact(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(idx, ids, areas)``: ``idx`` is ``frame`` flattened with ids replaced by 1..n (0 stays
    background), ``ids[k-1]`` is the original id of compact label ``k``, ``areas`` its size."""
    flat = frame.ravel()
    if flat.dtype != np.intp:
        flat = flat.astype(np.intp)
    top = int(flat.max())
    if top <= max(1 << 16, 4 * flat.size):
        counts = np.bincount(flat, minlength=top + 1)
        ids = np.flatnonzero(counts[1:]) + 1
        lut = np.zeros(top + 1, dtype=np.intp)
        lut[ids] = np.arange(1, ids.size + 1)
        return lut[flat], ids, counts[ids].astype(np.int64)
    uniq, inv, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if uniq[0] == 0:
        return inv.ravel(), uniq[1:], counts[1:].astype(np.int64)
    return inv.ravel() + 1, uniq, counts.astype(np.int64)


def _overlap(gt_frame: np.ndarray, pred_frame: np.ndarray) -> _Overlap:
    """Overlaps of one validated pair of ``(Y, X)`` frames."""
    gi, gt_ids, gt_areas = _compact(gt_frame)
    pj, pred_ids, pred_areas = _compact(pred_frame)
    width = pred_ids.size + 1
    cells = (gt_ids.size + 1) * width
    if cells <= _DENSE_PAIRS_MAX:
        hist = np.bincount(gi * width + pj, minlength=cells).reshape(gt_ids.size + 1, width)
        rows, cols = np.nonzero(hist[1:, 1:])
        inter = hist[1:, 1:][rows, cols].astype(np.int64)
    else:
        both = (gi > 0) & (pj > 0)
        codes, inter = np.unique(
            gi[both].astype(np.int64) * width + pj[both], return_counts=True
        )
        rows, cols = codes // width - 1, codes % width - 1
        inter = inter.astype(np.int64)
    return _Overlap(gt_ids, gt_areas, pred_ids, pred_areas, rows, cols, inter)


def _seg_parts(ov: _Overlap) -> tuple[float, int]:
    """Sum of SEG Jaccards and number of reference objects of one frame."""
    matched = 2 * ov.inter > ov.gt_areas[ov.gi]
    return float(np.sum(ov.iou()[matched])), int(ov.gt_ids.size)


def _match(ov: _Overlap, iou_threshold: float) -> MatchResult:
    iou = ov.iou()
    cand = iou >= iou_threshold
    pairs: tuple[tuple[int, int, float], ...] = ()
    if np.any(cand):
        rows_u, r_inv = np.unique(ov.gi[cand], return_inverse=True)
        cols_u, c_inv = np.unique(ov.pj[cand], return_inverse=True)
        mat = np.zeros((rows_u.size, cols_u.size))
        mat[r_inv, c_inv] = iou[cand]
        r, c = linear_sum_assignment(mat, maximize=True)
        keep = mat[r, c] > 0
        r, c = r[keep], c[keep]
        pairs = tuple(
            (int(ov.gt_ids[rows_u[a]]), int(ov.pred_ids[cols_u[b]]), float(mat[a, b]))
            for a, b in zip(r, c)
        )
        pairs = tuple(sorted(pairs))
    tp = len(pairs)
    n_gt, n_pred = int(ov.gt_ids.size), int(ov.pred_ids.size)
    return MatchResult(tp=tp, fp=n_pred - tp, fn=n_gt - tp, n_gt=n_gt, n_pred=n_pred, pairs=pairs)


def _check_threshold(iou_threshold: float) -> float:
    t = float(iou_threshold)
    if not 0.0 < t <= 1.0:
        raise InputError(
            f"iou_threshold is {iou_threshold}: pass a value in (0, 1], e.g. 0.5"
        )
    return t


# --------------------------------------------------------------------------- public scores


def seg_score(gt: Any, pred: Any) -> float:
    """Cell Tracking Challenge SEG score.

    ``gt``, ``pred``: integer instance labels of equal shape ``(Y, X)`` or ``(T, Y, X)``.
    A reference object R matches the predicted object S with ``|R ∩ S| > 0.5 |R|`` (at most one
    such S exists); its score is the Jaccard index ``|R ∩ S| / |R ∪ S|``, 0 when unmatched.
    Returns the mean over all reference objects of all frames, ``nan`` when ``gt`` has none.
    """
    g, p = _check_pair(gt, pred)
    total, count = 0.0, 0
    for t in range(g.shape[0]):
        s, n = _seg_parts(_overlap(g[t], p[t]))
        total, count = total + s, count + n
    return total / count if count else float("nan")


def match_instances(gt_frame: Any, pred_frame: Any, iou_threshold: float = 0.5) -> MatchResult:
    """One-to-one matching of the objects of one frame.

    ``gt_frame``, ``pred_frame``: integer instance labels of equal shape ``(Y, X)``.
    Among pairs with IoU >= ``iou_threshold`` (in (0, 1]) the matching maximising the total IoU
    is chosen (Hungarian algorithm on the overlapping pairs only).
    """
    thr = _check_threshold(iou_threshold)
    g, p = _check_pair(gt_frame, pred_frame)
    if np.ndim(gt_frame) != 2:
        raise InputError(
            f"match_instances takes one (Y, X) frame but got shape {np.shape(gt_frame)}: pass "
            "gt[t], pred[t], or use average_precision for stacks"
        )
    return _match(_overlap(g[0], p[0]), thr)


def average_precision(gt: Any, pred: Any, iou_threshold: float = 0.5) -> float:
    """``TP / (TP + FP + FN)`` at ``iou_threshold`` summed over frames (StarDist/Cellpose "AP").

    ``gt``, ``pred``: integer instance labels of equal shape ``(Y, X)`` or ``(T, Y, X)``;
    matching as in :func:`match_instances`, within each frame. 1.0 when both have no object.
    """
    thr = _check_threshold(iou_threshold)
    g, p = _check_pair(gt, pred)
    tp = fp = fn = 0
    for t in range(g.shape[0]):
        m = _match(_overlap(g[t], p[t]), thr)
        tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
    denom = tp + fp + fn
    return tp / denom if denom else 1.0


def _dice_fg(g: np.ndarray, p: np.ndarray) -> float:
    a, b = g > 0, p > 0
    denom = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return float(2.0 * np.count_nonzero(a & b) / denom) if denom else 1.0


def dice(gt: Any, pred: Any) -> float:
    """Foreground Dice ``2|A ∩ B| / (|A| + |B|)`` of ``gt > 0`` vs ``pred > 0``.

    ``gt``, ``pred``: integer labels of equal shape ``(Y, X)`` or ``(T, Y, X)``; 1.0 when both
    are all background.
    """
    g, p = _check_pair(gt, pred)
    return _dice_fg(g, p)


def pixel_accuracy(gt: Any, pred: Any) -> float:
    """Fraction of pixels where ``(gt > 0) == (pred > 0)``.

    ``gt``, ``pred``: integer labels of equal shape ``(Y, X)`` or ``(T, Y, X)``.
    """
    g, p = _check_pair(gt, pred)
    return float(np.count_nonzero((g > 0) == (p > 0)) / g.size)


def evaluate(gt: Any, pred: Any, frames: Sequence[int] | None = None) -> dict[str, Any]:
    """All instance scores of a prediction in one pass.

    ``gt``, ``pred``: integer instance labels of equal shape ``(Y, X)`` or ``(T, Y, X)``.
    ``frames``: indices of the ``(T, Y, X)`` frames to score (default all), e.g. the annotated
    ones.

    Returns a dict of python numbers: ``seg`` (:func:`seg_score`, ``nan`` without reference
    objects), ``ap50`` (:func:`average_precision` at IoU 0.5), ``dice``, ``pixel_accuracy``,
    ``n_gt`` / ``n_pred`` (objects summed over frames), ``tp``, ``fp``, ``fn`` (at IoU 0.5) and
    ``area_ratio``: the median, over the pairs matched at IoU >= 0.5 (the matching of ``ap50``,
    all frames pooled), of predicted area / reference area (> 1: objects drawn too large; ``nan``
    without a matched pair). A 10x10 reference square matched to an 11x11 prediction is 1.21.
    """
    g, p = _check_pair(gt, pred)
    idx = _check_frames(frames, g.shape[0], np.ndim(gt))
    if len(idx) != g.shape[0]:
        g, p = g[idx], p[idx]
    seg_sum, n_ref = 0.0, 0
    tp = fp = fn = n_gt = n_pred = 0
    ratios: list[np.ndarray] = []
    for t in range(g.shape[0]):
        ov = _overlap(g[t], p[t])
        s, n = _seg_parts(ov)
        seg_sum, n_ref = seg_sum + s, n_ref + n
        m = _match(ov, 0.5)
        tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
        n_gt, n_pred = n_gt + m.n_gt, n_pred + m.n_pred
        if m.pairs:
            ratios.append(_area_ratios(ov, m.pairs))
    denom = tp + fp + fn
    return {
        "seg": seg_sum / n_ref if n_ref else float("nan"),
        "ap50": tp / denom if denom else 1.0,
        "dice": _dice_fg(g, p),
        "pixel_accuracy": float(np.count_nonzero((g > 0) == (p > 0)) / g.size),
        "n_gt": n_gt,
        "n_pred": n_pred,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "area_ratio": float(np.median(np.concatenate(ratios))) if ratios else float("nan"),
    }


def _area_ratios(ov: _Overlap, pairs: tuple[tuple[int, int, float], ...]) -> np.ndarray:
    """Predicted area / reference area of each matched ``(gt_id, pred_id, iou)`` pair of a frame
    (``ov.gt_ids`` and ``ov.pred_ids`` are sorted, so ids are found by bisection)."""
    ids = np.array([(a, b) for a, b, _ in pairs], dtype=np.int64)
    gt_area = ov.gt_areas[np.searchsorted(ov.gt_ids, ids[:, 0])]
    pred_area = ov.pred_areas[np.searchsorted(ov.pred_ids, ids[:, 1])]
    return pred_area / gt_area


# --------------------------------------------------------------------------- semantic / pixel


def per_class_dice(gt_classes: Any, pred_classes: Any, num_classes: int) -> list[float]:
    """Dice of every class of two semantic class maps.

    ``gt_classes``, ``pred_classes``: integer arrays of equal shape (any ndim) with values in
    ``0 .. num_classes-1``. Returns ``num_classes`` floats; a class absent from both gets 1.0.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or (
        num_classes < 1
    ):
        raise InputError(f"num_classes is {num_classes!r}: pass a positive integer, e.g. 3")
    k = int(num_classes)
    g = _as_labels(gt_classes, "gt_classes")
    p = _as_labels(pred_classes, "pred_classes")
    if g.shape != p.shape:
        raise InputError(
            f"gt_classes has shape {g.shape} but pred_classes {p.shape}: pass class maps of the "
            "same image"
        )
    for name, a in (("gt_classes", g), ("pred_classes", p)):
        if int(a.max()) >= k:
            raise InputError(
                f"{name} has class {int(a.max())} but num_classes is {k}: pass class maps with "
                f"values 0..{k - 1}, or the right num_classes"
            )
    cm = np.bincount(g.ravel().astype(np.intp) * k + p.ravel(), minlength=k * k).reshape(k, k)
    inter = np.diag(cm)
    sizes = cm.sum(axis=0) + cm.sum(axis=1)
    return [float(2 * i / s) if s else 1.0 for i, s in zip(inter, sizes)]


def evaluate_classes(
    gt: Any, pred: Any, frames: Sequence[int] | None = None, num_classes: int | None = None
) -> dict[str, Any]:
    """Scores of a semantic class map against painted classes.

    ``gt``, ``pred``: integer maps of equal shape ``(Y, X)`` or ``(T, Y, X)`` written as painted
    values: ``v > 0`` is class ``v - 1`` (1 = background), 0 = not painted (``gt``) or not
    segmented (``pred``). Only pixels painted in ``gt`` are scored; a ``pred`` of 0 there is
    wrong for every class. ``frames`` as in :func:`evaluate`. ``num_classes`` defaults to the
    largest value in either map.

    Returns ``dice_per_class`` (:func:`per_class_dice` per class, index = class), ``mean_dice``
    (mean over the classes present in ``gt`` or ``pred``), ``pixel_accuracy``, ``num_classes``
    and ``n_pixels`` (pixels scored).
    """
    g, p = _check_pair(gt, pred)
    idx = _check_frames(frames, g.shape[0], np.ndim(gt))
    g, p = g[idx], p[idx]
    painted = g > 0
    if not np.any(painted):
        raise InputError("gt has no painted pixel in the frames scored: pass the painted class labels")
    k = int(max(int(g.max()), int(p.max()))) if num_classes is None else int(num_classes)
    gc = g[painted].astype(np.int64) - 1
    pc = p[painted].astype(np.int64) - 1
    pc[pc < 0] = k  # not segmented: an extra class that matches nothing
    if int(gc.max()) >= k or int(pc.max()) > k:
        raise InputError(
            f"the labels hold classes up to {max(int(gc.max()), int(pc.max())) + 1} but num_classes "
            f"is {k}: pass the right number of classes"
        )
    scores = per_class_dice(gc, pc, k + 1)[:k]
    present = [c for c in range(k) if np.any(gc == c) or np.any(pc == c)]
    return {
        "dice_per_class": scores,
        "mean_dice": float(np.mean([scores[c] for c in present])) if present else 1.0,
        "pixel_accuracy": float(np.count_nonzero(gc == pc) / gc.size),
        "num_classes": k,
        "n_pixels": int(gc.size),
    }


def pixel_roc(
    scores: Any, truth: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Pixel-wise ROC curve of a score map against a truth map.

    ``scores``: real array (any shape), e.g. a cell probability ``(Y, X)`` float32.
    ``truth``: boolean (or 0/1 integer) array of the same shape, True for positive pixels.
    A pixel is called positive when ``score >= threshold``.

    Returns ``(fpr, tpr, thresholds, auc)``: 1-D float64 arrays of equal length, one point per
    distinct score plus a first point ``(0, 0)`` at threshold ``+inf``; thresholds decrease,
    fpr and tpr increase to 1. ``auc`` is the trapezoidal area under the curve.
    """
    s = np.asarray(scores)
    t = np.asarray(truth)
    if s.dtype.kind not in "biuf":
        raise InputError(f"scores has dtype {s.dtype}: pass a real-valued score map")
    if t.dtype != bool:
        if t.dtype.kind not in "iuf" or not np.all((t == 0) | (t == 1)):
            raise InputError("truth must be boolean (or 0/1): pass e.g. labels > 0")
        t = t.astype(bool)
    if s.shape != t.shape:
        raise InputError(
            f"scores has shape {s.shape} but truth {t.shape}: pass maps of the same image"
        )
    s = s.ravel().astype(np.float64)
    t = t.ravel()
    if not np.all(np.isfinite(s)):
        raise InputError("scores has NaN or infinite values: pass a finite score map")
    n_pos = int(np.count_nonzero(t))
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InputError(
            "truth has only one class (all positive or all negative), so the ROC is undefined: "
            "include both cell and background pixels"
        )
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]
    tps = np.cumsum(t[order])[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    thresholds = np.r_[np.inf, s_sorted[last]]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)
    return fpr, tpr, thresholds, auc
