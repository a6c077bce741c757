"""The model contract as code: every registered network derives from :class:`FrameModel` or
:class:`TemporalModel` (in the manner of segmentation_models_pytorch's ``SegmentationModel``).

* :class:`FrameModel`: ``forward(x (N, C, H, W)) -> logits (N, K, H, W)``; frames are
  independent.
* :class:`TemporalModel`: ``forward(x (B, T, C, H, W), state=None) -> (logits (B, T, K, H, W),
  state)``; passing the returned state back continues the sequence (stateful, frame-by-frame
  inference); ``state=None`` starts a sequence (equal to :meth:`TemporalModel.init_state`).
  :meth:`~TemporalModel.advance` gives the state alone, :meth:`~TemporalModel.detach_state`
  cuts it from the autograd graph (truncated back-propagation through time).

Both carry ``stride``: inputs whose ``H`` and ``W`` are multiples of it pass through the network
without rounding (inference pads every tile to it); :meth:`SegmentationModel.check_size` raises
an :class:`~napari_cellseq.core.errors.InputError` naming the nearest valid sizes. Networks that
cannot work on other sizes (the U-LSTM: its recurrent state has one size per level) call it in
``forward``; the others accept any size of at least 16 (training crops) and document how they
round.

The class decides the ``temporal`` flag, which the core reads (inference, training), and the
registry's :attr:`~napari_cellseq.core.models.ModelInfo.input_kind`, which the GUI reads.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import InputError

__all__ = ["SegmentationModel", "FrameModel", "TemporalModel", "detach_state", "nearest_multiples"]


def nearest_multiples(n: int, stride: int) -> str:
    """The multiples of ``stride`` nearest to ``n`` as text: ``"24 or 32"`` for 25 and 8, ``"8"``
    for 4 and 8, ``"24"`` for 24."""
    if n % stride == 0 and n > 0:
        return f"{n}"
    lower = (n // stride) * stride
    upper = lower + stride
    return f"{lower} or {upper}" if lower > 0 else f"{upper}"


def detach_state(state: Any) -> Any:
    """``state`` (tensors, nested in tuples or lists, or None) cut from the autograd graph."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"cannot detach a state of type {type(state).__name__}: use tensors in tuples")


class SegmentationModel(nn.Module, metaclass=ABCMeta):
    """What frame and temporal models share: ``stride`` and the size check.

    ``stride`` is a class attribute or set in ``__init__`` (it often depends on ``config.depth``);
    subclasses keep the :class:`~napari_cellseq.core.config.ModelConfig` they were built from in
    ``self.config``.
    """

    temporal: ClassVar[bool]
    stride: int = 1
    config: Any

    def check_size(self, height: int, width: int) -> None:
        """Raise an InputError unless ``height`` and ``width`` are positive multiples of ``stride``;
        the message names the nearest valid sizes."""
        s = int(self.stride)
        if height % s or width % s or height <= 0 or width <= 0:
            config = getattr(self, "config", None)
            name = type(self).__name__ if config is None else f"model {config.name!r}"
            raise InputError(
                f"{name} needs frame height and width that are multiples of "
                f"{s}, got {height}x{width}: use height {nearest_multiples(height, s)} and width "
                f"{nearest_multiples(width, s)} (crop or pad the frames)"
            )

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` rounded up to multiples of ``stride`` (what inference pads to)."""
        s = int(self.stride)
        return height + (-height) % s, width + (-width) % s


class FrameModel(SegmentationModel):
    """A network that segments each frame on its own:
    ``forward(x (N, C, H, W)) -> logits (N, num_classes, H, W)``."""

    temporal: ClassVar[bool] = False


class TemporalModel(SegmentationModel):
    """A stateful network over time-lapse sequences:
    ``forward(x (B, T, C, H, W), state=None) -> (logits (B, T, num_classes, H, W), state)``.

    Subclasses implement ``forward`` and :meth:`init_state`; they may override :meth:`advance`
    with a cheaper path (the U-LSTM runs its encoder only).
    """

    temporal: ClassVar[bool] = True

    @abstractmethod
    def init_state(self, batch_size: int, height: int, width: int,
                   device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Any:
        """The explicit start state for ``batch_size`` sequences of ``height x width`` frames,
        equivalent to ``state=None``."""

    def advance(self, x: torch.Tensor, state: Any = None) -> Any:
        """The state after the frames ``x (B, T, C, H, W)``, for frames whose outputs nobody
        reads (training's unannotated context chunks, inference's warm-up frames).

        Equal to ``forward(x, state)[1]``, which is what this default runs.
        """
        return self(x, state)[1]

    detach_state = staticmethod(detach_state)
