from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.config import DataConfig, ModelConfig, TrainConfig
from napari_cellseq.core.errors import CellseqError, InputError
from napari_cellseq.core.events import CheckpointSaved, Done, Started, Step
from napari_cellseq.core.training import fit, plan_run, train

TINY = dict(
    model_config=ModelConfig(base_channels=4),
    data_config=DataConfig(crop_size=48),
)


def test_events_in_order_and_model_on_disk(small_movie, tmp_path):
    image, labels = small_movie
    out = tmp_path / "m.pt"
    events = list(train(image, labels, out, train_config=TrainConfig(iterations=3, max_time=None, batch_size=2), **TINY))
    assert isinstance(events[0], Started) and events[0].device == "cpu"
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.iteration for s in steps] == [1, 2, 3]
    assert all(np.isfinite(s.loss) for s in steps)
    assert steps[-1].fraction == 1.0
    assert isinstance(events[-2], CheckpointSaved) and isinstance(events[-1], Done)
    assert events[-1].reason == "iterations"
    ckpt = load_checkpoint(out)
    assert ckpt.training.iterations == 3
    assert ckpt.model_config.base_channels == 4 and ckpt.data_config.crop_size == 48


def test_stop_keeps_weights(small_movie, tmp_path):
    image, labels = small_movie
    out = tmp_path / "m.pt"
    seen = []
    events = train(image, labels, out, train_config=TrainConfig(iterations=1000, max_time=None, batch_size=1),
                   stop=lambda: len(seen) >= 2, **TINY)
    for e in events:
        if isinstance(e, Step):
            seen.append(e)
        last = e
    assert last.reason == "stopped" and last.iteration == 2
    assert load_checkpoint(out).training.iterations == 2


def test_time_budget_ends_training(small_movie, tmp_path):
    image, labels = small_movie
    events = list(train(image, labels, tmp_path / "m.pt", train_config=TrainConfig(max_time=0.5, batch_size=1), **TINY))
    assert events[-1].reason == "time"


def test_training_reduces_loss_and_is_seeded(small_movie, tmp_path):
    image, labels = small_movie
    cfg = TrainConfig(iterations=25, max_time=None, batch_size=2, seed=3)

    def losses(path):
        return [e.loss for e in train(image, labels, path, train_config=cfg, **TINY) if isinstance(e, Step)]

    a, b = losses(tmp_path / "a.pt"), losses(tmp_path / "b.pt")
    assert a == pytest.approx(b, rel=1e-5)
    assert np.mean(a[-5:]) < np.mean(a[:5])


def test_continue_from_init_adds_iterations(small_movie, tmp_path):
    image, labels = small_movie
    first = fit(image, labels, tmp_path / "a.pt", train_config=TrainConfig(iterations=2, max_time=None, batch_size=1), **TINY)
    second = fit(image, labels, tmp_path / "b.pt", init=tmp_path / "a.pt",
                 train_config=TrainConfig(iterations=2, max_time=None, batch_size=1))
    assert second.training.iterations == 4
    assert second.model_config == first.model_config


def test_init_with_other_model_is_refused(small_movie, tmp_path):
    image, labels = small_movie
    fit(image, labels, tmp_path / "a.pt", train_config=TrainConfig(iterations=1, max_time=None, batch_size=1), **TINY)
    with pytest.raises(InputError, match="--init holds a 'unet'"):
        next(train(image, labels, tmp_path / "b.pt", model_config=ModelConfig(name="ulstm"),
                   init=tmp_path / "a.pt", train_config=TrainConfig(iterations=1)))


def test_budget_is_required(small_movie, tmp_path):
    image, labels = small_movie
    with pytest.raises(CellseqError, match="budget"):
        next(train(image, labels, tmp_path / "m.pt", train_config=TrainConfig(iterations=None, max_time=None)))


def test_sparse_annotations_train_temporal_model(small_movie, tmp_path):
    """Only frames 0 and 5 painted: U-LSTM trains on the whole movie and segments all frames."""
    from napari_cellseq.core.pipeline import segment

    image, labels = small_movie
    painted = np.zeros_like(labels)
    painted[[0, 5]] = labels[[0, 5]]
    ckpt = fit(image, painted, tmp_path / "u.pt", model_config=ModelConfig(name="ulstm", base_channels=4),
               data_config=DataConfig(crop_size=32),
               train_config=TrainConfig(iterations=4, max_time=None, batch_size=1, unroll=3))
    assert ckpt.training.frames == (0, 5)
    out = segment(image, ckpt, device="cpu")
    assert out.shape == image.shape and out.dtype == np.uint16


