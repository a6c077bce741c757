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
annotated frames, while unannotated frames still feed the recurrence (chunks without any
annotated frame go through the model's output-free ``advance`` when it has one: the U-LSTM's
encoder only, about half the cost of a forward pass; this raised U-LSTM steps per second on
HeLa by about 1.2x).

Departures from the paper, measured on HeLa (see README): Adam with learning rate 3e-3 and a
cosine decay over the budget instead of constant RMSProp 1e-4 (both available), because the
budget here is minutes on a CPU rather than 100k iterations.

The loss is ``TrainConfig.loss`` (default: the loss of the network's paper, see
:func:`napari_cellseq.core.losses.default_loss`); its name is stored in the model file. With
``validation_frames``, those annotated frames are left out of training and, at the end, a
pixel-wise ROC of the foreground probability on them sets the post-processing threshold
(:mod:`napari_cellseq.core.calibration`, FCN-GoogLeNet blog). Without validation frames the
threshold is calibrated on up to 4 completely painted training frames instead (the one with the
best mean of SEG and AP50 among a few candidates and the argmax; ``TrainConfig.calibrate``), and
the scores are stored in the file's ``training["calibration"]``.
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
from .config import CROP_BATCH, SEQUENCE_BATCH, DataConfig, ModelConfig, PostprocessConfig, TrainConfig
from .data.dataset import Batch, TrainingSet
from .distributed.ddp import current as ddp_run
from .device import autocast, autocast_dtype, resolve_device, use_channels_last
from .errors import CellseqError, InputError
from .events import CheckpointSaved, Done, Event, Started, Step, Validation
from .calibration import (
    calibrate_threshold,
    calibration_frames,
    foreground_roc,
    split_validation_frames,
    validation_truth,
)
from .losses import WEIGHTING, default_loss, loss_function, weighted_cross_entropy
from .models import advance_state, build_model
from .models.ulstm import detach_state
from .pipeline import prepare_training_inputs

logger = logging.getLogger(__name__)

__all__ = ["train", "fit", "CHUNKS_PER_SEQUENCE"]

