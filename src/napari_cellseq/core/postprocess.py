"""From network output to instance labels.

The networks predict per-pixel classes: ``"3class"`` = 0 background, 1 cell interior, 2 cell
boundary; ``"2class"`` = 0 background, 1 cell. :func:`instances_from_classes` turns such a class
map into an instance label image (0 background, objects 1..n), :func:`labels_from_probabilities`
does the same from the softmax output.

For 3 classes the interior components are the seeds and every other foreground pixel joins the
seed nearest to it along a path through foreground (a breadth-first flood over the boundary rim,
vectorised over the whole front), so touching cells separated by a boundary come out apart and
the boundary rim is shared out between them. A 700x1100 frame of 100-200 cells takes about
25-40 ms on one CPU core.

Semantic models (target ``"classes"``, any number of classes, class 0 = background) give
either their class map (:func:`class_map_from_probabilities`, written as painted values
``class + 1``) or instances: the connected components of every foreground class, numbered
across classes (:func:`instances_per_class`). A ``threshold`` (chosen from a pixel-wise ROC on
validation frames, see :mod:`napari_cellseq.core.calibration`) replaces the argmax's
background / foreground decision: foreground when ``1 - p(background) >= threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .config import INSTANCE_CLASSES, OUTPUTS
from .errors import InputError
from .io import label_dtype as smallest_label_dtype  # the one label-dtype rule, under its old name here

__all__ = [
    "OUTPUTS",
    "SEED_FRACTION",
    "smallest_label_dtype",
    "instances_from_classes",
    "instances_per_class",
    "class_map_from_probabilities",
    "labels_from_probabilities",
]

#: ``"3class"``: interior components smaller than this fraction of the median seed of their
#: frame are not seeds (their pixels join a neighbouring cell like boundary pixels; alone in a
#: foreground component they are still an object). A compact bright nucleus that the network
#: rings with boundary class leaves two or three specks of interior, which split it into
#: fragments; a size relative to the frame's own cells keeps small cells in a field of small
#: cells. Built-in U-Net without training (SEG / AP50, threshold 0.5), absolute seed floor only
#: -> with 0.1: HeLa frames 10-19 0.769 / 0.679 -> 0.782 / 0.734, synthetic dark-on-light
#: 0.730 / 0.611 -> 0.736 / 0.640, DSB image 0.634 / 0.629 -> 0.630 / 0.627, CHO, synthetic
#: dense, dim and rods unchanged (``benchmarks/datasets.py`` sets; 0.2 and 0.3 gained more on HeLa
#: but lost on the dense and dim sets).
SEED_FRACTION = 0.1


def _check_target(target: str) -> int:
    if target not in INSTANCE_CLASSES:
        raise InputError(
            f"target is {target!r}: pass one of {sorted(INSTANCE_CLASSES)} (the network's class layout)"
        )
    return INSTANCE_CLASSES[target]


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or value < low or (high is not None and value > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise InputError(f"{name} is {value!r}: pass an integer {rng}")
    return int(value)


def _structure(connectivity: int) -> np.ndarray:
    return ndi.generate_binary_structure(2, connectivity)


def _flood(labels: np.ndarray, todo: np.ndarray, connectivity: int) -> np.ndarray:
    """Give every ``todo`` pixel the label of its nearest labelled pixel along ``todo`` pixels.

    ``labels``: (Y, X) int array, > 0 at seed pixels; ``todo``: (Y, X) bool, pixels to fill
    (disjoint from the seeds). Breadth-first over path distance (4- or 8-neighbour steps): the
    pixels labelled in one ring pass their label on to their still free neighbours, so each
    pixel is visited once (ties go to the first neighbour in a fixed order). Pixels not reachable
    from any seed stay 0. Returns a new (Y, X) array of ``labels.dtype``.
    """
    h, w = labels.shape
    padded = np.zeros((h + 2, w + 2), dtype=labels.dtype)
    padded[1:-1, 1:-1] = labels
    free = np.zeros((h + 2, w + 2), dtype=bool)
    free[1:-1, 1:-1] = todo
    flat, free = padded.ravel(), free.ravel()
    stride = w + 2
    offsets = [-stride, stride, -1, 1]
    if connectivity == 2:
        offsets += [-stride - 1, -stride + 1, stride - 1, stride + 1]
    # first ring: free pixels next to a seed pull the seed's label
    pending = np.flatnonzero(free)
    got = np.zeros(pending.size, dtype=flat.dtype)
    for off in offsets:
        np.copyto(got, flat[pending + off], where=(got == 0))
    front = pending[got > 0]
    flat[front] = got[got > 0]
    free[front] = False
    # later rings: the last ring pushes its labels to free neighbours
    while front.size:
        ring = []
        for off in offsets:
            nb = front + off
            take = free[nb]
            dst = nb[take]
            if dst.size:
                flat[dst] = flat[front[take]]
                free[dst] = False
                ring.append(dst)
        front = np.concatenate(ring) if ring else front[:0]
    return padded[1:-1, 1:-1]


def _finish(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects under ``min_size`` pixels and relabel 1..n in the smallest dtype."""
    areas = np.bincount(labels.ravel())
    keep = areas >= max(min_size, 1)
    keep[0] = False
    n = int(np.count_nonzero(keep))
    dtype = smallest_label_dtype(n)
    lut = np.zeros(areas.size, dtype=dtype)
    lut[keep] = np.arange(1, n + 1, dtype=dtype)
    return lut[labels]


