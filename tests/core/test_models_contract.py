"""One contract test for every registered model: shapes, odd sizes, backward, save/load, tiling."""

import io

import numpy as np
import pytest
import torch

from napari_cellseq.core.config import ModelConfig
from napari_cellseq.core.inference import Predictor
from napari_cellseq.core.models import available_models, build_model, default_model_config, model_info


def small_config(name: str) -> ModelConfig:
    return default_model_config(name, base_channels=4, num_classes=3)


def run(model, x):
    """Frame input (N, C, H, W) -> logits (N, K, H, W) for either contract."""
    if model.temporal:
        logits, _ = model(x[:, None])
        return logits[:, 0]
    return model(x)


@pytest.fixture(params=available_models())
def name(request):
    return request.param


def test_registry_lists_unet_and_ulstm():
    assert {"unet", "ulstm"} <= set(available_models())
    assert model_info("ulstm").input_kind == "time-lapse"
    assert model_info("unet").input_kind == "frames"


def test_shapes_on_valid_odd_sizes(name):
    model = build_model(small_config(name)).eval()
    s = model.stride
    x = torch.randn(2, 1, 3 * s, 5 * s)
    with torch.no_grad():
        assert run(model, x).shape == (2, 3, 3 * s, 5 * s)


def test_backward_reaches_every_parameter(name):
    model = build_model(small_config(name)).train()
    s = model.stride
    out = run(model, torch.randn(2, 1, 2 * s, 3 * s))
    out.float().pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_save_load_round_trip(name):
    model = build_model(small_config(name)).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    clone = build_model(small_config(name)).eval()
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(1, 1, 2 * model.stride, 2 * model.stride)
    with torch.no_grad():
        assert torch.equal(run(model, x), run(clone, x))


def test_inference_pads_odd_frames_and_tiles_agree(name):
    torch.manual_seed(0)
    model = build_model(small_config(name)).eval()
    movie = np.random.default_rng(0).random((2, 53, 71)).astype(np.float32)
    whole = dict(Predictor(model, torch.device("cpu"), tile=512).predict(movie))
    tiled = dict(Predictor(model, torch.device("cpu"), tile=40, overlap=16).predict(movie))
    for t in (0, 1):
        assert whole[t].shape == (3, 53, 71)
        np.testing.assert_allclose(whole[t].sum(axis=0), 1.0, atol=1e-5)
        # tiles see less context at their borders; blended interiors stay close to the whole
        assert np.abs(whole[t] - tiled[t]).mean() < 0.05
