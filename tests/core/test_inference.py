import numpy as np
import pytest
import torch

from napari_cellseq.core.inference import Predictor, plan_tiles, temporal_order
from napari_cellseq.core.models import build_model, default_model_config


def test_tiles_cover_frame_with_unit_weight_sum():
    tiles = plan_tiles((100, 230), tile=64, overlap=16)
    total = np.zeros((100, 230))
    for t in tiles:
        assert t.y1 - t.y0 <= 64 and t.x1 - t.x0 <= 64
        total[t.y0:t.y1, t.x0:t.x1] += t.weight
    assert total.min() > 0


def test_single_tile_when_frame_fits():
    assert len(plan_tiles((700, 1100), tile=1536, overlap=64)) == 1


def test_temporal_order_has_reversed_lead_in():
    order, lead = temporal_order([0, 1, 2, 3, 4], warmup=3)
    assert order == [3, 2, 1, 0, 1, 2, 3, 4] and lead == 3
    order, lead = temporal_order([0], warmup=3)
    assert order == [0] and lead == 0


def test_stateful_inference_equals_unrolled_sequence():
    torch.manual_seed(0)
    model = build_model(default_model_config("ulstm", base_channels=4)).eval()
    movie = np.random.default_rng(1).random((5, 24, 40)).astype(np.float32)
    stateful = dict(Predictor(model, torch.device("cpu"), warmup=2, margin=0).predict(movie))
    order, lead = temporal_order(list(range(5)), 2)
    x = torch.from_numpy(movie[order])[None, :, None]  # (1, T', 1, Y, X)
    with torch.no_grad():
        logits, _ = model(x)
    unrolled = torch.softmax(logits[0], dim=1).numpy()[lead:]
    for t in range(5):
        np.testing.assert_allclose(stateful[t], unrolled[t], atol=1e-5)


def test_tiled_temporal_inference_keeps_a_state_per_tile():
    torch.manual_seed(0)
    model = build_model(default_model_config("ulstm", base_channels=4)).eval()
    movie = np.random.default_rng(2).random((3, 40, 88)).astype(np.float32)
    out = dict(Predictor(model, torch.device("cpu"), tile=48, overlap=16).predict(movie))
    assert sorted(out) == [0, 1, 2] and out[2].shape == (3, 40, 88)


def test_stop_ends_prediction_early():
    model = build_model(default_model_config("unet", base_channels=4)).eval()
    movie = np.zeros((4, 16, 16), dtype=np.float32)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    got = list(Predictor(model, torch.device("cpu")).predict(movie, stop=stop))
    assert len(got) == 2


def test_margin_pads_with_background_and_crops_back():
    model = build_model(default_model_config("unet", base_channels=4)).eval()
    movie = np.random.default_rng(3).random((1, 30, 45)).astype(np.float32)
    for margin in (0, 16):
        out = dict(Predictor(model, torch.device("cpu"), margin=margin).predict(movie))
        assert out[0].shape == (3, 30, 45)


def test_warm_up_frames_only_advance_the_state(monkeypatch):
    torch.manual_seed(0)
    model = build_model(default_model_config("ulstm", base_channels=4)).eval()
    advanced = []
    original = model.advance
    monkeypatch.setattr(model, "advance", lambda x, state=None: advanced.append(x.shape[1]) or original(x, state))
    movie = np.random.default_rng(3).random((4, 24, 40)).astype(np.float32)
    out = dict(Predictor(model, torch.device("cpu"), warmup=2, margin=0).predict(movie))
    assert sorted(out) == [0, 1, 2, 3] and advanced == [1, 1]  # lead-in frames 2, 1: state only
