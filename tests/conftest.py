"""Shared fixtures: tiny synthetic movies for fast tests, and helpers for the command line.

The tests mirror ``src/``: ``tests/core/...`` for the core modules, ``tests/cli/`` for the
command line (including its bad-input battery), ``tests/gui/`` for the napari widgets and
``tests/integration/`` for whole runs in child processes (signals, streaming).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_cellseq


@pytest.fixture(autouse=True)
def _two_threads():
    """Keep torch to the CI machine's two cores (and tests deterministic)."""
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session", autouse=True)
def _children_import_the_tested_code():
    """Child processes (``python -m napari_cellseq.cli`` ...) import the same ``napari_cellseq``
    as the tests, not another installed copy (e.g. an editable install of another checkout)."""
    source = str(Path(napari_cellseq.__file__).resolve().parents[1])
    paths = [source, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(paths))
        yield


@pytest.fixture(scope="session")
def small_movie():
    """A (6, 96, 96) synthetic movie with exact labels."""
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, labels = synthetic_timelapse(n_frames=6, shape=(96, 96), n_cells=5, seed=1)
    return np.asarray(image), np.asarray(labels)


@pytest.fixture(scope="session")
def tiny_movie():
    """``(image, painted)``: a (4, 48, 48) synthetic movie of 3 cells, painted in frames 0-1 only
    (the labels of frames 2-3 are 0), for command-line runs of a few steps."""
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, labels = synthetic_timelapse(n_frames=4, shape=(48, 48), n_cells=3, seed=2, radius_range=(4.0, 7.0))
    painted = np.asarray(labels).copy()
    painted[2:] = 0
    image = np.asarray(image)
    image.flags.writeable = painted.flags.writeable = False  # shared by many tests: read-only
    return image, painted


@pytest.fixture()
def one_line_error(capsys):
    """``check(command) -> line``: stderr so far ends in one clear error line of ``napari-cellseq
    command`` (no traceback); returns that line."""

    def check(command: str) -> str:
        err = capsys.readouterr().err.strip().splitlines()
        assert err, "no error message"
        assert "Traceback" not in "\n".join(err)
        assert err[-1].startswith(f"napari-cellseq {command}: error:"), err
        return err[-1]

    return check
