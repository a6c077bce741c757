"""Choosing the torch device: ``"auto"`` means CUDA, then MPS, then CPU."""

from __future__ import annotations

import torch

from .errors import CellseqError

__all__ = ["available_devices", "resolve_device"]


def available_devices() -> list[str]:
    """Device names usable on this machine, best first (always ends with ``"cpu"``)."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (``auto``, ``cuda``, ``cuda:1``, ``mps``, ``cpu``)."""
    name = (name or "auto").lower()
    have = available_devices()
    if name == "auto":
        return torch.device(have[0])
    kind = name.split(":")[0]
    if kind not in ("cuda", "mps", "cpu"):
        raise CellseqError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    if kind not in have:
        raise CellseqError(
            f"device {name!r} is not available on this machine (available: {', '.join(have)}); "
            "use --device auto or cpu"
        )
    return torch.device(name)
