"""Percentile normalisation shared by training and inference."""

from __future__ import annotations

import numpy as np

__all__ = ["OUTSIDE", "SAMPLE_PIXELS", "sample_stride", "percentile_range", "normalize"]

# Value of every pixel beyond the frame edge, in training crops and around frames at inference:
# below the normalised background (about 0), so the network can tell the frame edge from the
# edge of a crop and learn how the user treats cells cut by the frame edge.
OUTSIDE = -1.0

#: Statistics of many pixels (normalisation percentiles, the validation ROC) are taken on at most
#: this many: an even subsample beyond it.
SAMPLE_PIXELS = 4_000_000


def sample_stride(n: int, limit: int = SAMPLE_PIXELS) -> int:
    """The step ``k`` such that every ``k``-th of ``n`` values keeps at most ``limit`` of them."""
    return max(1, -(-int(n) // int(limit)))


def percentile_range(image: np.ndarray, percentiles: tuple[float, float],
                     overwrite: bool = False) -> tuple[float, float]:
    """Low and high grey values of ``image`` (any shape) at ``percentiles`` (e.g. (1, 99.8)).

    Computed once per movie, over all frames, so that brightness changes over time (bleaching,
    mitoses) stay visible to the network. Large movies are subsampled evenly. ``overwrite``:
    ``image`` is a scratch sample that may be reordered in place (no copy of it is made).
    """
    flat = np.asarray(image).reshape(-1)
    flat = flat[:: sample_stride(flat.size)]
    lo, hi = np.percentile(flat, percentiles, overwrite_input=overwrite)
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def normalize(image: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """``(image - lo) / (hi - lo)`` as float32 (same shape); values outside stay unclipped."""
    lo, hi = value_range
    out = np.asarray(image, dtype=np.float32) - np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    return out
