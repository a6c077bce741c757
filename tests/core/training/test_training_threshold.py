"""The threshold chosen after training: pixel-wise ROC on validation frames (FCN-GoogLeNet blog,
paper 003) or calibration on the painted frames."""

from dataclasses import replace

import numpy as np
import pytest

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.config import DataConfig, ModelConfig, TrainConfig
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.events import ThresholdChosen, Validation
from napari_cellseq.core.pipeline import segment
from napari_cellseq.core.training import fit, train

TINY = dict(model_config=ModelConfig(base_channels=4),
            data_config=DataConfig(target="2class", crop_size=48, augment_elastic=False))


def _budget(n=3):
    return TrainConfig(iterations=n, max_time=None, batch_size=2)


def test_validation_frames_set_threshold_stored_and_used(small_movie, tmp_path):
    image, labels = small_movie
    events = list(train(image, labels, tmp_path / "m.pt", train_config=_budget(),
                        frames=[0, 1, 2], validation_frames=[4], **TINY))
    chosen = [e for e in events if isinstance(e, ThresholdChosen)]
    assert len(chosen) == 1 and chosen[0].choice.method == "roc" and chosen[0].iteration == 3
    assert 0.0 <= chosen[0].choice.roc_auc <= 1.0 and chosen[0].choice.frames == (4,)
    assert not any(isinstance(e, Validation) for e in events)  # no scores were asked for
    ckpt = load_checkpoint(events[-1].path)
    thr = ckpt.postprocess_config.threshold
    assert thr == pytest.approx(chosen[0].choice.threshold)
    assert ckpt.training.threshold == chosen[0].choice
    assert ckpt.training.validation_frames == (4,) and 4 not in ckpt.training.frames
    # the stored layout is the one earlier versions wrote
    assert ckpt.training["roc_auc"] == pytest.approx(chosen[0].choice.roc_auc)
    assert ckpt.training["validation_frames"] == [4] and ckpt.training["threshold"] == thr
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
    assert ckpt.training.frames == (0, 2, 4) and ckpt.postprocess_config.threshold is not None
    assert ckpt.training.threshold.method == "roc"


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
    assert events[-1].reason == "stopped" and not any(isinstance(e, ThresholdChosen) for e in events)
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


def test_training_stores_and_segmentation_uses_the_calibrated_threshold(small_movie, tmp_path):
    """With ``holdout=0`` the threshold is scored on the trained frames (the layout of earlier
    versions); the held-out default is tested in test_holdout.py."""
    image, labels = small_movie
    budget = dict(iterations=3, max_time=None, batch_size=2)
    kwargs = dict(model_config=ModelConfig(base_channels=4), data_config=DataConfig(crop_size=48))
    events = list(train(image, labels, tmp_path / "m.pt", train_config=TrainConfig(**budget, holdout=0.0),
                        frames=[0, 2], **kwargs))
    chosen = [e.choice for e in events if isinstance(e, ThresholdChosen)]
    ckpt = load_checkpoint(tmp_path / "m.pt")
    choice = ckpt.training.threshold
    assert chosen == [choice] and choice.method == "calibration" and choice.frames == (0, 2)
    assert ckpt.postprocess_config.threshold == choice.threshold
    assert 0.0 <= choice.seg <= 1.0 and 0.0 <= choice.ap50 <= 1.0
    assert ckpt.training["calibration"]["frames"] == [0, 2]  # the stored layout of earlier versions
    assert choice.held_out is None and "trained frames [0, 2]" in choice.summary()
    # without calibration: argmax, nothing recorded
    plain = fit(image, labels, tmp_path / "p.pt", train_config=TrainConfig(**budget, calibrate=False),
                frames=[0, 2], **kwargs)
    assert plain.postprocess_config.threshold is None and plain.training.threshold is None
    assert "calibration" not in plain.training


def test_validation_frames_can_be_scored_while_the_painted_frames_calibrate(small_movie, tmp_path):
    """The napari widget's validation frame: held out, scored after every checkpoint with the
    network in memory, the threshold still calibrated on the training frames."""
    from napari_cellseq.core.events import CheckpointSaved, ValidationScores
    from napari_cellseq.core.metrics import evaluate

    image, labels = small_movie
    events = list(train(image, labels, tmp_path / "m.pt", train_config=TrainConfig(
        iterations=2, max_time=None, batch_size=2, checkpoint_every=1e-9), validation_frames=[5],
        roc_threshold=False, score_checkpoints=True, model_config=ModelConfig(base_channels=4),
        data_config=DataConfig(crop_size=48)))
    kinds = [type(e).__name__ for e in events if not type(e).__name__ == "Step"]
    assert kinds == ["Started", "CheckpointSaved", "ValidationScores", "CheckpointSaved", "ValidationScores",
                     "ThresholdChosen", "ValidationScores", "CheckpointSaved", "Done"]
    scores = [e for e in events if isinstance(e, ValidationScores)]
    assert [s.iteration for s in scores] == [1, 2, 2] and all(s.frames == (5,) for s in scores)
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.training.threshold.method == "calibration" and 5 not in ckpt.training.frames
    assert ckpt.training.validation.scores == pytest.approx(scores[-1].scores, nan_ok=True)  # (area_ratio: nan without a match)
    # the final scores are those of segmenting frame 5 with the saved model
    assert evaluate(labels[5], segment(image[5], ckpt))["seg"] == pytest.approx(scores[-1].scores["seg"], abs=0.02)
    assert sum(isinstance(e, CheckpointSaved) for e in events) == 3
