"""Model registry: ``build_model(ModelConfig) -> torch.nn.Module``.

Every registered network derives from one of the two contracts of :mod:`.base`:

* :class:`~.base.FrameModel` (``temporal = False``): ``forward(x)`` with ``x`` of shape
  ``(N, C, H, W)`` returns logits ``(N, K, H, W)``;
* :class:`~.base.TemporalModel` (``temporal = True``): ``forward(x, state=None)`` with ``x`` of
  shape ``(B, T, C, H, W)`` returns ``(logits (B, T, K, H, W), state)``; passing the returned
  state back continues the sequence (stateful, frame-by-frame inference); ``advance`` gives the
  state alone, ``detach_state`` cuts it from the autograd graph.

``H`` and ``W`` should be multiples of the model's ``stride``; inference pads to it. The base
class a network derives from is the one statement of its kind: ``model.temporal`` (read by the
core) and :attr:`ModelInfo.input_kind` (read by the GUI and ``napari-cellseq models``) follow
from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from typing import Any, Callable

import torch

from ..config import ModelConfig
from ..errors import CellseqError
from .base import FrameModel, SegmentationModel, TemporalModel, detach_state

__all__ = [
    "ModelInfo",
    "register_model",
    "build_model",
    "available_models",
    "model_info",
    "default_model_config",
    "parameter_count",
    "advance_state",
    "detach_state",
    "FrameModel",
    "TemporalModel",
    "SegmentationModel",
]


@dataclass(frozen=True)
class ModelInfo:
    """What ``napari-cellseq models`` lists about a registered network."""

    name: str
    paper: str
    builder: Callable[[ModelConfig], SegmentationModel]  # a FrameModel or TemporalModel class
    defaults: tuple[tuple[str, Any], ...] = ()  # ModelConfig fields this model defaults to

    @property
    def temporal(self) -> bool:
        """Whether the network is a :class:`~.base.TemporalModel` (time-lapse input)."""
        return issubclass(self.builder, TemporalModel)

    @property
    def input_kind(self) -> str:
        """``"time-lapse"`` for temporal models, ``"frames"`` for frame models."""
        return "time-lapse" if self.temporal else "frames"


def _registry() -> dict[str, ModelInfo]:
    # Imported lazily so that importing the registry costs nothing until a model is needed.
    from . import deeplab, fcn_googlenet, gruunet, segnet, tiramisu, ulstm, unet  # noqa: F401  (registration happens on import)

    return _REGISTERED


_REGISTERED: dict[str, ModelInfo] = {}


def register_model(name: str, paper: str, **defaults: Any):
    """Class decorator adding a model class to the registry under ``name``.

    The class must derive from :class:`~.base.FrameModel` or :class:`~.base.TemporalModel` and
    accept ``(config: ModelConfig)`` in its constructor; ``defaults`` are the
    :class:`ModelConfig` fields (e.g. ``base_channels``) this model uses unless told otherwise.
    """

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, (FrameModel, TemporalModel))):
            raise TypeError(f"model {name!r}: {cls!r} must derive from FrameModel or TemporalModel")
        _REGISTERED[name] = ModelInfo(name, paper, cls, tuple(sorted(defaults.items())))
        return cls

    return decorate


def available_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_registry())


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; unknown names raise a CellseqError listing valid ones."""
    reg = _registry()
    if name not in reg:
        raise CellseqError(
            f"unknown model {name!r}: choose one of {', '.join(sorted(reg))}"
        )
    return reg[name]


def build_model(config: ModelConfig) -> torch.nn.Module:
    """A freshly initialised network as ``config`` describes."""
    return model_info(config.name).builder(config)


def default_model_config(name: str, **overrides: Any) -> ModelConfig:
    """The :class:`ModelConfig` of model ``name`` with its registered defaults and ``overrides``."""
    info = model_info(name)
    return replace(ModelConfig(name=name), **{**dict(info.defaults), **overrides})


def parameter_count(config: ModelConfig) -> int:
    """Number of trainable parameters of the network ``config`` builds."""
    return sum(p.numel() for p in build_model(config).parameters() if p.requires_grad)


def advance_state(model: torch.nn.Module, x: torch.Tensor, state: Any, forward: Callable | None = None) -> Any:
    """The recurrent state of temporal ``model`` after frames ``x (B, T, C, H, W)`` whose outputs
    nobody reads (training's unannotated context chunks, inference's warm-up frames).

    Registered networks answer with :meth:`~.base.TemporalModel.advance` (output-free where the
    model has a cheaper path: the U-LSTM runs its encoder only); a module that only follows the
    temporal calling convention (a wrapper) answers with ``forward(x, state)[1]`` (``forward``
    defaults to the module; pass a compiled wrapper).
    """
    advance = getattr(model, "advance", None)
    if advance is not None:
        return advance(x, state)
    return (forward or model)(x, state)[1]
