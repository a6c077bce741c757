"""Network inference on frames of any size.

* :mod:`.tiling`: frames cut into equal, just-sufficient tiles (padded to the network's stride)
  and the tiles' probabilities blended back: :func:`plan_tiles`, :class:`Tile`.
* :mod:`.memory`: out of memory makes the tile batches, then the tiles, smaller:
  :func:`is_out_of_memory`.
* :mod:`.base`: what both predictors share (margin, tiles, precision, memory format, compile).
* :mod:`.frame`: :class:`FramePredictor`, every frame on its own.
* :mod:`.temporal`: :class:`TemporalPredictor`, stateful, frame by frame, with a warm-up:
  :func:`temporal_order`.

:func:`Predictor` picks the predictor for a model, :func:`segmentation_predictor` the tiling that
segmentation and calibration share.
"""

from __future__ import annotations

import torch

from .base import TiledPredictor
from .frame import FramePredictor
from .memory import is_out_of_memory
from .temporal import TemporalPredictor, temporal_order
from .tiling import Tile, plan_tiles

__all__ = ["Tile", "plan_tiles", "temporal_order", "Predictor", "is_out_of_memory", "default_tile",
           "segmentation_predictor", "TiledPredictor", "FramePredictor", "TemporalPredictor"]


def Predictor(model: torch.nn.Module, device: torch.device, tile: int = 1536, overlap: int = 64,  # noqa: N802
              warmup: int = 3, margin: int = 16, amp: bool | str = True, min_tile: int = 128,
              channels_last: bool | None = None, tile_batch: int = 1,
              compile: bool = False) -> TiledPredictor:
    """The predictor for ``model``: a :class:`TemporalPredictor` for temporal models
    (``model.temporal``, see :class:`~napari_cellseq.core.models.TemporalModel`; ``tile_batch``
    does not apply), else a :class:`FramePredictor` (``warmup`` does not apply). Parameters as
    those classes take them."""
    common = dict(tile=tile, overlap=overlap, margin=margin, amp=amp, min_tile=min_tile,
                  channels_last=channels_last, compile=compile)
    if getattr(model, "temporal", False):
        return TemporalPredictor(model, device, warmup=warmup, **common)
    return FramePredictor(model, device, tile_batch=tile_batch, **common)


def default_tile(device: torch.device) -> int:
    """The default largest tile side for ``device``: 512 pixels on CPU, 1536 on GPUs.

    On a 2-core CPU, 512-pixel tiles segmented a 700x1100 HeLa frame 1.2-1.7x faster than one
    whole-frame tile (activations that fit the caches; SEG 0.872 either way, measured: README,
    Benchmarks); accelerators take big tiles (fewer seams, fuller kernels).
    """
    return 512 if device.type == "cpu" else 1536


def segmentation_predictor(model: torch.nn.Module, device: torch.device, tile: int | None = None) -> TiledPredictor:
    """The predictor that segmentation uses: ``tile`` (None: :func:`default_tile`) and an
    overlap of ``min(64, tile // 4)``.

    Calibration after training predicts with the same tiling, so the threshold it picks is the
    one for the probabilities ``segment`` will see: normalisation layers computed per tile
    (group norm in the U-LSTM) make the output depend on the tile size. Measured on HeLa (U-LSTM,
    painted frames 0-4): calibrating with whole-frame tiles picked threshold 0.45, with the
    512-pixel tiles of CPU segmentation 0.35; SEG on frames 10-19 0.921 vs 0.928.
    """
    tile = default_tile(device) if tile is None else int(tile)
    return Predictor(model, device, tile=tile, overlap=min(64, tile // 4))
