"""Out of memory during inference: smaller tile batches, then smaller tiles, then a clear error.

When the device runs out of memory on a frame, the predictor first halves its tile batch (frame
models sending several tiles per forward pass), then halves the tile side, down to a floor of
``min_tile`` pixels, and predicts the frame again (:func:`retry_smaller`); temporal models restart
their memory, with a fresh warm-up, from that frame. Only when even the smallest tiles do not fit
is a :class:`~napari_cellseq.core.errors.CellseqError` raised.
"""

from __future__ import annotations

import logging

import torch

from ..errors import CellseqError

logger = logging.getLogger(__name__)

__all__ = ["is_out_of_memory", "retry_smaller"]

_OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {MemoryError, getattr(torch, "OutOfMemoryError", MemoryError),
     getattr(torch.cuda, "OutOfMemoryError", MemoryError)}
)
_OOM_TEXT = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")


def is_out_of_memory(err: BaseException) -> bool:
    """True for the errors torch / numpy raise when a device (GPU, MPS or CPU) is out of memory."""
    if isinstance(err, _OOM_ERRORS):
        return True
    return isinstance(err, RuntimeError) and any(text in str(err).lower() for text in _OOM_TEXT)


def retry_smaller(err: BaseException, device: torch.device, tile: int, tile_batch: int, side: int,
                  min_tile: int) -> tuple[int, int]:
    """The ``(tile, tile_batch)`` to predict a frame again with after ``err``.

    ``err`` is re-raised unless it is out of memory. ``side``: the longer side of the padded frame
    (tiles larger than it are the frame). Halves ``tile_batch`` while it is above 1, else the tile
    side; a CellseqError saying what to do when the halved tile would be below ``min_tile``.
    """
    if not is_out_of_memory(err):
        raise err
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if tile_batch > 1:
        logger.warning("out of memory on %s; retrying the frame with %d tiles at a time", device, tile_batch // 2)
        return tile, tile_batch // 2
    used = min(tile, side)
    if used // 2 < min_tile:
        raise CellseqError(
            f"out of memory on {device} even with tiles of {used} pixels: free memory "
            "(close other programs or GPU jobs), use a smaller model, or run on another device (--device cpu)"
        ) from err
    logger.warning("out of memory on %s with %d-pixel tiles; retrying the frame with %d-pixel tiles",
                   device, used, used // 2)
    return used // 2, tile_batch