# Sequences of this many unroll chunks per batch (state carried across them). The paper
# presents "a full sequence" and unrolls it in chunks of tau; 4 chunks (20 frames with tau 5)
# put annotated frames as far as position 19 into a sequence (with random reversal), so the
# recurrence is trained to stay stable over as many frames as a short movie has. With 2 chunks
# (10 frames) a U-LSTM trained on HeLa frames 0-4 segmented well only with a short context:
# SEG 0.888 on frames 10-19 seen after a 3-frame warm-up, 0.680 after the whole movie.
CHUNKS_PER_SEQUENCE = 4


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

    def __init__(self, model, optimizer, device: torch.device, amp: bool, loss_fn=None,
                 channels_last: bool = False, compile: bool = False):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.amp_dtype = autocast_dtype(device, amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.channels_last = channels_last
        self.forward = torch.compile(model) if compile else model
        # (logits (N, K, H, W), classes, weights, valid (N, H, W)) -> scalar; None: this module's
        # weighted_cross_entropy, looked up at every step
        self.loss_fn = loss_fn

    def _loss(self, *args: torch.Tensor) -> torch.Tensor:
        return (self.loss_fn or weighted_cross_entropy)(*args)

    def _amp(self):
        return autocast(self.device, self.amp_dtype)

    def frame_step(self, batch: Batch) -> float:
        x, c, w, v = (t.to(self.device, non_blocking=True) for t in (batch.x, batch.classes, batch.weights, batch.valid))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._amp():
            logits = self.forward(x)
        loss = self._loss(logits, c, w, v)
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
            loss = self._loss(
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
    validation_frames: list[int] | None = None,
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
    init : a model file or checkpoint to continue from; its model and data settings are kept
        (except crop size and sampling, taken from ``data_config``), and its loss unless
        ``train_config.loss`` names one.
    stop : called before every step; training ends, keeping its weights, once it returns True.
    partial_frames, background_label : see :class:`~napari_cellseq.core.data.dataset.TrainingSet`.
    validation_frames : annotated frames left out of training; for instance targets the
        foreground threshold is then chosen on them (pixel-wise ROC, Youden's J) and stored in
        the post-processing settings, with a ``Validation`` event holding ``roc_auc`` and
        ``threshold`` (skipped when training is stopped).

    Yields ``Started``, then ``Step`` per optimiser step, ``CheckpointSaved`` after each file
    write, and finally ``Done`` (reason ``iterations``, ``time`` or ``stopped``).
    """
    image, labels = prepare_training_inputs(image, labels, frames, data_config.target if data_config else None)
    if validation_frames:
        validation_frames, frames = split_validation_frames(labels, frames, validation_frames)
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
        asked = data_config or base.data_config  # crop size and sampling are the caller's choice
        data_config = replace(base.data_config, crop_size=asked.crop_size, sampling=asked.sampling)
        # a threshold chosen for the old weights does not hold for the new ones
        postprocess_config = postprocess_config or replace(base.postprocess_config, threshold=None)
    model_config = model_config or ModelConfig()
    data_config = data_config or DataConfig()
    loss_name = train_config.loss or (base.training.get("loss") if init is not None else None)
    loss_name = loss_name or default_loss(model_config.name)
    loss_fn = loss_function(loss_name, train_config.focal_gamma)  # unknown names fail here
    if loss_name in ("weighted_ce", "edge_weighted"):  # the edge weights are in the weight map
        loss_fn = None  # _Stepper's default: weighted_cross_entropy
    derive_min_size = postprocess_config is None

    device = resolve_device(train_config.device)
    ddp = ddp_run(device)  # one rank of several processes (torchrun), else None: core/distributed/ddp.py
    if ddp is not None:
        device = ddp.device
    torch.manual_seed(train_config.seed)
    rng = np.random.default_rng(train_config.seed if ddp is None else ddp.seed(train_config.seed))
    data = TrainingSet(image, labels, data_config, frames, partial_frames, background_label,
                       weighting=WEIGHTING[loss_name], edge_weight=train_config.edge_weight)
    model_config = _with_classes(model_config, data.num_classes, init is not None)
    if validation_frames and not data.semantic:  # checked now, not after the training budget
        truth, valid = validation_truth(labels, validation_frames, partial_frames, background_label)
        if not (truth[valid].any() and (~truth[valid]).any()):
            raise InputError(
                f"validation frames {validation_frames} need both cell and background pixels for the "
                "ROC: choose completely annotated frames with cells"
            )
    if derive_min_size:
        fallback = PostprocessConfig().min_size
        postprocess_config = PostprocessConfig(min_size=data.typical_min_size(fallback))
    model = build_model(model_config)
    if init is not None:
        model.load_state_dict(base.state_dict)
    channels_last = use_channels_last(device, train_config.channels_last)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format).train()
    optimizer = _make_optimizer(model, train_config)
    stepper = _Stepper(model, optimizer, device, train_config.amp, loss_fn, channels_last,
                       train_config.compile)
    if ddp is not None:
        ddp.attach(stepper)  # gradients and the reported loss averaged over the ranks
    out_path = Path(out_path)
    temporal = bool(getattr(model, "temporal", False))
    batch_size = train_config.batch_size or (SEQUENCE_BATCH if temporal else CROP_BATCH)
    history = dict(base.training) if init is not None else {}
    prior_iterations = int(history.get("iterations", 0))
    roc: dict = {}  # validation frames, ROC AUC and threshold once chosen
    calibration: dict = {}  # threshold chosen on the painted frames, with its scores

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
                "loss": loss_name,
                **({"focal_gamma": train_config.focal_gamma} if loss_name == "normalized_focal" else {}),
                **({"edge_weight": train_config.edge_weight} if loss_name == "edge_weighted" else {}),
                **roc,
                **({"calibration": calibration} if calibration else {}),
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
            if ddp is not None:
                reason = ddp.agree(reason)  # every rank stops at the same step
            if reason:
                break
            _set_lr(optimizer, train_config, _fraction(train_config, iteration, elapsed))
            loss = next(step_iter)
            iteration += 1
            elapsed = time.perf_counter() - t0
            yield Step(iteration, loss, elapsed, _fraction(train_config, iteration, elapsed))
            if time.perf_counter() - last_save >= train_config.checkpoint_every and (ddp is None or ddp.writer):
                yield checkpoint(iteration, elapsed)
                last_save = time.perf_counter()
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
            f"crop size {data_config.crop_size} with batch size {batch_size} is too small for "
            f"{model_config.name!r}: its deepest layer sees a single pixel; use --crop "
            f"{max(2 * data_config.crop_size, 64)} or larger, or a batch size of 2 or more"
        ) from err
    finally:
        step_iter.close()
    elapsed = time.perf_counter() - t0
    if ddp is not None and not ddp.writer:  # rank 0 chooses the threshold and writes the file
        ddp.barrier()
        yield Done(reason=reason, iteration=iteration, path=None, elapsed=elapsed)
        return
    if validation_frames and reason != "stopped":
        if data.semantic:
            logger.info("no foreground threshold for a multi-class model: validation frames only held out")
        else:
            try:
                threshold, auc = foreground_roc(model, device, data.normalized_movie(), truth, valid,
                                                validation_frames)
            except (CellseqError, RuntimeError, MemoryError) as err:  # keep the trained weights
                logger.warning("no foreground threshold: the ROC on the validation frames failed (%s)", err)
            else:
                postprocess_config = replace(postprocess_config, threshold=threshold)
                roc = {"validation_frames": list(validation_frames), "roc_auc": auc, "threshold": threshold}
                yield Validation(iteration=iteration, scores={"roc_auc": auc, "threshold": threshold})
    elif train_config.calibrate and not data.semantic and iteration > 0:
        frames_for_threshold = calibration_frames(data.frames, partial_frames)
        if frames_for_threshold:
            try:
                threshold, calibration = calibrate_threshold(
                    model, device, data.normalized_movie(), labels, frames_for_threshold,
                    data_config.target, postprocess_config.min_size, background_label)
            except (CellseqError, RuntimeError, MemoryError) as err:  # keep the trained weights
                logger.warning("post-processing not calibrated (%s): the argmax is used", err)
            else:
                postprocess_config = replace(postprocess_config, threshold=threshold)
    saved = checkpoint(iteration, elapsed)
    if ddp is not None:
        ddp.barrier()
    yield saved
    yield Done(reason=reason, iteration=iteration, path=saved.path, elapsed=elapsed)


def _with_classes(model_config: ModelConfig, num_classes: int, continuing: bool) -> ModelConfig:
    """``model_config`` with the output classes the data needs (a continued model keeps its own,
    which must cover the data's)."""
    if continuing and model_config.num_classes != num_classes:
        if model_config.num_classes < num_classes:
            raise InputError(
                f"the labels have {num_classes} classes but the model to continue from predicts "
                f"{model_config.num_classes}: start a fresh model (no --init) for the new classes"
            )
        return model_config
    if model_config.num_classes != num_classes:
        model_config = replace(model_config, num_classes=num_classes)
    return model_config


def fit(*args, on_event: Callable[[Event], None] | None = None, **kwargs) -> Checkpoint:
    """Run :func:`train` to the end and return the trained checkpoint (headless use)."""
    done = None
    for event in train(*args, **kwargs):
        if on_event is not None:
            on_event(event)
        if isinstance(event, Done):
            done = event
    return load_checkpoint(done.path)
