"""U-Net (Ronneberger et al. 2015) as used in the CS230 report and the U-LSTM paper's decoder.

Departures from the original paper, on purpose:
* padded ("same") convolutions, so output size equals input size (the original crops);
* batch norm and leaky ReLU after every convolution, as in the U-LSTM paper's blocks;
* bilinear up-sampling followed by convolutions instead of transposed convolutions (as the
  U-LSTM paper's decoder does; avoids checkerboard artefacts);
* width ``base_channels`` (default 16) instead of 64, chosen by measurement on a 2-core CPU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from . import register_model
from .base import FrameModel
from .blocks import DoubleConv, upsample_to

__all__ = ["UNet"]


@register_model("unet", paper="Ronneberger et al. 2015; CS230 report (paper 002)")
class UNet(FrameModel):
    """Frame model: ``forward(x (N, C, H, W)) -> logits (N, num_classes, H, W)``.

    ``H`` and ``W`` must be multiples of ``stride = 2**(depth-1)``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.depth < 1:
            raise ValueError("depth must be at least 1")
        self.config = config
        self.stride = 2 ** (config.depth - 1)
        widths = [config.base_channels * 2**level for level in range(config.depth)]
        self.encoders = nn.ModuleList()
        c_prev = config.in_channels
        for w in widths:
            self.encoders.append(DoubleConv(c_prev, w))
            c_prev = w
        self.decoders = nn.ModuleList()
        for w_skip in reversed(widths[:-1]):
            self.decoders.append(DoubleConv(c_prev + w_skip, w_skip))
            c_prev = w_skip
        self.head = nn.Conv2d(c_prev, config.num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, enc in enumerate(self.encoders):
            if level > 0:
                x = F.max_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        for dec, skip in zip(self.decoders, reversed(skips[:-1])):
            x = dec(torch.cat([upsample_to(x, skip), skip], dim=1))
        return self.head(x)
