"""Fully convolutional GoogLeNet, as in the blog post "Segmenting complex cells with CNNs"
(paper 003): "we replaced the final fully connected output described in the original GoogLeNet
paper with a single convolution-transpose layer. This layer restores the reduced representation
created by GoogLeNet's multi-stride convolutional and max-pool layers to the original size."

Backbone: GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015, Table 1) up to inception (5b):
7x7/2 conv (64), 3x3/2 max pool, 1x1 conv (64), 3x3 conv (192), 3x3/2 max pool, inception 3a,
3b, 3x3/2 max pool, 4a-4e, 3x3/2 max pool, 5a, 5b (1024 channels at 1/32 of the input size).
Each inception module concatenates four branches: 1x1; 1x1 reduce then 3x3; 1x1 reduce then 5x5;
3x3/1 max pool then 1x1 projection (widths as in Table 1 of Szegedy et al.).

Head: the average pooling, dropout and fully connected classifier are removed; one
``ConvTranspose2d(1024, num_classes, kernel=2*32, stride=32, padding=16)`` maps the stride-32
features straight back to full-resolution logits (kernel twice the stride so neighbouring
feature vectors overlap and blend, as FCN's learnt up-sampling; option ``upsample_kernel``
changes it, any even value >= 32). The blog thresholds the class probabilities and labels
connected components, which is what :mod:`napari_cellseq.core.postprocess` does.

Widths: every channel count of Table 1 is scaled by ``base_channels / 64`` (``base_channels``
is the stem width, 64 in the original; ``base_channels=64`` is the reference network, ~5.6 M
backbone parameters + the transposed convolution). Default base 16.

Departures: batch norm after every convolution (the 2014 network predates it; torchvision's
GoogLeNet does the same); no auxiliary classifiers (they only serve ImageNet training); no local
response normalisation; ``H``, ``W`` should be multiples of ``stride = 32`` (inference pads
to them; other sizes, e.g. training crops, come back rounded up and are cropped); no pretrained
weights (the blog does not say whether it started from ImageNet weights; we never download).
The blog's loss over-weights edge pixels: see :func:`napari_cellseq.core.losses.edge_weights`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from . import register_model
from .base import FrameModel

__all__ = ["FCNGoogLeNet", "Inception", "INCEPTION_TABLE"]

# Szegedy et al. 2015, Table 1: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj);
# None marks a 3x3/2 max pool between modules.
INCEPTION_TABLE = (
    ("3a", (64, 96, 128, 16, 32, 32)),
    ("3b", (128, 128, 192, 32, 96, 64)),
    None,
    ("4a", (192, 96, 208, 16, 48, 64)),
    ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)),
    None,
    ("5a", (256, 160, 320, 32, 128, 128)),
    ("5b", (384, 192, 384, 48, 128, 128)),
)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, padding=1)  # halves even sizes exactly


class Inception(nn.Module):
    """Inception module: ``(N, c_in, H, W) -> (N, n1 + n3 + n5 + proj, H, W)``."""

    def __init__(self, c_in: int, n1: int, r3: int, n3: int, r5: int, n5: int, proj: int):
        super().__init__()
        self.b1 = _conv(c_in, n1, 1)
        self.b3 = nn.Sequential(_conv(c_in, r3, 1), _conv(r3, n3, 3))
        self.b5 = nn.Sequential(_conv(c_in, r5, 1), _conv(r5, n5, 5))
        self.bp = _conv(c_in, proj, 1)
        self.out_channels = n1 + n3 + n5 + proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(pooled)], dim=1)


@register_model(
    "fcn_googlenet",
    paper="Szegedy et al. 2015; 'Segmenting complex cells with CNNs' blog (paper 003)",
    base_channels=16,
)
class FCNGoogLeNet(FrameModel):
    """Frame model: ``forward(x (N, C, H, W)) -> logits (N, num_classes, H, W)``.

    ``H`` and ``W`` must be multiples of ``stride = 32``. ``config.depth`` is not used.
    """

    stride = 32

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        scale = config.base_channels / 64.0

        def ch(n: int) -> int:
            return max(1, round(n * scale))

        self.stem = nn.Sequential(
            _conv(config.in_channels, ch(64), 7, stride=2),
            _pool(),
            _conv(ch(64), ch(64), 1),
            _conv(ch(64), ch(192), 3),
            _pool(),
        )
        layers: list[nn.Module] = []
        c_prev = ch(192)
        for entry in INCEPTION_TABLE:
            if entry is None:
                layers.append(_pool())
                continue
            module = Inception(c_prev, *(ch(n) for n in entry[1]))
            layers.append(module)
            c_prev = module.out_channels
        self.inception = nn.Sequential(*layers)
        kernel = int(config.option("upsample_kernel", 2 * self.stride))
        if kernel < self.stride or kernel % 2:
            raise ValueError(f"upsample_kernel must be even and >= {self.stride}, got {kernel}")
        self.head = nn.ConvTranspose2d(
            c_prev, config.num_classes, kernel, stride=self.stride, padding=(kernel - self.stride) // 2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # sizes that are not multiples of 32 (training crops) come back rounded up: crop them
        return self.head(self.inception(self.stem(x)))[..., :h, :w]
