"""Annotated frames prepared once, then sampled as augmented crops or crop sequences.

A movie ``(T, Y, X)`` (a single image is a movie of one frame) comes with labels of the same
shape. Frames with any label are the annotated ones, unless an explicit frame list is given;
unannotated frames are never used as background: they carry no loss (temporal models still see
them as input). In a *partly* annotated frame, unpainted pixels carry no loss either and the
user paints background with ``background_label``.

With the semantic target (``DataConfig.target == "classes"``) label values are classes
(value ``v > 0`` is class ``v - 1``) and unpainted pixels carry no loss in *every* frame;
``background_label`` there means class 0 (the background class, painted value 1).

Crop centres are drawn uniformly or, with ``DataConfig.sampling == "balanced"``, class by class
(see :meth:`TrainingSet.class_frequencies`).

The movie and labels may be lazy (memory maps, dask, zarr, the checked views of
:mod:`napari_cellseq.core.io.checked`): only the frames training needs are read and kept, the
annotated frames and, for temporal models, the frames their sequences can reach
(:func:`context_frames`), so a movie larger than memory trains in the memory of those frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from skimage.segmentation import relabel_sequential

from ..config import INSTANCE_CLASSES, TARGETS, DataConfig
from ..errors import CellseqError, InputError
from ..io.views import FrameStack, is_lazy
from .augment import crop_grid, random_transform, sample
from .normalize import OUTSIDE, normalize, percentile_range
from .targets import MAX_CLASSES, class_targets, weight_map

logger = logging.getLogger(__name__)

__all__ = ["as_movie", "annotated_frames", "context_frames", "sequence_windows", "movie_spans", "target_classes",
           "TrainingSet", "NormalizedMovie", "Batch"]

# Balanced sampling keeps at most this many candidate centre pixels per class (a random subset).
_POOL_MAX = 1 << 20


def as_movie(array: Any) -> Any:
    """``(Y, X)`` -> ``(1, Y, X)``; ``(T, Y, X)`` unchanged (a lazy movie stays lazy; a lazy
    single image is read)."""
    if len(array.shape) == 2:
        return np.asarray(array)[None]
    return array


def annotated_frames(labels: Any) -> list[int]:
    """Indices of frames of ``labels (T, Y, X)`` that carry any label.

    A lazy stack is read one frame at a time; one that knows its painted frames (a ``painted``
    attribute: :class:`~napari_cellseq.core.io.PaintedFrames`,
    :class:`~napari_cellseq.core.io.LabelFrames`, which finds them once) is not read at all.
    """
    known = getattr(labels, "painted", None)
    if known is not None:
        return [int(t) for t in known]
    if not is_lazy(labels) or len(labels.shape) == 2:
        movie = as_movie(np.asarray(labels))
        flat = movie.reshape(movie.shape[0], -1)
        return [int(t) for t in np.flatnonzero(flat.any(axis=1))]
    return [t for t in range(int(labels.shape[0])) if np.asarray(labels[t]).any()]


def _window_length(length: int, n_frames: int) -> int:
    return min(length, n_frames)


def _step(k: int, length: int, n_frames: int) -> int:
    """The temporal down-sampling drawn as ``k`` (1..4), reduced until the window fits the movie."""
    while k > 1 and (length - 1) * k >= n_frames:
        k -= 1
    return k


def _window_starts(anchor: int, length: int, k: int, n_frames: int) -> list[int]:
    """Starts of windows ``start, start + k, ...`` of ``length`` frames that hit ``anchor`` and
    stay in the movie (none: the sequence starts at frame 0)."""
    span = (length - 1) * k
    return [s for s in range(max(0, anchor - span), min(anchor, n_frames - 1 - span) + 1)
            if (anchor - s) % k == 0]


def sequence_windows(anchor: int, length: int, n_frames: int) -> list[list[int]]:
    """Every window of frames (before a possible reversal) that
    :meth:`TrainingSet.sequence_batch` can draw around ``anchor`` for sequences of ``length``."""
    length = _window_length(length, n_frames)
    out = []
    for k in sorted({_step(k, length, n_frames) for k in range(1, 5)}):
        for start in _window_starts(anchor, length, k, n_frames) or [0]:
            out.append(list(range(start, start + (length - 1) * k + 1, k)))
    return out


def context_frames(frames: list[int], n_frames: int, length: int,
                   spans: list[tuple[int, int]] | None = None) -> list[int]:
    """The frames of an ``n_frames`` movie that sequences of ``length`` frames around the
    annotated ``frames`` can contain (:func:`sequence_windows`), sorted, ``frames`` included;
    ``length`` 0: only ``frames``. ``spans``: the movies of a pool (:func:`movie_spans`), which
    sequences do not cross."""
    spans = spans or [(0, int(n_frames))]
    out = set(int(t) for t in frames)
    if length > 0:
        for anchor in frames:
            first, end = next((a, b) for a, b in spans if a <= anchor < b)
            for window in sequence_windows(int(anchor) - first, length, end - first):
                out.update(first + t for t in window)
    return sorted(out)


def movie_spans(movie_lengths: tuple[int, ...] | list[int], n_frames: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` frame ranges of movies of ``movie_lengths`` put end to end along T
    (``()``: one movie of ``n_frames``); the lengths must be >= 1 and sum to ``n_frames``."""
    lengths = [int(n) for n in movie_lengths] or [int(n_frames)]
    if min(lengths) < 1 or sum(lengths) != n_frames:
        raise InputError(
            f"movie lengths {list(movie_lengths)} do not split the {n_frames} frames: give lengths "
            f">= 1 that sum to the number of frames"
        )
    ends = np.cumsum(lengths).tolist()
    return [(int(e - n), int(e)) for e, n in zip(ends, lengths)]


