"""Job functions the widgets hand to the run controller (:mod:`._run`, :mod:`._backend`).

They run in the worker (thread or child process) on array snapshots, never on layers, and are
module-level so that the process mode can pickle them by name. Each is a generator of core
events and accepts ``stop`` (zero-argument callable, True once Stop is pressed) and ``frame``
(zero-argument callable: the frame the viewer shows, None while the live preview is off).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..core.config import DataConfig, ModelConfig, TrainConfig
from ..core.data.dataset import annotated_frames
from ..core.errors import InputError
from ..core.events import CheckpointSaved, Event, Validation
from ..core.metrics import evaluate, evaluate_classes
from ..core.pipeline import FrameLabels, load_model, segment_events
from ..core.training import train

__all__ = ["train_job", "segment_job", "training_frames", "Preview", "preview_labels"]


@dataclass(frozen=True, eq=False)
class Preview(Event):
    """The model after ``iteration`` steps segmented ``frame``: ``labels (Y, X)`` (live preview)."""

    iteration: int
    frame: int
    labels: np.ndarray = field(repr=False)


def preview_labels(image, model_path: str, frame: int, device: str,
                   stop: Callable[[], bool] | None = None) -> np.ndarray | None:
    """Labels ``(Y, X)`` of ``frame`` of ``image`` by the model file at ``model_path`` (None if stopped)."""
    for event in segment_events(image, model_path, device=device, frames=[frame], stop=stop):
        if isinstance(event, FrameLabels):
            return event.labels
    return None


def training_frames(labels: np.ndarray, validation_frame: int | None) -> list[int] | None:
    """Annotated frames of ``labels`` without ``validation_frame`` (None: let the core decide)."""
    if validation_frame is None:
        return None
    frames = annotated_frames(labels)
    if validation_frame not in frames:
        raise InputError(
            f"validation frame {validation_frame} has no annotation: paint it completely, "
            "or choose an annotated frame (or none) for validation"
        )
    frames.remove(validation_frame)
    if not frames:
        raise InputError(
            f"frame {validation_frame} is the only annotated frame, so nothing is left to train on: "
            "annotate another frame or set validation to none"
        )
    return frames


def validation_scores(image: np.ndarray, labels: np.ndarray, frame: int, model_path: str,
                      device: str, background: int | None,
                      stop: Callable[[], bool] | None = None) -> dict | None:
    """Scores (``seg``, ``ap50``, ``dice``...) of the model on ``frame``; None if stopped.

    A semantic model (target ``classes``) gets :func:`~napari_cellseq.core.metrics.evaluate_classes`
    scores (``mean_dice``, ``dice_per_class``...) instead.
    """
    semantic = load_model(model_path).data_config.target == "classes"
    predicted = None
    for event in segment_events(image, model_path, device=device, frames=[frame], stop=stop):
        if isinstance(event, FrameLabels):
            predicted = event.labels
    if predicted is None:
        return None
    truth = (labels if labels.ndim == 2 else labels[frame]).astype(np.int64)
    if semantic:
        if background is not None:
            truth[truth == background] = 1  # the explicit background is class 0 (value 1)
        return evaluate_classes(truth, predicted.astype(np.int64))
    if background is not None:
        truth[truth == background] = 0
    return evaluate(truth, predicted.astype(np.int64))


def train_job(
    *,
    image: np.ndarray,
    labels: np.ndarray,
    out_path: str | os.PathLike,
    model_config: ModelConfig | None,
    data_config: DataConfig,
    train_config: TrainConfig,
    init: str | None = None,
    partial_frames: tuple[int, ...] = (),
    background_label: int | None = None,
    validation_frame: int | None = None,
    stop: Callable[[], bool],
    frame: Callable[[], int | None] = lambda: None,
) -> Iterator[Event]:
    """:func:`~napari_cellseq.core.training.train` plus validation and live preview at every checkpoint.

    ``validation_frame`` (fully annotated) is left out of training; after each
    ``CheckpointSaved`` the saved model segments it and a ``Validation`` event with
    :func:`~napari_cellseq.core.metrics.evaluate` scores of that frame follows. Then, if
    ``frame()`` names a frame (the one the viewer shows, preview on), the saved model segments
    that frame too and a :class:`Preview` event carries its labels.
    """
    if validation_frame is not None and validation_frame in partial_frames:
        raise InputError(
            f"validation frame {validation_frame} is marked partly annotated: validation needs a "
            "completely annotated frame; unmark it or choose another frame"
        )
    frames = training_frames(labels, validation_frame)
    events = train(
        image, labels, out_path, model_config=model_config, data_config=data_config,
        train_config=train_config, frames=frames, init=init, stop=stop,
        partial_frames=tuple(partial_frames), background_label=background_label,
    )
    for event in events:
        yield event
        if validation_frame is not None and isinstance(event, CheckpointSaved):
            scores = validation_scores(image, labels, validation_frame, event.path,
                                       train_config.device, background_label)
            if scores is not None:
                yield Validation(iteration=event.iteration, scores=scores)
        if isinstance(event, CheckpointSaved) and (shown := frame()) is not None:
            n = 1 if np.ndim(image) == 2 else int(np.shape(image)[0])
            if 0 <= shown < n:
                labels_ = preview_labels(image, event.path, shown, train_config.device)
                if labels_ is not None:
                    yield Preview(iteration=event.iteration, frame=shown, labels=labels_)


def segment_job(
    *,
    image: np.ndarray,
    model_path: str,
    device: str = "auto",
    frames: list[int] | None = None,
    output: str | None = None,
    stop: Callable[[], bool],
    frame: Callable[[], int | None] | None = None,
) -> Iterator[Event]:
    """:func:`~napari_cellseq.core.pipeline.segment_events` on a snapshot (``output``: instances,
    classes, or None for the model's kind)."""
    yield from segment_events(image, model_path, device=device, frames=frames, stop=stop, output=output)
