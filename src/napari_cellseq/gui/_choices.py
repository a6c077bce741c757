"""Friendly labels for the combo boxes; the values are the core's vocabulary tuples.

Every choice comes from :mod:`napari_cellseq.core.config` (``TARGETS``, ``LOSSES``,
``SAMPLINGS``, ``OPTIMIZERS``, ``OUTPUTS``, ``DEVICES``): a choice added there appears here
(with its own name until it gets a friendlier label below).
"""

from __future__ import annotations

from ..core.config import DEVICES, LOSSES, OPTIMIZERS, OUTPUTS, SAMPLINGS, TARGETS
from ..core.device import available_devices

__all__ = ["choices", "target_choices", "loss_choices", "sampling_choices", "optimizer_choices",
           "output_choices", "device_choices", "LABELS"]

LABELS = {
    # targets: what painted label values mean
    "3class": "cells (each label one cell)",
    "2class": "cells, no boundary class (U-LSTM paper)",
    "classes": "classes (label 1 = background, 2, 3, …)",
    # losses
    "weighted_ce": "weighted cross-entropy (U-LSTM paper)",
    "normalized_focal": "normalized focal (GRUU-Net paper)",
    "edge_weighted": "edge-weighted cross-entropy (FCN-GoogLeNet)",
    # crop sampling
    "uniform": "uniform",
    "balanced": "balanced (every class equally often)",
    # optimisers
    "adam": "Adam",
    "rmsprop": "RMSprop (U-LSTM paper)",
    # outputs
    "instances": "cells (instances)",
    # devices
    "auto": "auto (GPU if there is one)",
    "cpu": "CPU",
    "cuda": "CUDA GPU",
    "mps": "Apple GPU (MPS)",
}
_OUTPUT_LABELS = {"classes": "class map (1 = background)"}  # "classes" means another thing as a target


def choices(vocabulary: tuple[str, ...], labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """``[(label, value), ...]`` for a magicgui ComboBox, in vocabulary order."""
    labels = {**LABELS, **(labels or {})}
    return [(labels.get(v, v), v) for v in vocabulary]


def target_choices() -> list[tuple[str, str]]:
    return choices(TARGETS)


def loss_choices(paper_loss: str) -> list[tuple[str, str | None]]:
    """The model's paper loss first (value None: follows the model), then every loss."""
    return [(f"model's paper ({LABELS.get(paper_loss, paper_loss)})", None), *choices(LOSSES)]


def sampling_choices() -> list[tuple[str, str]]:
    return choices(SAMPLINGS)


def optimizer_choices() -> list[tuple[str, str]]:
    return choices(OPTIMIZERS)


def output_choices() -> list[tuple[str, str | None]]:
    """The model's own kind first (value None), then every output."""
    return [("model's kind", None), *choices(OUTPUTS, _OUTPUT_LABELS)]


def device_choices() -> list[tuple[str, str]]:
    """``auto`` and the devices this machine has, in vocabulary order."""
    here = set(available_devices())
    return choices(tuple(d for d in DEVICES if d == "auto" or d in here))