def target_classes(target: str, labels: np.ndarray, frames: list[int],
                   background_label: int | None = None) -> int:
    """Number of classes the network learns for ``target`` from ``labels (T, Y, X)``.

    3 for ``"3class"``, 2 for ``"2class"``; for ``"classes"`` the largest painted class value
    over ``frames`` (``background_label`` is class 0), which must be 2..MAX_CLASSES. Reads only
    ``labels[t]`` for ``t`` in ``frames`` (so a lazy label stack is read frame by frame).
    """
    if target != "classes":
        if target not in INSTANCE_CLASSES:
            raise InputError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
        return INSTANCE_CLASSES[target]
    top = 0
    for t in frames:
        values = np.unique(np.asarray(labels[t]))
        if background_label is not None:
            values = values[values != background_label]
        top = max(top, int(values.max(initial=0)))
    if top > MAX_CLASSES:
        raise InputError(
            f"the labels hold value {top}, but with target 'classes' each label value is a class "
            f"(at most {MAX_CLASSES}): paint class values 1, 2, 3, ... (1 = background), or use "
            "target 3class for instance labels"
        )
    if top < 2:
        raise InputError(
            "with target 'classes' paint at least two classes (label 1 = background, 2, 3, ... "
            "the other classes); only one class is painted"
        )
    return top


@dataclass
class Batch:
    """One training batch (float32 / int64 tensors on the CPU).

    Frame batches: ``x (B, 1, S, S)``, ``classes, weights, valid (B, S, S)``.
    Sequence batches: ``x (B, L, 1, S, S)``, ``classes, weights, valid (B, L, S, S)``; ``valid``
    is zero on frames without annotation so they feed the recurrence but carry no loss.
    """

    x: torch.Tensor
    classes: torch.Tensor
    weights: torch.Tensor
    valid: torch.Tensor