def _nan_loss(*args):
    from napari_cellseq.core.losses import weighted_cross_entropy

    return weighted_cross_entropy(*args) * float("nan")


def test_diverging_training_raises_and_keeps_last_good_weights(small_movie, tmp_path):
    image, labels = small_movie
    out = tmp_path / "m.pt"
    fit(image, labels, out, train_config=TrainConfig(iterations=1, max_time=None, batch_size=1), **TINY)
    before = out.read_bytes()
    plan = plan_run(image, labels, train_config=TrainConfig(iterations=5, max_time=None, batch_size=1), **TINY)
    with pytest.raises(CellseqError, match=r"diverged at step 1 .* was not changed by this run"):
        list(train(plan=replace(plan, loss_fn=_nan_loss), out_path=out))
    assert out.read_bytes() == before  # the file on disk still holds the last good weights
    load_checkpoint(out)


def test_divergence_after_a_checkpoint_names_the_kept_step(small_movie, tmp_path):
    image, labels = small_movie
    out = tmp_path / "m.pt"
    calls = []

    def nan_from_step_3(*args):
        from napari_cellseq.core.losses import weighted_cross_entropy

        calls.append(1)
        return weighted_cross_entropy(*args) * (float("nan") if len(calls) >= 3 else 1.0)

    plan = plan_run(image, labels, train_config=TrainConfig(iterations=5, max_time=None, batch_size=1,
                                                            checkpoint_every=1e-9), **TINY)
    with pytest.raises(CellseqError, match=r"diverged at step 3 .*weights of step 2, the last checkpoint"):
        list(train(plan=replace(plan, loss_fn=nan_from_step_3), out_path=out))
    assert load_checkpoint(out).training.iterations == 2


def test_divergence_before_any_checkpoint_writes_no_file(small_movie, tmp_path):
    image, labels = small_movie
    out = tmp_path / "m.pt"
    plan = plan_run(image, labels, train_config=TrainConfig(iterations=5, max_time=None, batch_size=1), **TINY)
    with pytest.raises(CellseqError, match=r"diverged at step 1 .*before any weights were saved: no model file"):
        list(train(plan=replace(plan, loss_fn=_nan_loss), out_path=out))
    assert list(tmp_path.iterdir()) == []


def test_a_short_seeded_run_gives_the_losses_recorded_before_the_refactoring(small_movie, tmp_path):
    """Same seed, same steps: the loss values recorded from the single-module ``training.py``
    (commit cb0d45b) before it became a package, for a frame and a temporal model (nothing
    held out: ``holdout=0``, as then; float32 steps: ``amp="off"``, as then, where ``"auto"``
    would take bfloat16 on a CPU with matrix units)."""
    from napari_cellseq.core.events import Step

    image, labels = small_movie
    painted = np.zeros_like(labels)
    painted[[0, 3, 5]] = labels[[0, 3, 5]]
    runs = {
        "unet": (dict(model_config=ModelConfig(base_channels=4), data_config=DataConfig(crop_size=48),
                      train_config=TrainConfig(iterations=5, max_time=None, seed=7, holdout=0.0, amp="off")),
                 [1.7782971858978271, 1.946944236755371, 1.9637784957885742, 1.8483306169509888,
                  1.7936687469482422]),
        "ulstm": (dict(model_config=ModelConfig(name="ulstm", base_channels=4), data_config=DataConfig(crop_size=32),
                       train_config=TrainConfig(iterations=4, max_time=None, seed=7, unroll=2, holdout=0.0,
                                                amp="off")),
                  [1.0139445066452026, 1.0384743213653564, 0.9623709321022034, 0.9966176152229309]),
    }
    for name, (kwargs, recorded) in runs.items():
        events = list(train(image, painted, tmp_path / f"{name}.pt", **kwargs))
        assert [e.loss for e in events if isinstance(e, Step)] == pytest.approx(recorded, rel=1e-4), name


