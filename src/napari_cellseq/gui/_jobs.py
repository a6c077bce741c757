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
from ..core.events import CheckpointSaved, Event
from ..core.pipeline import FrameLabels, segment_events
from ..core.training import train

__all__ = ["train_job", "segment_job", "Preview", "preview_labels"]


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
    """:func:`~napari_cellseq.core.training.train` plus live preview at every checkpoint.

    ``validation_frame`` (fully annotated) is left out of training and scored by the core after
    every checkpoint (``ValidationScores`` events, with the network in memory); the threshold is
    calibrated on the painted training frames as without a validation frame. Then, if
    ``frame()`` names a frame (the one the viewer shows, preview on), the saved model segments
    that frame and a :class:`Preview` event carries its labels.
    """
    events = train(
        image, labels, out_path, model_config=model_config, data_config=data_config,
        train_config=train_config, init=init, stop=stop, partial_frames=tuple(partial_frames),
        background_label=background_label,
        validation_frames=None if validation_frame is None else [validation_frame],
        roc_threshold=False, score_checkpoints=True,
    )
    for event in events:
        yield event
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
