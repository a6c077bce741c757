"""Model registry: ``build_model(ModelConfig) -> torch.nn.Module``.

Every model accepts and returns tensors in one of two contracts, announced by its class
attribute ``temporal``:

* frame models (``temporal = False``): ``forward(x)`` with ``x`` of shape ``(N, C, H, W)``
  returns logits ``(N, K, H, W)``;
* temporal models (``temporal = True``): ``forward(x, state=None)`` with ``x`` of shape
  ``(B, T, C, H, W)`` returns ``(logits (B, T, K, H, W), state)``; passing the returned state
  back continues the sequence (stateful, frame-by-frame inference).

``H`` and ``W`` must be multiples of the class attribute ``stride``; inference pads to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from typing import Any, Callable

import torch

from ..config import ModelConfig
from ..errors import CellseqError

__all__ = [
    "ModelInfo",
    "register_model",
    "build_model",
    "available_models",
    "model_info",
    "default_model_config",
    "parameter_count",
    "advance_state",
]


@dataclass(frozen=True)
class ModelInfo:
    """What ``napari-cellseq models`` lists about a registered network."""

    name: str
    paper: str
    input_kind: str  # "frames" or "time-lapse"
    builder: Callable[[ModelConfig], torch.nn.Module]
    defaults: tuple[tuple[str, Any], ...] = ()  # ModelConfig fields this model defaults to


def _registry() -> dict[str, ModelInfo]:
    # Imported lazily so that importing the registry costs nothing until a model is needed.
    from . import deeplab, fcn_googlenet, gruunet, segnet, tiramisu, ulstm, unet  # noqa: F401  (registration happens on import)

    return _REGISTERED


_REGISTERED: dict[str, ModelInfo] = {}


def register_model(name: str, paper: str, input_kind: str, **defaults: Any):
    """Class decorator adding a model class to the registry under ``name``.

    The class must accept ``(config: ModelConfig)`` in its constructor; ``defaults`` are the
    :class:`ModelConfig` fields (e.g. ``base_channels``) this model uses unless told otherwise.
    """

    def decorate(cls):
        _REGISTERED[name] = ModelInfo(name, paper, input_kind, cls, tuple(sorted(defaults.items())))
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

    Uses the model's output-free ``advance(x, state)`` when it has one (U-LSTM: encoder only),
    else ``forward(x, state)[1]`` (``forward`` defaults to the model; pass a compiled wrapper).
    """
    advance = getattr(model, "advance", None)
    if advance is not None:
        return advance(x, state)
    return (forward or model)(x, state)[1]
