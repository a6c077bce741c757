"""The optimisation loop of a planned run: stepper, learning-rate schedule, budget, checkpoints, stop.

:func:`run` executes a :class:`~napari_cellseq.core.training.plan.TrainPlan` as a generator of
:mod:`~napari_cellseq.core.events`. Stopping is cooperative (the ``stop`` callable is checked
before every step), and the last good weights are always on disk: a checkpoint is written
atomically every ``checkpoint_every`` seconds and at the end, and the
:class:`~napari_cellseq.core.events.CheckpointSaved` event is yielded only after the file is in
place.

Frame models learn from batches of augmented crops of the annotated frames. Temporal models
(U-LSTM) learn with truncated back-propagation through time as in the U-LSTM paper: a batch of
sequences of ``chunks_per_sequence * unroll`` frames is cut into chunks of ``unroll`` (tau)
frames; every chunk is one optimiser step; the recurrent state is carried (detached) from one
chunk to the next of the same sequences and reset for the next batch. The loss counts only
annotated frames, while unannotated frames still feed the recurrence (chunks without any
annotated frame go through the model's output-free ``advance`` when it has one: the U-LSTM's
encoder only, about half the cost of a forward pass; this raised U-LSTM steps per second on
HeLa by about 1.2x).

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

from ..checkpoint import Checkpoint, save_checkpoint
from ..config import PostprocessConfig, TrainConfig
from ..data.dataset import Batch, TrainingSet
from ..distributed.ddp import current as ddp_run
from ..device import autocast, autocast_dtype, use_channels_last
from ..errors import CellseqError, InputError
from ..events import CheckpointSaved, Done, Event, Started, Step, ThresholdChosen, ValidationScores
from ..models import advance_state, build_model
from ..models.base import detach_state
from .plan import LossFunction, TrainPlan
from .record import TrainingRecord, ValidationRecord
from .threshold import choose_threshold, holdout_for
from .validation import validation_scores

logger = logging.getLogger(__name__)

__all__ = ["run", "Stepper", "Diverged", "CHUNKS_PER_SEQUENCE"]

# Sequences of this many unroll chunks per batch (state carried across them). The paper
# presents "a full sequence" and unrolls it in chunks of tau; 4 chunks (20 frames with tau 5,
# 8 with the default tau 2, config.UNROLL) put annotated frames up to 3 chunks deep into a
# sequence (with random reversal). With batch norm and 2 chunks of 5 a U-LSTM trained on HeLa
# frames 0-4 segmented well only with a short context (SEG 0.888 on frames 10-19 seen after a
# 3-frame warm-up, 0.680 after the whole movie); with group norm (the default) and 4 chunks of 2
# it does not drift: fine-tuned 60 s from the built-in, SEG on frames 10-19 after 3 lead-in
# frames / after frames 0-9 / after 48 frames (the movie forth, back and forth again): 0.868 /
# 0.866 / 0.867 and 0.834 / 0.830 / 0.835 (two seeds; tau 5, 20-frame sequences: 0.778 / 0.782 /
# 0.783).
CHUNKS_PER_SEQUENCE = 4


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or RMSProp over ``model``'s parameters at ``config.lr``."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=config.lr)
    raise CellseqError(f"unknown optimizer {config.optimizer!r}: use adam or rmsprop")


def budget_fraction(config: TrainConfig, iteration: int, elapsed: float) -> float:
    """Progress in [0, 1] with respect to the tighter of the step and time budgets."""
    parts = []
    if config.iterations:
        parts.append(iteration / config.iterations)
    if config.max_time:
        parts.append(elapsed / config.max_time)
    return min(max(parts), 1.0)


def set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, fraction: float) -> None:
    """Cosine decay from ``lr`` to ``lr/20`` over the budget (constant for RMSProp, as the paper)."""
    if config.optimizer == "rmsprop":
        return
    lr = config.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * fraction)))
    for group in optimizer.param_groups:
        group["lr"] = lr


class Diverged(ArithmeticError):
    """The loss of a step became NaN or infinite (the step was not applied)."""


class Stepper:
    """Forward, loss, backward and optimiser step on one batch or chunk."""

    def __init__(self, model, optimizer, device: torch.device, amp: bool, loss_fn: LossFunction,
                 channels_last: bool = False, compile: bool = False):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.amp_dtype = autocast_dtype(device, amp, training=True)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.channels_last = channels_last
        self.forward = torch.compile(model) if compile else model
        # (logits (N, K, H, W), classes, weights, valid (N, H, W)) -> scalar (TrainPlan.loss_fn)
        self.loss_fn = loss_fn

    def _amp(self):
        return autocast(self.device, self.amp_dtype)

    def frame_step(self, batch: Batch) -> float:
        x, c, w, v = (t.to(self.device, non_blocking=True) for t in (batch.x, batch.classes, batch.weights, batch.valid))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._amp():
            logits = self.forward(x)
        loss = self.loss_fn(logits, c, w, v)
        return self._update(loss)

    def sequence_steps(self, batch: Batch, unroll: int) -> Iterator[float]:
        """One optimiser step per chunk of ``unroll`` frames; yields each chunk's loss."""
        x, c, w, v = (t.to(self.device, non_blocking=True) for t in (batch.x, batch.classes, batch.weights, batch.valid))
        state = None
        annotated = torch.nonzero(v.flatten(2).amax(dim=2).amax(dim=0) > 0).flatten()
        # Chunks after the last annotated frame would only advance the recurrence: skip them.
        length = int(annotated[-1]) + 1 if annotated.numel() else 0
        for start in range(0, length, unroll):
            sl = slice(start, start + unroll)
            chunk_valid = v[:, sl]
            with self._amp():
                if chunk_valid.sum() == 0:
                    with torch.no_grad():  # no annotation here: only advance the recurrence
                        state = advance_state(self.model, x[:, sl], state, self.forward)
                    continue
                logits, state = self.forward(x[:, sl], state)
            b, t, k, hh, ww = logits.shape
            loss = self.loss_fn(
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
            raise Diverged(value)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value


def run(plan: TrainPlan, out_path: str | os.PathLike,
        stop: Callable[[], bool] | None = None) -> Iterator[Event]:
    """Train as ``plan`` says, writing the model file ``out_path``; yields events.

    Yields ``Started``, then ``Step`` per optimiser step, ``CheckpointSaved`` after each file
    write (each followed by ``ValidationScores`` when ``plan.score_checkpoints``), a
    ``ThresholdChosen`` when the post-processing threshold was chosen after training, and
    finally ``Done`` (reason ``iterations``, ``time`` or ``stopped``).
    """
    config = plan.train_config
    device = plan.device
    ddp = ddp_run(device)  # one rank of several processes (torchrun), else None: core/distributed/ddp.py
    if ddp is not None:
        device = ddp.device
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed if ddp is None else ddp.seed(config.seed))
    # only the frames learnt from (and, for sequences, the frames they reach) are read and kept
    context = CHUNKS_PER_SEQUENCE * config.unroll if plan.temporal else 0
    # painted pixels no step sees: the post-processing threshold is chosen on them (holdout.py)
    holdout = holdout_for(plan)
    data = TrainingSet(plan.image, plan.labels, plan.data_config, list(plan.frames), plan.partial_frames,
                       plan.background_label, weighting=plan.weighting, edge_weight=config.edge_weight,
                       movie_lengths=plan.movie_lengths, context=context, value_ranges=plan.value_ranges,
                       excluded=None if holdout is None else holdout.excluded())
    postprocess_config = plan.postprocess_config
    if postprocess_config is None:
        fallback = PostprocessConfig().min_size
        postprocess_config = PostprocessConfig(min_size=data.typical_min_size(fallback))
    model = build_model(plan.model_config)
    if plan.init_state is not None:
        model.load_state_dict(plan.init_state)
    channels_last = use_channels_last(device, config.channels_last)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format).train()
    optimizer = make_optimizer(model, config)
    stepper = Stepper(model, optimizer, device, config.amp, plan.loss_fn, channels_last, config.compile)
    if ddp is not None:
        ddp.attach(stepper)  # gradients and the reported loss averaged over the ranks
    out_path = Path(out_path)
    prior = plan.prior or TrainingRecord()
    record = TrainingRecord(
        frames=tuple(data.frames),
        value_range=None if data.value_range is None else tuple(data.value_range),
        seed=config.seed,
        optimizer=config.optimizer,
        lr=config.lr,
        batch_size=plan.batch_size,
        unroll=config.unroll if plan.temporal else None,
        device=str(device),
        precision=None if stepper.amp_dtype is None else str(stepper.amp_dtype).removeprefix("torch."),
        loss=plan.loss,
        focal_gamma=config.focal_gamma if plan.loss == "normalized_focal" else None,
        edge_weight=config.edge_weight if plan.loss == "edge_weighted" else None,
        validation_frames=plan.validation_frames,
        started_from=prior.started_from,
        origin=plan.origin,
    )

    saved_at: list[int] = []  # steps whose weights this run wrote to out_path

    def checkpoint(iteration: int, elapsed: float) -> CheckpointSaved:
        nonlocal record
        record = replace(record, iterations=prior.iterations + iteration, seconds=prior.seconds + elapsed)
        ckpt = Checkpoint(
            model_config=plan.model_config,
            data_config=plan.data_config,
            postprocess_config=postprocess_config,
            state_dict=model.state_dict(),
            training=record,
        )
        save_checkpoint(ckpt, out_path)
        saved_at.append(iteration)
        return CheckpointSaved(iteration=iteration, path=str(out_path))

    def validate(iteration: int) -> ValidationScores:
        nonlocal record
        scores = validation_scores(model, device, data.normalized_movie(), plan.labels,
                                   plan.validation_frames, plan.data_config.target, postprocess_config,
                                   plan.background_label)
        model.train()
        record = replace(record, validation=ValidationRecord(iteration, plan.validation_frames, scores))
        return ValidationScores(iteration=iteration, scores=scores, frames=plan.validation_frames)

    yield Started(total=config.iterations, max_time=config.max_time, device=str(device), precision=record.precision)
    t0 = time.perf_counter()
    last_save = t0
    iteration = 0
    reason = None

    def steps() -> Iterator[float]:
        while True:
            if plan.temporal:
                length = CHUNKS_PER_SEQUENCE * config.unroll
                batch = data.sequence_batch(rng, plan.batch_size, length)
                yield from stepper.sequence_steps(batch, config.unroll)
            else:
                yield stepper.frame_step(data.frame_batch(rng, plan.batch_size))

    step_iter = steps()
    try:
        while True:
            elapsed = time.perf_counter() - t0
            if stop is not None and stop():
                reason = "stopped"
            elif config.iterations is not None and iteration >= config.iterations:
                reason = "iterations"
            elif config.max_time is not None and elapsed >= config.max_time:
                reason = "time"
            if ddp is not None:
                reason = ddp.agree(reason)  # every rank stops at the same step
            if reason:
                break
            set_lr(optimizer, config, budget_fraction(config, iteration, elapsed))
            loss = next(step_iter)
            iteration += 1
            elapsed = time.perf_counter() - t0
            yield Step(iteration, loss, elapsed, budget_fraction(config, iteration, elapsed))
            if time.perf_counter() - last_save >= config.checkpoint_every and (ddp is None or ddp.writer):
                yield checkpoint(iteration, elapsed)
                if plan.score_checkpoints:
                    yield validate(iteration)
                last_save = time.perf_counter()
    except Diverged as err:
        raise CellseqError(_diverged_message(iteration + 1, saved_at, out_path, plan.init_state is not None)) from err
    except torch.OutOfMemoryError as err:
        raise CellseqError(
            f"out of memory on {device} while training: use a smaller crop size or batch size "
            "(the last checkpoint, if any, is kept)"
        ) from err
    except ValueError as err:
        if "more than 1 value per channel" not in str(err):
            raise
        # batch norm cannot normalise one value per channel: the crop shrank to 1x1 inside the net
        raise InputError(
            f"crop size {plan.data_config.crop_size} with batch size {plan.batch_size} is too small for "
            f"{plan.model_config.name!r}: its deepest layer sees a single pixel; use --crop "
            f"{max(2 * plan.data_config.crop_size, 64)} or larger, or a batch size of 2 or more"
        ) from err
    finally:
        step_iter.close()
    elapsed = time.perf_counter() - t0
    if ddp is not None and not ddp.writer:  # rank 0 chooses the threshold and writes the file
        ddp.barrier()
        yield Done(reason=reason, iteration=iteration, path=None, elapsed=elapsed)
        return
    choice = choose_threshold(plan, model, device, data.normalized_movie(), data.frames,
                              postprocess_config.min_size, iteration, stopped=reason == "stopped",
                              holdout=holdout)
    if choice is not None:
        postprocess_config = replace(postprocess_config, threshold=choice.threshold)
        record = replace(record, threshold=choice)
        yield ThresholdChosen(iteration=iteration, choice=choice)
    if plan.score_checkpoints:  # before the final save, so that the file records the scores
        yield validate(iteration)
    saved = checkpoint(iteration, elapsed)
    if ddp is not None:
        ddp.barrier()
    yield saved
    yield Done(reason=reason, iteration=iteration, path=saved.path, elapsed=elapsed)


def _diverged_message(step: int, saved_at: list[int], out_path: Path, continued: bool) -> str:
    """What a diverged run says: at which step, what is on disk, and what to try.

    A run that diverges before its first checkpoint writes no file (weights of a diverged or
    barely started run are of no use, and a file would look like a trained model); a file that
    was already at ``out_path`` (``--overwrite``) is left as it was.
    """
    what = f"training diverged at step {step} (the loss became NaN or infinite)"
    fix = "lower the learning rate (--lr) or check the image for extreme values"
    if saved_at:
        return f"{what}: {fix}; the weights of step {saved_at[-1]}, the last checkpoint, are kept in {out_path}"
    if out_path.exists():
        return f"{what} before its first checkpoint: {fix}; {out_path} was not changed by this run"
    start = " (continuing from --init)" if continued else ""
    return f"{what} before any weights were saved{start}: no model file was written; {fix}"
