"""The calls the napari widgets, the CLI and notebooks share: segment a movie with a model.

:func:`segment_events` / :func:`segment` take any array-like with ``shape`` and ``__getitem__``
(numpy arrays, numpy memory maps, dask arrays as napari gives for large files, zarr arrays):
frames are read, checked and normalised one at a time, and the normalisation percentiles come
from an even subsample of at most ~4 million pixels, so memory stays bounded by a few frames
however long the movie. :func:`prepare_training_inputs` is the input check of training.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .data.dataset import annotated_frames
from .data.normalize import SAMPLE_PIXELS as _SAMPLE_PIXELS  # the one cap; tests patch it here
from .data.normalize import normalize, percentile_range, sample_stride
from .device import resolve_device
from .errors import CellseqError, InputError, ModelFileError
from .events import Done, Event, FrameDone, Started
from .inference import segmentation_predictor
from .io import check_finite, check_image, check_image_layout, check_labels, check_not_constant
from .io.checked import ImageFrames, LabelFrames
from .io.views import is_lazy
from .postprocess import OUTPUTS, class_map_from_probabilities, labels_from_probabilities

logger = logging.getLogger(__name__)

__all__ = ["FrameLabels", "segment_events", "segment", "load_model", "prepare_training_inputs", "movie_value_range"]

class FrameLabels(FrameDone):
    """A :class:`FrameDone` that carries the frame's instance labels ``(Y, X)``.

    (Not a frozen dataclass field so that large arrays stay out of ``repr``.)
    """

    def __init__(self, index: int, total: int, labels: np.ndarray):
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "labels", labels)


def load_model(model: Checkpoint | str | os.PathLike) -> Checkpoint:
    """A checkpoint, or the model file at ``model`` read without executing code from it (a
    napari-cellseq model file, or a BioImage Model Zoo ``.zip`` napari-cellseq exported).

    A built-in's name (``"builtin-unet"``, ``"builtin-ulstm"``: :mod:`.builtin`) reads that
    built-in; ``"builtin"`` needs the input to choose one (:func:`segment_events` does).

    Raises :class:`ModelFileError` for a missing, damaged, foreign or newer file, including a
    file for a network this installation does not know (e.g. written by a newer version).
    """
    if isinstance(model, Checkpoint):
        return model
    from .builtin import BUILTIN, builtin_names, get_builtin, load_builtin

    if get_builtin(os.fspath(model)) is not None:
        return load_builtin(os.fspath(model))
    if os.fspath(model) == BUILTIN:
        raise InputError(f"'builtin' chooses the built-in that fits the input: name one here instead "
                         f"({', '.join(builtin_names())})")
    from .bioimageio.package import is_zoo_package, load_package

    if is_zoo_package(model):  # a BioImage Model Zoo .zip napari-cellseq exported
        return load_package(model)
    try:
        return load_checkpoint(model)
    except ModelFileError:
        raise
    except CellseqError as err:  # e.g. unknown network name or settings in the file
        raise ModelFileError(
            f"cannot use model file {model}: {err}; the file was made for a network or settings this "
            "napari-cellseq does not have: upgrade napari-cellseq or train a new model"
        ) from None


def prepare_training_inputs(
    image: Any, labels: Any, frames: list[int] | None = None, target: str | None = None
) -> tuple[Any, Any]:
    """Check an image and its labels for training; return them ready for training.

    Parameters
    ----------
    image : ``(Y, X)`` or ``(T, Y, X)`` grey values (any real dtype): a numpy array, or any
        array-like with ``shape``, ``dtype`` and ``__getitem__`` read frame by frame (numpy
        memory map, dask, zarr, :class:`~napari_cellseq.core.io.TiffFrames`).
    labels : same shape, integer instance ids, 0 = unpainted (bool and whole-number floats are
        accepted and cast); numpy or lazy as ``image``.
    frames : the frames to learn from, or None for every frame with labels.
    target : the training target; with ``"classes"`` label values are classes, never renumbered.

    Returns
    -------
    (image, labels) for :func:`napari_cellseq.core.training.plan_run`. numpy arrays come back
    as numpy arrays, checked whole. A lazy movie is never read whole: its layout is checked now
    and its frames when they are read (:class:`~napari_cellseq.core.io.ImageFrames`: NaN; its
    constant check is :func:`movie_value_range`'s); lazy labels become
    :class:`~napari_cellseq.core.io.LabelFrames` (shape and dtype now, values frame by frame;
    the painted frames are found once, one frame at a time).

    Raises
    ------
    InputError
        Everything :func:`~napari_cellseq.core.io.check_image` and
        :func:`~napari_cellseq.core.io.check_labels` refuse (RGB / 4-D, NaN, constant, shape
        mismatch, fractional or negative labels), frames outside the movie, and labels without
        any annotated frame.
    """
    image = _open_image(image)
    if is_lazy(image) and len(image.shape) == 2:  # one frame: read it and check it whole
        image = check_image(np.asarray(image))
    shape = tuple(int(s) for s in image.shape)
    classes = target == "classes"
    if is_lazy(image):
        image = ImageFrames(image)
    if is_lazy(labels) and len(shape) == 3:
        labels = LabelFrames(labels, shape, classes=classes)
    else:
        labels = check_labels(np.asarray(labels), shape, classes=classes)
    n = 1 if len(shape) == 2 else shape[0]
    if frames is None:
        if not annotated_frames(labels):
            raise InputError(
                "no annotated frame: the labels are all zero; paint a few cells "
                "(and their surroundings) in at least one frame"
            )
    else:
        bad = [t for t in frames if not 0 <= int(t) < n]
        if bad or not len(frames):
            raise InputError(
                f"frames {list(frames)} do not all exist: the movie has frames 0..{n - 1}; name at least one of them"
            )
    return image, labels


def movie_value_range(image: Any, percentiles: tuple[float, float], name: str = "image") -> tuple[float, float]:
    """Grey values at ``percentiles`` of a movie ``(Y, X)`` / ``(T, Y, X)`` (numpy or lazy), from
    the even sample of at most ``_SAMPLE_PIXELS`` pixels segmentation takes (frames read one at a
    time, :meth:`_Frames.fit_range`). Raises InputError for a movie constant in every frame looked
    at, and for NaN in a frame read."""
    frames = _Frames(image, name)
    frames.fit_range(percentiles)
    return frames.value_range


class _Frames:
    """A ``(T, Y, X)`` view of an image-like that reads, checks and normalises one frame at a time."""

    def __init__(self, source: Any, name: str = "image"):
        self.source, self.name = source, name
        shape = tuple(int(s) for s in source.shape)
        self.is_2d = len(shape) == 2
        self.shape = (1,) + shape if self.is_2d else shape
        self.value_range = (0.0, 1.0)

    def raw(self, t: int) -> np.ndarray:
        frame = np.asarray(self.source if self.is_2d else self.source[t])
        check_finite(frame, f"frame {t} of {self.name}")
        return frame

    def fit_range(self, percentiles: tuple[float, float]) -> None:
        """Percentiles over every frame if they fit in ``_SAMPLE_PIXELS``, else over an even
        subsample: at least 8 evenly spaced frames (every one if fewer), each strided so that
        the kept pixels stay under ``_SAMPLE_PIXELS``; frames are read one at a time."""
        n, h, w = self.shape
        hw = h * w
        if n * hw <= _SAMPLE_PIXELS:
            picks, stride = np.arange(n), 1
        else:
            k = min(n, max(8, _SAMPLE_PIXELS // hw))
            picks = np.unique(np.linspace(0, n - 1, k).round().astype(int))
            stride = sample_stride(len(picks) * hw, _SAMPLE_PIXELS)
        lo = hi = None
        per_frame = -(-hw // stride)
        sample = None  # filled frame by frame: the sampled pixels are held once, not twice
        for i, t in enumerate(picks):
            frame = self.raw(int(t))
            f_lo, f_hi = frame.min(), frame.max()
            lo = f_lo if lo is None else min(lo, f_lo)
            hi = f_hi if hi is None else max(hi, f_hi)
            if sample is None:
                sample = np.empty(len(picks) * per_frame, dtype=frame.dtype)
            sample[i * per_frame:(i + 1) * per_frame] = frame.reshape(-1)[::stride]
        check_not_constant(lo, hi, self.name, " in every frame looked at" if len(picks) < n else "")
        self.value_range = percentile_range(sample, percentiles, overwrite=True)  # sorted in place

    def __getitem__(self, t: int) -> np.ndarray:
        return normalize(self.raw(int(t)), self.value_range)


def _open_image(image: Any) -> Any:
    """``image`` checked without reading all of it when it is lazy (memmap, dask, zarr, ...)."""
    if isinstance(image, np.ndarray) and not isinstance(image, np.memmap):
        return check_image(image)
    if not (hasattr(image, "shape") and hasattr(image, "__getitem__")):
        return check_image(np.asarray(image))
    shape = tuple(int(s) for s in image.shape)
    dtype = getattr(image, "dtype", None)
    if dtype is None and len(shape) >= 2:
        dtype = np.asarray(image[(0,) * (len(shape) - 2)]).dtype
    check_image_layout(shape, dtype if dtype is not None else np.float64)
    return image


def segment_events(
    image: np.ndarray,
    model: Checkpoint | str | os.PathLike,
    device: str = "auto",
    frames: list[int] | None = None,
    stop: Callable[[], bool] | None = None,
    tile: int | None = None,
    min_size: int | None = None,
    output: str | None = None,
) -> Iterator[Event]:
    """Segment ``image`` ``(Y, X)`` or ``(T, Y, X)`` frame by frame, yielding events.

    Yields ``Started``, one :class:`FrameLabels` per requested frame, and ``Done`` (reason
    ``finished`` or ``stopped``). With ``output="instances"`` a frame's ``labels`` are ``(Y, X)``
    instance ids numbered 1..n within the frame (uint16 or uint32); with ``"classes"`` they are
    the class map ``(Y, X) uint16`` written as painted values, ``class + 1`` (1 = background),
    so it can be corrected and trained on again. ``None``: ``"classes"`` for a semantic model
    (target ``"classes"``), else ``"instances"``. The model file's post-processing threshold,
    if any, decides background / foreground. Normalisation uses the percentiles saved in the
    model file, computed on this movie (on an even subsample of frames for long movies).

    ``image`` may be any array-like with ``shape`` and ``__getitem__`` (numpy, memmap, dask,
    zarr); it is read one frame at a time. Bad input raises
    :class:`~napari_cellseq.core.errors.InputError` before the first event; a device out of
    memory makes the tiles smaller (see :class:`~napari_cellseq.core.inference.Predictor`).
    ``tile`` is the largest tile side; None means ``default_tile(device)``. ``model`` may also
    be ``"builtin"`` (the built-in of the network recommended for the input: ``core.models.recommend``) or a
    built-in's name (:mod:`.builtin`).
    """
    from .builtin import segment_model

    shape = tuple(getattr(image, "shape", None) or np.shape(image))
    ckpt = load_model(segment_model(model, shape[0] if len(shape) == 3 else 1))  # (the model first)
    target = ckpt.data_config.target
    output = output or ("classes" if target == "classes" else "instances")
    if output not in OUTPUTS:
        raise InputError(f"unknown output {output!r}: choose one of {', '.join(OUTPUTS)}")
    threshold = ckpt.postprocess_config.threshold
    movie = _Frames(_open_image(image))
    n = movie.shape[0]
    frames = list(range(n)) if frames is None else sorted(set(int(t) for t in frames))
    bad = [t for t in frames if not 0 <= t < n]
    if bad:
        raise InputError(f"frames {bad} do not exist: the movie has frames 0..{n - 1}")
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 32):
        raise InputError(f"tile size must be a whole number of pixels >= 32, got {tile!r}")
    dev = resolve_device(device)
    movie.fit_range(ckpt.data_config.percentiles)
    net = ckpt.build(dev)
    predictor = segmentation_predictor(net, dev, tile)
    min_size = ckpt.postprocess_config.min_size if min_size is None else min_size
    yield Started(total=len(frames), max_time=None, device=str(dev))
    t0 = time.perf_counter()
    done = 0
    for t, probs in predictor.predict(movie, frames, stop):
        if output == "classes":
            labels = class_map_from_probabilities(probs, threshold).astype(np.uint16) + np.uint16(1)
        else:
            labels = labels_from_probabilities(probs, target, min_size, threshold=threshold)
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
    """Instance labels of every frame of ``image``, same shape (uint16, or uint32 when needed).

    ``image`` as for :func:`segment_events` (numpy, memmap, dask, ...); frames not in
    ``frames=`` stay 0. Only the result is held in memory, not the (normalised) movie.
    """
    shape = tuple(int(s) for s in np.shape(image))
    out = None
    for event in segment_events(image, model, device, **kwargs):
        if on_event is not None:
            on_event(event)
        if isinstance(event, FrameLabels):
            if out is None:
                out = np.zeros(shape if len(shape) == 3 else (1,) + shape, dtype=np.uint16)
            if event.labels.dtype.itemsize > out.dtype.itemsize:
                out = out.astype(event.labels.dtype)
            out[event.index] = event.labels
    if out is None:  # stopped before the first frame
        out = np.zeros(shape if len(shape) == 3 else (1,) + shape, dtype=np.uint16)
    return out[0] if len(shape) == 2 else out
