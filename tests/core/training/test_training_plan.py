"""plan_run: a run resolved and checked with no optimiser step and no network built."""

import pickle

import numpy as np
import pytest
import torch

from napari_cellseq.core.builtin import BUILTIN, DEFAULT_INIT
from napari_cellseq.core.checkpoint import Checkpoint, save_checkpoint
from napari_cellseq.core.config import DataConfig, ModelConfig, PostprocessConfig, TrainConfig
from napari_cellseq.core.errors import CellseqError, InputError
from napari_cellseq.core.losses import normalized_focal_loss, weighted_cross_entropy
from napari_cellseq.core.models import build_model, default_model_config
from napari_cellseq.core.training import CROP_BATCH, SEQUENCE_BATCH, TrainingRecord, TrainPlan, plan_run

BUDGET = TrainConfig(iterations=3, max_time=None)


@pytest.fixture()
def no_network(monkeypatch):
    """Fail if planning builds a network or takes an optimiser step."""
    import napari_cellseq.core.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("planning built a network")

    monkeypatch.setattr(models, "build_model", refuse)
    monkeypatch.setattr(torch.optim.Optimizer, "step", refuse)


def test_defaults_resolved_without_a_network(small_movie, no_network):
    image, labels = small_movie
    painted = np.zeros_like(labels)
    painted[[0, 2]] = labels[[0, 2]]
    plan = plan_run(image, painted, train_config=BUDGET)
    assert isinstance(plan, TrainPlan)
    assert plan.frames == (0, 2) and plan.validation_frames == ()
    assert plan.model_config == ModelConfig() and plan.data_config == DataConfig()
    assert plan.loss == "weighted_ce" and plan.loss_fn is weighted_cross_entropy and plan.weighting == "separation"
    assert not plan.temporal and plan.batch_size == CROP_BATCH
    assert plan.device == torch.device("cpu")
    # the default start (core.builtin.DEFAULT_INIT): the built-in U-Net, fine-tuned, or random weights
    if DEFAULT_INIT == BUILTIN:
        assert plan.init_state is not None and plan.prior.started_from == "builtin-unet"
    else:
        assert plan.init_state is None and plan.prior is None
    assert plan.postprocess_config is None  # the minimum size is learnt when the data are built
    assert plan.image.shape == image.shape


def test_temporal_model_batch_and_paper_loss(small_movie, no_network):
    image, labels = small_movie
    assert plan_run(image, labels, ModelConfig(name="ulstm"), train_config=BUDGET).batch_size == SEQUENCE_BATCH
    assert plan_run(image, labels, ModelConfig(name="ulstm"), train_config=BUDGET).temporal
    gru = plan_run(image, labels, default_model_config("gruunet"), train_config=BUDGET)
    assert gru.loss == "normalized_focal" and gru.weighting == "class"
    assert gru.loss_fn.func is normalized_focal_loss and gru.loss_fn.keywords == {"gamma": 2.0}
    fcn = plan_run(image, labels, default_model_config("fcn_googlenet"),
                   train_config=TrainConfig(iterations=1, max_time=None, loss="weighted_ce"))
    assert fcn.loss == "weighted_ce"  # an explicit choice wins over the paper's


def test_classes_follow_the_target(small_movie, no_network):
    image, labels = small_movie
    assert plan_run(image, labels, data_config=DataConfig(target="2class"),
                    train_config=BUDGET).model_config.num_classes == 2
    classes = np.zeros_like(labels)
    classes[0] = 1
    classes[0, 10:20, 10:20] = 4
    plan = plan_run(image, classes, data_config=DataConfig(target="classes"), train_config=BUDGET)
    assert plan.model_config.num_classes == 4 and plan.frames == (0,)


def test_validation_frames_are_split_off(small_movie, no_network):
    image, labels = small_movie
    plan = plan_run(image, labels, train_config=BUDGET, validation_frames=[4, 1])
    assert plan.validation_frames == (1, 4) and plan.frames == (0, 2, 3, 5)
    assert plan.roc_threshold and not plan.score_checkpoints
    scored = plan_run(image, labels, train_config=BUDGET, validation_frames=[1], roc_threshold=False,
                      score_checkpoints=True)
    assert scored.score_checkpoints and not scored.roc_threshold
    # scoring needs completely painted validation frames
    with pytest.raises(InputError, match=r"validation frame\(s\) \[1\] are marked partly annotated"):
        plan_run(image, labels, train_config=BUDGET, validation_frames=[1], partial_frames=(1,),
                 score_checkpoints=True)
    with pytest.raises(InputError, match="nothing is left to train on"):
        plan_run(image, labels, train_config=BUDGET, frames=[1], validation_frames=[1])


