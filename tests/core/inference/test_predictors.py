"""Frame and temporal prediction: outputs, state handling, warm-up, stopping, speed options."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from napari_cellseq.core.data.normalize import OUTSIDE
from napari_cellseq.core.inference import (FramePredictor, Predictor, TemporalPredictor, default_tile,
                                           plan_tiles, segmentation_predictor, temporal_order)
from napari_cellseq.core.models import build_model, default_model_config
from napari_cellseq.core.synthetic import synthetic_timelapse

CPU = torch.device("cpu")


def _net(name="unet", **kw):
    torch.manual_seed(0)
    return build_model(default_model_config(name, base_channels=4, num_classes=3, **kw)).eval()


# ------------------------------------------------------------------- the same numbers as by hand


def _by_hand(model, movie, frames, tile, overlap, margin=16, warmup=3):
    """Class probabilities computed the plain way: each frame padded by ``margin`` with OUTSIDE,
    cut by plan_tiles, each tile padded to the stride and run alone (temporal models: one state
    per tile, through temporal_order, warm-up outputs dropped), softmax, blended by the weights."""
    s = model.stride
    order, lead = temporal_order(frames, warmup) if model.temporal else (frames, 0)
    states, out = {}, {}
    with torch.no_grad():
        for i, t in enumerate(order):
            frame = np.pad(movie[t], margin, constant_values=OUTSIDE)
            acc = norm = 0
            for k, tl in enumerate(plan_tiles(frame.shape, tile, overlap, s)):
                x = torch.from_numpy(np.ascontiguousarray(frame[tl.y0:tl.y1, tl.x0:tl.x1]))[None, None]
                h, w = x.shape[-2:]
                x = F.pad(x, (0, (-w) % s, 0, (-h) % s), value=OUTSIDE)
                if model.temporal:
                    logits, states[k] = model(x[:, None], states.get(k))
                    logits = logits[:, 0]
                else:
                    logits = model(x)
                p = torch.softmax(logits, dim=1)[0, :, :h, :w].numpy()
                acc = acc + np.pad(p * tl.weight, ((0, 0), (tl.y0, frame.shape[0] - tl.y1), (tl.x0, frame.shape[1] - tl.x1)))
                norm = norm + np.pad(tl.weight, ((tl.y0, frame.shape[0] - tl.y1), (tl.x0, frame.shape[1] - tl.x1)))
            if i >= lead and t in frames:
                out[t] = (acc / norm)[:, margin:frame.shape[0] - margin, margin:frame.shape[1] - margin]
    return out


@pytest.fixture(scope="module")
def synthetic():
    movie = synthetic_timelapse(5, (100, 140), n_cells=6, seed=3).image.astype(np.float32)
    lo, hi = np.percentile(movie, (1, 99.8))
    return ((movie - lo) / (hi - lo)).astype(np.float32)


@pytest.mark.parametrize("name, options, frames", [
    ("unet", {}, [0, 1, 2, 3, 4]),
    ("unet", {"tile_batch": 3}, [0, 3]),
    ("segnet", {"depth": 3}, [1, 2]),
    ("ulstm", {"warmup": 2}, [1, 2, 3]),
])
def test_tiled_outputs_equal_the_plain_computation(synthetic, name, options, frames):
    """Tiling on (a 132x172 padded frame in 4 tiles): frame and temporal predictors give the
    plain tile-by-tile numbers exactly; several tiles per pass to the rounding of a batched
    convolution."""
    options = dict(options)
    depth = {"depth": options.pop("depth")} if "depth" in options else {}
    model = _net(name, **depth)
    predictor = Predictor(model, CPU, tile=96, overlap=16, channels_last=False, **options)
    assert len(predictor._tiles(synthetic.shape[1:])) == 4
    got = dict(predictor.predict(synthetic, frames))
    expected = _by_hand(model, synthetic, frames, 96, 16, warmup=options.get("warmup", 3))
    assert sorted(got) == frames
    for t in frames:
        if options.get("tile_batch", 1) == 1:
            np.testing.assert_array_equal(got[t], expected[t])
        else:
            np.testing.assert_allclose(got[t], expected[t], rtol=0, atol=2e-6)


# ------------------------------------------------------------------- which predictor, which tiling


def test_predictor_picks_the_class_for_the_model():
    frame, temporal = Predictor(_net("unet"), CPU, tile_batch=4), Predictor(_net("ulstm"), CPU, warmup=5)
    assert type(frame) is FramePredictor and not frame.temporal and frame.tile_batch == 4
    assert type(temporal) is TemporalPredictor and temporal.temporal and temporal.warmup == 5
    assert temporal.tile_batch == 1  # each tile carries its own state
    assert frame.stride == 8 and frame.min_tile == 128


def test_default_tile_by_device_and_segmentation_tiling():
    assert default_tile(torch.device("cpu")) == 512
    assert default_tile(torch.device("cuda")) == 1536
    predictor = segmentation_predictor(_net(), CPU)
    assert (predictor.tile, predictor.overlap) == (512, 64)
    predictor = segmentation_predictor(_net(), CPU, tile=160)
    assert (predictor.tile, predictor.overlap) == (160, 40)


# ------------------------------------------------------------------- frames


def test_stop_ends_prediction_early():
    movie = np.zeros((4, 16, 16), dtype=np.float32)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    got = list(Predictor(_net(), CPU).predict(movie, stop=stop))
    assert len(got) == 2


def test_requested_frames_come_sorted_once_and_none_is_nothing():
    movie = np.random.default_rng(0).random((4, 16, 16), dtype=np.float32)
    assert [t for t, _ in Predictor(_net(), CPU).predict(movie, frames=[3, 1, 3])] == [1, 3]
    assert list(Predictor(_net(), CPU).predict(movie, frames=[])) == []


def test_margin_pads_with_background_and_crops_back():
    movie = np.random.default_rng(3).random((1, 30, 45)).astype(np.float32)
    for margin in (0, 16):
        out = dict(Predictor(_net(), CPU, margin=margin).predict(movie))
        assert out[0].shape == (3, 30, 45)


@pytest.mark.parametrize("name", ["unet", "ulstm"])
def test_channels_last_and_tile_batches_match_the_plain_path(name):
    movie = np.random.default_rng(0).random((3, 150, 170), dtype=np.float32)
    plain = dict(Predictor(_net(name), CPU, tile=64, overlap=16, channels_last=False).predict(movie))
    fast = dict(Predictor(_net(name), CPU, tile=64, overlap=16, channels_last=True, tile_batch=4).predict(movie))
    for t in plain:
        np.testing.assert_allclose(fast[t], plain[t], atol=1e-4)


# ------------------------------------------------------------------- temporal


def test_temporal_order_has_reversed_lead_in():
    order, lead = temporal_order([0, 1, 2, 3, 4], warmup=3)
    assert order == [3, 2, 1, 0, 1, 2, 3, 4] and lead == 3
    order, lead = temporal_order([0], warmup=3)
    assert order == [0] and lead == 0
    order, lead = temporal_order([5, 7], warmup=1)  # runs through the frames between
    assert order == [6, 5, 6, 7] and lead == 1


def test_stateful_inference_equals_unrolled_sequence():
    model = _net("ulstm")
    movie = np.random.default_rng(1).random((5, 24, 40)).astype(np.float32)
    stateful = dict(Predictor(model, CPU, warmup=2, margin=0).predict(movie))
    order, lead = temporal_order(list(range(5)), 2)
    x = torch.from_numpy(movie[order])[None, :, None]  # (1, T', 1, Y, X)
    with torch.no_grad():
        logits, _ = model(x)
    unrolled = torch.softmax(logits[0], dim=1).numpy()[lead:]
    for t in range(5):
        np.testing.assert_allclose(stateful[t], unrolled[t], atol=1e-5)


def test_tiled_temporal_inference_keeps_a_state_per_tile():
    model = _net("ulstm")
    movie = np.random.default_rng(2).random((3, 40, 88)).astype(np.float32)
    seen = []
    original = model.forward
    model.forward = lambda x, state=None: seen.append(None if state is None else state[0][0].shape) or original(x, state)
    predictor = Predictor(model, CPU, tile=48, overlap=16, warmup=0)
    out = dict(predictor.predict(movie))
    n = len(predictor._tiles(movie.shape[1:]))
    assert sorted(out) == [0, 1, 2] and out[2].shape == (3, 40, 88) and n > 1
    assert seen[:n] == [None] * n and all(s is not None for s in seen[n:]) and len(seen) == 3 * n


def test_warm_up_frames_only_advance_the_state(monkeypatch):
    model = _net("ulstm")
    advanced = []
    original = model.advance
    monkeypatch.setattr(model, "advance", lambda x, state=None: advanced.append(x.shape[1]) or original(x, state))
    movie = np.random.default_rng(3).random((4, 24, 40)).astype(np.float32)
    out = dict(Predictor(model, CPU, warmup=2, margin=0).predict(movie))
    assert sorted(out) == [0, 1, 2, 3] and advanced == [1, 1]  # lead-in frames 2, 1: state only
