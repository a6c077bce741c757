"""GRUU-Net (Wollmann, Gunkel, Chung, Erfle, Rippe & Rohr, Medical Image Analysis 2019, paper 001).

What the paper excerpt we have says (section 2.1, Fig. 1): GRUU-Net "unifies a recurrent
processing stream with a pooling stream". The recurrent stream "iteratively refines features at
full resolution"; the pooling stream "extracts high-level features within a large receptive
field"; "the two streams are capable of exchanging information at each resolution level"; "at
each scale Full-Resolution Dense Units (FRDUs) extract features, which are aggregated by a Gated
Recurrent Unit (GRU)". FRDUs are the densely connected counterpart of the Full-Resolution
Residual Units of FRRN (Pohlen et al. 2017), whose limitation the paper names: there, refinement
"is limited to summing up the extracted feature maps of each FRRU"; GRUU-Net replaces the sum
by a GRU.

Our interpretation (the excerpt stops before the equations):

* **recurrent stream** ``z`` (``base_channels`` maps at full resolution) is the hidden state of
  one convolutional GRU (:class:`ConvGRUCell`, Cho et al. 2014 with 3x3 convolutions). It starts
  as ``tanh(conv3x3(image))``.
* **pooling stream**: a U-Net-shaped path of ``2*depth-1`` FRDUs, ``depth - 1`` max-poolings
  down and bilinear up-samplings up, level ``l`` with ``w_l = base_channels * 2**l`` maps and
  U-Net skip connections between the down and up FRDU of the same level.
* **FRDU** at level ``l`` (the exchange between the streams, as FRRU): its input is the pooling
  stream concatenated with the recurrent stream max-pooled to level ``l``; a small dense block
  (a 3x3 conv to ``w_l``, then ``dense_layers`` 3x3 convs of growth ``w_l/2``, each seeing all
  earlier maps, fused by a 1x1 conv; batch norm and leaky ReLU after each conv) gives the
  level's new pooling-stream features; a 1x1 convolution of these to ``base_channels`` maps,
  up-sampled to full resolution, is the GRU's input for one step: ``z <- GRU(input, z)``.
  So the GRU aggregates the features of every scale, coarse to fine and back, one step per FRDU.
* **iterations** (option ``iterations``, default 3): the whole pass over all FRDUs is repeated
  with the *same* weights, the next pass starting its pooling stream from the refined ``z``:
  ``iterations * (2*depth-1)`` GRU steps in all. This is the iterative refinement of the
  introduction (RNNs that "iteratively minimize global energies ... robust to local errors and
  require less parameters"): more iterations cost time, not parameters, and a trained model can
  be run with a different number of iterations.
* a 1x1 convolution of the final ``z`` gives the ``num_classes`` logits.

The paper trains with the normalized focal loss
(:func:`napari_cellseq.core.losses.normalized_focal_loss`). ``H`` and ``W`` must be multiples of
``stride = 2**(depth-1)``. Defaults: ``base_channels`` 8, ``depth`` 4, 3 iterations: the GRU
runs 21 steps at full resolution, so the full-resolution width is kept small. Cost, measured
on a shared 2-core CPU (noisy): about 2.5-3x the default U-Net per training step (4x160x160)
and 92 GMAC per 704x1120 frame (U-Net: 32); ``iterations=2`` takes about a third off.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from . import register_model
from .base import FrameModel
from .blocks import ConvBNAct, upsample_to

__all__ = ["GRUUNet", "ConvGRUCell", "FRDU"]


class ConvGRUCell(nn.Module):
    """Convolutional GRU (Cho et al. 2014): ``forward(x (N, C_x, H, W), h (N, C_h, H, W)) -> h'``::

        r = sigmoid(W_r * [x, h]),  u = sigmoid(W_u * [x, h])
        n = tanh(W_n * [x, r . h])
        h' = (1 - u) . h + u . n
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 2 * hidden_channels, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden_channels, hidden_channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r, u = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return h + u * (n - h)


class FRDU(nn.Module):
    """Full-resolution dense unit: ``(pooling stream (N, c_in, h, w), z (N, c_z, H, W))`` ->
    ``(new pooling-stream features (N, c_out, h, w), GRU input (N, c_z, H, W))``."""

    def __init__(self, c_in: int, c_out: int, c_z: int, dense_layers: int = 2):
        super().__init__()
        growth = max(1, c_out // 2)
        self.entry = ConvBNAct(c_in + c_z, c_out)
        self.dense = nn.ModuleList(ConvBNAct(c_out + i * growth, growth) for i in range(dense_layers))
        self.fuse = ConvBNAct(c_out + dense_layers * growth, c_out, kernel=1)
        self.to_z = nn.Conv2d(c_out, c_z, 1)

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coarse = y.shape[-2:] != z.shape[-2:]
        z_here = F.adaptive_max_pool2d(z, y.shape[-2:]) if coarse else z
        x = self.entry(torch.cat([y, z_here], dim=1))
        for layer in self.dense:
            x = torch.cat([x, layer(x)], dim=1)
        y = self.fuse(x)
        u = self.to_z(y)
        return y, (upsample_to(u, z) if coarse else u)


@register_model(
    "gruunet",
    paper="Wollmann et al. 2019, GRUU-Net (paper 001)",
    base_channels=8,
    depth=4,
)
class GRUUNet(FrameModel):
    """Frame model: ``forward(x (N, C, H, W)) -> logits (N, num_classes, H, W)``.

    ``H`` and ``W`` must be multiples of ``stride = 2**(depth-1)``. ``iterations`` (option, or the
    attribute of the same name, may be changed after building) passes refine the full-resolution
    stream with shared weights.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.depth < 1:
            raise ValueError("depth must be at least 1")
        self.config = config
        self.iterations = int(config.option("iterations", 3))
        if self.iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {self.iterations}")
        dense_layers = int(config.option("dense_layers", 2))
        self.stride = 2 ** (config.depth - 1)
        c_z = config.base_channels
        widths = [config.base_channels * 2**level for level in range(config.depth)]
        self.stem = nn.Conv2d(config.in_channels, c_z, 3, padding=1)
        self.gru = ConvGRUCell(c_z, c_z)
        self.down = nn.ModuleList()
        c_prev = c_z  # the first level's pooling stream starts as z
        for w in widths:
            self.down.append(FRDU(c_prev, w, c_z, dense_layers))
            c_prev = w
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(FRDU(c_prev + w, w, c_z, dense_layers))
            c_prev = w
        self.head = nn.Conv2d(c_z, config.num_classes, 1)

    def refine(self, z: torch.Tensor) -> torch.Tensor:
        """One pass over all FRDUs: ``2*depth-1`` GRU steps on ``z (N, base, H, W)``."""
        y, skips = z, []
        for level, frdu in enumerate(self.down):
            if level > 0:
                y = F.max_pool2d(y, 2)
            y, u = frdu(y, z)
            z = self.gru(u, z)
            skips.append(y)
        for frdu, skip in zip(self.up, reversed(skips[:-1])):
            y, u = frdu(torch.cat([upsample_to(y, skip), skip], dim=1), z)
            z = self.gru(u, z)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.tanh(self.stem(x))
        for _ in range(self.iterations):
            z = self.refine(z)
        return self.head(z)
