"""Built-in starting weights (core/builtin.py): the shipped files, what users type, fine-tuning.

These tests hold for whatever weight files the package ships (quick or final ones): they check
behaviour (an ordinary model file, the contract of its network, cells found in an easy synthetic
movie, the resolution of ``builtin`` / names / files), never a score a given file reaches.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_cellseq.core import builtin as bi
from napari_cellseq.core.checkpoint import load_checkpoint, save_checkpoint
from napari_cellseq.core.config import DataConfig, TrainConfig
from napari_cellseq.core.errors import CellseqError, InputError
from napari_cellseq.core.models import FrameModel, TemporalModel, default_model_config, model_info
from napari_cellseq.core.pipeline import segment
from napari_cellseq.core.training import fit, plan_run

NAMES = [b.name for b in bi.BUILTINS]


@pytest.fixture(scope="module")
def easy_movie():
    """A (3, 96, 96) synthetic movie of well separated bright nuclei, and its labels."""
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, labels = synthetic_timelapse(n_frames=3, shape=(96, 96), n_cells=5, seed=3, radius_range=(7.0, 11.0),
                                        n_touching_pairs=0, n_divisions=0)
    return np.asarray(image), np.asarray(labels)


def test_the_registry_names_a_unet_and_a_ulstm_for_cell_targets():
    assert {(b.network, b.target) for b in bi.BUILTINS} == {("unet", "3class"), ("ulstm", "3class")}
    assert bi.builtin_for("unet").name == "builtin-unet" and bi.builtin_for("ulstm").name == "builtin-ulstm"
    assert bi.builtin_for("segnet") is None and bi.builtin_for("unet", "classes") is None
    assert bi.DEFAULT_INIT in (bi.RANDOM, bi.BUILTIN)
    for b in bi.BUILTINS:
        assert b.learned_from and "\n" not in b.learned_from
        assert 100_000 < b.size_bytes() < 20_000_000  # a few MB: in the wheel


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_is_an_ordinary_model_file_read_without_code(name):
    path = bi.builtin_path(name)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no code can run from it
    assert raw["magic"] == "napari-cellseq model"
    ckpt = load_checkpoint(path)  # every field checked
    b = bi.get_builtin(name)
    assert ckpt.model_config == replace(default_model_config(b.network), num_classes=3)  # the default network
    assert ckpt.data_config.target == b.target == "3class"
    # learnt from scratch (scripts/train_builtin.py), or a second stage of such a file: the
    # predecessor is recorded, and it started from random weights
    init = ckpt.training.origin["init"] if "init" in ckpt.training.origin else "random"
    if ckpt.training.started_from is None:
        assert init == "random"
    else:
        assert ckpt.training.started_from == name and init["init"] == "random"
        assert init["command"].startswith("scripts/train_builtin.py") and len(init["sha256"]) == 64


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_keeps_its_network_contract(name):
    """The network of the file: its registry class, logits (N, K, H, W) for any frame size,
    finite softmax probabilities, and (U-LSTM) a recurrent state carried between frames."""
    torch.set_num_threads(1)
    ckpt = bi.load_builtin(name)
    net = ckpt.build("cpu")
    info = model_info(ckpt.model_config.name)
    assert isinstance(net, TemporalModel if info.temporal else FrameModel) and not net.training
    x = torch.randn(2, 1, 72, 88)
    with torch.no_grad():
        if net.temporal:
            logits, state = net(x[:, None])
            again, _ = net(x[:, None], state)
            assert logits.shape == (2, 1, 3, 72, 88) and not torch.equal(again, logits)  # the state counts
            logits = logits[:, 0]
        else:
            logits = net(x)
    assert logits.shape == (2, 3, 72, 88) and torch.isfinite(logits).all()
    probs = torch.softmax(logits, 1)
    assert torch.allclose(probs.sum(1), torch.ones(2, 72, 88), atol=1e-5)


@pytest.mark.parametrize("model", [*NAMES, "builtin"])
def test_every_builtin_segments_a_synthetic_movie_into_cells(easy_movie, model):
    """Every built-in gives instance labels for every frame (``segment(image, NAME)`` is the
    built-in's file); one whose own record says it segments held-out synthetic fluorescent
    nuclei (SEG >= 0.5, ``training.origin``: scripts/train_builtin.py) finds cells here too
    (AP50 >= 0.3 on an easy movie: a behaviour, not a benchmark)."""
    from napari_cellseq.core.metrics import evaluate

    image, labels = easy_movie
    pred = segment(image, model, device="cpu")
    name = bi.segment_model(model, image.shape[0])
    assert np.array_equal(pred, segment(image, load_checkpoint(name), device="cpu"))  # that very file
    assert pred.shape == image.shape and pred.dtype == np.uint16
    for t in range(image.shape[0]):
        ids = np.unique(pred[t])
        assert ids[0] == 0 and len(ids) >= 2 and np.array_equal(ids[1:], np.arange(1, len(ids)))  # 1..n
    origin = load_checkpoint(name).training.origin or {}
    claimed = origin.get("heldout_per_style", {}).get("fluorescent nuclei", {}).get("seg", 0.0)
    if claimed >= 0.5:
        scores = evaluate(labels, pred)
        assert scores["n_pred"] >= scores["n_gt"] // 2 and scores["ap50"] >= 0.3, scores  # most cells found


def test_segment_model_chooses_by_the_input():
    assert bi.segment_model("builtin", n_frames=5) == bi.builtin_path("builtin-unet")  # recommended for movies
    assert bi.segment_model("builtin", n_frames=1) == bi.builtin_path("builtin-unet")
    assert bi.segment_model("builtin-unet", n_frames=5) == bi.builtin_path("builtin-unet")
    assert bi.segment_model("some/file.pt", n_frames=5) == "some/file.pt"


def test_resolve_init_builtin_names_files_random_and_the_default(tmp_path, monkeypatch):
    start = bi.resolve_init("builtin", "ulstm", "3class")
    assert start.builtin == "builtin-ulstm" and start.checkpoint.model_config.name == "ulstm"
    assert bi.resolve_init("builtin-unet", "unet").builtin == "builtin-unet"
    assert bi.resolve_init(str(bi.builtin_path("builtin-unet")), "unet").builtin == "builtin-unet"  # its file
    assert bi.resolve_init("random", "segnet", "classes").random
    assert bi.resolve_init(None, "segnet", "classes").random  # no built-in fits: random, as a default
    assert bi.resolve_init(None, "unet").random is (bi.DEFAULT_INIT == bi.RANDOM)
    monkeypatch.setattr(bi, "DEFAULT_INIT", bi.BUILTIN)  # the default the lead may switch to
    assert bi.resolve_init(None, "ulstm").builtin == "builtin-ulstm"
    assert bi.resolve_init(None, "unet", model_config=default_model_config("unet")).builtin == "builtin-unet"
    assert bi.resolve_init(None, "unet", model_config=default_model_config("unet", base_channels=4)).random
    assert bi.resolve_init(None, "unet", "classes").random and bi.resolve_init(None, "segnet").random
    monkeypatch.undo()
    copy = save_checkpoint(bi.load_builtin("builtin-unet"), tmp_path / "mine.pt")
    mine = bi.resolve_init(str(copy), "unet")
    assert mine.builtin is None and mine.checkpoint.model_config.name == "unet"  # a file of the user's
    assert bi.resolve_init(mine, "unet") is mine
    with pytest.raises(InputError, match="no built-in weights for the 'segnet' network.*unet.*ulstm"):
        bi.resolve_init("builtin", "segnet")
    with pytest.raises(InputError, match="no built-in weights for target 'classes'"):
        bi.resolve_init("builtin", "unet", "classes")
    with pytest.raises(InputError, match="trained for target '3class', not '2class'"):
        bi.resolve_init("builtin-unet", "unet", "2class")
    with pytest.raises(InputError, match="no model file"):
        bi.resolve_init(str(tmp_path / "gone.pt"), "unet")


def test_missing_package_data_is_one_clear_error(monkeypatch, tmp_path):
    import importlib.resources

    monkeypatch.setattr(importlib.resources, "files", lambda package: tmp_path)  # an install without the data
    with pytest.raises(CellseqError, match="missing from this installation.*reinstall napari-cellseq"):
        bi.builtin_path("builtin-unet")
    with pytest.raises(CellseqError, match="missing from this installation"):
        bi.resolve_init("builtin", "unet")
    with pytest.raises(InputError, match="not a built-in model"):
        bi.builtin_path("builtin-segnet")


def test_plan_from_the_builtin_uses_the_users_crop_and_sampling(tiny_movie):
    image, painted = tiny_movie
    plan = plan_run(image, painted, model_config=default_model_config("unet"),
                    data_config=DataConfig(crop_size=48, sampling="balanced"),
                    train_config=TrainConfig(iterations=1, max_time=None), init="builtin")
    builtin = bi.load_builtin("builtin-unet")
    assert plan.model_config == builtin.model_config and plan.init_state is not None
    assert plan.data_config == replace(builtin.data_config, crop_size=48, sampling="balanced")
    assert plan.postprocess_config is None  # the smallest object is learnt from the painted cells
    assert plan.prior.started_from == "builtin-unet" and plan.prior.iterations == 0
    with pytest.raises(InputError, match="built-in builtin-ulstm holds a 'ulstm' model but --model asks for 'unet'"):
        plan_run(image, painted, model_config=default_model_config("unet"),
                 train_config=TrainConfig(iterations=1, max_time=None), init="builtin-ulstm")


def test_fine_tuning_from_the_builtin_is_recorded_and_continued(tiny_movie, tmp_path):
    torch.set_num_threads(1)
    image, painted = tiny_movie
    config = TrainConfig(iterations=2, max_time=None, batch_size=1, device="cpu")
    tuned = fit(image, painted, tmp_path / "tuned.pt", model_config=default_model_config("ulstm"),
                data_config=DataConfig(crop_size=32), train_config=config, init="builtin")
    assert tuned.training.started_from == "builtin-ulstm" and tuned.training.iterations == 2
    assert tuned.training.to_dict()["started_from"] == "builtin-ulstm"  # stored in the file
    start = bi.load_builtin("builtin-ulstm")
    changed = [k for k, v in tuned.state_dict.items() if v.is_floating_point() and not torch.equal(v, start.state_dict[k])]
    assert changed  # the built-in's weights were trained on
    again = fit(image, painted, tmp_path / "again.pt", data_config=DataConfig(crop_size=32), train_config=config,
                init=tmp_path / "tuned.pt")
    assert again.training.started_from == "builtin-ulstm" and again.training.iterations == 4  # a continued file
    fresh = fit(image, painted, tmp_path / "fresh.pt", model_config=default_model_config("unet", base_channels=4),
                data_config=DataConfig(crop_size=32), train_config=config, init="random")
    assert fresh.training.started_from is None and "started_from" not in fresh.training.to_dict()
