"""FC-DenseNet, "The One Hundred Layers Tiramisu" (Jégou et al., CVPRW 2017), as compared in
paper 004 (section 2.3, Table 1: FC-DenseNet103, 9,419,011 parameters).

Architecture (Jégou et al., Fig. 1 and Tables 1-2):

* a 3x3 convolution with ``first_filters`` outputs (48 in FC-DenseNet103);
* down path: ``depth`` dense blocks, each followed by a *transition down* (BN, ReLU, 1x1 conv
  keeping the width, dropout, 2x2 max pool). A dense block of ``n`` layers with growth rate
  ``k`` lets every layer (BN, ReLU, 3x3 conv to ``k`` channels, dropout) see the concatenation
  of the block input and all earlier layers' outputs (eq. 2 of paper 004); on the down path the
  block passes on input + all ``n*k`` new maps, which are also the skip connection;
* a bottleneck dense block;
* up path: ``depth`` *transitions up* (3x3 transposed convolution, stride 2) applied only to the
  ``n*k`` new maps of the previous dense block (this keeps the widths linear), concatenated with
  the skip connection of the same resolution, followed by a dense block;
* a 1x1 convolution to ``num_classes`` logits on the last block's full output (softmax is left
  to the loss and to inference).

Configurations. ``options=(("reference", True),)`` builds FC-DenseNet103 whatever the other
fields say: growth 16, 48 first-convolution filters, dense blocks of 4, 5, 7, 10, 12 layers,
bottleneck 15, then 12, 10, 7, 5, 4: 9,319,171 trainable parameters here, 1.1 % below paper
004's 9,419,011, which counts, as Keras does, the batch norms' moving mean and variance too
(103,072 buffers here; with them 9,422,243, 0.03 % above).
The napari-cellseq default is lighter, the FC-DenseNet56 layout with a smaller growth rate.
Knobs: ``base_channels`` is the growth rate ``k`` (default 8; FC-DenseNet56 uses 12, 103 uses
16) with ``first_filters = 3 * k``; the option ``layers_per_block`` (default 4, every dense
block incl. the bottleneck, as FC-DenseNet56) or the option ``blocks`` (an explicit tuple of
``2*depth+1`` layer counts) set the layers; ``depth`` (default 5) the transitions, so ``H``,
``W`` should be multiples of ``stride = 2**depth``. Dropout (option ``dropout``) is 0.2 as in
the paper. Measured on a shared 2-core CPU (one 4x160x160 training step, forward + backward +
Adam, relative to the default U-Net, noisy): growth 12 about 7x, growth 8 about 5-6x, growth 8
with 3 layers per block about 2.5x; dense blocks at full resolution re-normalise their growing
concatenation in every layer, which is memory-bound on a CPU.

Departures: "same" padding everywhere and the transposed convolution sized so that up-sampling
exactly doubles (output size = input size), as the reference code also crops to; sizes that
are not multiples of the stride (e.g. a training crop of 176 with stride 32) also work: pooling
rounds up and each up-sampled map is cropped to its skip connection (inference pads frames to
multiples of the stride anyway).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from . import register_model
from .base import FrameModel

__all__ = ["Tiramisu", "REFERENCE_BLOCKS"]

REFERENCE_BLOCKS = (4, 5, 7, 10, 12, 15, 12, 10, 7, 5, 4)  # FC-DenseNet103


class DenseLayer(nn.Sequential):
    """BN, ReLU, 3x3 conv to ``growth`` channels, dropout."""

    def __init__(self, c_in: int, growth: int, dropout: float):
        super().__init__(
            nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_in, growth, 3, padding=1, bias=True),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )


class DenseBlock(nn.Module):
    """``n`` dense layers: ``(N, c_in, H, W) -> (N, c_in + n*k, H, W)`` or only the ``n*k`` new maps."""

    def __init__(self, c_in: int, n: int, growth: int, dropout: float, keep_input: bool):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(c_in + i * growth, growth, dropout) for i in range(n))
        self.keep_input = keep_input
        self.out_channels = (c_in if keep_input else 0) + n * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            out = layer(x)
            new.append(out)
            x = torch.cat([x, out], dim=1)
        return x if self.keep_input else torch.cat(new, dim=1)


class TransitionDown(nn.Sequential):
    """BN, ReLU, 1x1 conv (same width), dropout, 2x2 max pool."""

    def __init__(self, c: int, dropout: float):
        super().__init__(
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 1, bias=True),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.MaxPool2d(2, ceil_mode=True),
        )


def _blocks(config: ModelConfig) -> tuple[int, ...]:
    blocks = config.option("blocks")
    if blocks is None:
        n = int(config.option("layers_per_block", 4))
        blocks = (n,) * (2 * config.depth + 1)
    blocks = tuple(int(b) for b in blocks)
    if len(blocks) % 2 != 1 or len(blocks) < 3 or min(blocks) < 1:
        raise ValueError(
            f"tiramisu blocks must be an odd number (2*depth+1 >= 3) of positive layer counts, got {blocks}"
        )
    return blocks


@register_model(
    "tiramisu",
    paper="Jégou et al. 2017, FC-DenseNet (paper 004)",
    base_channels=8,
    depth=5,
)
class Tiramisu(FrameModel):
    """Frame model: ``forward(x (N, C, H, W)) -> logits (N, num_classes, H, W)``.

    ``H`` and ``W`` must be multiples of ``stride = 2**depth`` (32 by default and for FC-DenseNet103).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        if config.option("reference", False):
            blocks, growth, first = REFERENCE_BLOCKS, 16, 48
        else:
            blocks, growth, first = _blocks(config), config.base_channels, 3 * config.base_channels
        dropout = float(config.option("dropout", 0.2))
        depth = len(blocks) // 2
        self.stride = 2**depth
        self.first = nn.Conv2d(config.in_channels, first, 3, padding=1, bias=True)
        c = first
        self.down_blocks, self.downs, skips = nn.ModuleList(), nn.ModuleList(), []
        for n in blocks[:depth]:
            block = DenseBlock(c, n, growth, dropout, keep_input=True)
            c = block.out_channels
            skips.append(c)
            self.down_blocks.append(block)
            self.downs.append(TransitionDown(c, dropout))
        self.bottleneck = DenseBlock(c, blocks[depth], growth, dropout, keep_input=False)
        c_up = self.bottleneck.out_channels  # only the new maps go up
        self.ups, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i, n in enumerate(blocks[depth + 1 :]):
            last = i == depth - 1
            self.ups.append(nn.ConvTranspose2d(c_up, c_up, 3, stride=2, padding=1, output_padding=1))
            block = DenseBlock(c_up + skips[-1 - i], n, growth, dropout, keep_input=last)
            self.up_blocks.append(block)
            c_up = block.out_channels
        self.head = nn.Conv2d(c_up, config.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for block, down in zip(self.down_blocks, self.downs):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
            # sizes that are not multiples of the stride (training crops) pool with ceil_mode and
            # come back up to 2*ceil(s/2) >= s: crop to the skip connection
            x = up(x)[..., : skip.shape[-2], : skip.shape[-1]]
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)