def test_continuing_merges_the_model_file(small_movie, tmp_path):
    image, labels = small_movie
    config = ModelConfig(name="unet", base_channels=4, num_classes=3)
    ckpt = Checkpoint(config, DataConfig(crop_size=64, w0=3.0), build_model(config).state_dict(),
                      PostprocessConfig(min_size=40, threshold=0.3),
                      training={"iterations": 7, "seconds": 2.5, "loss": "edge_weighted"})
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    plan = plan_run(image, labels, data_config=DataConfig(crop_size=48, sampling="balanced"),
                    train_config=BUDGET, init=path)
    assert plan.model_config == config
    assert plan.data_config == DataConfig(crop_size=48, w0=3.0, sampling="balanced")  # crop and sampling asked
    assert plan.postprocess_config == PostprocessConfig(min_size=40, threshold=None)  # old threshold dropped
    assert plan.loss == "edge_weighted"  # the file's loss, as none is named
    assert plan.prior == TrainingRecord(iterations=7, seconds=2.5, loss="edge_weighted")
    assert set(plan.init_state) == set(ckpt.state_dict)
    with pytest.raises(InputError, match="--init holds a 'unet' model but --model asks for 'ulstm'"):
        plan_run(image, labels, ModelConfig(name="ulstm"), train_config=BUDGET, init=path)
    semantic = save_checkpoint(Checkpoint(config, DataConfig(target="classes"), ckpt.state_dict),
                               tmp_path / "classes.pt")
    classes = np.zeros_like(labels)
    classes[0, :5, :5], classes[0, 5:9, 5:9] = 1, 5
    with pytest.raises(InputError, match="the labels have 5 classes but the model to continue from predicts 3"):
        plan_run(image, classes, train_config=BUDGET, init=semantic)


@pytest.mark.parametrize("make, message", [
    (lambda: dict(train_config=TrainConfig(iterations=None, max_time=None)), "budget"),
    (lambda: dict(train_config=TrainConfig(iterations=0, max_time=None)), "iterations"),
    (lambda: dict(train_config=TrainConfig(iterations=1, batch_size=0)), "batch"),
    (lambda: dict(train_config=TrainConfig(iterations=1, loss="dice")), "loss"),
    (lambda: dict(train_config=TrainConfig(iterations=1, device="tpu")), "device 'tpu'"),
    (lambda: dict(model_config=ModelConfig(name="resnet"), train_config=BUDGET), "unknown model 'resnet'"),
    (lambda: dict(data_config=DataConfig(target="blobs"), train_config=BUDGET), "target"),
    (lambda: dict(frames=[9], train_config=BUDGET), r"frames \[9\] do not all exist"),
    (lambda: dict(validation_frames=[9], train_config=BUDGET), r"validation frames \[9\] have no annotation"),
])
def test_bad_runs_fail_while_planning(small_movie, no_network, make, message):
    """Refused by the config itself or by the plan, never later."""
    image, labels = small_movie
    with pytest.raises(CellseqError, match=message):
        plan_run(image, labels, **make())


def test_bad_inputs_fail_while_planning(small_movie, no_network):
    image, labels = small_movie
    with pytest.raises(InputError, match="no annotated frame"):
        plan_run(image, np.zeros_like(labels), train_config=BUDGET)
    with pytest.raises(InputError, match="shape"):
        plan_run(image, labels[:3], train_config=BUDGET)
    bad = image.astype(np.float32)
    bad[2, 4, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        plan_run(bad, labels, train_config=BUDGET)


def test_a_plan_pickles_for_a_worker_process(small_movie):
    image, labels = small_movie
    plan = plan_run(image, labels, default_model_config("gruunet"), train_config=BUDGET)
    again = pickle.loads(pickle.dumps(plan))
    assert again.loss == plan.loss and again.model_config == plan.model_config
    assert np.array_equal(again.image, plan.image)
    assert "TrainPlan(model='gruunet'" in repr(plan) and "array" not in repr(plan)


def test_a_pool_of_movies_and_its_origin_are_planned(small_movie, no_network):
    image, labels = small_movie
    plan = plan_run(image, labels, train_config=BUDGET, movie_lengths=[2, 4], origin={"script": "x.py", "seed": 3})
    assert plan.movie_lengths == (2, 4) and plan.origin == {"script": "x.py", "seed": 3}
    with pytest.raises(InputError, match="do not split the 6 frames"):
        plan_run(image, labels, train_config=BUDGET, movie_lengths=[2, 2])
    with pytest.raises(InputError, match="origin"):
        plan_run(image, labels, train_config=BUDGET, origin={"seed": object()})
