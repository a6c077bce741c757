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


@pytest.fixture(autouse=True)
def user_data_home(tmp_path_factory, monkeypatch):
    """A private per-user data folder (platformdirs reads XDG_DATA_HOME): default model files
    of images without a file go there, never into the real home folder."""
    home = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def gui_movie():
    """(image, labels): a (4, 96, 96) uint16 synthetic time-lapse and its exact labels."""
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, labels = synthetic_timelapse(n_frames=4, shape=(96, 96), n_cells=8, radius_range=(5.0, 9.0))
    return np.asarray(image), np.asarray(labels)


@pytest.fixture(scope="session")
def trained_unet(gui_movie, tmp_path_factory) -> str:
    """A small U-Net trained headlessly (30 steps) that finds cells in ``gui_movie``."""
    import torch

    image, labels = gui_movie
    path = tmp_path_factory.mktemp("model") / "unet.pt"
    # One intra-op thread: on a loaded 2-core machine OpenMP's busy-waiting threads make the
    # main thread's training up to 20x slower (see benchmarks/gui_responsiveness.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _fit_small_unet(image, labels, path)
    finally:
        torch.set_num_threads(threads)
    return str(path)


def _fit_small_unet(image, labels, path) -> None:
    from napari_cellseq.core.config import DataConfig, TrainConfig
    from napari_cellseq.core.models import default_model_config
    from napari_cellseq.core.training import fit

    annotations = labels.copy()
    annotations[2:] = 0
    fit(image, annotations, path,
        model_config=default_model_config("unet", base_channels=8, depth=3),
        data_config=DataConfig(crop_size=64, augment_elastic=False),
        train_config=TrainConfig(iterations=30, max_time=None, batch_size=4, lr=3e-3, device="cpu"))


@pytest.fixture(scope="session")
def cellseq_plugin():
    """Register napari.yaml with npe2 once (the package is not pip-installed in development).

    It stays registered for the session: napari also registers the contributions as app-model
    commands, which unregistering does not undo.
    """
    from npe2 import PluginManager, PluginManifest

    pm = PluginManager.instance()
    manifest = PluginManifest.from_file(ROOT / "napari.yaml")
    if manifest.name not in pm._manifests:  # noqa: SLF001 - no public "is registered"
        pm.register(manifest)
    return manifest


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