class TrainingSet:
    """Normalised frames (those training needs, see ``context``) plus targets and weights of the
    annotated frames of a movie.

    Parameters
    ----------
    image : ``(Y, X)`` or ``(T, Y, X)`` grey values: numpy, or lazy (read frame by frame).
    labels : same shape, integer instance ids (0 = unpainted); with ``config.target ==
        "classes"`` painted class values (``v`` = class ``v - 1``, 0 = unpainted).
    config : targets, weights, normalisation, crop size and augmentation switches.
    frames : frames to learn from; ``None`` means every frame with any label.
    partial_frames : frames whose unpainted pixels are ignored rather than background.
    background_label : label value that means "background" in partial frames.
    weighting, edge_weight : the loss's weight map (:func:`~.targets.weight_map`).
    movie_lengths : the movie is a pool of several movies put end to end along T, of these
        lengths (summing to T); each is normalised with its own percentiles and sequences of
        temporal models never cross from one into the next. Empty: one movie.
    context : the frames kept (normalised, float32): ``None`` every frame of the movie; ``0``
        the frames learnt from (frame batches); ``n > 0`` also the frames that sequences of
        ``n`` frames (:meth:`sequence_batch`) can reach (:func:`context_frames`). Only these
        are read from ``image``, which may be lazy (memory map, dask, zarr, ...).
    value_ranges : per movie of the pool, the grey values normalised to 0 and 1; ``None``: the
        ``config.percentiles`` of each whole movie (read whole: give them for a lazy movie, e.g.
        from :func:`~napari_cellseq.core.pipeline.movie_value_range`).
    excluded : frame -> ``(Y, X)`` bool, painted pixels that carry no loss (held out of
        training to choose the post-processing on, :mod:`napari_cellseq.core.training.holdout`).

    ``num_classes`` is the number of target classes: 3, 2, or for ``"classes"`` the largest
    painted value in the frames learnt from.
    """

    def __init__(
        self,
        image: np.ndarray,
        labels: np.ndarray,
        config: DataConfig,
        frames: list[int] | None = None,
        partial_frames: tuple[int, ...] = (),
        background_label: int | None = None,
        weighting: str = "separation",
        edge_weight: float = 10.0,
        movie_lengths: tuple[int, ...] = (),
        context: int | None = None,
        value_ranges: Sequence[tuple[float, float]] | None = None,
        excluded: Mapping[int, np.ndarray] | None = None,
    ):
        self.weighting, self.edge_weight = weighting, float(edge_weight)
        image = as_movie(image if is_lazy(image) else np.asarray(image))
        labels = as_movie(labels if is_lazy(labels) else np.asarray(labels))
        self.movies = movie_spans(movie_lengths, int(image.shape[0]))
        if tuple(image.shape) != tuple(labels.shape):
            raise InputError(
                f"labels have shape {tuple(labels.shape)} but the image {tuple(image.shape)}: "
                "paint on a Labels layer created from this image"
            )
        n = int(image.shape[0])
        if frames is None:
            frames = annotated_frames(labels)
            if not frames:
                raise InputError(
                    "no annotated frame: the labels are all zero; paint a few cells "
                    "(and their surroundings) in at least one frame"
                )
        else:
            bad = [t for t in frames if not 0 <= t < n]
            if bad:
                raise InputError(f"frames {bad} do not exist: the movie has frames 0..{n - 1}")
            if not frames:
                raise InputError("the frame list is empty: name at least one annotated frame")
        self.config = config
        self.frames = sorted(set(int(t) for t in frames))
        if value_ranges is None:
            value_ranges = [percentile_range(image[a:b], config.percentiles) for a, b in self.movies]
        self._ranges = [(float(lo), float(hi)) for lo, hi in value_ranges]
        if len(self._ranges) != len(self.movies):
            raise ValueError(f"{len(self._ranges)} value ranges for {len(self.movies)} movies")
        self.value_range = self._ranges[0] if len(self._ranges) == 1 else None  # None: one per movie
        self.frame_shape = tuple(int(s) for s in image.shape[1:])
        self.n_frames = n
        self._image = image
        kept = list(range(n)) if context is None else context_frames(self.frames, n, context, self.movies)
        # (K, 1, Y, X) for the K frames kept, shifted by -OUTSIDE so that zero padding while
        # sampling crops reads OUTSIDE; _slot[t] is frame t's place in it. Filled frame by frame:
        # memory is the K float32 frames, never a copy of the whole (raw) movie.
        shifted = np.empty((len(kept),) + self.frame_shape, dtype=np.float32)
        for i, t in enumerate(kept):
            shifted[i] = normalize(np.asarray(image[t]), self.frame_range(t))
            shifted[i] -= np.float32(OUTSIDE)
        self._shifted = torch.from_numpy(shifted)[:, None]
        self._slot = {t: i for i, t in enumerate(kept)}
        # Per annotated frame: (1, 1, Y, X) weights and (1, 2, Y, X) [classes, valid].
        self._weights: dict[int, torch.Tensor] = {}
        self._nearest: dict[int, torch.Tensor] = {}
        self.object_areas: list[int] = []  # pixel areas of the painted objects
        self.semantic = config.target == "classes"
        self.num_classes = target_classes(config.target, labels, self.frames, background_label)
        self._pools: list[np.ndarray] = []  # balanced sampling: per class, codes t * Y * X + yx
        excluded = excluded or {}
        for t in self.frames:
            self._prepare(t, np.asarray(labels[t]), t in set(partial_frames), background_label, excluded.get(t))
        if config.sampling == "balanced":
            self._build_pools()
        logger.info("training set: %d frames of %s, annotated %s, %d kept in memory", n, self.frame_shape,
                    self.frames, len(kept))

    def _class_weights(self) -> tuple[float, ...]:
        cw = tuple(self.config.class_weights)
        if len(cw) >= self.num_classes:
            return cw
        if len(set(cw)) == 1:  # all equal (the default): the same weight for every class
            return cw[:1] * self.num_classes
        raise InputError(
            f"class_weights {cw} has {len(cw)} entries but the labels have {self.num_classes} "
            "classes: give one weight per class"
        )

    def _prepare(self, t: int, labels: np.ndarray, partial: bool, background_label: int | None,
                 excluded: np.ndarray | None = None):
        valid = np.ones(labels.shape, dtype=np.float32)
        if excluded is not None:
            valid[excluded] = 0.0
        labels = labels.astype(np.int64, copy=True)
        if self.semantic:
            if background_label is not None:
                labels[labels == background_label] = 1  # the explicit background is class 0
            valid[labels == 0] = 0.0  # unpainted pixels carry no loss in every frame
            classes = class_targets(labels, "classes")
            # no instances to separate: w0 = 0 turns eq. 8's separation term off
            w = weight_map(classes, labels, self._class_weights(), 0.0, 1.0, self.weighting, self.edge_weight)
        else:
            if partial:
                valid[labels == 0] = 0.0
            if background_label is not None:
                labels[labels == background_label] = 0
            labels, _, _ = relabel_sequential(labels)
            areas = np.bincount(labels.ravel())[1:]
            self.object_areas.extend(int(a) for a in areas[areas > 0])
            classes = class_targets(labels, self.config.target, self.config.boundary_width)
            w = weight_map(classes, labels, self._class_weights(), self.config.w0,
                           self.config.sigma0, self.weighting, self.edge_weight)
        self._weights[t] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None, None]
        near = np.stack([classes.astype(np.float32), valid])
        self._nearest[t] = torch.from_numpy(near)[None]

    def _painted_classes(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Target class ``(Y*X,) int64`` and whether it carries loss ``(Y*X,) bool`` of frame ``t``."""
        classes = self._nearest[t][0, 0].numpy().astype(np.int64).ravel()
        valid = self._nearest[t][0, 1].numpy().ravel() > 0
        return classes, valid

    def _build_pools(self) -> None:
        """Per target class, the painted (valid) pixels of that class as codes ``t * Y * X + yx``."""
        hw = int(np.prod(self.frame_shape))
        rng = np.random.default_rng(0)
        codes: list[list[np.ndarray]] = [[] for _ in range(self.num_classes)]
        for t in self.frames:
            classes, valid = self._painted_classes(t)
            for k in range(self.num_classes):
                idx = np.flatnonzero(valid & (classes == k))
                if idx.size:
                    codes[k].append(idx + t * hw)
        for k in range(self.num_classes):
            if not codes[k]:
                continue
            pool = np.concatenate(codes[k])
            if pool.size > _POOL_MAX:
                pool = rng.choice(pool, _POOL_MAX, replace=False)
            self._pools.append(pool)
        logger.info("balanced sampling over %d classes present", len(self._pools))

    def class_frequencies(self) -> np.ndarray:
        """Fraction of the painted pixels of the frames learnt from in each class, ``(K,)``."""
        counts = np.zeros(self.num_classes, dtype=np.float64)
        for t in self.frames:
            classes, valid = self._painted_classes(t)
            counts += np.bincount(classes[valid], minlength=self.num_classes)[: self.num_classes]
        return counts / max(counts.sum(), 1.0)

    def _balanced_centre(self, rng: np.random.Generator) -> tuple[int, tuple[float, float]]:
        """A frame and crop centre: a class drawn uniformly (among those painted), then one of
        its pixels."""
        pool = self._pools[int(rng.integers(len(self._pools)))]
        code = int(pool[int(rng.integers(pool.size))])
        hw = int(np.prod(self.frame_shape))
        t, yx = divmod(code, hw)
        y, x = divmod(yx, self.frame_shape[1])
        return t, (float(y), float(x))

    def normalized_movie(self) -> "NormalizedMovie":
        """The normalised movie ``(T, Y, X) float32`` as the network sees it (inference input),
        read frame by frame: kept frames from memory, the others from the image."""
        return NormalizedMovie(self)

    def typical_min_size(self, fallback: int) -> int:
        """A minimum object size for post-processing learnt from the painted objects.

        Half the 5th percentile of the painted areas, never below ``fallback``: objects less than
        half the size of the smaller cells the user painted are specks, not cells. (On HeLa,
        frames 10-19: a quarter gave AP50 0.867, half 0.881, at SEG 0.875 / 0.874.)
        """
        if len(self.object_areas) < 3:
            return fallback
        return max(fallback, int(0.5 * np.percentile(self.object_areas, 5)))

    def frame_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """``batch_size`` augmented crops of random annotated frames."""
        xs, cs, ws, vs = [], [], [], []
        for _ in range(batch_size):
            centre = None
            if self._pools:
                t, centre = self._balanced_centre(rng)
            else:
                t = self.frames[int(rng.integers(len(self.frames)))]
            x, c, w, v = self._crop([t], [True], rng, centre)
            xs.append(x[0]), cs.append(c[0]), ws.append(w[0]), vs.append(v[0])
        return Batch(torch.stack(xs), torch.stack(cs), torch.stack(ws), torch.stack(vs))

    def sequence_batch(self, rng: np.random.Generator, batch_size: int, length: int) -> Batch:
        """``batch_size`` sequences of ``length`` frames, each with one spatial transform.

        Temporal augmentation of the U-LSTM paper: random reversal and random temporal
        down-sampling by ``k`` in 1..4 (the paper writes ``k in [0, 4]``; 0 has no meaning, so
        we take 1..4), reduced where the movie is too short. Windows are chosen to contain at
        least one annotated frame.
        """
        xs, cs, ws, vs = [], [], [], []
        for _ in range(batch_size):
            anchor, centre = None, None
            if self._pools:
                anchor, centre = self._balanced_centre(rng)
            window = self._random_window(rng, length, anchor)
            has = [t in self._weights for t in window]
            x, c, w, v = self._crop(window, has, rng, centre)
            xs.append(x), cs.append(c), ws.append(w), vs.append(v)
        return Batch(torch.stack(xs), torch.stack(cs), torch.stack(ws), torch.stack(vs))

    def _random_window(self, rng: np.random.Generator, length: int, anchor: int | None = None) -> list[int]:
        k = int(rng.integers(1, 5))
        if anchor is None:
            anchor = self.frames[int(rng.integers(len(self.frames)))]
        first, end = self.movie_of(anchor)
        n = end - first
        anchor -= first
        length = _window_length(length, n)
        k = _step(k, length, n)
        span = (length - 1) * k
        # Starts whose window (start, start+k, ..) hits the anchor frame and stays in the movie.
        starts = _window_starts(anchor, length, k, n)
        start = starts[int(rng.integers(len(starts)))] if starts else 0
        window = list(range(first + start, first + start + span + 1, k))
        if rng.random() < 0.5:
            window.reverse()
        return window

    def movie_of(self, t: int) -> tuple[int, int]:
        """``(start, end)`` of the movie of the pool that holds frame ``t``."""
        return next((a, b) for a, b in self.movies if a <= t < b)

    def frame_range(self, t: int) -> tuple[float, float]:
        """The grey values normalised to 0 and 1 in frame ``t`` (its movie's)."""
        if len(self._ranges) == 1:
            return self._ranges[0]
        return self._ranges[next(i for i, (a, b) in enumerate(self.movies) if a <= t < b)]

    def _slots(self, window: list[int]) -> list[int]:
        """Places in the kept frames of the frames ``window`` (all kept when ``context`` fits)."""
        try:
            return [self._slot[t] for t in window]
        except KeyError as err:
            raise CellseqError(
                f"frame {err.args[0]} is not kept in this training set (built with a shorter context "
                "than the sequences asked for)"
            ) from None

    def _crop(self, window: list[int], annotated: list[bool], rng: np.random.Generator,
              centre: tuple[float, float] | None = None):
        s = self.config.crop_size
        tr = random_transform(rng, self.frame_shape, s, self.config.augment_affine,
                              self.config.augment_elastic, center=centre)
        grid = crop_grid(tr, s, self.frame_shape)
        x = sample(self._shifted[self._slots(window)], grid, "bilinear", "zeros") + OUTSIDE  # (L, 1, S, S)
        c = torch.zeros((len(window), s, s), dtype=torch.int64)
        w = torch.zeros((len(window), s, s), dtype=torch.float32)
        v = torch.zeros((len(window), s, s), dtype=torch.float32)
        for i, (t, has) in enumerate(zip(window, annotated)):
            if not has:
                continue
            w[i] = sample(self._weights[t], grid, "bilinear", "border")[0, 0]
            near = sample(self._nearest[t], grid, "nearest", "zeros")[0]
            c[i] = near[0].round().long()
            v[i] = near[1]
        return x, c, w, v


class NormalizedMovie(FrameStack):
    """The movie of a :class:`TrainingSet` normalised as the network sees it, ``(T, Y, X) float32``,
    read frame by frame (inference input for validation and calibration): frames the set keeps
    come from memory, the others are read from its image and normalised with its value range."""

    def __init__(self, data: TrainingSet):
        self._data = data
        self.shape = (data.n_frames,) + tuple(data.frame_shape)
        self.dtype = np.dtype(np.float32)

    def _frame(self, t: int) -> np.ndarray:
        data = self._data
        slot = data._slot.get(t)
        if slot is not None:
            return data._shifted[slot, 0].numpy() + np.float32(OUTSIDE)
        shifted = normalize(np.asarray(data._image[t]), data.frame_range(t))
        shifted -= np.float32(OUTSIDE)  # the same float32 rounding as a kept frame
        return shifted + np.float32(OUTSIDE)

