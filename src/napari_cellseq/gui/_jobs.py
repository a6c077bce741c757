"""Job functions the widgets hand to :class:`~napari_cellseq.gui._workers.Job`.

They run in the worker (thread or child process) on array snapshots, never on layers, and are
module-level so that the process mode can pickle them by name. Each is a generator of core
events and accepts ``stop``, a zero-argument callable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from ..core.config import DataConfig, ModelConfig, TrainConfig
from ..core.events import Event
from ..core.pipeline import segment_events
from ..core.training import train

__all__ = ["train_job", "segment_job"]


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
) -> Iterator[Event]:
    """:func:`~napari_cellseq.core.training.train` with ``validation_frame`` (fully annotated)
    left out of training and scored after every checkpoint (``ValidationScores`` events); the
    threshold is calibrated on the painted training frames as without a validation frame."""
    yield from train(
        image, labels, out_path, model_config=model_config, data_config=data_config,
        train_config=train_config, init=init, stop=stop, partial_frames=tuple(partial_frames),
        background_label=background_label,
        validation_frames=None if validation_frame is None else [validation_frame],
        roc_threshold=False, score_checkpoints=True,
    )


def segment_job(
    *,
    image: np.ndarray,
    model_path: str,
    device: str = "auto",
    frames: list[int] | None = None,
    output: str | None = None,
    stop: Callable[[], bool],
) -> Iterator[Event]:
    """:func:`~napari_cellseq.core.pipeline.segment_events` on a snapshot (``output``: instances,
    classes, or None for the model's kind)."""
    yield from segment_events(image, model_path, device=device, frames=frames, stop=stop, output=output)
