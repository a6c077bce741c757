"""Test data shared by the tests of napari_cellseq.core.io."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def movie():
    """``movie(t, y, x, dtype)``: a ``(T, Y, X)`` ramp of values 0..999, default (3, 20, 24) uint16."""

    def make(t: int = 3, y: int = 20, x: int = 24, dtype=np.uint16) -> np.ndarray:
        return (np.arange(t * y * x) % 1000).reshape(t, y, x).astype(dtype)

    return make


@pytest.fixture
def listing():
    """``listing(folder)``: the sorted names in ``folder``, hidden temporary files included."""

    def names(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir())

    return names
