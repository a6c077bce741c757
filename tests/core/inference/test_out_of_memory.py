"""Out of memory at inference: which errors count, and what is retried (core.inference.memory).

The predictors' retries with a real network are tested in tests/test_boundaries.py."""

import logging

import numpy as np
import pytest
import torch

from napari_cellseq.core.errors import CellseqError
from napari_cellseq.core.inference import Predictor, is_out_of_memory
from napari_cellseq.core.inference.memory import retry_smaller
from napari_cellseq.core.models import build_model, default_model_config

CPU = torch.device("cpu")


def _oom():
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")


@pytest.mark.parametrize("err, expected", [
    (_oom(), True), (MemoryError(), True), (RuntimeError("MPS backend out of memory"), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB"), True),
    (RuntimeError("shape mismatch"), False), (ValueError("out of memory"), False),
])
def test_is_out_of_memory(err, expected):
    assert is_out_of_memory(err) is expected


def test_retry_halves_the_tile_batch_first_then_the_tile(caplog):
    caplog.set_level(logging.WARNING)
    assert retry_smaller(_oom(), CPU, tile=512, tile_batch=4, side=1000, min_tile=128) == (512, 2)
    assert retry_smaller(_oom(), CPU, tile=512, tile_batch=1, side=1000, min_tile=128) == (256, 1)
    # a tile larger than the frame is the frame: halve what is in use
    assert retry_smaller(_oom(), CPU, tile=1536, tile_batch=1, side=300, min_tile=128) == (150, 1)
    assert "retrying the frame with 256-pixel tiles" in caplog.text


def test_retry_stops_at_the_floor_and_re_raises_other_errors():
    with pytest.raises(CellseqError, match="out of memory on cpu even with tiles of 200 pixels: free memory"):
        retry_smaller(_oom(), CPU, tile=200, tile_batch=1, side=1000, min_tile=128)
    other = RuntimeError("weird failure")
    with pytest.raises(RuntimeError, match="weird failure"):
        retry_smaller(other, CPU, tile=512, tile_batch=4, side=1000, min_tile=128)


class _FailsOnBigBatches(torch.nn.Module):
    """A frame network that runs out of memory on batches of more than ``limit`` tiles."""

    temporal = False

    def __init__(self, net, limit):
        super().__init__()
        self.net, self.limit, self.stride, self.batches = net, limit, net.stride, []

    def forward(self, x):
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise _oom()
        return self.net(x)


def test_frame_predictor_sends_fewer_tiles_at_a_time_before_smaller_tiles():
    torch.manual_seed(0)
    net = build_model(default_model_config("unet", base_channels=4, num_classes=3)).eval()
    wrapped = _FailsOnBigBatches(net, limit=2)
    movie = np.random.default_rng(0).random((2, 100, 140), dtype=np.float32)
    predictor = Predictor(wrapped, CPU, tile=64, overlap=16, tile_batch=8, channels_last=False)
    out = dict(predictor.predict(movie))
    assert predictor.tile_batch == 2 and predictor.tile == 64
    assert wrapped.batches[:2] == [8, 4] and max(wrapped.batches[2:]) == 2
    plain = dict(Predictor(net, CPU, tile=64, overlap=16, channels_last=False).predict(movie))
    for t in (0, 1):
        np.testing.assert_allclose(out[t], plain[t], atol=1e-5)
