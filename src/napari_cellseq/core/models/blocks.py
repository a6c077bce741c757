"""Building blocks shared by the networks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["NORMS", "GroupNorm", "make_norm", "ConvBNAct", "DoubleConv", "upsample_to"]

NORMS = ("batch", "group")
"""Normalisation layers a block can use: batch norm, or group norm (8 groups, fewer for narrow layers)."""


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` that normalises bfloat16 CPU tensors in float32 (same parameters and
    state-dict keys, same result in float32).

    Under CPU autocast the convolutions give bfloat16 and torch's bfloat16 group norm on
    channels-last tensors is slower than the float32 one (measured, 2 x 64 x 160 x 160 forward
    and backward on a 2-core Xeon: float32 ~15 ms, bfloat16 channels-last ~25 ms), which took
    back the autocast gain of the U-LSTM; computing it in float32 keeps the gain and the
    statistics' precision. The output is given back in bfloat16.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.bfloat16 and x.device.type == "cpu":
            return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)
        return super().forward(x)


def make_norm(norm: str, channels: int) -> nn.Module:
    """A normalisation layer over ``channels``: ``"batch"`` (BatchNorm2d) or ``"group"``.

    Group norm normalises each sample and frame on its own, so training (crops of a few
    sequences) and inference (whole frames, one at a time) compute the same statistics; batch
    norm's running averages do not see how recurrent features drift along a sequence.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0 and channels // g >= 2 or g == 1)
        return GroupNorm(groups, channels)
    raise ValueError(f"unknown normalisation {norm!r}: use one of {', '.join(NORMS)}")


class ConvBNAct(nn.Sequential):
    """3x3 convolution, normalisation, leaky ReLU: ``(N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, norm: str = "batch"):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            make_norm(norm, c_out),
            nn.LeakyReLU(0.01, inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two :class:`ConvBNAct`: ``(N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, norm: str = "batch"):
        super().__init__(ConvBNAct(c_in, c_out, norm=norm), ConvBNAct(c_out, c_out, norm=norm))


def upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear up-sampling of ``x (N, C, h, w)`` to the spatial size of ``ref (N, *, H, W)``."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)
