"""Fixtures for the napari GUI tests (run under Xvfb: see tests/gui/README or the project README).

Training in these tests is tiny (a few iterations on 96x96 movies, 64 px crops) because the
test machines have two shared CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def small_movie():
    """(image, labels): a (4, 96, 96) uint16 synthetic time-lapse and its exact labels."""
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, labels = synthetic_timelapse(n_frames=4, shape=(96, 96), n_cells=8, radius_range=(5.0, 9.0))
    return np.asarray(image), np.asarray(labels)


@pytest.fixture(scope="session")
def trained_unet(small_movie, tmp_path_factory) -> str:
    """A small U-Net trained headlessly (30 steps) that finds cells in ``small_movie``."""
    from napari_cellseq.core.config import DataConfig, TrainConfig
    from napari_cellseq.core.models import default_model_config
    from napari_cellseq.core.training import fit

    image, labels = small_movie
    annotations = labels.copy()
    annotations[2:] = 0
    path = tmp_path_factory.mktemp("model") / "unet.pt"
    fit(image, annotations, path,
        model_config=default_model_config("unet", base_channels=8, depth=3),
        data_config=DataConfig(crop_size=64, augment_elastic=False),
        train_config=TrainConfig(iterations=30, max_time=None, batch_size=4, lr=3e-3, device="cpu"))
    return str(path)


@pytest.fixture
def cellseq_plugin():
    """Register napari.yaml with npe2 (the package is not pip-installed in development)."""
    from npe2 import PluginManager, PluginManifest

    pm = PluginManager.instance()
    manifest = PluginManifest.from_file(ROOT / "napari.yaml")
    registered = manifest.name in pm._manifests  # noqa: SLF001 - no public "is registered"
    if not registered:
        pm.register(manifest)
    yield manifest
    if not registered:
        pm.unregister(manifest.name)


@pytest.fixture
def notifications():
    """List of napari notifications shown during the test (severity, message)."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []

    def record(notification):
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Record each phase's report on the item (napari's make_napari_viewer reads ``rep_call``)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
