"""DeepLabv3+ with an aligned-Xception backbone (Chen et al., ECCV 2018), as compared in paper
004 (section 2.2, Table 1: 41,253,023 parameters, the best Dice on nuclei / cytoplasm).

Architecture, output stride 16 (Chen et al., section 3 and Fig. 4; the widths follow the
paper's modified Xception-65 and the Keras implementation the parameter count of paper 004
matches):

* **Xception entry flow**: 3x3/2 conv (32), 3x3 conv (64); three residual blocks of three
  separable convolutions (128, 256, 728 channels), the last one of each with stride 2 and a
  1x1/2 convolution on the shortcut. The 256-channel block's second convolution (stride 4,
  before that block's stride) is kept as the decoder's low-level features.
* **middle flow**: ``middle_blocks`` (16) residual blocks of three 728-channel separable
  convolutions with identity shortcuts.
* **exit flow**: a block of separable convolutions (728, 1024, 1024) with a 1x1 shortcut
  (Xception's stride 2 there removed), then separable convolutions (1536, 1536, 2048) with
  atrous rate 2 in place of that stride (output stride 16).
* **ASPP** (atrous spatial pyramid pooling): a 1x1 convolution, three 3x3 atrous separable
  convolutions with rates 6, 12, 18 and image-level pooling (global average, 1x1 conv, broadcast
  back), each 256 channels, concatenated and fused by a 1x1 convolution (256), dropout 0.1.
* **decoder**: ASPP output up-sampled x4 (bilinear), concatenated with a 1x1 (48) projection of
  the low-level features, two 3x3 separable convolutions (256), a 1x1 convolution to
  ``num_classes`` logits, up-sampled x4 (bilinear) to the input size.

"Separable" is :class:`~.separable.SeparableConvBN` (depthwise 3x3 with atrous rate, pointwise
1x1, batch norm). Atrous convolution (eq. 1 of paper 004): ``a[i] = sum_k x[i + r k] w[k]``.

Configurations. ``options=(("reference", True),)`` builds the paper's network whatever the
other fields say (entry width 32, i.e. the widths above, and 16 middle blocks): 41,049,955
trainable parameters here, 0.5 % below paper 004's 41,253,023, which counts, as Keras does,
the batch norms' moving mean and variance too (202,288 buffers here; with them, 41,252,243:
780 fewer, 768 of them the image-pooling batch norm we leave out, see below). The
napari-cellseq default is lighter: every width is scaled by ``base_channels / 32`` (default base 8, a quarter) and
``middle_blocks`` (an option) defaults to 8. ``H`` and ``W`` must be multiples of
``stride = 16``; ``config.depth`` is not used.

Departures: the image-pooling branch has a bias and no batch norm (batch norm over a 1x1 map
fails for a batch of one and adds nothing); no pretrained weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from . import register_model
from .base import FrameModel
from .separable import SeparableConvBN

__all__ = ["DeepLabV3Plus", "XceptionBlock"]

ASPP_RATES = (6, 12, 18)


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class XceptionBlock(nn.Module):
    """Three separable convolutions plus a shortcut (``"conv"``: 1x1 conv + BN, ``"sum"``:
    identity, ``"none"``), ``(N, c_in, H, W) -> (N, widths[-1], H/stride, W/stride)``; with
    ``return_skip``, also the second convolution's output ``(N, widths[1], H, W)``.

    Without ``depth_activation`` each separable convolution is preceded by a ReLU (Xception);
    with it, ReLUs follow the depthwise and pointwise parts instead (DeepLabv3+ exit flow).
    """

    def __init__(self, c_in: int, widths: tuple[int, int, int], skip: str, stride: int = 1,
                 rate: int = 1, depth_activation: bool = False, return_skip: bool = False):
        super().__init__()
        self.return_skip = return_skip  # also return the 2nd convolution's output (before the stride)
        self.pre_relu = not depth_activation
        self.convs = nn.ModuleList()
        c = c_in
        for i, w in enumerate(widths):
            s = stride if i == 2 else 1
            self.convs.append(SeparableConvBN(c, w, stride=s, rate=rate, depth_activation=depth_activation))
            c = w
        self.skip = skip
        if skip == "conv":
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c, 1, stride=stride, bias=False), nn.BatchNorm2d(c))
        elif skip == "sum" and (c_in != c or stride != 1):
            raise ValueError("an identity shortcut needs equal widths and stride 1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i, conv in enumerate(self.convs):
            out = conv(F.relu(out) if self.pre_relu else out)
            if i == 1:
                low = out
        if self.skip == "conv":
            out = out + self.shortcut(x)
        elif self.skip == "sum":
            out = out + x
        return (out, low) if self.return_skip else out


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``(N, c_in, h, w) -> (N, c_out, h, w)``."""

    def __init__(self, c_in: int, c_out: int, dropout: float = 0.1):
        super().__init__()
        self.pool_conv = nn.Conv2d(c_in, c_out, 1, bias=True)
        self.branches = nn.ModuleList(
            [_conv_bn_relu(c_in, c_out, 1)]
            + [SeparableConvBN(c_in, c_out, rate=r, depth_activation=True) for r in ASPP_RATES]
        )
        self.project = nn.Sequential(_conv_bn_relu(c_out * (2 + len(ASPP_RATES)), c_out, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.relu(self.pool_conv(x.mean(dim=(2, 3), keepdim=True)))
        outs = [pooled.expand(-1, -1, *x.shape[-2:])] + [b(x) for b in self.branches]
        return self.project(torch.cat(outs, dim=1))


@register_model(
    "deeplabv3plus",
    paper="Chen et al. 2018, DeepLabv3+ with Xception (paper 004)",
    base_channels=8,
)
class DeepLabV3Plus(FrameModel):
    """Frame model: ``forward(x (N, C, H, W)) -> logits (N, num_classes, H, W)``.

    ``H`` and ``W`` must be multiples of ``stride = 16``.
    """

    stride = 16

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        if config.option("reference", False):
            base, middle = 32, 16
        else:
            base, middle = config.base_channels, int(config.option("middle_blocks", 8))
        scale = base / 32.0

        def ch(n: int) -> int:
            return max(1, round(n * scale))

        self.entry = nn.Sequential(
            _conv_bn_relu(config.in_channels, ch(32), 3, stride=2),  # stride 2
            _conv_bn_relu(ch(32), ch(64), 3),
            XceptionBlock(ch(64), (ch(128),) * 3, "conv", stride=2),  # stride 4
        )
        # its 2nd convolution's output (stride 4) is the decoder's low-level feature map
        self.entry_low = XceptionBlock(ch(128), (ch(256),) * 3, "conv", stride=2, return_skip=True)  # 8
        self.entry_high = XceptionBlock(ch(256), (ch(728),) * 3, "conv", stride=2)  # stride 16
        self.middle = nn.Sequential(*[XceptionBlock(ch(728), (ch(728),) * 3, "sum") for _ in range(middle)])
        self.exit = nn.Sequential(
            # output stride 16: Xception's last stride is dropped, the last block is atrous (rate 2)
            XceptionBlock(ch(728), (ch(728), ch(1024), ch(1024)), "conv", stride=1),
            XceptionBlock(ch(1024), (ch(1536), ch(1536), ch(2048)), "none", rate=2, depth_activation=True),
        )
        self.aspp = ASPP(ch(2048), ch(256))
        self.low_proj = _conv_bn_relu(ch(256), ch(48), 1)
        self.decoder = nn.Sequential(
            SeparableConvBN(ch(256) + ch(48), ch(256), depth_activation=True),
            SeparableConvBN(ch(256), ch(256), depth_activation=True),
        )
        self.head = nn.Conv2d(ch(256), config.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x, low = self.entry_low(self.entry(x))
        high = self.aspp(self.exit(self.middle(self.entry_high(x))))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.decoder(torch.cat([high, self.low_proj(low)], dim=1))
        return F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)
