"""Foreground threshold from a pixel-wise ROC on validation frames (FCN-GoogLeNet blog, paper 003)."""

from dataclasses import replace

import numpy as np
import pytest

from napari_cellseq.core.calibration import youden_threshold
from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.config import DataConfig, ModelConfig, TrainConfig
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.events import Validation
from napari_cellseq.core.metrics import pixel_roc
from napari_cellseq.core.pipeline import segment
from napari_cellseq.core.training import fit, train

TINY = dict(model_config=ModelConfig(base_channels=4),
            data_config=DataConfig(target="2class", crop_size=48, augment_elastic=False))


def _budget(n=3):
    return TrainConfig(iterations=n, max_time=None, batch_size=2)


def test_youden_threshold_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    truth = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    fpr, tpr, thr, auc = pixel_roc(scores, truth)
    # J = TPR - FPR at each threshold: 0.9: .25, 0.8: .5, 0.7: .25, 0.6: .5, 0.4: .25, ...
    # the first maximum (highest threshold) wins
    assert youden_threshold(fpr, tpr, thr) == pytest.approx(0.8)
    assert auc == pytest.approx(0.75)


def test_validation_frames_set_threshold_stored_and_used(small_movie, tmp_path):
    image, labels = small_movie
    events = list(train(image, labels, tmp_path / "m.pt", train_config=_budget(),
                        frames=[0, 1, 2], validation_frames=[4], **TINY))
    validation = [e for e in events if isinstance(e, Validation)]
    assert len(validation) == 1 and 0.0 <= validation[0].scores["roc_auc"] <= 1.0
    ckpt = load_checkpoint(events[-1].path)
    thr = ckpt.postprocess_config.threshold
    assert thr == pytest.approx(validation[0].scores["threshold"])
    assert ckpt.training["roc_auc"] == pytest.approx(validation[0].scores["roc_auc"])
    assert ckpt.training["validation_frames"] == [4] and 4 not in ckpt.training["frames"]
    # segmentation uses the stored threshold: 0 makes every pixel foreground, 1 only pixels with
    # p(background) == 0 (none after 3 steps); thresholds above 1 are refused by the config
    everything = segment(image, replace(ckpt, postprocess_config=replace(ckpt.postprocess_config, threshold=0.0)))
    nothing = segment(image, replace(ckpt, postprocess_config=replace(ckpt.postprocess_config, threshold=1.0)))
    assert np.all(everything > 0) and not nothing.any()


def test_three_class_model_threshold_and_default_frames(small_movie, tmp_path):
    image, labels = small_movie
    painted = labels.copy()
    painted[[1, 3]] = 0
    ckpt = fit(image, painted, tmp_path / "m.pt", model_config=ModelConfig(base_channels=4),
               data_config=DataConfig(crop_size=48), train_config=_budget(2), validation_frames=[5])
    assert ckpt.training["frames"] == [0, 2, 4] and ckpt.postprocess_config.threshold is not None


def test_bad_validation_frames_are_refused(small_movie, tmp_path):
    image, labels = small_movie
    painted = labels.copy()
    painted[3:] = 0
    with pytest.raises(InputError, match=r"validation frames \[4\] have no annotation"):
        next(train(image, painted, tmp_path / "m.pt", train_config=_budget(), validation_frames=[4], **TINY))
    with pytest.raises(InputError, match="leave at least one annotated frame"):
        next(train(image, painted, tmp_path / "m.pt", train_config=_budget(), validation_frames=[0, 1, 2],
                   **TINY))


def test_stopped_training_and_continuing_drop_the_threshold(small_movie, tmp_path):
    image, labels = small_movie
    events = list(train(image, labels, tmp_path / "s.pt", train_config=_budget(), validation_frames=[5],
                        stop=lambda: True, **TINY))
    assert events[-1].reason == "stopped" and not any(isinstance(e, Validation) for e in events)
    first = fit(image, labels, tmp_path / "a.pt", train_config=_budget(1), validation_frames=[5], **TINY)
    assert first.postprocess_config.threshold is not None
    # a threshold chosen for the old weights is not carried to new weights
    second = fit(image, labels, tmp_path / "b.pt", init=first,
                 train_config=TrainConfig(iterations=1, max_time=None, batch_size=2, calibrate=False))
    assert second.postprocess_config.threshold is None
    assert second.postprocess_config.min_size == first.postprocess_config.min_size


def test_validation_frames_without_cells_are_refused_before_training(small_movie, tmp_path):
    image, labels = small_movie
    painted = labels.copy()
    painted[4] = 0
    painted[4, 0, 0] = 65535  # painted, but only background
    with pytest.raises(InputError, match="both cell and background"):
        next(train(image, painted, tmp_path / "m.pt", train_config=_budget(), validation_frames=[4],
                   background_label=65535, **TINY))
