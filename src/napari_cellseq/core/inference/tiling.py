"""Cutting a frame into tiles and blending the tiles' class probabilities back into one.

Frames larger than the tile size are cut into overlapping tiles of equal size, as few as cover
the frame and each as small as that allows (:func:`plan_tiles`); every tile is padded with
``normalize.OUTSIDE`` at the bottom and right to a multiple of the network's stride
(:func:`pad_to_stride`), and the tiles' class probabilities are blended with a linear ramp over
the overlap (:class:`Blend`). :func:`tile_batches` hands the tiles of a frame to the network
``batch`` at a time: frame predictors send several tiles per forward pass, temporal ones one (each
tile has its own recurrent state); both blend the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..data.normalize import OUTSIDE

__all__ = ["Tile", "plan_tiles", "pad_to_stride", "tile_batches", "Blend"]


@dataclass(frozen=True)
class Tile:
    """A window ``[y0:y1, x0:x1]`` of the frame and its blending weight ``(y1-y0, x1-x0)``."""

    y0: int
    y1: int
    x0: int
    x1: int
    weight: np.ndarray


def _starts(size: int, tile: int, overlap: int, multiple: int = 1) -> tuple[list[int], int]:
    """Start offsets and side of the tiles along one axis of ``size`` pixels.

    As few tiles as cover the axis with at least ``overlap`` pixels between neighbours, each as
    small as that allows (rounded up to ``multiple``, at most ``tile``), evenly spaced: a 2080-pixel
    axis with ``tile=1536`` becomes two 1072-pixel tiles rather than two 1536-pixel ones.
    """
    if size <= tile:
        return [0], size
    n = -(-(size - overlap) // (tile - overlap))  # ceil
    side = -(-(size + (n - 1) * overlap) // n)
    side = min(tile, size, -(-side // multiple) * multiple)
    n = max(n, -(-(size - overlap) // (side - overlap)))
    starts = sorted({round(i * (size - side) / (n - 1)) for i in range(n)})
    return starts, side


def _ramp(start: int, stop: int, size: int, overlap: int) -> np.ndarray:
    """1-D blend weight of a tile ``[start, stop)``: linear ramps where it overlaps others."""
    w = np.ones(stop - start, dtype=np.float32)
    if overlap <= 0:
        return w
    ramp = (np.arange(overlap, dtype=np.float32) + 1.0) / (overlap + 1.0)
    if start > 0:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if stop < size:
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def plan_tiles(shape: tuple[int, int], tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """Overlapping tiles of equal size covering a frame of ``shape (Y, X)``; one tile when it fits.

    Tiles are at most ``tile`` pixels on a side and, where the frame is cut, a multiple of
    ``multiple`` (the network's stride, so that no tile is padded inside the frame).
    """
    ny, nx = shape
    tiles = []
    ys, sy = _starts(ny, tile, overlap, multiple)
    xs, sx = _starts(nx, tile, overlap, multiple)
    for y0 in ys:
        wy = _ramp(y0, y0 + sy, ny, overlap)
        for x0 in xs:
            wx = _ramp(x0, x0 + sx, nx, overlap)
            tiles.append(Tile(y0, y0 + sy, x0, x0 + sx, np.outer(wy, wx)))
    return tiles


def pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """``x (N, C, H, W)`` padded with OUTSIDE at bottom/right to multiples of ``stride``, and the
    unpadded ``H``, ``W`` (to crop the network's output back to)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), value=OUTSIDE)
    return x, h, w


def tile_batches(frame: np.ndarray, tiles: list[Tile], batch: int) -> Iterator[tuple[int, list[Tile], np.ndarray]]:
    """``(index of the first tile, tiles, pixels (n, h, w))`` for ``batch`` tiles of ``frame (Y, X)``
    at a time (``plan_tiles`` makes them equal-sized, so they stack)."""
    for i in range(0, len(tiles), batch):
        group = tiles[i:i + batch]
        yield i, group, np.stack([frame[t.y0:t.y1, t.x0:t.x1] for t in group])


class Blend:
    """Weighted average of tile probabilities over a frame of ``shape (Y, X)``.

    ``add(tile, probs (K, h, w))`` for every tile, then ``result() -> (K, Y, X)``; a frame that
    is one tile is returned as its probabilities, unweighted.
    """

    def __init__(self, shape: tuple[int, int], n_tiles: int):
        self.shape, self.n_tiles = tuple(shape), n_tiles
        self.acc: np.ndarray | None = None
        self.norm: np.ndarray | None = None

    def add(self, tile: Tile, probs: np.ndarray) -> None:
        if self.n_tiles == 1:
            self.acc = probs
            return
        if self.acc is None:
            self.acc = np.zeros((probs.shape[0],) + self.shape, dtype=np.float32)
            self.norm = np.zeros(self.shape, dtype=np.float32)
        self.acc[:, tile.y0:tile.y1, tile.x0:tile.x1] += probs * tile.weight
        self.norm[tile.y0:tile.y1, tile.x0:tile.x1] += tile.weight

    def result(self) -> np.ndarray:
        if self.acc is None:
            raise ValueError("no tile was added")
        return self.acc if self.n_tiles == 1 else self.acc / self.norm
