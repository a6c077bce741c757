"""The run controller over napari generator workers, computing in a thread or a child process."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from napari_cellseq.core.errors import CellseqError
from napari_cellseq.gui import _backend
from napari_cellseq.gui._run import RunController, RunState

from cellseq_gui_helpers import counting_job


class Recorder:
    def __init__(self, run: RunController):
        self.events, self.states = [], []
        run.event.connect(self.events.append)
        run.state_changed.connect(self.states.append)


@pytest.mark.parametrize("place", ["thread", "process"])
def test_events_in_order_then_done(qtbot, place):
    run = RunController("training")
    rec = Recorder(run)
    run.start(counting_job, dict(n=50), place=place)
    assert run.state is RunState.RUNNING and run.worker is not None
    qtbot.waitUntil(lambda: run.state is RunState.DONE, timeout=60_000)
    assert rec.events == list(range(50)) and rec.states == [RunState.RUNNING, RunState.DONE]
    assert run.worker is None and run.error is None


@pytest.mark.parametrize("place", ["thread", "process"])
def test_error_becomes_failed_state_and_a_notification(qtbot, place, notifications):
    run = RunController("training")
    rec = Recorder(run)
    run.start(counting_job, dict(n=10, fail_at=3), place=place)
    qtbot.waitUntil(lambda: run.state is RunState.FAILED, timeout=60_000)
    assert rec.events == [0, 1, 2]
    assert isinstance(run.error, ValueError) and "failed at 3" in str(run.error)
    qtbot.waitUntil(lambda: any("failed at 3" in m for _, m in notifications), timeout=5_000)


def test_cellseq_error_survives_the_process_boundary(qtbot, tmp_path):
    from napari_cellseq.gui._jobs import segment_job

    run = RunController("segmentation")
    run.start(segment_job, dict(image=np.zeros((32, 32), np.uint16), model_path=str(tmp_path / "none.pt")),
              place="process")
    qtbot.waitUntil(lambda: run.state is RunState.FAILED, timeout=60_000)
    assert isinstance(run.error, CellseqError) and "no model file" in str(run.error)


@pytest.mark.parametrize("place", ["thread", "process"])
def test_stop_is_cooperative_and_shutdown_waits(qtbot, place):
    run = RunController("training")
    rec = Recorder(run)
    run.start(counting_job, dict(n=100_000, delay=0.01), place=place)
    qtbot.waitUntil(lambda: len(rec.events) >= 3, timeout=60_000)
    run.stop()
    assert run.state is RunState.STOPPING
    qtbot.waitUntil(lambda: run.state is RunState.DONE, timeout=30_000)
    assert len(rec.events) < 100_000

    run.start(counting_job, dict(n=100_000, delay=0.01), place=place)
    qtbot.waitUntil(lambda: len(rec.events) >= 6, timeout=60_000)
    ended = run._ended
    run.shutdown()  # napari closing: stop and wait, deliver nothing more
    assert ended.is_set() and run.state is RunState.IDLE and run.worker is None


def test_place_setting_and_environment(monkeypatch):
    monkeypatch.delenv(_backend.ENV, raising=False)
    assert _backend.place_for("training") == _backend.TRAINING_RUNS_IN
    assert _backend.place_for("segmentation") == _backend.SEGMENTATION_RUNS_IN
    monkeypatch.setenv(_backend.ENV, "process")
    assert _backend.place_for("segmentation") == "process"
    monkeypatch.setenv(_backend.ENV, "nonsense")
    assert _backend.place_for("training") == _backend.TRAINING_RUNS_IN
    with pytest.raises(ValueError):
        _backend.Controls("gpu")


def test_preview_frame_reaches_the_job_in_both_places():
    for place in _backend.PLACES:
        controls = _backend.Controls(place)
        assert controls.frame() is None
        controls.set_frame(7)
        assert controls.frame() == 7
        controls.set_frame(None)
        assert controls.frame() is None and not controls.stopped()
        controls.request_stop()
        assert controls.stopped()


def _tiny_train_kwargs(gui_movie, path):
    from napari_cellseq.core.config import DataConfig, TrainConfig
    from napari_cellseq.core.models import default_model_config

    image, labels = gui_movie
    annotations = np.zeros_like(labels, dtype=np.uint16)
    annotations[:2] = labels[:2]
    return dict(image=image, labels=annotations, out_path=str(path),
                model_config=default_model_config("unet", base_channels=8, depth=3),
                data_config=DataConfig(crop_size=64), train_config=TrainConfig(
                    iterations=2, max_time=None, batch_size=2, device="cpu", calibrate=False))


def _new_modules(before: set[int]) -> list:
    """torch modules alive now that were not alive at ``before`` (after a full collection)."""
    import torch

    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, torch.nn.Module) and id(o) not in before]


def _modules_now() -> set[int]:
    import torch

    gc.collect()
    return {id(o) for o in gc.get_objects() if isinstance(o, torch.nn.Module)}


def test_thread_training_drops_every_reference_to_the_model(qtbot, gui_movie, tmp_path, monkeypatch):
    """Thread mode: once training ends, nothing holds the network (its GPU memory can go)."""
    from napari_cellseq.core.training import loop
    from napari_cellseq.gui._jobs import train_job

    released: list[bool] = []
    monkeypatch.setattr(_backend, "release_memory", lambda: (released.append(True), gc.collect()))
    # The network is seen through a weak reference taken where it is built: walking
    # gc.get_objects() from the main thread while the worker builds a tuple makes CPython's
    # tuple resize fail in the worker (SystemError in numpy.meshgrid, seen in CI).
    built: list[weakref.ref] = []
    real_build = loop.build_model

    def build_model(config):
        model = real_build(config)
        built.append(weakref.ref(model))
        return model

    monkeypatch.setattr(loop, "build_model", build_model)
    before = _modules_now()
    run = RunController("training")
    run.start(train_job, _tiny_train_kwargs(gui_movie, tmp_path / "m.pt"), place="thread")
    qtbot.waitUntil(lambda: not run.state.busy, timeout=120_000)
    assert run.state is RunState.DONE, run.error
    assert built  # a network existed while training ran...
    gc.collect()
    assert all(ref() is None for ref in built) and not _new_modules(before)  # ...and is gone now
    assert released == [True]


def test_thread_training_failure_drops_the_model_too(qtbot, gui_movie, tmp_path, monkeypatch):
    """A run that fails in the middle of a step keeps no frame (and so no network) in its error."""
    import torch

    from napari_cellseq.gui._jobs import train_job

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom in backward")

    monkeypatch.setattr(torch.Tensor, "backward", boom)
    before = _modules_now()
    run = RunController("training")
    run.start(train_job, _tiny_train_kwargs(gui_movie, tmp_path / "m.pt"), place="thread")
    qtbot.waitUntil(lambda: not run.state.busy, timeout=120_000)
    assert run.state is RunState.FAILED and "boom in backward" in str(run.error)
    assert isinstance(run.error, _backend.WorkError)  # a RuntimeError would silence napari's worker
    assert not _new_modules(before)  # the traceback keeps no frame locals


def test_process_training_ends_with_the_child(qtbot, gui_movie, tmp_path, monkeypatch):
    """Process mode: the child that trained has exited (and was reaped) when the run is done."""
    import multiprocessing as mp

    from napari_cellseq.gui._jobs import train_job

    started = []
    original = _backend._start_child

    def recording(*args):
        out = original(*args)
        started.append(out[0])
        return out

    monkeypatch.setattr(_backend, "_start_child", recording)
    run = RunController("training")
    run.start(train_job, _tiny_train_kwargs(gui_movie, tmp_path / "m.pt"), place="process")
    qtbot.waitUntil(lambda: not run.state.busy, timeout=180_000)
    assert run.state is RunState.DONE, run.error
    (process,) = started
    assert not process.is_alive() and process.exitcode == 0
    assert process not in mp.active_children()
