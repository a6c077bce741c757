"""Training as a generator of typed events.

:func:`train` yields :mod:`~napari_cellseq.core.events` while it optimises; the CLI drains it
into a progress bar, the napari widget runs it in a worker. Stopping is cooperative (the
``stop`` callable is checked before every step), and the last good weights are always on disk:
a checkpoint is written atomically every ``checkpoint_every`` seconds and at the end, and the
:class:`~napari_cellseq.core.events.CheckpointSaved` event is yielded only after the file is in
place. :func:`fit` drains :func:`train` for headless use.

Frame models learn from batches of augmented crops of the annotated frames. Temporal models
(U-LSTM) learn with truncated back-propagation through time as in the U-LSTM paper: a batch of
sequences of ``chunks_per_sequence * unroll`` frames is cut into chunks of ``unroll`` (tau)
frames; every chunk is one optimiser step; the recurrent state is carried (detached) from one
chunk to the next of the same sequences and reset for the next batch. The loss counts only
annotated frames, while unannotated frames still feed the recurrence.

Departures from the paper, measured on HeLa (see README): Adam with learning rate 3e-3 and a
cosine decay over the budget instead of constant RMSProp 1e-4 (both available), because the
budget here is minutes on a CPU rather than 100k iterations.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import DataConfig, ModelConfig, PostprocessConfig, TrainConfig
from .data.dataset import Batch, TrainingSet
from .device import autocast_dtype, resolve_device
from .errors import CellseqError, InputError
from .events import CheckpointSaved, Done, Event, Started, Step
from .losses import weighted_cross_entropy
from .models import build_model
from .models.ulstm import detach_state
from .pipeline import prepare_training_inputs

logger = logging.getLogger(__name__)

__all__ = ["train", "fit", "CHUNKS_PER_SEQUENCE"]

# Sequences of this many unroll chunks per batch (state carried across them).
CHUNKS_PER_SEQUENCE = 2
# Default batch sizes when TrainConfig.batch_size is None: crops for frame models, sequences for
# temporal models.
CROP_BATCH = 4
SEQUENCE_BATCH = 2


def _make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=config.lr)
    raise CellseqError(f"unknown optimizer {config.optimizer!r}: use adam or rmsprop")


def _check_budget(config: TrainConfig) -> None:
    if config.iterations is None and config.max_time is None:
        raise CellseqError("training needs a budget: give --iterations, --max-time or both")
    if config.iterations is not None and config.iterations < 1:
        raise CellseqError(f"--iterations must be at least 1, got {config.iterations}")
    if config.max_time is not None and config.max_time <= 0:
        raise CellseqError(f"--max-time must be positive, got {config.max_time}")
    if config.batch_size is not None and config.batch_size < 1:
        raise CellseqError(f"batch size must be at least 1, got {config.batch_size}")


def _fraction(config: TrainConfig, iteration: int, elapsed: float) -> float:
    parts = []
    if config.iterations:
        parts.append(iteration / config.iterations)
    if config.max_time:
        parts.append(elapsed / config.max_time)
    return min(max(parts), 1.0)


def _set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, fraction: float) -> None:
    """Cosine decay from ``lr`` to ``lr/20`` over the budget (constant for RMSProp, as the paper)."""
    if config.optimizer == "rmsprop":
        return
    lr = config.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * fraction)))
    for group in optimizer.param_groups:
        group["lr"] = lr


class _Stepper:
    """Forward, loss, backward and optimiser step on one batch or chunk."""

    def __init__(self, model, optimizer, device: torch.device, amp: bool, channels_last: bool = False,
                 compile: bool = False):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.amp_dtype = autocast_dtype(device, amp)
        self.autocast = self.amp_dtype is not None
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.channels_last = channels_last
        self.forward = torch.compile(model) if compile else model

    def _amp(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.autocast)

    def frame_step(self, batch: Batch) -> float:
        x, c, w, v = (t.to(self.device, non_blocking=True) for t in (batch.x, batch.classes, batch.weights, batch.valid))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._amp():
            logits = self.forward(x)
        loss = weighted_cross_entropy(logits, c, w, v)
        return self._update(loss)

    def sequence_steps(self, batch: Batch, unroll: int) -> Iterator[float]:
        """One optimiser step per chunk of ``unroll`` frames; yields each chunk's loss."""
        x, c, w, v = (t.to(self.device, non_blocking=True) for t in (batch.x, batch.classes, batch.weights, batch.valid))
        state = None
        length = x.shape[1]
        for start in range(0, length, unroll):
            sl = slice(start, start + unroll)
            chunk_valid = v[:, sl]
            with self._amp():
                if chunk_valid.sum() == 0:
                    with torch.no_grad():  # no annotation here: only advance the recurrence
                        _, state = self.forward(x[:, sl], state)
                    continue
                logits, state = self.forward(x[:, sl], state)
            b, t, k, hh, ww = logits.shape
            loss = weighted_cross_entropy(
                logits.reshape(b * t, k, hh, ww),
                c[:, sl].reshape(b * t, hh, ww),
                w[:, sl].reshape(b * t, hh, ww),
                chunk_valid.reshape(b * t, hh, ww),
            )
            yield self._update(loss)
            state = detach_state(state)

    def _update(self, loss: torch.Tensor) -> float:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise CellseqError(
                "training diverged (the loss became NaN or infinite): lower the learning rate; "
                "the last good weights are kept in the model file"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value


def train(
    image: np.ndarray,
    labels: np.ndarray,
    out_path: str | os.PathLike,
    model_config: ModelConfig | None = None,
    data_config: DataConfig | None = None,
    train_config: TrainConfig | None = None,
    postprocess_config: PostprocessConfig | None = None,
    frames: list[int] | None = None,
    init: str | os.PathLike | Checkpoint | None = None,
    stop: Callable[[], bool] | None = None,
    partial_frames: tuple[int, ...] = (),
    background_label: int | None = None,
) -> Iterator[Event]:
    """Train a network on the annotated frames of ``image``, yielding events.

    Parameters
    ----------
    image : ``(Y, X)`` or ``(T, Y, X)`` grey values (checked by the caller, see ``io.check_image``).
    labels : same shape, integer instance ids; frames with any label are the annotated ones.
    out_path : model file written (atomically) at every checkpoint and at the end.
    model_config, data_config, train_config, postprocess_config : settings (defaults if None;
        without a post-processing config, the minimum object size is learnt from the painted
        objects, see ``TrainingSet.typical_min_size``).
    frames : explicit frames to learn from (overrides the annotated-frame discovery).
    init : a model file or checkpoint to continue from; its model and data settings are kept.
    stop : called before every step; training ends, keeping its weights, once it returns True.
    partial_frames, background_label : see :class:`~napari_cellseq.core.data.dataset.TrainingSet`.

    Yields ``Started``, then ``Step`` per optimiser step, ``CheckpointSaved`` after each file
    write, and finally ``Done`` (reason ``iterations``, ``time`` or ``stopped``).
    """
    image, labels = prepare_training_inputs(image, labels, frames)
    train_config = train_config or TrainConfig()
    _check_budget(train_config)
    if init is not None:
        base = init if isinstance(init, Checkpoint) else load_checkpoint(init)
        if model_config is not None and model_config.name != base.model_config.name:
            raise InputError(
                f"--init holds a {base.model_config.name!r} model but --model asks for "
                f"{model_config.name!r}: drop --model or start fresh without --init"
            )
        model_config = base.model_config
        data_config = replace(base.data_config, crop_size=(data_config or base.data_config).crop_size)
        postprocess_config = postprocess_config or base.postprocess_config
    model_config = model_config or ModelConfig()
    data_config = data_config or DataConfig()
    derive_min_size = postprocess_config is None
    want_classes = 3 if data_config.target == "3class" else 2
    if model_config.num_classes != want_classes:
        model_config = replace(model_config, num_classes=want_classes)

    device = resolve_device(train_config.device)
    torch.manual_seed(train_config.seed)
    rng = np.random.default_rng(train_config.seed)
    data = TrainingSet(image, labels, data_config, frames, partial_frames, background_label)
    if derive_min_size:
        fallback = PostprocessConfig().min_size
        postprocess_config = PostprocessConfig(min_size=data.typical_min_size(fallback))
    model = build_model(model_config)
    if init is not None:
        model.load_state_dict(base.state_dict)
    channels_last = train_config.channels_last
    if channels_last is None:
        channels_last = device.type in ("cpu", "cuda")
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format).train()
    optimizer = _make_optimizer(model, train_config)
    stepper = _Stepper(model, optimizer, device, train_config.amp, channels_last, train_config.compile)
    out_path = Path(out_path)
    temporal = bool(getattr(model, "temporal", False))
    batch_size = train_config.batch_size or (SEQUENCE_BATCH if temporal else CROP_BATCH)
    history = dict(base.training) if init is not None else {}
    prior_iterations = int(history.get("iterations", 0))

    def checkpoint(iteration: int, elapsed: float) -> CheckpointSaved:
        ckpt = Checkpoint(
            model_config=model_config,
            data_config=data_config,
            postprocess_config=postprocess_config,
            state_dict=model.state_dict(),
            training={
                "iterations": prior_iterations + iteration,
                "seconds": float(history.get("seconds", 0.0)) + elapsed,
                "frames": list(data.frames),
                "value_range": list(data.value_range),
                "seed": train_config.seed,
                "optimizer": train_config.optimizer,
                "lr": train_config.lr,
                "batch_size": batch_size,
                "device": str(device),
            },
        )
        save_checkpoint(ckpt, out_path)
        return CheckpointSaved(iteration=iteration, path=str(out_path))

    yield Started(total=train_config.iterations, max_time=train_config.max_time, device=str(device))
    t0 = time.perf_counter()
    last_save = t0
    iteration = 0
    reason = None

    def steps() -> Iterator[float]:
        while True:
            if temporal:
                length = CHUNKS_PER_SEQUENCE * train_config.unroll
                batch = data.sequence_batch(rng, batch_size, length)
                yield from stepper.sequence_steps(batch, train_config.unroll)
            else:
                yield stepper.frame_step(data.frame_batch(rng, batch_size))

    step_iter = steps()
    try:
        while True:
            elapsed = time.perf_counter() - t0
            if stop is not None and stop():
                reason = "stopped"
            elif train_config.iterations is not None and iteration >= train_config.iterations:
                reason = "iterations"
            elif train_config.max_time is not None and elapsed >= train_config.max_time:
                reason = "time"
            if reason:
                break
            _set_lr(optimizer, train_config, _fraction(train_config, iteration, elapsed))
            loss = next(step_iter)
            iteration += 1
            elapsed = time.perf_counter() - t0
            yield Step(iteration, loss, elapsed, _fraction(train_config, iteration, elapsed))
            if time.perf_counter() - last_save >= train_config.checkpoint_every:
                yield checkpoint(iteration, elapsed)
                last_save = time.perf_counter()
    except torch.OutOfMemoryError as err:
        raise CellseqError(
            f"out of memory on {device} while training: use a smaller crop size or batch size "
            "(the last checkpoint, if any, is kept)"
        ) from err
    finally:
        step_iter.close()
    elapsed = time.perf_counter() - t0
    saved = checkpoint(iteration, elapsed)
    yield saved
    yield Done(reason=reason, iteration=iteration, path=saved.path, elapsed=elapsed)


def fit(*args, on_event: Callable[[Event], None] | None = None, **kwargs) -> Checkpoint:
    """Run :func:`train` to the end and return the trained checkpoint (headless use)."""
    done = None
    for event in train(*args, **kwargs):
        if on_event is not None:
            on_event(event)
        if isinstance(event, Done):
            done = event
    return load_checkpoint(done.path)
