"""The post-processing threshold chosen after training: one place for the choice.

Two ways, scored by :mod:`napari_cellseq.core.calibration`:

* with validation frames (and ``roc_threshold``, the default): the ROC point with the largest
  Youden's J of the foreground probability on them (FCN-GoogLeNet blog, paper 003);
* otherwise, with ``TrainConfig.calibrate`` (default on): the candidate threshold with the best
  mean of SEG and AP50 on up to 4 completely painted training frames (the argmax among the
  candidates), because networks trained with the separation-weighted loss put the cell edge
  inside the painted outline (measured on HeLa, see ``calibration.calibrate_threshold``). It is
  scored on the part of those frames held out of training (:func:`holdout_for`, before the
  first step; ``TrainConfig.holdout``), so that it is chosen on pixels no optimiser step saw;
  with too little painted to hold any out, the argmax is kept.

Multi-class (target ``classes``) models get no threshold. A failure while choosing (e.g. out of
memory) keeps the trained weights and the argmax, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from ..calibration import calibrate_threshold, calibration_frames, foreground_roc
from ..errors import CellseqError
from .holdout import Holdout, choose_holdout
from .plan import TrainPlan
from .record import ThresholdChoice
from .validation import validation_truth

logger = logging.getLogger(__name__)

__all__ = ["choose_threshold", "holdout_for"]


def _calibrates(plan: TrainPlan) -> bool:
    """The run chooses its threshold by calibration on painted frames (not by ROC, not none)."""
    if plan.data_config.target == "classes" or not plan.train_config.calibrate:
        return False
    return not (plan.validation_frames and plan.roc_threshold)


def holdout_for(plan: TrainPlan) -> Holdout | None:
    """The painted pixels to hold out of training for the calibration, or None (no calibration,
    ``TrainConfig.holdout`` 0, or too little painted). Reads the frames it looks at."""
    if not _calibrates(plan) or plan.train_config.holdout <= 0:
        return None
    frames = calibration_frames(plan.frames, plan.partial_frames)
    return choose_holdout(plan.labels, frames, plan.frames, plan.partial_frames, plan.background_label,
                          plan.train_config.holdout)


def choose_threshold(
    plan: TrainPlan,
    model: torch.nn.Module,
    device: torch.device,
    movie: Any,
    trained_frames: Sequence[int],
    min_size: int,
    iteration: int,
    stopped: bool,
    holdout: Holdout | None = None,
) -> ThresholdChoice | None:
    """The threshold for the weights of ``model`` after ``iteration`` steps, or None.

    movie : ``(T, Y, X)`` float32 normalised as in training (read frame by frame);
    trained_frames : the frames trained on; min_size : post-processing minimum object size;
    holdout : what :func:`holdout_for` held out of training (scored there only).
    The ROC needs a run that was not stopped; calibration needs at least one step.
    """
    semantic = plan.data_config.target == "classes"
    if plan.validation_frames and plan.roc_threshold and not stopped:
        if semantic:
            logger.info("no foreground threshold for a multi-class model: validation frames only held out")
            return None
        frames = list(plan.validation_frames)
        truth, valid = validation_truth(plan.labels, frames, plan.partial_frames, plan.background_label)
        try:
            threshold, auc = foreground_roc(model, device, movie, truth, valid, frames)
        except (CellseqError, RuntimeError, MemoryError) as err:  # keep the trained weights
            logger.warning("no foreground threshold: the ROC on the validation frames failed (%s)", err)
            return None
        return ThresholdChoice("roc", threshold, tuple(frames), roc_auc=auc)
    if not _calibrates(plan) or iteration == 0:
        return None
    frames = calibration_frames(trained_frames, plan.partial_frames)
    if not frames:
        return None
    if holdout is None and plan.train_config.holdout > 0:
        return ThresholdChoice("calibration", None, (), note=(
            "threshold: the argmax (too little painted to hold cells out of training and choose one "
            "on them: paint more cells, or use --holdout 0 to choose on the trained pixels)"))
    try:
        threshold, report = calibrate_threshold(model, device, movie, plan.labels, frames,
                                                plan.data_config.target, min_size, plan.background_label,
                                                regions=None if holdout is None else holdout.regions)
    except (CellseqError, RuntimeError, MemoryError) as err:  # keep the trained weights
        logger.warning("post-processing not calibrated (%s): the argmax is used", err)
        return None
    return ThresholdChoice("calibration", threshold, tuple(report["frames"]), seg=report["seg"],
                           ap50=report["ap50"], argmax_seg=report["argmax_seg"],
                           argmax_ap50=report["argmax_ap50"], cells=report["cells"],
                           area_ratio=report["area_ratio"],
                           held_out=None if holdout is None else round(holdout.fraction, 4))
