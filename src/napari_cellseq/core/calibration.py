"""Scoring foreground thresholds: a pixel-wise ROC on validation frames, or SEG/AP50 on painted frames.

This module measures; :mod:`napari_cellseq.core.training.threshold` decides which of the two
a run uses and stores the choice.

:func:`foreground_roc` (FCN-GoogLeNet blog, paper 003): the blog turns its network output into
masks "using simple thresholding and connected component operations" and shows that "a
pixel-by-pixel ROC analysis of out-of-sample images demonstrates that simple thresholding
creates a good classifier". It does not say how the threshold was picked; we take the ROC point
with the largest Youden's J = TPR - FPR (the point farthest above the chance diagonal). The
score is the foreground probability ``1 - p(background)``, so this works for every model with a
background class 0 and instance targets (``"2class"``, which is the blog's, and ``"3class"``).

:func:`calibrate_threshold`: the candidate threshold that segments the painted frames best,
scored on the held-out regions of those frames when training held some out
(:mod:`napari_cellseq.core.training.holdout`: the default), else on the whole frames.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .data.normalize import sample_stride
from .inference import segmentation_predictor
from .metrics import evaluate, pixel_roc
from .postprocess import labels_from_probabilities

logger = logging.getLogger(__name__)

__all__ = [
    "youden_threshold",
    "foreground_roc",
    "calibration_frames",
    "calibrate_threshold",
    "region_objects",
]


def youden_threshold(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> float:
    """The threshold of the ROC point maximising Youden's J = TPR - FPR.

    ``fpr``, ``tpr``, ``thresholds``: 1-D arrays as :func:`~napari_cellseq.core.metrics.pixel_roc`
    returns them (the first point, at threshold ``+inf``, is never chosen).
    """
    j = np.asarray(tpr)[1:] - np.asarray(fpr)[1:]
    return float(np.asarray(thresholds)[1:][int(np.argmax(j))])


def foreground_roc(
    model: torch.nn.Module,
    device: torch.device,
    movie: np.ndarray,
    truth: np.ndarray,
    valid: np.ndarray,
    frames: Sequence[int],
) -> tuple[float, float]:
    """``(threshold, roc_auc)`` of the foreground probability of ``model`` on ``frames``.

    movie : ``(T, Y, X)`` float32, normalised as in training (any array-like read frame by frame).
    truth, valid : ``(len(frames), Y, X)`` bool, in the order of ``frames``: foreground pixels,
    and pixels that count (annotated), as ``training.validation.validation_truth`` gives them.
    The model is put in eval mode (the caller restores train mode if it goes on training).
    """
    model.eval()
    predictor = segmentation_predictor(model, device)
    index = {int(t): i for i, t in enumerate(frames)}
    scores, labels = [], []
    for t, probs in predictor.predict(movie, list(frames)):
        keep = valid[index[t]]
        scores.append((1.0 - probs[0])[keep])
        labels.append(truth[index[t]][keep])
    s, y = np.concatenate(scores), np.concatenate(labels)
    step = sample_stride(s.size)  # at most SAMPLE_PIXELS: the sort of the scores stays under a second
    s, y = s[::step], y[::step]
    fpr, tpr, thresholds, auc = pixel_roc(s, y)
    threshold = youden_threshold(fpr, tpr, thresholds)
    logger.info("pixel-wise ROC on validation frames %s: AUC %.4f, threshold %.4f (Youden's J)",
                list(frames), auc, threshold)
    return threshold, auc


#: Foreground thresholds :func:`calibrate_threshold` tries (``None``: the per-pixel argmax). Up
#: to 0.8: on held-out pixels, where probabilities are less sharp than on the fitted ones, the
#: best threshold can lie above 0.5 (0.65 on the 8-bit nuclei set of issue 13).
CANDIDATE_THRESHOLDS: tuple[float | None, ...] = (None, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55,
                                                  0.6, 0.65, 0.7, 0.75, 0.8)
#: At most this many annotated frames (evenly spread) are segmented for the calibration.
MAX_CALIBRATION_FRAMES = 4


def calibration_frames(frames: Sequence[int], partial_frames: Sequence[int]) -> list[int]:
    """Up to :data:`MAX_CALIBRATION_FRAMES` completely annotated ``frames``, evenly spread."""
    full = sorted(set(int(t) for t in frames) - set(int(t) for t in partial_frames))
    if len(full) <= MAX_CALIBRATION_FRAMES:
        return full
    picks = np.linspace(0, len(full) - 1, MAX_CALIBRATION_FRAMES).round().astype(int)
    return [full[i] for i in sorted(set(picks.tolist()))]


def region_objects(labels: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``labels (Y, X)`` keeping only the objects with at least half their area in ``region``
    (``(Y, X)`` bool): the predictions a held-out region is scored against."""
    lab = np.asarray(labels)
    flat = lab.ravel().astype(np.intp)
    inside = np.bincount(flat[np.asarray(region).ravel()], minlength=int(flat.max(initial=0)) + 1)
    total = np.bincount(flat, minlength=inside.size)
    keep = 2 * inside >= total
    keep[0] = False
    return np.where(keep[lab], lab, 0)


