"""Typed events yielded by long-running work (training, segmentation).

The core's long work is a generator of these frozen dataclasses: the CLI drains it into a
progress bar, the napari widgets run it in a worker and turn each event into progress, plot
points and notifications. Stopping is cooperative: the producer checks its stop flag between
events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .training.record import ThresholdChoice

__all__ = [
    "Event",
    "Started",
    "Step",
    "Validation",
    "ValidationScores",
    "ThresholdChosen",
    "CheckpointSaved",
    "FrameDone",
    "Done",
]


@dataclass(frozen=True)
class Event:
    """Base class of all events."""


@dataclass(frozen=True)
class Started(Event):
    """Work has begun.

    total : planned iterations or frames (``None`` when only a time budget bounds the work).
    max_time : time budget in seconds (``None`` when unbounded).
    device : the torch device the work runs on, e.g. ``"cpu"``.
    precision : the mixed-precision dtype of the work, e.g. ``"bfloat16"`` (``None``: float32).
    """

    total: int | None
    max_time: float | None
    device: str
    precision: str | None = None


@dataclass(frozen=True)
class Step(Event):
    """One optimiser step finished.

    iteration : 1-based step count; loss : the step's training loss; elapsed : seconds since start;
    fraction : progress in [0, 1] with respect to the tighter of the two budgets.
    """

    iteration: int
    loss: float
    elapsed: float
    fraction: float


@dataclass(frozen=True)
class Validation(Event):
    """Scores on held-out frames at ``iteration`` (keys: ``seg``, ``ap50``, ``dice``...)."""

    iteration: int
    scores: dict


@dataclass(frozen=True)
class ValidationScores(Validation):
    """Training scored its held-out validation ``frames`` after ``iteration`` steps.

    scores : instance targets: :func:`~napari_cellseq.core.metrics.evaluate` (``seg``, ``ap50``,
    ``dice``, ...); target ``classes``: :func:`~napari_cellseq.core.metrics.evaluate_classes`
    (``mean_dice``, ``dice_per_class``, ...). Yielded after each checkpoint when training was
    planned with ``score_checkpoints``.
    """

    frames: tuple[int, ...] = ()


@dataclass(frozen=True)
class ThresholdChosen(Event):
    """After ``iteration`` steps training chose the post-processing foreground threshold.

    choice : a :class:`~napari_cellseq.core.training.record.ThresholdChoice` (``method``
    ``"roc"`` with ``roc_auc`` on validation frames, or ``"calibration"`` with SEG/AP50 on painted
    frames; ``threshold`` ``None`` means the argmax). It is stored in the model file.
    """

    iteration: int
    choice: "ThresholdChoice"


@dataclass(frozen=True)
class CheckpointSaved(Event):
    """The weights after ``iteration`` steps are on disk at ``path`` (written atomically)."""

    iteration: int
    path: str


@dataclass(frozen=True)
class FrameDone(Event):
    """Frame ``index`` of ``total`` is segmented."""

    index: int
    total: int


@dataclass(frozen=True)
class Done(Event):
    """Work has ended.

    reason : ``"iterations"``, ``"time"``, ``"stopped"`` (training) or ``"finished"``/``"stopped"``
    (segmentation); iteration : steps done; path : the final model file, if any.
    """

    reason: str
    iteration: int = 0
    path: str | None = None
    elapsed: float = 0.0
