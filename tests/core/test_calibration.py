"""Scoring foreground thresholds: calibration on painted frames, Youden's J of a pixel-wise ROC
(the choice a run makes: tests/core/training/test_training_threshold.py)."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_cellseq.core.calibration import (
    CANDIDATE_THRESHOLDS,
    calibrate_threshold,
    calibration_frames,
    youden_threshold,
)
from napari_cellseq.core.metrics import evaluate, pixel_roc


class _SquaredForeground(torch.nn.Module):
    """Frame model whose foreground probability is the squared input: the argmax (x^2 > 0.5)
    makes blurred cells too small, a threshold near 0.25 (x > 0.5) gets their painted size."""

    temporal = False
    stride = 1

    def forward(self, x):  # (N, 1, H, W) -> (N, 3, H, W) logits
        fg = x.clamp(0, 1) ** 2
        eps = 1e-6
        return torch.cat([torch.log(1 - fg + eps), torch.log(fg + eps), torch.full_like(fg, -30.0)], 1)


def _blurred_disks():
    labels = np.zeros((2, 96, 96), dtype=np.int32)
    yy, xx = np.mgrid[:96, :96]
    for t in range(2):
        for i, (cy, cx) in enumerate([(25, 25), (30, 70), (70, 40 + 10 * t)], start=1):
            labels[t][(yy - cy) ** 2 + (xx - cx) ** 2 <= 12**2] = i
    image = np.stack([ndi.gaussian_filter((lab > 0).astype(np.float32), 3) for lab in labels])
    return image.astype(np.float32), labels


def test_calibration_frames_skip_partial_and_spread():
    assert calibration_frames([0, 1, 2], partial_frames=[1]) == [0, 2]
    picked = calibration_frames(list(range(10)), partial_frames=[])
    assert picked == [0, 3, 6, 9]
    assert calibration_frames([3], partial_frames=[3]) == []


def test_calibration_picks_the_threshold_that_restores_cell_size():
    image, labels = _blurred_disks()
    threshold, report = calibrate_threshold(_SquaredForeground(), torch.device("cpu"), image, labels,
                                            [0, 1], "3class", min_size=5)
    assert threshold is not None and threshold in CANDIDATE_THRESHOLDS and threshold <= 0.35
    assert report["seg"] > report["argmax_seg"] + 0.1
    assert report["frames"] == [0, 1] and report["threshold"] == threshold
    # the scores reported are those of segmenting with the chosen threshold
    from napari_cellseq.core.inference import Predictor
    from napari_cellseq.core.postprocess import labels_from_probabilities

    probs = dict(Predictor(_SquaredForeground(), torch.device("cpu")).predict(image))
    pred = np.stack([labels_from_probabilities(probs[t], "3class", 5, threshold=threshold) for t in (0, 1)])
    assert evaluate(labels, pred)["seg"] == pytest.approx(report["seg"], abs=1e-4)


def test_youden_threshold_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    truth = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    fpr, tpr, thr, auc = pixel_roc(scores, truth)
    # J = TPR - FPR at each threshold: 0.9: .25, 0.8: .5, 0.7: .25, 0.6: .5, 0.4: .25, ...
    # the first maximum (highest threshold) wins
    assert youden_threshold(fpr, tpr, thr) == pytest.approx(0.8)
    assert auc == pytest.approx(0.75)
