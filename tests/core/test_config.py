"""The one vocabulary of choices, and configs that validate themselves."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_cellseq.core import losses, postprocess
from napari_cellseq.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from napari_cellseq.core.config import (
    DEVICES,
    INSTANCE_CLASSES,
    LOSSES,
    OPTIMIZERS,
    OUTPUTS,
    SAMPLINGS,
    TARGETS,
    DataConfig,
    ModelConfig,
    PostprocessConfig,
    TrainConfig,
    check_device,
    from_dict,
    to_dict,
)
from napari_cellseq.core.errors import CellseqError, InputError
from napari_cellseq.core.models import build_model


def test_the_vocabulary_is_one_set_of_tuples():
    assert TARGETS == ("3class", "2class", "classes")
    assert SAMPLINGS == ("uniform", "balanced")
    assert OPTIMIZERS == ("adam", "rmsprop")
    assert LOSSES == ("weighted_ce", "normalized_focal", "edge_weighted")
    assert OUTPUTS == ("instances", "classes")
    assert DEVICES == ("auto", "cpu", "cuda", "mps")
    # the modules that act on a choice use these very tuples, and cover every choice
    assert losses.LOSSES is LOSSES and set(losses.WEIGHTING) == set(LOSSES)
    assert postprocess.OUTPUTS is OUTPUTS
    assert set(INSTANCE_CLASSES) == set(TARGETS) - {"classes"}


@pytest.mark.parametrize(
    "make, field, allowed",
    [
        (lambda: DataConfig(target="4class"), "target", TARGETS),
        (lambda: DataConfig(sampling="random"), "sampling", SAMPLINGS),
        (lambda: TrainConfig(optimizer="sgd"), "optimizer", OPTIMIZERS),
        (lambda: TrainConfig(loss="dice"), "loss", LOSSES),
        (lambda: TrainConfig(device="gpu"), "device", DEVICES),
    ],
)
def test_unknown_choice_names_the_allowed_values(make, field, allowed):
    with pytest.raises(InputError, match=f"unknown {field}") as err:
        make()
    assert all(choice in str(err.value) for choice in allowed)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: TrainConfig(amp="fp8"), "TrainConfig.amp must be True, False or one of auto, bf16, fp16, off"),
        (lambda: TrainConfig(seed=-1), "TrainConfig.seed must be a whole number from 0"),
        (lambda: TrainConfig(seed=1 << 64), "TrainConfig.seed"),
        (lambda: TrainConfig(seed=1.5), "TrainConfig.seed"),
        (lambda: TrainConfig(iterations=0), "TrainConfig.iterations must be a whole number of at least 1"),
        (lambda: TrainConfig(max_time=0.0), "TrainConfig.max_time must be a positive number"),
        (lambda: TrainConfig(max_time=float("inf")), "TrainConfig.max_time"),
        (lambda: TrainConfig(batch_size=0), "TrainConfig.batch_size"),
        (lambda: TrainConfig(lr=0.0), "TrainConfig.lr must be a positive number"),
        (lambda: TrainConfig(lr=float("nan")), "TrainConfig.lr"),
        (lambda: TrainConfig(lr="fast"), "TrainConfig.lr"),
        (lambda: TrainConfig(unroll=0), "TrainConfig.unroll"),
        (lambda: TrainConfig(checkpoint_every=-1.0), "TrainConfig.checkpoint_every"),
        (lambda: TrainConfig(focal_gamma=-0.5), "TrainConfig.focal_gamma"),
        (lambda: TrainConfig(edge_weight=-1.0), "TrainConfig.edge_weight"),
        (lambda: DataConfig(crop_size=0), "DataConfig.crop_size must be a whole number of at least 1"),
        (lambda: DataConfig(crop_size=True), "DataConfig.crop_size"),
        (lambda: DataConfig(percentiles=(99.0, 1.0)), "0 <= low < high <= 100"),
        (lambda: DataConfig(percentiles=(-1.0, 50.0)), "0 <= low < high <= 100"),
        (lambda: DataConfig(percentiles=(1.0, 101.0)), "0 <= low < high <= 100"),
        (lambda: DataConfig(percentiles=(1.0,)), "DataConfig.percentiles must be 2 numbers"),
        (lambda: DataConfig(class_weights=()), "DataConfig.class_weights"),
        (lambda: DataConfig(class_weights=(1.0, -1.0, 1.0)), "DataConfig.class_weights"),
        (lambda: DataConfig(sigma0=0.0), "DataConfig.sigma0"),
        (lambda: DataConfig(w0=-1.0), "DataConfig.w0"),
        (lambda: DataConfig(boundary_width=-1), "DataConfig.boundary_width"),
        (lambda: PostprocessConfig(min_size=-1), "PostprocessConfig.min_size must be a whole number of 0 or more"),
        (lambda: PostprocessConfig(threshold=1.5), "PostprocessConfig.threshold must be a number from 0 to 1"),
        (lambda: PostprocessConfig(threshold="0.5"), "PostprocessConfig.threshold"),
        (lambda: ModelConfig(name=""), "ModelConfig.name"),
        (lambda: ModelConfig(base_channels=0), "ModelConfig.base_channels"),
        (lambda: ModelConfig(depth=0), "ModelConfig.depth"),
        (lambda: ModelConfig(options=(("a", 1), 3)), "ModelConfig.options must be (name, value) pairs"),
        (lambda: replace(TrainConfig(), seed=-2), "TrainConfig.seed"),  # replace() checks too
    ],
)
def test_numbers_out_of_range_are_refused(make, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_defaults_and_edge_values_are_valid():
    for cls in (ModelConfig, DataConfig, TrainConfig, PostprocessConfig):
        assert from_dict(cls, to_dict(cls())) == cls()
    TrainConfig(iterations=1, max_time=None, batch_size=1, seed=0, loss=None, device="cuda:1")
    TrainConfig(seed=(1 << 64) - 1, focal_gamma=0.0, edge_weight=0.0, device="CPU".lower())
    DataConfig(percentiles=(0, 100), crop_size=1, boundary_width=0, w0=0.0, class_weights=(0.0, 1.0))
    # a ROC threshold can be exactly 0 or 1: such model files must keep loading
    PostprocessConfig(min_size=0, threshold=0.0)
    PostprocessConfig(threshold=1.0)


def test_numbers_are_stored_as_plain_python_values():
    config = TrainConfig(seed=np.int64(3), lr=np.float32(0.5), iterations=np.uint8(7), max_time=5)
    assert type(config.seed) is int and type(config.iterations) is int
    assert type(config.lr) is float and type(config.max_time) is float
    data = DataConfig(class_weights=[1, 2, 3], percentiles=np.array([2.0, 98.0]), crop_size=np.int32(64))
    assert data.class_weights == (1.0, 2.0, 3.0) and data.percentiles == (2.0, 98.0)
    assert type(data.crop_size) is int
    hash(data)  # still hashable
    post = PostprocessConfig(min_size=np.int64(20), threshold=np.float64(0.25))
    assert type(post.min_size) is int and type(post.threshold) is float


def test_config_with_numpy_values_saves_a_model_file_that_loads(tmp_path):
    """numpy scalars in a config would make torch.load(weights_only=True) refuse the file."""
    model_config = ModelConfig(base_channels=np.int64(4), depth=np.int64(2))
    ckpt = Checkpoint(model_config=model_config, data_config=DataConfig(crop_size=np.int64(32)),
                      state_dict=build_model(model_config).state_dict(),
                      postprocess_config=PostprocessConfig(min_size=np.int64(9), threshold=np.float32(0.5)))
    save_checkpoint(ckpt, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.model_config == model_config and loaded.postprocess_config.min_size == 9
    assert loaded.postprocess_config.threshold == 0.5


def test_model_file_written_before_validation_still_loads(tmp_path):
    """The payload of a file saved by the previous release (lists for tuples, ints for floats)."""
    model_config = ModelConfig(base_channels=4, depth=2)
    payload = {
        "magic": "napari-cellseq model", "format_version": 1,
        "model_config": {"name": "unet", "in_channels": 1, "num_classes": 3, "base_channels": 4, "depth": 2,
                         "options": []},
        "data_config": {"target": "3class", "boundary_width": 2, "w0": 10, "sigma0": 5, "class_weights": [1, 1, 1],
                        "percentiles": [1, 99.8], "crop_size": 160, "augment_affine": True,
                        "augment_elastic": True, "sampling": "uniform"},
        "postprocess_config": {"min_size": 15, "threshold": 1.0},
        "training": {"iterations": 3},
        "state_dict": build_model(model_config).state_dict(),
    }
    torch.save(payload, tmp_path / "old.pt")
    ckpt = load_checkpoint(tmp_path / "old.pt")
    assert ckpt.data_config == DataConfig() and ckpt.postprocess_config.threshold == 1.0


def test_from_dict_refuses_what_is_not_a_config():
    with pytest.raises(CellseqError, match="ModelConfig must be a mapping"):
        from_dict(ModelConfig, ["unet"])
    with pytest.raises(CellseqError, match="no field"):
        from_dict(ModelConfig, {"name": "unet", 3: "x"})
    with pytest.raises(InputError, match="PostprocessConfig.threshold"):
        from_dict(PostprocessConfig, {"threshold": "high"})


def test_check_device():
    assert check_device("cuda:0") == "cuda:0" and check_device("mps") == "mps"
    for bad in ("cuda:", "cuda:x", "cpu:1", "auto:0", "tpu", "", None, 3):
        with pytest.raises(InputError, match="unknown device"):
            check_device(bad)
