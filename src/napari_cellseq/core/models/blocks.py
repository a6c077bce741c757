"""Building blocks shared by the networks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvBNAct", "DoubleConv", "upsample_to"]


class ConvBNAct(nn.Sequential):
    """3x3 convolution, batch norm, leaky ReLU: ``(N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.01, inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two :class:`ConvBNAct`: ``(N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(ConvBNAct(c_in, c_out), ConvBNAct(c_out, c_out))


def upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear up-sampling of ``x (N, C, h, w)`` to the spatial size of ``ref (N, *, H, W)``."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)
