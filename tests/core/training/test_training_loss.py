"""Selectable losses: weighted CE (U-LSTM), normalized focal (GRUU-Net), edge weighted (FCN-GoogLeNet)."""

import numpy as np
import pytest
import torch

from napari_cellseq.core.checkpoint import load_checkpoint, save_checkpoint
from napari_cellseq.core.config import DataConfig, ModelConfig, TrainConfig
from napari_cellseq.core.data.dataset import TrainingSet
from napari_cellseq.core.errors import CellseqError
from napari_cellseq.core.events import Step
from napari_cellseq.core.losses import (
    LOSSES,
    default_loss,
    edge_weights,
    loss_function,
    normalized_focal_loss,
    weighted_cross_entropy,
)
from napari_cellseq.core.training import fit, train

TINY_DATA = DataConfig(crop_size=48, augment_affine=False, augment_elastic=False)


def _budget(n=2, **kw):
    return TrainConfig(iterations=n, max_time=None, batch_size=2, **kw)


def test_paper_defaults_per_model():
    assert default_loss("gruunet") == "normalized_focal"
    assert default_loss("fcn_googlenet") == "edge_weighted"
    for name in ("unet", "ulstm", "segnet", "tiramisu", "deeplabv3plus"):
        assert default_loss(name) == "weighted_ce"


def test_loss_function_dispatch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 5)
    classes = torch.randint(0, 3, (2, 5, 5))
    w, v = torch.rand(2, 5, 5) + 0.5, torch.ones(2, 5, 5)
    ce = weighted_cross_entropy(logits, classes, w, v)
    assert loss_function("weighted_ce")(logits, classes, w, v) == ce
    assert loss_function("edge_weighted")(logits, classes, w, v) == ce  # edges live in the weights
    assert torch.allclose(loss_function("normalized_focal", 0.0)(logits, classes, w, v), ce)
    focal = loss_function("normalized_focal", 2.0)(logits, classes, w, v)
    assert torch.allclose(focal, normalized_focal_loss(logits, classes, w, v, gamma=2.0))
    with pytest.raises(CellseqError, match="unknown loss 'dice'"):
        loss_function("dice")


def test_weight_maps_follow_the_loss(small_movie):
    image, labels = small_movie
    cfg = DataConfig(crop_size=48)
    sep = TrainingSet(image, labels, cfg, frames=[0], weighting="separation")._weights[0][0, 0].numpy()
    cls = TrainingSet(image, labels, cfg, frames=[0], weighting="class")._weights[0][0, 0].numpy()
    edge = TrainingSet(image, labels, cfg, frames=[0], weighting="edge", edge_weight=7.0)._weights[0][0, 0].numpy()
    assert np.all(cls == 1.0)  # class weights (1, 1, 1) only: no separation map
    assert sep.max() > 2.0 and np.all(sep >= 1.0)  # w_c + w_d of eq. 9
    expected = edge_weights(labels[0].astype(np.int64), 7.0).numpy()
    np.testing.assert_array_equal(edge, expected)
    assert set(np.unique(edge)) == {1.0, 7.0}


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_trains_frame_and_sequence_models_and_is_stored(small_movie, tmp_path, loss):
    image, labels = small_movie
    for name, batch in (("unet", 2), ("ulstm", 1)):
        out = tmp_path / f"{name}.pt"
        events = list(train(image, labels, out, model_config=ModelConfig(name=name, base_channels=4),
                            data_config=TINY_DATA,
                            train_config=TrainConfig(iterations=2, max_time=None, batch_size=batch,
                                                     unroll=2, loss=loss)))
        steps = [e.loss for e in events if isinstance(e, Step)]
        assert len(steps) == 2 and all(np.isfinite(steps))
        assert load_checkpoint(out).training.loss == loss


def test_losses_differ_on_the_same_batch(small_movie, tmp_path):
    image, labels = small_movie
    first = {}
    for loss in LOSSES:
        events = train(image, labels, tmp_path / "m.pt", model_config=ModelConfig(base_channels=4),
                       data_config=TINY_DATA, train_config=_budget(1, loss=loss, seed=4))
        first[loss] = next(e.loss for e in events if isinstance(e, Step))
    assert len({round(v, 6) for v in first.values()}) == 3, first


def test_model_default_and_explicit_choice(small_movie, tmp_path):
    image, labels = small_movie
    gru = ModelConfig(name="gruunet", base_channels=4, depth=2, options=(("iterations", 1),))
    a = fit(image, labels, tmp_path / "a.pt", model_config=gru, data_config=TINY_DATA, train_config=_budget(1))
    assert a.training.loss == "normalized_focal" and a.training.focal_gamma == 2.0
    b = fit(image, labels, tmp_path / "b.pt", model_config=gru, data_config=TINY_DATA,
            train_config=_budget(1, loss="weighted_ce"))
    assert b.training.loss == "weighted_ce"
    # continuing keeps the file's loss unless one is named
    c = fit(image, labels, tmp_path / "c.pt", init=tmp_path / "a.pt", train_config=_budget(1))
    assert c.training.loss == "normalized_focal"
    d = fit(image, labels, tmp_path / "d.pt", init=tmp_path / "a.pt",
            train_config=_budget(1, loss="edge_weighted", edge_weight=5.0))
    assert d.training.loss == "edge_weighted" and d.training.edge_weight == 5.0


def test_old_model_files_without_new_fields_still_load(small_movie, tmp_path):
    image, labels = small_movie
    path = tmp_path / "m.pt"
    fit(image, labels, path, model_config=ModelConfig(base_channels=4), data_config=TINY_DATA,
        train_config=_budget(1))
    raw = torch.load(path, weights_only=True)
    del raw["data_config"]["sampling"], raw["postprocess_config"]["threshold"], raw["training"]["loss"]
    torch.save(raw, path)
    ckpt = load_checkpoint(path)
    assert ckpt.data_config.sampling == "uniform" and ckpt.postprocess_config.threshold is None
    # and it can be continued: the loss falls back to the model's paper default
    more = fit(image, labels, tmp_path / "n.pt", init=path, train_config=_budget(1))
    assert more.training.loss == "weighted_ce"
    save_checkpoint(more, tmp_path / "again.pt")
