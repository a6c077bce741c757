"""Training as a generator of typed events, in four small steps.

* :mod:`.plan`: :func:`plan_run` resolves and checks a run into a frozen :class:`TrainPlan`
  (``--init`` merge, loss, classes, batch size, training / validation frames, device);
* :mod:`.loop`: :func:`~.loop.run` optimises (stepper, learning-rate schedule, budget,
  checkpoints, stop);
* :mod:`.threshold`: the post-processing threshold chosen after training (ROC on validation
  frames or calibration on painted frames);
* :mod:`.record`: :class:`TrainingRecord`, what the run did, stored in the model file;
  :mod:`.validation`: held-out frames and their scores.

:func:`train` = plan + loop, yielding :mod:`~napari_cellseq.core.events`; the CLI drains it into
a progress bar, the napari widget runs it in a worker. :func:`fit` drains it for headless use::

    plan = plan_run(image, labels, train_config=TrainConfig(iterations=500, max_time=None),
                    validation_frames=[4], score_checkpoints=True)   # bad input fails here
    for event in train(plan=plan, out_path="model.pt", stop=stop_requested):
        ...  # Started, Step..., CheckpointSaved, ValidationScores, ThresholdChosen, Done

The loss is ``TrainConfig.loss`` (default: the loss of the network's paper, see
:func:`napari_cellseq.core.losses.default_loss`); its name is stored in the model file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from ..checkpoint import Checkpoint, load_checkpoint
from ..config import DataConfig, ModelConfig, PostprocessConfig, TrainConfig
from ..errors import CellseqError
from ..events import Done, Event
from .loop import CHUNKS_PER_SEQUENCE, run
from ..config import CROP_BATCH, SEQUENCE_BATCH
from .plan import TrainPlan, plan_run
from .record import ThresholdChoice, TrainingRecord, ValidationRecord

__all__ = [
    "train",
    "fit",
    "plan_run",
    "TrainPlan",
    "TrainingRecord",
    "ThresholdChoice",
    "ValidationRecord",
    "CHUNKS_PER_SEQUENCE",
    "CROP_BATCH",
    "SEQUENCE_BATCH",
]


def train(
    image: Any = None,
    labels: Any = None,
    out_path: str | os.PathLike | None = None,
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
    *,
    plan: TrainPlan | None = None,
    roc_threshold: bool = True,
    score_checkpoints: bool = False,
    movie_lengths: tuple[int, ...] = (),
    origin: dict[str, Any] | None = None,
) -> Iterator[Event]:
    """Train a network on the annotated frames of ``image``, yielding events.

    Either give the inputs (they are planned by :func:`plan_run`, see there for ``image``,
    ``labels``, the configs, ``frames``, ``init``, ``partial_frames``, ``background_label``,
    ``validation_frames``, ``roc_threshold``, ``score_checkpoints``, ``movie_lengths`` and
    ``origin``), or a ``plan`` that
    :func:`plan_run` made (then give only ``out_path`` and ``stop``).

    out_path : model file written (atomically) at every checkpoint and at the end.
    stop : called before every step; training ends, keeping its weights, once it returns True.

    Yields ``Started``, then ``Step`` per optimiser step, ``CheckpointSaved`` after each file
    write (followed by ``ValidationScores`` with ``score_checkpoints``), ``ThresholdChosen``
    when the post-processing threshold was chosen (ROC on the validation frames, skipped when
    training is stopped; or calibration on the painted frames), and finally ``Done`` (reason
    ``iterations``, ``time`` or ``stopped``). Input errors are raised before ``Started``.
    """
    if out_path is None:
        raise CellseqError("train needs out_path, the model file to write")
    if plan is None:
        plan = plan_run(image, labels, model_config, data_config, train_config, postprocess_config,
                        frames, init, partial_frames, background_label, validation_frames,
                        roc_threshold=roc_threshold, score_checkpoints=score_checkpoints,
                        movie_lengths=movie_lengths, origin=origin)
    elif image is not None or labels is not None:
        raise CellseqError("train got both a plan and inputs: give one or the other")
    yield from run(plan, out_path, stop)


def fit(*args, on_event: Callable[[Event], None] | None = None, **kwargs) -> Checkpoint:
    """Run :func:`train` to the end and return the trained checkpoint (headless use)."""
    done = None
    for event in train(*args, **kwargs):
        if on_event is not None:
            on_event(event)
        if isinstance(event, Done):
            done = event
    return load_checkpoint(done.path)
