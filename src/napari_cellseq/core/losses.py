"""Losses.

:func:`weighted_cross_entropy` is eq. 9 of the U-LSTM paper: cross-entropy weighted per pixel
by ``w_c + w_d`` (class weight plus the separation weight of eq. 8, see
:mod:`napari_cellseq.core.data.targets`). Departure: the paper sums over pixels; we divide by
the number of valid pixels so the loss scale does not depend on crop or batch size.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["weighted_cross_entropy"]


def weighted_cross_entropy(
    logits: torch.Tensor, classes: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Mean of ``valid * weights * CE(logits, classes)`` over valid pixels.

    logits : ``(N, K, H, W)``; classes : ``(N, H, W)`` int64; weights, valid : ``(N, H, W)``.
    Returns a scalar; zero (with gradient) when no pixel is valid.
    """
    ce = F.cross_entropy(logits.float(), classes, reduction="none")
    total = (ce * weights * valid).sum()
    return total / valid.sum().clamp_min(1.0)