class _CountingTemporalModel(torch.nn.Module):
    """Temporal stand-in: logits from one 1x1 convolution, counts the frames it is fed."""

    temporal = True

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 1)
        self.fed: list[int] = []

    def forward(self, x, state=None):  # (B, T, 1, H, W) -> (B, T, 3, H, W)
        b, t = x.shape[:2]
        self.fed.append(t)
        return self.conv(x.flatten(0, 1)).view(b, t, 3, *x.shape[-2:]), state


@pytest.mark.parametrize("annotated, fed, steps", [
    (range(0, 5), [5], 1),  # annotation in the first chunk only: the other chunks are skipped
    (range(15, 20), [5, 5, 5, 5], 1),  # annotation in the last chunk: the recurrence runs up to it
    ([2, 12], [5, 5, 5], 2),  # chunks 0 and 2 train; chunk 1 only advances; chunk 3 skipped
])
def test_sequence_steps_run_the_recurrence_up_to_the_last_annotated_frame(annotated, fed, steps):
    model = _CountingTemporalModel()
    _check_sequence_steps(model, annotated, steps)
    assert model.fed == fed


class _AdvancingTemporalModel(_CountingTemporalModel):
    """Also has the U-LSTM's output-free ``advance``, which training uses for unannotated chunks."""

    def __init__(self):
        super().__init__()
        self.advanced: list[int] = []

    def advance(self, x, state=None):
        self.advanced.append(x.shape[1])
        return state


@pytest.mark.parametrize("annotated, fed, advanced", [
    (range(15, 20), [5], [5, 5, 5]),
    ([2, 12], [5, 5], [5]),
])
def test_unannotated_chunks_use_the_models_advance(annotated, fed, advanced):
    model = _AdvancingTemporalModel()
    _check_sequence_steps(model, annotated, len(fed))
    assert model.fed == fed and model.advanced == advanced


def _check_sequence_steps(model, annotated, steps):
    from napari_cellseq.core.data.dataset import Batch
    from napari_cellseq.core.losses import weighted_cross_entropy
    from napari_cellseq.core.training.loop import Stepper

    stepper = Stepper(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"), amp=False,
                      loss_fn=weighted_cross_entropy)
    x = torch.randn(2, 20, 1, 8, 8)
    classes = torch.zeros(2, 20, 8, 8, dtype=torch.int64)
    valid = torch.zeros(2, 20, 8, 8)
    valid[1, list(annotated)] = 1.0
    losses = list(stepper.sequence_steps(Batch(x, classes, torch.ones(2, 20, 8, 8), valid), unroll=5))
    assert len(losses) == steps


def test_crop_too_small_for_the_network_is_a_clear_error(small_movie, tmp_path):
    from napari_cellseq.core.models import default_model_config

    image, labels = small_movie
    with pytest.raises(InputError, match=r"crop size 32 with batch size 1 is too small for 'fcn_googlenet'"):
        list(train(image, labels, tmp_path / "m.pt", model_config=default_model_config("fcn_googlenet"),
                   data_config=DataConfig(crop_size=32, augment_elastic=False),
                   train_config=TrainConfig(iterations=1, max_time=None, batch_size=1)))


def test_a_pool_of_movies_trains_and_records_its_origin(small_movie, tmp_path):
    """Two movies end to end (``movie_lengths``): the U-LSTM trains on them, the file records
    the origin and no single value range (each movie was normalised alone)."""
    image, labels = small_movie
    pool = np.concatenate([image.astype(np.float32), image[::-1] / 100.0])
    pool_labels = np.concatenate([labels, labels[::-1]])
    origin = {"script": "scripts/train_builtin.py", "seed": 0, "styles": {"fluorescent nuclei": 2}}
    ckpt = fit(pool, pool_labels, tmp_path / "pool.pt", model_config=ModelConfig(name="ulstm", base_channels=4),
               data_config=DataConfig(crop_size=32), movie_lengths=(6, 6), origin=origin,
               train_config=TrainConfig(iterations=3, max_time=None, batch_size=1, unroll=2))
    assert ckpt.training.iterations == 3
    assert ckpt.training.origin == origin and ckpt.training.value_range is None
    assert load_checkpoint(tmp_path / "pool.pt").training.origin == origin
