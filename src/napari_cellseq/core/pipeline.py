"""The calls the napari widgets, the CLI and notebooks share: segment a movie with a model."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .data.dataset import as_movie
from .data.normalize import normalize, percentile_range
from .device import resolve_device
from .events import Done, Event, FrameDone, Started
from .inference import Predictor
from .io import check_image
from .postprocess import labels_from_probabilities

logger = logging.getLogger(__name__)

__all__ = ["FrameLabels", "segment_events", "segment"]


class FrameLabels(FrameDone):
    """A :class:`FrameDone` that carries the frame's instance labels ``(Y, X)``.

    (Not a frozen dataclass field so that large arrays stay out of ``repr``.)
    """

    def __init__(self, index: int, total: int, labels: np.ndarray):
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "labels", labels)


def _checkpoint(model: Checkpoint | str | os.PathLike) -> Checkpoint:
    return model if isinstance(model, Checkpoint) else load_checkpoint(model)


def segment_events(
    image: np.ndarray,
    model: Checkpoint | str | os.PathLike,
    device: str = "auto",
    frames: list[int] | None = None,
    stop: Callable[[], bool] | None = None,
    tile: int = 1536,
    min_size: int | None = None,
) -> Iterator[Event]:
    """Segment ``image`` ``(Y, X)`` or ``(T, Y, X)`` frame by frame, yielding events.

    Yields ``Started``, one :class:`FrameLabels` per requested frame (its ``labels`` are
    ``(Y, X)`` instance ids numbered 1..n within the frame, uint16 or uint32), and ``Done``
    (reason ``finished`` or ``stopped``). Normalisation uses the percentiles saved in the model
    file, computed on this movie.
    """
    ckpt = _checkpoint(model)
    image = check_image(np.asarray(image))
    movie = as_movie(image)
    n = movie.shape[0]
    frames = list(range(n)) if frames is None else sorted(set(frames))
    dev = resolve_device(device)
    net = ckpt.build(dev)
    value_range = percentile_range(movie, ckpt.data_config.percentiles)
    norm = normalize(movie, value_range)
    predictor = Predictor(net, dev, tile=tile)
    min_size = ckpt.postprocess_config.min_size if min_size is None else min_size
    yield Started(total=len(frames), max_time=None, device=str(dev))
    t0 = time.perf_counter()
    done = 0
    for t, probs in predictor.predict(norm, frames, stop):
        labels = labels_from_probabilities(probs, ckpt.data_config.target, min_size)
        done += 1
        yield FrameLabels(t, len(frames), labels)
    reason = "finished" if done == len(frames) else "stopped"
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    yield Done(reason=reason, iteration=done, elapsed=time.perf_counter() - t0)


def segment(
    image: np.ndarray,
    model: Checkpoint | str | os.PathLike,
    device: str = "auto",
    on_event: Callable[[Event], None] | None = None,
    **kwargs,
) -> np.ndarray:
    """Instance labels of every frame of ``image``, same shape (uint16, or uint32 when needed)."""
    image = np.asarray(image)
    frames = {}
    for event in segment_events(image, model, device, **kwargs):
        if on_event is not None:
            on_event(event)
        if isinstance(event, FrameLabels):
            frames[event.index] = event.labels
    dtype = np.uint32 if any(f.dtype == np.uint32 for f in frames.values()) else np.uint16
    out = np.zeros(as_movie(image).shape, dtype=dtype)
    for t, f in frames.items():
        out[t] = f
    return out[0] if image.ndim == 2 else out
