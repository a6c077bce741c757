"""What frame and temporal prediction share: the network on the tiles of one frame.

Frames are padded with ``normalize.OUTSIDE`` by a margin on every side, exactly as training fills
what lies beyond the frame edge, so the network treats cells cut by the frame edge the way the
user painted them; then cut into tiles (:mod:`.tiling`), each padded to the network's stride, run
in the configured precision and memory format, and blended back. Out of memory makes the tiles
smaller (:mod:`.memory`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..data.normalize import OUTSIDE
from ..device import autocast, autocast_dtype, use_channels_last
from .memory import retry_smaller
from .tiling import Blend, Tile, pad_to_stride, plan_tiles, tile_batches

__all__ = ["TiledPredictor"]

RunTiles = Callable[[int, torch.Tensor], "torch.Tensor | None"]
"""``run(i, x (n, 1, h, w)) -> logits (n, K, h, w)`` for tiles ``i .. i+n-1`` of a frame, or None
when the frame only advances a recurrent state."""


class TiledPredictor(ABC):
    """Class probabilities of a network for the frames of a normalised movie (shared base of
    :class:`~.frame.FramePredictor` and :class:`~.temporal.TemporalPredictor`).

    Parameters
    ----------
    model : a registered network in eval mode.
    device : where it runs.
    tile : largest tile side in pixels (frames up to ``tile x tile`` go in one piece).
    overlap : tile overlap in pixels.
    margin : pixels of OUTSIDE added around each frame.
    amp : mixed precision: True / ``"auto"`` is bfloat16 on CUDA (float16 on GPUs without
        bfloat16) and float32 elsewhere; ``"bf16"``, ``"fp16"``, False / ``"off"`` force it
        (see :func:`~napari_cellseq.core.device.autocast_dtype`).
    min_tile : smallest tile side the out-of-memory fallback goes down to (at least
        ``2 * overlap``); ``self.tile`` holds the tile size in use after a fallback.
    channels_last : run the network in channels-last (NHWC) memory format; None (default) means
        on for CPU and CUDA, off on MPS: on a 2-core CPU it made one 700x1100 frame 1.7-2.4x
        faster for the U-Net and 1.2-1.5x for the U-LSTM (measured, see README, Benchmarks).
    compile : wrap the network in ``torch.compile`` (off by default: the first frames then pay
        for compilation, which only long movies on a GPU win back).

    ``tile_batch`` (tiles per forward pass) is 1 here; frame predictors take it as a parameter.
    """

    temporal = False
    tile_batch = 1

    def __init__(self, model: torch.nn.Module, device: torch.device, tile: int = 1536,
                 overlap: int = 64, margin: int = 16, amp: bool | str = True, min_tile: int = 128,
                 channels_last: bool | None = None, compile: bool = False):
        self.model, self.device = model, device
        self.tile, self.overlap, self.margin = tile, overlap, margin
        self.min_tile = max(int(min_tile), 2 * overlap)
        self.stride = int(getattr(model, "stride", 1))
        self.amp_dtype = autocast_dtype(device, amp)
        self.channels_last = use_channels_last(device, channels_last)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(model) if compile else model
        self._plan: tuple[tuple[int, ...], list[Tile]] | None = None

    def predict(self, movie: np.ndarray, frames: list[int] | None = None,
                stop: Callable[[], bool] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t, probabilities (K, Y, X) float32)`` for each requested frame, in order.

        movie : ``(T, Y, X)`` float32, already normalised.
        frames : frames to predict (default all, sorted, repeats dropped).
        stop : called before each frame; True ends the prediction.
        """
        frames = sorted(set(range(movie.shape[0]) if frames is None else frames))
        if not frames:
            return
        with torch.inference_mode():
            yield from self._predict(movie, frames, stop)

    @abstractmethod
    def _predict(self, movie: np.ndarray, frames: list[int],
                 stop: Callable[[], bool] | None) -> Iterator[tuple[int, np.ndarray]]:
        """:meth:`predict` for sorted, distinct, non-empty ``frames``, under inference mode."""

    def _tiles(self, frame_shape: tuple[int, ...]) -> list[Tile]:
        """The tiles of a frame of ``frame_shape`` with its margin (planned once per size)."""
        m = self.margin
        key = (frame_shape[-2] + 2 * m, frame_shape[-1] + 2 * m, self.tile, self.overlap)
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, plan_tiles(key[:2], self.tile, self.overlap, self.stride))
        return self._plan[1]

    def _frame(self, frame: np.ndarray, tiles: list[Tile], run: RunTiles) -> np.ndarray | None:
        """Probabilities ``(K, Y, X)`` of ``frame (Y, X)``: ``run`` on its tiles, ``tile_batch`` at
        a time, blended; None when ``run`` gave no logits (a warm-up frame)."""
        m = self.margin
        padded = np.pad(frame, m, constant_values=OUTSIDE)
        blend = Blend(padded.shape, len(tiles))
        outputs = False
        for i, group, patches in tile_batches(padded, tiles, self.tile_batch):
            x, h, w = pad_to_stride(torch.from_numpy(patches)[:, None].to(self.device), self.stride)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.amp_dtype):
                logits = run(i, x)
            if logits is None:
                continue
            probs = torch.softmax(logits.float(), dim=1)[:, :, :h, :w].cpu().numpy()
            for tile, p in zip(group, probs):
                blend.add(tile, p)
            outputs = True
        if not outputs:
            return None
        probs = blend.result()
        return probs[:, m:probs.shape[1] - m, m:probs.shape[2] - m]

    def _shrink(self, err: BaseException, frame_shape: tuple[int, ...]) -> None:
        """After ``err`` on a frame of ``frame_shape``: fewer tiles per pass or smaller tiles if
        it was out of memory (see :func:`~.memory.retry_smaller`), else re-raise ``err``."""
        side = max(frame_shape[-2:]) + 2 * self.margin
        self.tile, self.tile_batch = retry_smaller(err, self.device, self.tile, self.tile_batch, side,
                                                   self.min_tile)
