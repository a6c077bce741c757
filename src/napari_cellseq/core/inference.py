"""Network inference on frames of any size.

Frames are padded with zeros (the normalised background level) by a margin on every side and
to a multiple of the network's stride, exactly as training fills what lies beyond the frame
edge, so the network treats cells cut by the frame edge the way the user painted them. Frames
larger than the tile size are cut into overlapping tiles whose class probabilities are blended
with a linear ramp over the overlap. Temporal models run statefully, frame by frame, with one recurrent
state per tile, so memory does not grow with the movie length. Before the first frame they are
warmed up on the next few frames in reverse order (``warmup``), so the first frames see a
primed memory like every later frame; the result equals a single unrolled pass over
``temporal_order(...)`` (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

logger = logging.getLogger(__name__)

__all__ = ["Tile", "plan_tiles", "temporal_order", "Predictor"]


@dataclass(frozen=True)
class Tile:
    """A window ``[y0:y1, x0:x1]`` of the frame and its blending weight ``(y1-y0, x1-x0)``."""

    y0: int
    y1: int
    x0: int
    x1: int
    weight: np.ndarray


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def _ramp(n: int, start: int, stop: int, size: int, overlap: int) -> np.ndarray:
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


def plan_tiles(shape: tuple[int, int], tile: int, overlap: int) -> list[Tile]:
    """Overlapping tiles covering a frame of ``shape (Y, X)``; one tile when it fits."""
    ny, nx = shape
    tiles = []
    for y0 in _starts(ny, tile, overlap):
        y1 = min(y0 + tile, ny)
        wy = _ramp(ny, y0, y1, ny, overlap)
        for x0 in _starts(nx, tile, overlap):
            x1 = min(x0 + tile, nx)
            wx = _ramp(nx, x0, x1, nx, overlap)
            tiles.append(Tile(y0, y1, x0, x1, np.outer(wy, wx)))
    return tiles


def temporal_order(frames: list[int], warmup: int) -> tuple[list[int], int]:
    """Frame indices a temporal model sees for consecutive ``frames``, and how many lead in.

    The lead-in is the ``warmup`` frames after the first, in reverse order, e.g. frames 0..9 with
    warmup 3 are fed as ``[3, 2, 1, 0, 1, ..., 9]`` and outputs start after the first 3.
    """
    first, last = frames[0], frames[-1]
    lead = list(range(min(first + warmup, last), first, -1))
    return lead + list(range(first, last + 1)), len(lead)


def _pad(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """Zero-pad ``x (N, C, H, W)`` at bottom/right to multiples of ``stride``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, h, w


class Predictor:
    """Class probabilities of a network for the frames of a normalised movie.

    Parameters
    ----------
    model : a registered network in eval mode (frame or temporal contract).
    device : where it runs.
    tile : largest tile side in pixels (frames up to ``tile x tile`` go in one piece).
    overlap : tile overlap in pixels.
    warmup : lead-in frames for temporal models.
    margin : zeros added around each frame (pixels).
    amp : bfloat16 autocast on CUDA.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, tile: int = 1536,
                 overlap: int = 64, warmup: int = 3, margin: int = 16, amp: bool = True):
        self.model, self.device = model, device
        self.tile, self.overlap, self.warmup, self.margin = tile, overlap, warmup, margin
        self.temporal = bool(getattr(model, "temporal", False))
        self.stride = int(getattr(model, "stride", 1))
        self.autocast = amp and device.type == "cuda"

    def predict(self, movie: np.ndarray, frames: list[int] | None = None,
                stop: Callable[[], bool] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t, probabilities (K, Y, X) float32)`` for each requested frame, in order.

        movie : ``(T, Y, X)`` float32, already normalised.
        frames : frames to predict (default all); temporal models run through every frame
            between the first and the last requested one.
        """
        n = movie.shape[0]
        frames = sorted(set(range(n) if frames is None else frames))
        m = self.margin
        tiles = plan_tiles((movie.shape[1] + 2 * m, movie.shape[2] + 2 * m), self.tile, self.overlap)
        with torch.inference_mode():
            if not self.temporal:
                for t in frames:
                    if stop is not None and stop():
                        return
                    yield t, self._frame(movie[t], tiles, None)[0]
                return
            order, lead = temporal_order(frames, self.warmup)
            wanted = set(frames)
            states: list = [None] * len(tiles)
            for i, t in enumerate(order):
                if stop is not None and stop():
                    return
                probs, states = self._frame(movie[t], tiles, states)
                if i >= lead and t in wanted:
                    yield t, probs

    def _frame(self, frame: np.ndarray, tiles: list[Tile], states):
        """Blend tile probabilities of one frame ``(Y, X)``; returns ``((K, Y, X), states)``."""
        probs, states = self._padded_frame(np.pad(frame, self.margin), tiles, states)
        m = self.margin
        return probs[:, m:probs.shape[1] - m, m:probs.shape[2] - m], states

    def _padded_frame(self, frame: np.ndarray, tiles: list[Tile], states):
        acc = None
        norm = np.zeros(frame.shape, dtype=np.float32)
        new_states = [] if states is not None else None
        for i, tile in enumerate(tiles):
            patch = torch.from_numpy(np.ascontiguousarray(frame[tile.y0:tile.y1, tile.x0:tile.x1]))
            x, h, w = _pad(patch[None, None].to(self.device), self.stride)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
                if states is None:
                    logits = self.model(x)
                else:
                    logits, state = self.model(x[:, None], states[i])
                    logits = logits[:, 0]
                    new_states.append(state)
            probs = torch.softmax(logits.float(), dim=1)[0, :, :h, :w].cpu().numpy()
            if len(tiles) == 1:
                return probs, new_states
            if acc is None:
                acc = np.zeros((probs.shape[0],) + frame.shape, dtype=np.float32)
            acc[:, tile.y0:tile.y1, tile.x0:tile.x1] += probs * tile.weight
            norm[tile.y0:tile.y1, tile.x0:tile.x1] += tile.weight
        return acc / norm, new_states
