"""The network of a BioImage Model Zoo package: a napari-cellseq model that returns probabilities.

This file is the ``architecture.source`` of the ``pytorch_state_dict`` weights of every package
:func:`napari_cellseq.core.bioimageio.export_bioimageio` writes (its sha256 is in the package);
the zoo's tools import it and call ``CellseqZooModel(model_config=...)``, so it needs
napari-cellseq installed (the package's environment file says so). The TorchScript weights of
the same package run with torch alone (deepImageJ, Fiji).

Tensor layouts (the package's ``inputs`` / ``outputs``):

* frame networks: ``(batch, channel=1, y, x)`` normalised grey values in, class probabilities
  ``(batch, class, y, x)`` out (softmax over the classes);
* the U-LSTM (paper 000): ``(batch, time, channel=1, y, x)`` in, ``(batch, time, class, y, x)``
  out; the C-LSTM state starts at zero at the first frame of the tensor and is carried through
  its frames in order (the time axis is unrolled inside the network).

``y`` and ``x`` must be multiples of the network's ``stride``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from napari_cellseq.core.config import ModelConfig, from_dict
from napari_cellseq.core.models import build_model

__all__ = ["CellseqZooModel"]


class CellseqZooModel(nn.Module):
    """``build_model(model_config)`` followed by a softmax over the class axis.

    ``model_config`` is :func:`napari_cellseq.core.config.to_dict` of the model's
    :class:`~napari_cellseq.core.config.ModelConfig` (plain YAML values). The weights live in
    ``self.net``, so a napari-cellseq state dict is this module's state dict with ``net.`` dropped.
    """

    def __init__(self, model_config: dict[str, Any]):
        super().__init__()
        self.net = build_model(from_dict(ModelConfig, dict(model_config)))
        self.temporal = bool(getattr(self.net, "temporal", False))
        self.stride = int(getattr(self.net, "stride", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal:
            logits, _ = self.net(x)  # zero state at the first frame of the tensor
            return torch.softmax(logits, dim=2)
        return torch.softmax(self.net(x), dim=1)
