"""Prediction with frame models: every frame on its own, several tiles per forward pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from .base import TiledPredictor

__all__ = ["FramePredictor"]


class FramePredictor(TiledPredictor):
    """Class probabilities of a :class:`~napari_cellseq.core.models.FrameModel` for the frames
    of a normalised movie; parameters as :class:`~.base.TiledPredictor`, and

    tile_batch : tiles of a frame sent through the network together (default 1; larger batches
        help GPUs on frames cut into many tiles; the out-of-memory fallback halves it before it
        halves the tile).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, tile: int = 1536,
                 overlap: int = 64, margin: int = 16, amp: bool | str = True, min_tile: int = 128,
                 channels_last: bool | None = None, tile_batch: int = 1, compile: bool = False):
        super().__init__(model, device, tile=tile, overlap=overlap, margin=margin, amp=amp,
                         min_tile=min_tile, channels_last=channels_last, compile=compile)
        self.tile_batch = max(1, int(tile_batch))

    def _predict(self, movie: np.ndarray, frames: list[int],
                 stop: Callable[[], bool] | None) -> Iterator[tuple[int, np.ndarray]]:
        run = lambda i, x: self.forward(x)  # noqa: E731 - the tiles' logits
        for t in frames:
            if stop is not None and stop():
                return
            frame = movie[t]
            while True:
                try:
                    probs = self._frame(frame, self._tiles(frame.shape), run)
                    break
                except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                    self._shrink(err, frame.shape)
            yield t, probs
