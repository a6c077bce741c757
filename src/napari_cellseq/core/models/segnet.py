"""SegNet (Badrinarayanan, Kendall & Cipolla 2015), as compared with U-Net in the CS230 report
(paper 002, section 4.2 and Fig. 6).

Architecture: a VGG16-like encoder of ``depth`` stages (the paper: 5 stages with 2, 2, 3, 3, 3
convolutions, 13 in all), each stage a stack of 3x3 conv-BN-ReLU followed by 2x2 max pooling whose
*indices* (where each maximum was) are stored. The decoder mirrors the encoder: each stage first
un-pools with the stored indices of the matching encoder stage
(:func:`torch.nn.functional.max_unpool2d` puts every value back where its maximum came from and
zeros elsewhere, giving a sparse map), then densifies it with the same number of 3x3
conv-BN-ReLU. A 1x1 convolution gives the ``num_classes`` logits (softmax is left to the loss
and inference). Unlike U-Net, no feature maps travel from encoder to decoder, only the pooling
indices, which is what makes SegNet light in memory and, as the report observes, blurrier at
boundaries.

Widths: stage ``s`` has ``base_channels * (1, 2, 4, 8, 8)[s]`` channels (paper: base 64, which
is ~29.4 M parameters; ``ModelConfig(name="segnet", base_channels=64)`` builds it). Our default
base 16 (~1.8 M parameters) fits the few-frame, CPU setting. ``depth`` (default 5) is the
number of stages; ``H`` and ``W`` should be multiples of ``stride = 2**depth`` (inference pads
to them; other sizes, e.g. training crops, work too: pooling rounds up and un-pooling restores
each stage's exact size).

Departure: the last decoder stage ends with conv-BN-ReLU at ``base_channels`` before the 1x1
classifier (the original's last decoder conv outputs the classes directly; a 1x1 head is the
same family and keeps every model's head alike).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from . import register_model
from .base import FrameModel

__all__ = ["SegNet", "VGG_CONVS", "VGG_WIDTHS"]

VGG_CONVS = (2, 2, 3, 3, 3)  # convolutions per stage in VGG16 / SegNet
VGG_WIDTHS = (1, 2, 4, 8, 8)  # stage width / base_channels


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _stack(widths: list[int]) -> nn.Sequential:
    return nn.Sequential(*[_conv_bn_relu(a, b) for a, b in zip(widths[:-1], widths[1:])])


@register_model(
    "segnet",
    paper="Badrinarayanan et al. 2015; CS230 report (paper 002)",
    base_channels=16,
    depth=5,
)
class SegNet(FrameModel):
    """Frame model: ``forward(x (N, C, H, W)) -> logits (N, num_classes, H, W)``.

    ``H`` and ``W`` must be multiples of ``stride = 2**depth``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not 1 <= config.depth <= len(VGG_CONVS):
            raise ValueError(f"segnet depth must be 1..{len(VGG_CONVS)}, got {config.depth}")
        self.config = config
        self.stride = 2**config.depth
        base = config.base_channels
        widths = [base * VGG_WIDTHS[s] for s in range(config.depth)]
        convs = VGG_CONVS[: config.depth]
        self.encoders = nn.ModuleList()
        c_prev = config.in_channels
        for w, n in zip(widths, convs):
            self.encoders.append(_stack([c_prev] + [w] * n))
            c_prev = w
        # Decoder stage s (deepest first) mirrors encoder stage s: n convs at width w, the last
        # one narrowing to the width of the stage above (or base at the top).
        self.decoders = nn.ModuleList()
        for s in reversed(range(config.depth)):
            w, n = widths[s], convs[s]
            w_out = widths[s - 1] if s > 0 else base
            self.decoders.append(_stack([w] * n + [w_out]))
        self.head = nn.Conv2d(base, config.num_classes, kernel_size=1)

    def encode(self, x: torch.Tensor):
        """``x (N, C, H, W)`` -> (bottleneck features, pooling indices per stage, pre-pool sizes)."""
        indices, sizes = [], []
        for enc in self.encoders:
            x = enc(x)
            sizes.append(x.shape[-2:])
            # ceil_mode: sizes that are not multiples of the stride (training crops) still work
            x, idx = F.max_pool2d(x, 2, stride=2, ceil_mode=True, return_indices=True)
            indices.append(idx)
        return x, indices, sizes

    def decode(self, x: torch.Tensor, indices: list[torch.Tensor], sizes: list) -> torch.Tensor:
        """Un-pool with the encoder's ``indices`` (deepest last in the lists), convolve; logits."""
        for dec, idx, size in zip(self.decoders, reversed(indices), reversed(sizes)):
            x = F.max_unpool2d(x, idx, 2, stride=2, output_size=size)
            x = dec(x)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(x))
