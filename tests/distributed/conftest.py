"""Fixtures for the distributed tests: tiny trained models and small synthetic movies on disk."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed")

from napari_cellseq.core.config import DataConfig, TrainConfig  # noqa: E402
from napari_cellseq.core.io import write_tiff_atomic  # noqa: E402
from napari_cellseq.core.models import default_model_config  # noqa: E402
from napari_cellseq.core.synthetic import synthetic_timelapse  # noqa: E402
from napari_cellseq.core.training import fit  # noqa: E402


@pytest.fixture(scope="session")
def movies(tmp_path_factory):
    """Three (6, 64, 64) synthetic movies as TIFF files, and their exact labels."""
    folder = tmp_path_factory.mktemp("movies")
    paths, truths = [], []
    for k in range(3):
        image, labels = synthetic_timelapse(n_frames=6, shape=(64, 64), n_cells=5, seed=10 + k,
                                            radius_range=(4.0, 8.0))
        path = folder / f"movie{k}.tif"
        write_tiff_atomic(path, np.asarray(image))
        paths.append(path)
        truths.append(np.asarray(labels))
    return paths, truths


def _train(tmp_path_factory, name: str, **model):
    image, labels = synthetic_timelapse(n_frames=6, shape=(64, 64), n_cells=5, seed=4, radius_range=(4.0, 8.0))
    path = tmp_path_factory.mktemp(name) / f"{name}.pt"
    fit(np.asarray(image), np.asarray(labels), path, model_config=default_model_config(name, **model),
        data_config=DataConfig(crop_size=64, augment_elastic=False),
        train_config=TrainConfig(iterations=15, max_time=None, batch_size=2, lr=3e-3, device="cpu",
                                 calibrate=False))
    return path


@pytest.fixture(scope="session")
def unet_file(tmp_path_factory):
    return _train(tmp_path_factory, "unet", base_channels=8, depth=3)


@pytest.fixture(scope="session")
def ulstm_file(tmp_path_factory):
    return _train(tmp_path_factory, "ulstm", base_channels=8)
