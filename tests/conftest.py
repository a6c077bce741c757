"""Shared fixtures: tiny synthetic movies for fast tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads():
    """Keep torch to the CI machine's two cores (and tests deterministic)."""
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def small_movie():
    """A (6, 96, 96) synthetic movie with exact labels."""
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, labels = synthetic_timelapse(n_frames=6, shape=(96, 96), n_cells=5, seed=1)
    return np.asarray(image), np.asarray(labels)
