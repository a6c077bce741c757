"""Prediction with temporal models: statefully, frame by frame, one recurrent state per tile.

Memory does not grow with the movie length. Before the first requested frame the model is
warmed up on the next few frames in reverse order (``warmup``, :func:`temporal_order`); those
frames only advance the state (:meth:`~napari_cellseq.core.models.TemporalModel.advance`), so
the first frames see a primed memory like every later frame. The result equals a single unrolled
pass over ``temporal_order(...)`` (tested). Out of memory on a frame makes the tiles smaller and
restarts the memory, with a fresh warm-up, from that frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..models import advance_state
from .base import TiledPredictor

logger = logging.getLogger(__name__)

__all__ = ["TemporalPredictor", "temporal_order"]


def temporal_order(frames: list[int], warmup: int) -> tuple[list[int], int]:
    """Frame indices a temporal model sees for consecutive ``frames``, and how many lead in.

    The lead-in is the ``warmup`` frames after the first, in reverse order, e.g. frames 0..9 with
    warmup 3 are fed as ``[3, 2, 1, 0, 1, ..., 9]`` and outputs start after the first 3.
    """
    first, last = frames[0], frames[-1]
    lead = list(range(min(first + warmup, last), first, -1))
    return lead + list(range(first, last + 1)), len(lead)


class TemporalPredictor(TiledPredictor):
    """Class probabilities of a :class:`~napari_cellseq.core.models.TemporalModel` for the frames
    of a normalised movie; parameters as :class:`~.base.TiledPredictor`, and

    warmup : lead-in frames before the first requested one (see :func:`temporal_order`).

    The model runs through every frame between the first and the last requested one. Tiles go
    through it one at a time, each with its own recurrent state.
    """

    temporal = True

    def __init__(self, model: torch.nn.Module, device: torch.device, tile: int = 1536,
                 overlap: int = 64, warmup: int = 3, margin: int = 16, amp: bool | str = True,
                 min_tile: int = 128, channels_last: bool | None = None, compile: bool = False):
        super().__init__(model, device, tile=tile, overlap=overlap, margin=margin, amp=amp,
                         min_tile=min_tile, channels_last=channels_last, compile=compile)
        self.warmup = warmup

    def _predict(self, movie: np.ndarray, frames: list[int],
                 stop: Callable[[], bool] | None) -> Iterator[tuple[int, np.ndarray]]:
        remaining = frames
        while remaining:
            remaining = yield from self._pass(movie, remaining, stop)

    def _pass(self, movie: np.ndarray, frames: list[int],
              stop: Callable[[], bool] | None) -> Iterator[tuple[int, np.ndarray]]:
        """One stateful pass over ``frames``; returns the frames still to do after running out of
        memory (the tiles are smaller then), else ``[]``."""
        order, lead = temporal_order(frames, self.warmup)
        wanted = set(frames)
        tiles = None
        states: list = []
        for i, t in enumerate(order):
            if stop is not None and stop():
                return []
            frame = movie[t]
            if tiles is None:
                tiles = self._tiles(frame.shape)
                states = [None] * len(tiles)
            output = i >= lead and t in wanted  # warm-up frames: only the recurrent state
            try:
                probs = self._frame(frame, tiles, self._step(states, output))
            except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                self._shrink(err, frame.shape)
                logger.warning("restarting the temporal memory at frame %d with %d-pixel tiles", t, self.tile)
                return [f for f in frames if f >= t] if i >= lead else frames
            if output:
                yield t, probs
        return []

    def _step(self, states: list, output: bool):
        """``run`` for :meth:`_frame`: tile ``i`` one frame on from ``states[i]``, which it
        updates; its logits, or None (``output=False``: advance only)."""

        def run(i: int, x: torch.Tensor) -> torch.Tensor | None:
            if not output:
                states[i] = advance_state(self.model, x[:, None], states[i], self.forward)
                return None
            logits, states[i] = self.forward(x[:, None], states[i])
            return logits[:, 0]

        return run