def _merge_enclosed(labels: np.ndarray) -> np.ndarray:
    """Merge every object that another single object encloses completely into that object.

    Nuclei do not nest: an object whose one-pixel outer ring (4-neighbourhood) holds exactly one
    other label and no background is a piece of the enclosing cell (e.g. a textured nucleus the
    network ringed with boundary class). Objects touching the frame edge are never enclosed.
    """
    objects = ndi.find_objects(labels)
    lut = np.arange(len(objects) + 1, dtype=np.int64)
    shape = labels.shape
    for index, box in enumerate(objects):
        if box is None or any(sl.start == 0 or sl.stop == n for sl, n in zip(box, shape)):
            continue
        label = index + 1
        grown = tuple(slice(sl.start - 1, sl.stop + 1) for sl in box)
        window = labels[grown]
        mask = window == label
        around = np.unique(window[ndi.binary_dilation(mask) & ~mask])
        if around.size == 1 and around[0] != 0:
            lut[label] = around[0]
    if not np.any(lut != np.arange(lut.size)):
        return labels
    for _ in range(lut.size):  # follow chains of nesting to the outermost object
        nxt = lut[lut]
        if np.array_equal(nxt, lut):
            break
        lut = nxt
    return lut[labels]


def instances_from_classes(
    class_map: Any,
    target: str = "3class",
    min_size: int = 15,
    connectivity: int = 1,
    min_seed_size: int | None = None,
    seed_fraction: float = SEED_FRACTION,
) -> np.ndarray:
    """Instance labels from a per-pixel class map.

    Parameters
    ----------
    class_map : (Y, X) integer array (e.g. ``probs.argmax(0)``). For ``target="3class"`` values
        are 0 background, 1 cell interior, 2 cell boundary; for ``"2class"`` 0 background, 1 cell
        (a boolean mask is accepted for ``"2class"``).
    target : ``"3class"`` or ``"2class"``.
    min_size : objects with fewer pixels are removed (no upper limit).
    connectivity : 1 = 4-neighbourhood, 2 = 8-neighbourhood, for components and the flood.
    min_seed_size : ``"3class"`` only: interior components smaller than this are not used as
        seeds (their pixels are treated like boundary); default ``max(1, min_size // 4)``.
    seed_fraction : ``"3class"`` only: interior components under this fraction of the median
        area of the frame's seeds (those of at least ``min_seed_size``) are not seeds either
        (:data:`SEED_FRACTION`; 0 turns the relative rule off).

    Returns
    -------
    (Y, X) label image, 0 background and objects ``1..n``; dtype from
    :func:`smallest_label_dtype` (``uint16`` for fewer than 65536 objects). Background-class
    pixels are always 0.

    2class: the connected components of class 1. 3class: the interior components are seeds;
    every other foreground pixel (class 1 or 2) joins the seed nearest along a foreground path;
    foreground components without any seed become objects of their own; an object completely
    enclosed by one other object is merged into it (nuclei do not nest).
    """
    n_classes = _check_target(target)
    min_size = _check_int(min_size, "min_size", 0)
    connectivity = _check_int(connectivity, "connectivity", 1, 2)
    cm = np.asarray(class_map)
    if cm.ndim != 2:
        raise InputError(
            f"class_map has shape {cm.shape} but one (Y, X) frame is needed: pass "
            "class_map[t] for each frame of a stack"
        )
    if cm.size == 0:
        raise InputError(f"class_map is empty (shape {cm.shape}): pass a non-empty image")
    if cm.dtype == bool and target == "2class":
        cm = cm.view(np.uint8)
    if cm.dtype.kind not in "iu":
        raise InputError(
            f"class_map has dtype {cm.dtype}: pass integer classes, e.g. probs.argmax(0), or "
            "use labels_from_probabilities"
        )
    if int(cm.min()) < 0 or int(cm.max()) >= n_classes:
        raise InputError(
            f"class_map has values {int(cm.min())}..{int(cm.max())} but target {target!r} has "
            f"classes 0..{n_classes - 1}: pass the matching target"
        )
    structure = _structure(connectivity)
    if target == "2class":
        labels, _ = ndi.label(cm == 1, structure=structure)
        return _finish(labels, min_size)

    if min_seed_size is None:
        min_seed_size = max(1, min_size // 4)
    min_seed_size = _check_int(min_seed_size, "min_seed_size", 0)
    if not 0.0 <= float(seed_fraction) < 1.0:
        raise InputError(f"seed_fraction must be in [0, 1), got {seed_fraction!r}")
    fg = cm > 0
    seeds, n_seeds = ndi.label(cm == 1, structure=structure)
    if n_seeds and (min_seed_size > 1 or seed_fraction > 0):
        areas = np.bincount(seeds.ravel())
        small = areas < min_seed_size
        if seed_fraction > 0:
            kept = areas[1:][~small[1:]]
            if kept.size:
                small |= areas < seed_fraction * float(np.median(kept))
        small[0] = False
        if np.any(small):
            seeds[small[seeds]] = 0
    comps, n_comps = ndi.label(fg, structure=structure)
    seeded = np.zeros(n_comps + 1, dtype=bool)
    seeded[comps[seeds > 0]] = True
    seeded[0] = False
    todo = fg & (seeds == 0)
    in_seeded = seeded[comps]
    labels = _flood(seeds, todo & in_seeded, connectivity)
    # foreground components without a seed become objects of their own
    orphans = todo & ~in_seeded
    if np.any(orphans):
        labels = labels.astype(np.int64, copy=False)
        labels[orphans] = comps[orphans].astype(np.int64) + int(seeds.max())
    return _finish(_merge_enclosed(labels), min_size)


def class_map_from_probabilities(probs: Any, threshold: float | None = None) -> np.ndarray:
    """Per-pixel class ``(Y, X) uint8`` of class probabilities ``(K, Y, X)``.

    ``threshold`` ``None``: the argmax. A number: background (0) where
    ``1 - probs[0] < threshold``, elsewhere the most probable of classes ``1..K-1``.
    """
    p = np.asarray(probs)
    if threshold is None:
        return np.argmax(p, axis=0).astype(np.uint8)
    fg = (1.0 - p[0]) >= threshold
    return np.where(fg, np.argmax(p[1:], axis=0) + 1, 0).astype(np.uint8)


def instances_per_class(
    class_map: Any, min_size: int = 15, connectivity: int = 1
) -> np.ndarray:
    """Instance labels of a semantic class map ``(Y, X)`` (0 = background class).

    Every connected component of each class ``k >= 1`` becomes one object; ids ``1..n`` run
    over all classes (class 1's objects first). Objects under ``min_size`` pixels are removed.
    Returns a ``(Y, X)`` label image of :func:`smallest_label_dtype`.
    """
    min_size = _check_int(min_size, "min_size", 0)
    connectivity = _check_int(connectivity, "connectivity", 1, 2)
    cm = np.asarray(class_map)
    if cm.ndim != 2 or cm.dtype.kind not in "iu":
        raise InputError(f"class_map must be a (Y, X) integer array, got {cm.dtype} of shape {cm.shape}")
    structure = _structure(connectivity)
    labels = np.zeros(cm.shape, dtype=np.int64)
    offset = 0
    for k in np.unique(cm):
        if k == 0:
            continue
        comps, n = ndi.label(cm == k, structure=structure)
        labels[comps > 0] = comps[comps > 0] + offset
        offset += n
    return _finish(labels, min_size)


def labels_from_probabilities(
    probs: Any, target: str = "3class", min_size: int = 15, connectivity: int = 1,
    threshold: float | None = None,
) -> np.ndarray:
    """Instance labels from class probabilities (or logits).

    ``probs``: (K, Y, X) float array, K = 3 for ``"3class"``, 2 for ``"2class"`` (class order as
    in :func:`instances_from_classes`), any K >= 2 for ``"classes"`` (components per foreground
    class, :func:`instances_per_class`). The per-pixel class (argmax, or ``threshold`` on the
    foreground probability, see :func:`class_map_from_probabilities`) goes through
    :func:`instances_from_classes`; returns a (Y, X) ``uint16``/``uint32`` label image.
    """
    p = np.asarray(probs)
    if p.ndim != 3:
        raise InputError(
            f"probs has shape {p.shape} but (K, Y, X) is needed: pass one frame's class "
            "probabilities, classes first"
        )
    if target == "classes":
        if p.shape[0] < 2:
            raise InputError(f"probs has {p.shape[0]} class (axis 0); a semantic model has at least 2")
    else:
        n_classes = _check_target(target)
        if p.shape[0] != n_classes:
            raise InputError(
                f"probs has {p.shape[0]} classes (axis 0) but target {target!r} needs {n_classes}: "
                "pass the matching target, or put the class axis first"
            )
    if p.dtype.kind not in "fiu":
        raise InputError(f"probs has dtype {p.dtype}: pass float class probabilities")
    if p.dtype.kind == "f" and not np.all(np.isfinite(p)):
        raise InputError("probs has NaN or infinite values: check the model output")
    class_map = class_map_from_probabilities(p, threshold)
    if target == "classes":
        return instances_per_class(class_map, min_size=min_size, connectivity=connectivity)
    return instances_from_classes(class_map, target, min_size=min_size, connectivity=connectivity)
