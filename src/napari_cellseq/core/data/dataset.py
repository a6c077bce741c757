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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from skimage.segmentation import relabel_sequential

from ..config import INSTANCE_CLASSES, TARGETS, DataConfig
from ..errors import InputError
from .augment import crop_grid, random_transform, sample
from .normalize import OUTSIDE, normalize, percentile_range
from .targets import MAX_CLASSES, class_targets, weight_map

logger = logging.getLogger(__name__)

__all__ = ["as_movie", "annotated_frames", "movie_spans", "target_classes", "TrainingSet", "Batch"]

# Balanced sampling keeps at most this many candidate centre pixels per class (a random subset).
_POOL_MAX = 1 << 20


def as_movie(array: np.ndarray) -> np.ndarray:
    """``(Y, X)`` -> ``(1, Y, X)``; ``(T, Y, X)`` unchanged."""
    return array[None] if array.ndim == 2 else array


def annotated_frames(labels: np.ndarray) -> list[int]:
    """Indices of frames of ``labels (T, Y, X)`` that carry any label."""
    movie = as_movie(np.asarray(labels))
    flat = movie.reshape(movie.shape[0], -1)
    return [int(t) for t in np.flatnonzero(flat.any(axis=1))]


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
    """Normalised movie plus targets and weights of its annotated frames.

    Parameters
    ----------
    image : ``(Y, X)`` or ``(T, Y, X)`` grey values.
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
    ):
        self.weighting, self.edge_weight = weighting, float(edge_weight)
        image, labels = as_movie(np.asarray(image)), as_movie(np.asarray(labels))
        self.movies = movie_spans(movie_lengths, image.shape[0])
        if image.shape != labels.shape:
            raise InputError(
                f"labels have shape {labels.shape} but the image {image.shape}: "
                "paint on a Labels layer created from this image"
            )
        n = image.shape[0]
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
        # (T, 1, Y, X), shifted by -OUTSIDE so that zero padding while sampling crops reads OUTSIDE.
        ranges = [percentile_range(image[a:b], config.percentiles) for a, b in self.movies]
        self.value_range = ranges[0] if len(ranges) == 1 else None  # None: one per movie
        shifted = np.empty(image.shape, np.float32)
        for (a, b), value_range in zip(self.movies, ranges):
            shifted[a:b] = normalize(image[a:b], value_range) - np.float32(OUTSIDE)
        self._shifted = torch.from_numpy(shifted)[:, None]
        self.frame_shape = image.shape[1:]
        self.n_frames = n
        # Per annotated frame: (1, 1, Y, X) weights and (1, 2, Y, X) [classes, valid].
        self._weights: dict[int, torch.Tensor] = {}
        self._nearest: dict[int, torch.Tensor] = {}
        self.object_areas: list[int] = []  # pixel areas of the painted objects
        self.semantic = config.target == "classes"
        self.num_classes = target_classes(config.target, labels, self.frames, background_label)
        self._pools: list[np.ndarray] = []  # balanced sampling: per class, codes t * Y * X + yx
        for t in self.frames:
            self._prepare(t, labels[t], t in set(partial_frames), background_label)
        if config.sampling == "balanced":
            self._build_pools()
        logger.info("training set: %d frames of %s, annotated %s", n, self.frame_shape, self.frames)

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

    def _prepare(self, t: int, labels: np.ndarray, partial: bool, background_label: int | None):
        valid = np.ones(labels.shape, dtype=np.float32)
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

    def normalized_movie(self) -> np.ndarray:
        """The normalised movie ``(T, Y, X) float32`` as the network sees it (inference input)."""
        return self._shifted[:, 0].numpy() + np.float32(OUTSIDE)

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
        """Frames of one sequence: a window holding ``anchor`` (default: a random annotated
        frame) inside the movie of the pool that holds it (see ``movie_lengths``)."""
        k = int(rng.integers(1, 5))
        if anchor is None:
            anchor = self.frames[int(rng.integers(len(self.frames)))]
        first, end = next((a, b) for a, b in self.movies if a <= anchor < b)
        n = end - first
        anchor -= first
        length = min(length, n)
        while k > 1 and (length - 1) * k >= n:
            k -= 1
        span = (length - 1) * k
        # Starts whose window (start, start+k, ..) hits the anchor frame and stays in the movie.
        starts = [s for s in range(max(0, anchor - span), min(anchor, n - 1 - span) + 1)
                  if (anchor - s) % k == 0]
        start = starts[int(rng.integers(len(starts)))] if starts else 0
        window = list(range(first + start, first + start + span + 1, k))
        if rng.random() < 0.5:
            window.reverse()
        return window

    def _crop(self, window: list[int], annotated: list[bool], rng: np.random.Generator,
              centre: tuple[float, float] | None = None):
        s = self.config.crop_size
        tr = random_transform(rng, self.frame_shape, s, self.config.augment_affine,
                              self.config.augment_elastic, center=centre)
        grid = crop_grid(tr, s, self.frame_shape)
        x = sample(self._shifted[window], grid, "bilinear", "zeros") + OUTSIDE  # (L, 1, S, S)
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
