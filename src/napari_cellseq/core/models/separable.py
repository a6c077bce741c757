"""Atrous (dilated) depthwise-separable convolution, the building block of Xception and
DeepLabv3+ (Chollet 2017; Chen et al. 2018, section 3.1; paper 004, section 2.2 and eq. 1)."""

from __future__ import annotations

from torch import nn

__all__ = ["SeparableConvBN"]


class SeparableConvBN(nn.Sequential):
    """Depthwise 3x3 (stride, atrous ``rate``), BN, [ReLU], pointwise 1x1, BN, [ReLU].

    ``(N, c_in, H, W) -> (N, c_out, H/stride, W/stride)`` ("same" padding, ``H``, ``W`` even when
    ``stride = 2``). ``depth_activation`` puts a ReLU after each of the two convolutions, as
    DeepLabv3+'s Xception exit flow, ASPP and decoder do; without it the caller applies the
    activation (before the block, as in the Xception entry and middle flows).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, rate: int = 1, depth_activation: bool = False):
        act = (lambda: nn.ReLU(inplace=True)) if depth_activation else nn.Identity
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, stride=stride, padding=rate, dilation=rate, groups=c_in, bias=False),
            nn.BatchNorm2d(c_in),
            act(),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
            act(),
        )