def calibrate_threshold(
    model: torch.nn.Module,
    device: torch.device,
    movie: np.ndarray,
    labels: np.ndarray,
    frames: Sequence[int],
    target: str,
    min_size: int,
    background_label: int | None = None,
    regions: Mapping[int, np.ndarray] | None = None,
) -> tuple[float | None, dict]:
    """The foreground threshold that segments the painted ``frames`` best, and its scores.

    movie : ``(T, Y, X)`` float32, normalised as in training; labels : ``(T, Y, X)`` the painted
    instance ids (``background_label``, if given, counts as background).
    regions : frame -> ``(Y, X)`` bool held-out pixels (:class:`~napari_cellseq.core.training.
    holdout.Holdout`); given, only those frames are scored, and in each only the painted cells
    inside its region against the predicted objects lying mostly (half their area) inside it.
    Each frame is predicted once; every threshold of :data:`CANDIDATE_THRESHOLDS` then turns the
    probabilities into instances, scored by the mean of SEG and AP50 over ``frames`` (ties go to
    the earlier candidate, argmax first). Returns ``(threshold, {"frames", "threshold", "seg",
    "ap50", "argmax_seg", "argmax_ap50", "area_ratio", "cells"})`` (``area_ratio``: median
    predicted / painted area of the matched cells at the chosen threshold; ``cells``: painted
    cells scored). The model is put in eval mode.

    Why (departure from the papers, which take the argmax): networks trained with the
    separation-weighted loss put the cell edge inside the painted outline, so the argmax makes
    cells too small. On HeLa (U-Net trained on frames 0-4) the threshold picked on frames 0-4
    (0.35) raised SEG on the held-out frames 10-19 from 0.877 to 0.904 and AP50 from 0.892 to
    0.908.
    """
    model.eval()
    predictor = segmentation_predictor(model, device)
    frames = sorted(int(t) for t in (regions if regions is not None else frames))
    truth = np.zeros((len(frames),) + movie.shape[1:], dtype=np.int64)
    preds = {th: np.zeros(truth.shape, dtype=np.uint32) for th in CANDIDATE_THRESHOLDS}
    for i, (t, probs) in enumerate(predictor.predict(movie, frames)):
        gt = np.asarray(labels[t]).astype(np.int64)
        if background_label is not None:
            gt[gt == background_label] = 0
        region = None if regions is None else regions[t]
        truth[i] = gt if region is None else np.where(region, gt, 0)
        for th in CANDIDATE_THRESHOLDS:
            pred = labels_from_probabilities(probs, target, min_size, threshold=th)
            preds[th][i] = pred if region is None else region_objects(pred, region)
    scores = {th: evaluate(truth, preds[th]) for th in CANDIDATE_THRESHOLDS}
    best = max(CANDIDATE_THRESHOLDS, key=lambda th: (scores[th]["seg"] + scores[th]["ap50"]) / 2
               - 1e-9 * CANDIDATE_THRESHOLDS.index(th))
    report = {
        "frames": frames,
        "threshold": best,
        "seg": round(float(scores[best]["seg"]), 4),
        "ap50": round(float(scores[best]["ap50"]), 4),
        "argmax_seg": round(float(scores[None]["seg"]), 4),
        "argmax_ap50": round(float(scores[None]["ap50"]), 4),
        "area_ratio": _rounded(scores[best].get("area_ratio")),
        "cells": int(scores[best]["n_gt"]),
    }
    where = "held-out pixels of painted frames" if regions is not None else "painted frames"
    logger.info("post-processing calibrated on %s %s: threshold %s, SEG %.4f AP50 %.4f "
                "(argmax: SEG %.4f AP50 %.4f)", where, frames, best, report["seg"], report["ap50"],
                report["argmax_seg"], report["argmax_ap50"])
    return best, report


def _rounded(value: float | None) -> float | None:
    """``value`` to 4 places; ``None`` for a missing or NaN score."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), 4)
