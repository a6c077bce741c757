"""Choosing the torch device: ``"auto"`` means CUDA, then MPS, then CPU."""

from __future__ import annotations

import torch

from .config import PRECISIONS
from .errors import CellseqError

__all__ = ["available_devices", "resolve_device", "cpu_has_bf16_matrix_units", "autocast_dtype", "autocast",
           "use_channels_last"]


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


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX tiles, Sapphire
    Rapids and later), where oneDNN runs bfloat16 convolutions much faster than float32.

    Asks torch's ``torch.cpu._is_amx_tile_supported`` (a private helper: False where this
    torch has none, so an unknown CPU keeps float32).
    """
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # noqa: BLE001 - a probe that fails means: do not rely on it
        return False


def autocast_dtype(device: torch.device, amp: bool | str = True, training: bool = False) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``, or None for full float32.

    ``amp``: True / ``"auto"`` means bfloat16 on CUDA devices that support it and float16 on older
    ones; on a CPU, bfloat16 for ``training`` where the CPU has bfloat16 matrix units
    (:func:`cpu_has_bf16_matrix_units`) and float32 otherwise. Measured on a 2-core Xeon with
    AMX (``benchmarks/throughput.py --amp bf16``, README "Benchmarks"): 1.35-1.5x the training
    steps per second of float32 for U-Net and U-LSTM, and equal or better SEG on HeLa after the
    same seconds; without such units CPU autocast is slower than float32. Inference on a CPU
    stays float32 under ``"auto"``: the segmentations every score here was measured on (pass
    ``"bf16"`` to try it). ``"bf16"`` / ``"fp16"`` force a dtype on any device; False / ``"off"`` is float32.
    """
    if amp in (False, None, "off", "none"):
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if amp not in (True, "auto"):
        raise CellseqError(f"unknown mixed-precision mode {amp!r}: use {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}")
    if device.type == "cpu":
        return torch.bfloat16 if training and cpu_has_bf16_matrix_units() else None
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
