"""npe2 writer: a Labels layer as one 16-bit TIFF (32-bit when an id exceeds 65535)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.io import write_tiff_atomic
from ._layers import labels_dtype

__all__ = ["write_labels", "labels_for_tiff"]


def labels_for_tiff(data: Any) -> np.ndarray:
    """``data`` as uint16, or uint32 when ids exceed 65535 (negative ids are refused)."""
    arr = np.asarray(data)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got {arr.dtype}")
    if arr.size and arr.dtype.kind == "i" and int(arr.min()) < 0:
        raise ValueError("labels contain negative ids; TIFF label images hold ids >= 0")
    top = int(arr.max()) if arr.size else 0
    return arr.astype(labels_dtype(top), copy=False)


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer to ``path`` (.tif/.tiff) atomically; returns ``[path]``.

    napari's save dialog has already asked before replacing an existing file, so an existing
    file is overwritten here. (T, Y, X) data is written as an ImageJ time series.
    """
    arr = labels_for_tiff(data)
    write_tiff_atomic(path, arr, overwrite=True)
    return [str(path)]
