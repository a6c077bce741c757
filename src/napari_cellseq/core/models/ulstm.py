"""U-LSTM (Arbelle & Riklin Raviv, ISBI 2019, paper 000): a U-Net whose encoder levels are C-LSTMs.

Architecture (section 2.1 and eqs. 1-5 of the paper), with ``L = config.depth`` levels and
``w_l = base_channels * 2**l``:

* encoder level ``l`` (``E^{l}``): a C-LSTM (:class:`~.convlstm.ConvLSTMCell`, 3x3 gates) over
  ``x_t^{l}`` with its own ``(h_{t-1}^{l}, c_{t-1}^{l})``, then leaky ReLU, 3x3 convolution, batch
  norm, leaky ReLU. The result is the level's skip connection and, max-pooled 2x2, the input
  ``x_t^{l+1}`` of the next level (``x_t^{0}`` is the image ``I_t``).
* decoder: ``L`` blocks as eqs. 3-4 define them. The first (``l = L``) works at the bottleneck
  resolution on ``y = h^{L-1}`` "concatenated with the parallel encoder output", which is
  ``h^{L-1}`` again; a convolution over ``concat(h, h)`` equals a convolution over ``h`` with the
  two weight halves summed, so that block is stored as two conv-BN-leaky-ReLU on ``h^{L-1}``
  (same function class, half the weights). Each following block bilinearly up-samples,
  concatenates the parallel encoder level's output and applies two 3x3 conv-BN-leaky-ReLU.
  A final 1x1 convolution gives ``num_classes`` logits; softmax (eq. 6) is left to the loss and
  to inference.

Reading of the paper's ambiguous widths. Section 2.1 gives convolution depths
"(128, 256, 512, 1024)" and C-LSTM depths "(1024, 512, 256, 128)". We read both lists as the same
per-level widths, the second written from the deepest level up, so level ``l`` has
``w_l = base * 2**l`` channels for its C-LSTM hidden state *and* its convolution (paper: base 128).
Reasons: (1) Fig. 1's caption describes an earlier variant with the C-LSTMs in the up-sampling
path, where a decreasing list (deep to shallow) is natural, and the 5x5 transposed convolutions
it mentions are likewise absent from the text's bilinear decoder; (2) the literal alternative, a
1024-channel C-LSTM at full resolution and 128 channels at 1/8 resolution, inverts the usual
U-Net widening and would cost ~64x more at level 0; (3) the authors' public code
(arbellea/LSTM-UNet, ``DEFAULT_NET_DOWN_PARAMS``) also widens its C-LSTMs with depth
(128, 256, 256, 512).

Normalisation (model option ``norm``): the paper uses batch norm; our default is group norm
(``"group"``, 8 groups), ``norm="batch"`` restores the paper's layer. Measured on HeLa (frames
0-4 painted, scored on 10-19): with batch norm, a model trained on 10-frame sequences segmented
well after a short warm-up (SEG 0.888 on frames seen after 3 lead-in frames) but lost quality
as the recurrent state ran on through the movie (SEG 0.680 after all earlier frames); running
the same weights with per-frame statistics instead of the running averages gave back 0.849,
re-estimating the running averages on training crops did not (0.737). Batch norm in training
normalises each chunk of a few crops with that chunk's statistics, hiding how the recurrent
features drift along a sequence; at inference the running averages cannot. Group norm computes
the same per-frame statistics in training and at inference. With group norm and 20-frame
training sequences (see ``training.CHUNKS_PER_SEQUENCE``) the gap between long and short
context shrank to 0.862 vs 0.871; with the shorter 8-frame sequences of the default unroll
(``config.UNROLL``) it is gone even after 48 frames of memory (measured in ``training.loop``).
Group norm statistics are per sample, so at inference per tile: the output depends a little on
the tile size, and calibration after training predicts with the tiling segmentation uses (``inference.segmentation_predictor``). Group norm costs
about 15 % more CPU time per training step and 25 % more per inference frame than batch norm
(which folds into the convolution in eval mode).

Departures, on purpose: "same"-padded convolutions (output size = input size); ``H`` and ``W``
must be multiples of ``stride = 2**(depth-1)`` (inference pads); far smaller widths than the
paper's base 128. Model option ``lstm_channels_ratio`` (default 1.0, as in the paper) sets the
C-LSTM hidden width of level ``l`` to ``round(w_l * ratio)`` while the convolutions keep ``w_l``;
below 1 it makes the recurrent part, the most expensive one, cheaper.

Width, measured (704x1104 frame, stateful T=1 inference in eval mode, U-LSTM time / U-Net time
with the U-Net at base 16, depth 4; shared 2-core CPU, so ranges over repeated paired runs;
"CPU" is the single-thread CPU time ratio, which the sharing disturbs least):

=====================  ======  ================  =====
U-LSTM                 GMAC    2-thread wall     CPU
=====================  ======  ================  =====
U-Net base 16          31.5    1 (1.7-3.4 s)     1
base 8                 18.2    0.81-1.09         0.68-0.77
base 12                40.7    1.40-1.91         1.43-1.61
base 16                72.1    1.83-2.31         2.13-2.15
base 16, ratio 0.5     41.5    0.78-1.65         1.32-1.41
base 16, ratio 0.75    55.0    1.40-2.13         1.63
=====================  ======  ================  =====

Base 16 with ratio 1 misses the "at most twice the U-Net" budget; base 16 with
``lstm_channels_ratio=0.5`` (the U-Net's convolution widths plus a half-width C-LSTM memory) keeps
it with the most margin, base 12 with ratio 1 also keeps it.

Efficiency: only the C-LSTM recurrence is sequential over time. Level by level, the C-LSTM runs
over all ``T`` frames, then the level's conv-BN and the pooling run on all ``B*T`` frames at once;
the whole decoder runs on all ``B*T`` frames at once. Memory therefore grows with ``B*T``:
stateful inference feeds short chunks (e.g. ``T = 1``) and passes the state on.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from . import register_model
from .base import TemporalModel, detach_state
from .blocks import NORMS, ConvBNAct, DoubleConv, upsample_to
from .convlstm import ConvLSTMCell, LSTMState

__all__ = ["ULSTM", "ULSTMState", "detach_state"]

ULSTMState = tuple[LSTMState, ...]
"""One ``(h, c)`` per encoder level, each of shape ``(B, C_l, H / 2**l, W / 2**l)``."""

_LEAK = 0.01  # leaky-ReLU slope, as in blocks.ConvBNAct


# Default: base 16 with C-LSTM hidden width halved (lstm_channels_ratio 0.5), measured at 1.3-1.4x
# the U-Net's CPU time per 704x1104 frame (the paper's full-width LSTMs: 2.1x). The paper's
# reference configuration is base_channels=128, lstm_channels_ratio=1.0.
@register_model(
    "ulstm",
    paper="Arbelle & Riklin Raviv, ISBI 2019 (paper 000)",
    base_channels=16,
    options=(("lstm_channels_ratio", 0.5), ("norm", "group")),
)
class ULSTM(TemporalModel):
    """Temporal model: ``forward(x (B, T, C, H, W), state=None) -> (logits (B, T, K, H, W), state)``.

    ``state`` is a tuple with one ``(h, c)`` per encoder level (``None``: zeros); passing the
    returned state back continues the sequence. ``H`` and ``W`` must be multiples of
    ``stride = 2**(depth-1)``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.depth < 1:
            raise ValueError("depth must be at least 1")
        if config.base_channels < 1:
            raise ValueError("base_channels must be at least 1")
        ratio = float(config.option("lstm_channels_ratio", 1.0))
        if not ratio > 0:
            raise ValueError(f"model option lstm_channels_ratio must be positive, got {ratio}")
        norm = str(config.option("norm", "batch"))
        if norm not in NORMS:
            raise ValueError(f"model option norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.config = config
        self.stride = 2 ** (config.depth - 1)
        self.widths = [config.base_channels * 2**level for level in range(config.depth)]
        self.lstm_widths = [max(1, round(w * ratio)) for w in self.widths]

        self.lstms = nn.ModuleList()
        self.convs = nn.ModuleList()
        c_prev = config.in_channels
        for w, w_lstm in zip(self.widths, self.lstm_widths):
            self.lstms.append(ConvLSTMCell(c_prev, w_lstm, kernel_size=3))
            self.convs.append(ConvBNAct(w_lstm, w, norm=norm))
            c_prev = w
        # Decoder block l = L (bottleneck resolution, no up-sampling); see the module docstring.
        self.bottleneck = DoubleConv(c_prev, c_prev, norm=norm)
        self.decoders = nn.ModuleList()
        for w_skip in reversed(self.widths[:-1]):
            self.decoders.append(DoubleConv(c_prev + w_skip, w_skip, norm=norm))
            c_prev = w_skip
        self.head = nn.Conv2d(c_prev, config.num_classes, kernel_size=1)

    # -- state helpers -------------------------------------------------------------------------

    def init_state(
        self,
        batch_size: int,
        height: int,
        width: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> ULSTMState:
        """Explicit zero state for frames of ``height x width`` (equivalent to ``state=None``)."""
        self.check_size(height, width)
        return tuple(
            cell.init_state(batch_size, height >> level, width >> level, device, dtype)
            for level, cell in enumerate(self.lstms)
        )

    def _check_state(self, state: Sequence[LSTMState], x: torch.Tensor) -> None:
        if len(state) != len(self.lstms):
            raise ValueError(
                f"state has {len(state)} levels, the model has {len(self.lstms)}"
            )
        b, _, _, height, width = x.shape
        for level, ((h, c), w_lstm) in enumerate(zip(state, self.lstm_widths)):
            expected = (b, w_lstm, height >> level, width >> level)
            if tuple(h.shape) != expected or tuple(c.shape) != expected:
                raise ValueError(
                    f"state of level {level} has shape {tuple(h.shape)}, expected {expected}: "
                    "was it made for another batch size, frame size or model?"
                )

    # -- forward -------------------------------------------------------------------------------

    def forward(
        self, x: torch.Tensor, state: Sequence[LSTMState] | None = None
    ) -> tuple[torch.Tensor, ULSTMState]:
        skips, new_state = self._encode(x, state, last_conv=True)
        b, t = x.shape[:2]
        z = self.bottleneck(skips[-1])
        for dec, skip in zip(self.decoders, reversed(skips[:-1])):
            z = dec(torch.cat([upsample_to(z, skip), skip], dim=1))
        logits = self.head(z)
        return logits.view(b, t, *logits.shape[1:]), new_state

    def advance(self, x: torch.Tensor, state: Sequence[LSTMState] | None = None) -> ULSTMState:
        """The state after the frames ``x (B, T, C, H, W)``, without their outputs.

        Equal to ``forward(x, state)[1]`` but runs only what the recurrence needs: the C-LSTMs
        and the convolutions feeding the next level; the decoder, the bottleneck and the deepest
        level's convolution are skipped (measured on 2 CPU cores, 2 x 5 frames of 160x160: about
        half the time of ``forward`` under ``no_grad``). For frames whose output nobody reads:
        training's context frames before the annotated ones, inference's warm-up.
        """
        return self._encode(x, state, last_conv=False)[1]

    def _encode(
        self, x: torch.Tensor, state: Sequence[LSTMState] | None, last_conv: bool
    ) -> tuple[list[torch.Tensor], ULSTMState]:
        """Encoder levels: (skips, each ``(B*T, w_l, H_l, W_l)``; new state)."""
        if x.dim() != 5:
            raise ValueError(f"U-LSTM expects (B, T, C, H, W), got shape {tuple(x.shape)}")
        b, t, c_in, height, width = x.shape
        if c_in != self.config.in_channels:
            raise ValueError(f"expected {self.config.in_channels} input channels, got {c_in}")
        self.check_size(height, width)
        if state is not None:
            self._check_state(state, x)

        skips: list[torch.Tensor] = []
        new_state: list[LSTMState] = []
        seq = x
        deepest = len(self.lstms) - 1
        for level, (lstm, conv) in enumerate(zip(self.lstms, self.convs)):
            if level > 0:
                pooled = F.max_pool2d(skips[-1], 2)
                seq = pooled.view(b, t, *pooled.shape[1:])
            h_seq, level_state = lstm(seq, None if state is None else state[level])
            new_state.append(level_state)
            if level == deepest and not last_conv:
                break
            # Not in place: for T == 1, h_seq is a view of the returned state.
            y = F.leaky_relu(h_seq.flatten(0, 1), _LEAK)
            skips.append(conv(y))
        return skips, tuple(new_state)
