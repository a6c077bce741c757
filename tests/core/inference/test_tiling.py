"""Tile planning, padding to the stride and blending (core.inference.tiling)."""

import numpy as np
import pytest
import torch

from napari_cellseq.core.data.normalize import OUTSIDE
from napari_cellseq.core.inference import Tile, plan_tiles
from napari_cellseq.core.inference.tiling import Blend, pad_to_stride, tile_batches


def test_tiles_cover_frame_with_unit_weight_sum():
    tiles = plan_tiles((100, 230), tile=64, overlap=16)
    total = np.zeros((100, 230))
    for t in tiles:
        assert t.y1 - t.y0 <= 64 and t.x1 - t.x0 <= 64
        total[t.y0:t.y1, t.x0:t.x1] += t.weight
    assert total.min() > 0


def test_single_tile_when_frame_fits():
    tiles = plan_tiles((700, 1100), tile=1536, overlap=64)
    assert len(tiles) == 1 and (tiles[0].y1, tiles[0].x1) == (700, 1100) and (tiles[0].weight == 1).all()


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


def test_weights_ramp_linearly_over_the_overlap_only():
    tiles = plan_tiles((10, 112), tile=64, overlap=16)
    left, right = tiles
    assert (left.x0, left.x1, right.x0, right.x1) == (0, 64, 48, 112)
    ramp = (np.arange(16) + 1) / 17
    np.testing.assert_allclose(left.weight[0, -16:], ramp[::-1], rtol=1e-6)
    np.testing.assert_allclose(right.weight[0, :16], ramp, rtol=1e-6)
    assert (left.weight[:, :-16] == 1).all() and (right.weight[:, 16:] == 1).all()


def test_pad_to_stride_pads_with_outside_at_bottom_right():
    x = torch.zeros(2, 1, 13, 16)
    padded, h, w = pad_to_stride(x, 8)
    assert padded.shape == (2, 1, 16, 16) and (h, w) == (13, 16)
    assert (padded[..., 13:, :] == OUTSIDE).all() and (padded[..., :13, :] == 0).all()
    same, _, _ = pad_to_stride(x[..., :8, :], 8)
    assert same.shape == (2, 1, 8, 16)


def test_tile_batches_stack_equal_tiles():
    frame = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    tiles = plan_tiles(frame.shape, tile=16, overlap=4)
    batches = list(tile_batches(frame, tiles, 4))
    assert [i for i, _, _ in batches] == list(range(0, len(tiles), 4))
    side = (tiles[0].y1 - tiles[0].y0, tiles[0].x1 - tiles[0].x0)
    for i, group, patches in batches:
        assert group == tiles[i:i + 4] and patches.shape == (len(group), *side)
        for t, patch in zip(group, patches):
            np.testing.assert_array_equal(patch, frame[t.y0:t.y1, t.x0:t.x1])


def test_blend_of_constant_tiles_is_constant_and_one_tile_is_itself():
    tiles = plan_tiles((40, 50), tile=24, overlap=8)
    blend = Blend((40, 50), len(tiles))
    for t in tiles:
        blend.add(t, np.full((2, t.y1 - t.y0, t.x1 - t.x0), 0.25, np.float32))
    np.testing.assert_allclose(blend.result(), 0.25, rtol=1e-6)
    one = Blend((5, 6), 1)
    probs = np.random.default_rng(0).random((3, 5, 6), dtype=np.float32)
    one.add(Tile(0, 5, 0, 6, np.ones((5, 6), np.float32)), probs)
    assert one.result() is probs
    with pytest.raises(ValueError, match="no tile"):
        Blend((5, 6), 2).result()
