"""Speed options of inference and training give the same results as the plain paths."""

import numpy as np
import pytest
import torch

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.config import TrainConfig
from napari_cellseq.core.device import autocast_dtype
from napari_cellseq.core.errors import CellseqError
from napari_cellseq.core.inference import Predictor, default_tile, plan_tiles
from napari_cellseq.core.models import build_model, default_model_config
from napari_cellseq.core.training import fit


def _net(name="unet"):
    torch.manual_seed(0)
    return build_model(default_model_config(name, base_channels=4, num_classes=3)).eval()


@pytest.mark.parametrize("shape,tile,overlap,multiple", [((2080, 2080), 1536, 64, 8), ((100, 230), 64, 16, 1),
                                                         ((300, 129), 128, 32, 8), ((732, 1132), 512, 64, 8)])
def test_tiles_are_equal_as_small_as_needed_and_cover(shape, tile, overlap, multiple):
    tiles = plan_tiles(shape, tile, overlap, multiple)
    sizes = {(t.y1 - t.y0, t.x1 - t.x0) for t in tiles}
    assert len(sizes) == 1
    (h, w), = sizes
    for side, size in ((h, shape[0]), (w, shape[1])):
        assert side <= tile and side <= size
        assert side == size or side % multiple == 0
    total = np.zeros(shape)
    for t in tiles:
        assert 0 <= t.y0 and t.y1 <= shape[0] and 0 <= t.x0 and t.x1 <= shape[1]
        total[t.y0:t.y1, t.x0:t.x1] += t.weight
    assert total.min() > 0


def test_balanced_tiles_cut_a_2048_frame_into_four_small_tiles():
    tiles = plan_tiles((2080, 2080), 1536, 64, 8)
    assert len(tiles) == 4 and tiles[0].y1 - tiles[0].y0 == 1072


def test_default_tile_by_device():
    assert default_tile(torch.device("cpu")) == 512
    assert default_tile(torch.device("cuda")) == 1536


def test_autocast_dtype():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, True) is None and autocast_dtype(cpu, "off") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16 and autocast_dtype(cpu, "fp16") is torch.float16
    with pytest.raises(CellseqError):
        autocast_dtype(cpu, "fp8")


@pytest.mark.parametrize("name", ["unet", "ulstm"])
def test_channels_last_and_tile_batches_match_the_plain_path(name):
    movie = np.random.default_rng(0).random((3, 150, 170), dtype=np.float32)
    plain = dict(Predictor(_net(name), torch.device("cpu"), tile=64, overlap=16, channels_last=False).predict(movie))
    fast = dict(Predictor(_net(name), torch.device("cpu"), tile=64, overlap=16, channels_last=True,
                          tile_batch=4).predict(movie))
    for t in plain:
        np.testing.assert_allclose(fast[t], plain[t], atol=1e-4)


def test_channels_last_training_writes_contiguous_weights(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((2, 48, 48), dtype=np.float32)
    labels = np.zeros((2, 48, 48), dtype=np.int32)
    labels[0, 10:20, 10:20] = 1
    labels[0, 30:40, 25:35] = 2
    fit(image, labels, tmp_path / "m.pt", model_config=default_model_config("unet", base_channels=4),
        train_config=TrainConfig(iterations=2, max_time=None, device="cpu", channels_last=True))
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert all(v.is_contiguous() for v in ckpt.state_dict.values())
