"""Planning a training run: every choice resolved and every input checked, once, before a step.

:func:`plan_run` turns what a caller gives (image, labels, configs, ``init``, frames, validation
frames) into a frozen :class:`TrainPlan`: the model file to continue from merged in, the loss
(the network paper's default unless named), the number of classes, the batch size, the training
and validation frames, the device and the final model config. It runs no optimiser step and
builds no network, so it is cheap and testable alone; the CLI and the napari widget plan first
(bad input fails there, as one :class:`~napari_cellseq.core.errors.InputError` or
:class:`~napari_cellseq.core.errors.CellseqError`) and hand the plan to
:func:`~napari_cellseq.core.training.train` (``train(plan=plan, out_path=...)``), which does not
check again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..builtin import resolve_init
from ..checkpoint import Checkpoint
from ..config import CROP_BATCH, SEQUENCE_BATCH, DataConfig, ModelConfig, PostprocessConfig, TrainConfig
from ..data.dataset import annotated_frames, as_movie, movie_spans, target_classes
from ..device import resolve_device
from ..errors import CellseqError, InputError
from ..losses import WEIGHTING, default_loss, loss_function
from ..models import model_info
from ..io.views import is_lazy
from ..pipeline import movie_value_range, prepare_training_inputs
from .record import TrainingRecord
from .validation import split_validation_frames, validation_truth

__all__ = ["TrainPlan", "plan_run", "check_budget"]

LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainPlan:
    """A training run with every choice made and every input checked.

    image, labels : ``(T, Y, X)`` movie and its painted labels (a single image is one frame):
        numpy arrays, or lazy views read frame by frame
        (:class:`~napari_cellseq.core.io.ImageFrames`, :class:`~napari_cellseq.core.io.LabelFrames`).
    value_ranges : for a lazy movie, the grey values normalised to 0 and 1 (one pair per movie
        of ``movie_lengths``), from the sample segmentation takes
        (:func:`~napari_cellseq.core.pipeline.movie_value_range`); ``None`` for a numpy movie
        (the training set takes the percentiles of all of it).
    frames : the frames trained on (sorted); validation_frames : held-out annotated frames.
    partial_frames, background_label : see :class:`~napari_cellseq.core.data.dataset.TrainingSet`.
    model_config : the network to build, with the classes the data needs (or, continuing, the
        model file's); data_config, train_config : the settings used.
    postprocess_config : ``None``: the minimum object size is learnt from the painted objects
        when the training set is built (``TrainingSet.typical_min_size``).
    loss : the loss name (stored in the model file); loss_fn : the function the loop calls,
        ``(logits (N, K, H, W), classes, weights, valid (N, H, W)) -> scalar``;
        weighting : the weight map the loss is defined with (``losses.WEIGHTING``).
    temporal : a U-LSTM-like network (sequences, truncated BPTT); batch_size : crops or
        sequences per step; device : where the run computes.
    init_state : weights to start from (``None``: fresh); prior : the continued model's record
        (its iterations and seconds are added to).
    roc_threshold : choose the threshold on the validation frames by ROC (else calibrate on the
        painted training frames); score_checkpoints : score the validation frames after every
        checkpoint (``ValidationScores`` events).
    movie_lengths : ``image`` is a pool of movies put end to end along T, of these lengths
        (each normalised alone, no sequence crosses from one into the next); ``()``: one movie.
    origin : what made the training data, stored in the record (``TrainingRecord.origin``).
    """

    image: Any
    labels: Any
    frames: tuple[int, ...]
    model_config: ModelConfig
    data_config: DataConfig
    train_config: TrainConfig
    postprocess_config: PostprocessConfig | None
    loss: str
    loss_fn: LossFunction
    weighting: str
    temporal: bool
    batch_size: int
    device: torch.device
    validation_frames: tuple[int, ...] = ()
    partial_frames: tuple[int, ...] = ()
    background_label: int | None = None
    init_state: dict[str, torch.Tensor] | None = None
    prior: TrainingRecord | None = None
    roc_threshold: bool = True
    score_checkpoints: bool = False
    movie_lengths: tuple[int, ...] = ()
    origin: Any = None
    value_ranges: tuple[tuple[float, float], ...] | None = None

    def __repr__(self) -> str:  # no arrays or weights in logs
        return (f"TrainPlan(model={self.model_config.name!r}, frames={list(self.frames)}, "
                f"validation_frames={list(self.validation_frames)}, loss={self.loss!r}, "
                f"batch_size={self.batch_size}, device={str(self.device)!r}, "
                f"continued={self.init_state is not None})")


def check_budget(config: TrainConfig) -> None:
    """A budget of steps and/or seconds, and a positive batch size when one is given."""
    if config.iterations is None and config.max_time is None:
        raise CellseqError("training needs a budget: give --iterations, --max-time or both")
    if config.iterations is not None and config.iterations < 1:
        raise CellseqError(f"--iterations must be at least 1, got {config.iterations}")
    if config.max_time is not None and config.max_time <= 0:
        raise CellseqError(f"--max-time must be positive, got {config.max_time}")
    if config.batch_size is not None and config.batch_size < 1:
        raise CellseqError(f"batch size must be at least 1, got {config.batch_size}")


def plan_run(
    image: Any,
    labels: Any,
    model_config: ModelConfig | None = None,
    data_config: DataConfig | None = None,
    train_config: TrainConfig | None = None,
    postprocess_config: PostprocessConfig | None = None,
    frames: Sequence[int] | None = None,
    init: str | os.PathLike | Checkpoint | None = None,
    partial_frames: Sequence[int] = (),
    background_label: int | None = None,
    validation_frames: Sequence[int] | None = None,
    roc_threshold: bool = True,
    score_checkpoints: bool = False,
    movie_lengths: Sequence[int] = (),
    origin: Mapping[str, Any] | None = None,
) -> TrainPlan:
    """Resolve and check a training run (no optimiser step, no network built).

    image : ``(Y, X)`` or ``(T, Y, X)`` grey values; labels : same shape, integer instance ids
        (or class values ``class + 1`` for target ``"classes"``), 0 = unpainted. Either may be
        lazy (numpy memory map, dask, zarr, :class:`~napari_cellseq.core.io.TiffFrames`,
        :class:`~napari_cellseq.core.io.PaintedFrames`): it is then checked and read frame by
        frame, never whole (see :func:`~napari_cellseq.core.pipeline.prepare_training_inputs`).
    frames : frames to learn from (default: every annotated frame, minus validation frames).
    init : what to start from (:func:`~napari_cellseq.core.builtin.resolve_init`): ``None``
        (:data:`~napari_cellseq.core.builtin.DEFAULT_INIT`), ``"random"``, ``"builtin"`` (the
        built-in of the network of ``model_config`` and the target of ``data_config``), a
        built-in's name, or a model file or checkpoint to continue from. A model's network and
        data settings are kept (except crop size and sampling, taken from ``data_config``), its
        loss unless ``train_config.loss`` names one; its threshold is dropped (it was chosen for
        the old weights). A built-in is fine-tuned: the record counts this run's steps only and
        names it (``started_from``); the smallest object size is learnt from the painted cells.
    validation_frames : annotated frames held out of training. With ``roc_threshold`` (default)
        the foreground threshold is chosen on them (pixel-wise ROC); with ``score_checkpoints``
        they are segmented and scored after every checkpoint (they must then be completely
        annotated).
    movie_lengths : ``image`` and ``labels`` are several movies of equal frame size put end to
        end along T, of these lengths (they must sum to T); each movie is normalised with its
        own percentiles and temporal sequences stay inside one movie (a pool of synthetic
        movies: ``scripts/train_builtin.py``). ``()``: one movie.
    origin : what made the training data (e.g. the script, its seed and the generator's
        styles), a mapping of names to texts, numbers or lists of them, stored in the model file
        as ``training.origin``.

    Raises :class:`InputError` / :class:`CellseqError` for every problem with the inputs.
    """
    image, labels = prepare_training_inputs(image, labels, None if frames is None else list(frames),
                                            data_config.target if data_config else None)
    image, labels = as_movie(image), as_movie(labels)
    movie_lengths = tuple(int(n) for n in movie_lengths)
    movie_spans(movie_lengths, image.shape[0])  # lengths that do not split the movie fail here
    if origin is not None:
        origin = TrainingRecord.check_origin(origin, "origin")
    partial_frames = tuple(int(t) for t in partial_frames)
    frames = None if frames is None else [int(t) for t in frames]
    if validation_frames:
        if score_checkpoints:
            partial = sorted(set(int(t) for t in validation_frames) & set(partial_frames))
            if partial:
                raise InputError(
                    f"validation frame(s) {partial} are marked partly annotated: validation needs "
                    "completely annotated frames; unmark them or choose other frames"
                )
        validation, frames = split_validation_frames(labels, frames, validation_frames)
    else:
        validation = []
    train_config = train_config or TrainConfig()
    check_budget(train_config)
    start = resolve_init(init, (model_config or ModelConfig()).name, (data_config or DataConfig()).target,
                         model_config)
    base = start.checkpoint
    if base is not None:
        if model_config is not None and model_config.name != base.model_config.name:
            what = f"the built-in {start.builtin}" if start.builtin else "--init"
            raise InputError(
                f"{what} holds a {base.model_config.name!r} model but --model asks for "
                f"{model_config.name!r}: drop --model or start from random weights (--init random)"
            )
        model_config = base.model_config
        asked = data_config or base.data_config  # crop size and sampling are the caller's choice
        data_config = replace(base.data_config, crop_size=asked.crop_size, sampling=asked.sampling)
        if not start.builtin:  # (a built-in's smallest object is the synthetic cells': learnt anew)
            # a threshold chosen for the old weights does not hold for the new ones
            postprocess_config = postprocess_config or replace(base.postprocess_config, threshold=None)
    model_config = model_config or ModelConfig()
    data_config = data_config or DataConfig()
    if start.builtin:  # fine-tuning: the record counts this run, and names where it started
        prior = TrainingRecord(started_from=start.builtin)
    else:
        prior = TrainingRecord.from_dict(base.training) if base is not None else None
    loss = train_config.loss or (prior.loss if prior is not None else None) or default_loss(model_config.name)
    loss_fn = loss_function(loss, train_config.focal_gamma)  # unknown names fail here
    device = resolve_device(train_config.device)
    if frames is None:
        frames = annotated_frames(labels)
    frames = sorted(set(frames))
    num_classes = target_classes(data_config.target, labels, frames, background_label)
    model_config = _with_classes(model_config, num_classes, base is not None)
    temporal = model_info(model_config.name).temporal  # unknown networks fail here
    # a lazy movie: the percentiles (and its constant check) from an even sample of frames, per
    # movie of a pool
    value_ranges = None
    if is_lazy(image):
        value_ranges = tuple(movie_value_range(_PoolMovie(image, a, b), data_config.percentiles)
                             for a, b in movie_spans(movie_lengths, image.shape[0]))
    if validation and data_config.target != "classes" and roc_threshold:
        # checked now, not after the training budget
        truth, valid = validation_truth(labels, validation, partial_frames, background_label)
        if not (truth[valid].any() and (~truth[valid]).any()):
            raise InputError(
                f"validation frames {validation} need both cell and background pixels for the "
                "ROC: choose completely annotated frames with cells"
            )
    return TrainPlan(
        image=image,
        labels=labels,
        frames=tuple(frames),
        model_config=model_config,
        data_config=data_config,
        train_config=train_config,
        postprocess_config=postprocess_config,
        loss=loss,
        loss_fn=loss_fn,
        weighting=WEIGHTING[loss],
        temporal=temporal,
        batch_size=train_config.batch_size or (SEQUENCE_BATCH if temporal else CROP_BATCH),
        device=device,
        validation_frames=tuple(validation),
        partial_frames=partial_frames,
        background_label=background_label,
        init_state=base.state_dict if base is not None else None,
        prior=prior,
        roc_threshold=roc_threshold,
        score_checkpoints=score_checkpoints and bool(validation),
        movie_lengths=movie_lengths,
        origin=origin,
        value_ranges=value_ranges,
    )


class _PoolMovie:
    """Frames ``start..end - 1`` of a lazy ``(T, Y, X)`` movie, one movie of a pool (read by index)."""

    def __init__(self, movie: Any, start: int, end: int):
        self.movie, self.start = movie, int(start)
        self.shape = (int(end) - int(start),) + tuple(int(s) for s in movie.shape[1:])

    def __getitem__(self, t: int) -> Any:
        return self.movie[self.start + int(t)]


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
