"""Validation frames: annotated frames held out of training, and how the model scores on them.

With validation frames, :func:`~napari_cellseq.core.training.train` leaves them out of the
training frames (:func:`split_validation_frames`); after training it may choose the
post-processing threshold on them from a pixel-wise ROC (:mod:`.threshold`), and with
``score_checkpoints`` it segments them after every checkpoint with the network in memory (no
model file is read back, no second network is built) and yields
:class:`~napari_cellseq.core.events.ValidationScores` (:func:`validation_scores`). The napari
Train widget's "validation frame" is this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..config import PostprocessConfig
from ..data.dataset import annotated_frames
from ..errors import InputError
from ..inference import segmentation_predictor
from ..metrics import evaluate, evaluate_classes
from ..postprocess import class_map_from_probabilities, labels_from_probabilities

__all__ = ["split_validation_frames", "validation_truth", "validation_scores"]


def split_validation_frames(labels: Any, frames: Sequence[int] | None, validation_frames: Sequence[int],
                            annotated: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """``(validation frames, training frames)`` of ``labels (T, Y, X)``: the validation frames
    must be annotated and are left out of the training frames (default: every annotated frame).

    ``annotated``: the annotated frames when the caller knows them (else found in ``labels``).
    """
    annotated = list(annotated_frames(labels) if annotated is None else annotated)
    validation = sorted(set(int(t) for t in validation_frames))
    missing = [t for t in validation if t not in annotated]
    if missing:
        raise InputError(
            f"validation frames {missing} have no annotation: paint them completely, or choose "
            f"annotated frames (annotated: {annotated})"
        )
    rest = [t for t in (annotated if frames is None else frames) if t not in validation]
    if not rest:
        raise InputError(
            f"every training frame is a validation frame ({validation}), so nothing is left to train "
            "on: leave at least one annotated frame for training (annotate another frame or use no "
            "validation frame)"
        )
    return validation, rest


def validation_truth(labels: Any, frames: Sequence[int], partial_frames: Sequence[int],
                     background_label: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Foreground truth and counted pixels, each ``(len(frames), Y, X) bool``, of ``frames`` of
    ``labels (T, Y, X)`` in the order given (instance ids; ``background_label`` is background;
    unpainted pixels of partly annotated frames do not count). Reads only those frames."""
    partial = set(int(t) for t in partial_frames)
    truth, valid = [], []
    for t in frames:
        frame = np.asarray(labels[t])
        painted = frame > 0
        truth.append(painted if background_label is None else painted & (frame != background_label))
        valid.append(painted if t in partial else np.ones(frame.shape, dtype=bool))
    return np.stack(truth), np.stack(valid)


def validation_scores(
    model: torch.nn.Module,
    device: torch.device,
    movie: Any,
    labels: Any,
    frames: Sequence[int],
    target: str,
    postprocess: PostprocessConfig,
    background_label: int | None = None,
) -> dict[str, Any]:
    """Scores of ``model`` segmenting ``frames`` as ``segment`` would.

    movie : ``(T, Y, X)`` float32 normalised as in training (any array-like read frame by
    frame); labels : ``(T, Y, X)`` painted instance ids, or class values ``class + 1`` for target
    ``"classes"``. Instance targets: :func:`~napari_cellseq.core.metrics.evaluate` (``seg``,
    ``ap50``, ``dice``, ...) with ``postprocess``'s threshold and minimum size; target
    ``"classes"``: :func:`~napari_cellseq.core.metrics.evaluate_classes` (``mean_dice``,
    ``dice_per_class``, ...). The model is put in eval mode (the caller restores train mode).
    """
    model.eval()
    predictor = segmentation_predictor(model, device)
    truth, predicted = [], []
    for t, probs in predictor.predict(movie, sorted(int(t) for t in frames)):
        gt = np.asarray(labels[t]).astype(np.int64)
        if target == "classes":
            if background_label is not None:
                gt[gt == background_label] = 1  # the explicit background is class 0 (value 1)
            pred = class_map_from_probabilities(probs, postprocess.threshold).astype(np.int64) + 1
        else:
            if background_label is not None:
                gt[gt == background_label] = 0
            pred = labels_from_probabilities(probs, target, postprocess.min_size,
                                             threshold=postprocess.threshold).astype(np.int64)
        truth.append(gt)
        predicted.append(pred)
    score = evaluate_classes if target == "classes" else evaluate
    return score(np.stack(truth), np.stack(predicted))
