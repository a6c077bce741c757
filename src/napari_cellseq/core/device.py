"""Choosing the torch device: ``"auto"`` means CUDA, then MPS, then CPU."""

from __future__ import annotations

import torch

from .errors import CellseqError

__all__ = ["available_devices", "resolve_device", "autocast_dtype", "autocast", "use_channels_last"]


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


def autocast_dtype(device: torch.device, amp: bool | str = True) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``, or None for full float32.

    ``amp``: True / ``"auto"`` means bfloat16 on CUDA devices that support it and float16 on older
    ones, and float32 elsewhere (CPU autocast is slower than float32 on CPUs without bf16 units);
    ``"bf16"`` / ``"fp16"`` force a dtype on any device; False / ``"off"`` is float32.
    """
    if amp in (False, None, "off", "none"):
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if amp not in (True, "auto"):
        raise CellseqError(f"unknown mixed-precision mode {amp!r}: use auto, bf16, fp16 or off")
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context for ``device`` in ``dtype`` (from :func:`autocast_dtype`); None: float32."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def use_channels_last(device: torch.device, asked: bool | None = None) -> bool:
    """Whether networks run channels-last (NHWC) on ``device``: ``asked``, or by default on CPU
    and CUDA (faster there, measured: README, Benchmarks) and not on MPS."""
    return device.type in ("cpu", "cuda") if asked is None else bool(asked)
