"""Training targets and the separation weight map of the U-LSTM paper (eq. 8-9)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..config import TARGETS
from ..errors import InputError

__all__ = [
    "BACKGROUND",
    "MAX_CLASSES",
    "class_targets",
    "separation_weights",
    "loss_weights",
    "weight_map",
]

BACKGROUND = 0
#: Most classes a ``"classes"`` target may have (a larger painted value is almost always an
#: instance label image given by mistake).
MAX_CLASSES = 64


def class_targets(labels: np.ndarray, target: str, boundary_width: int = 2) -> np.ndarray:
    """Class map ``(Y, X) uint8`` of instance labels ``(Y, X)``.

    ``"2class"``: 0 background, 1 cell (the U-LSTM paper's labelling).
    ``"3class"``: 0 background, 1 cell interior, 2 cell boundary, where the boundary is the rim
    of ``boundary_width`` pixels inside each cell next to background or another cell; the
    interiors of touching cells are therefore never connected.
    ``"classes"``: semantic labels, value ``v > 0`` is class ``v - 1``; unpainted pixels (0) get
    class 0 but must be masked out of the loss by the caller.
    """
    labels = np.asarray(labels)
    if target == "classes":
        return np.where(labels > 0, labels - 1, 0).astype(np.uint8)
    fg = labels > 0
    out = fg.astype(np.uint8)
    if target == "2class":
        return out
    if target != "3class":
        raise InputError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    size = 2 * boundary_width + 1
    hi = ndi.maximum_filter(labels, size=size, mode="nearest")
    lo = ndi.minimum_filter(labels, size=size, mode="nearest")
    rim = fg & ((hi != labels) | (lo != labels))
    out[rim] = 2
    return out


def separation_weights(labels: np.ndarray, w0: float, sigma0: float) -> np.ndarray:
    """Eq. 8 of the U-LSTM paper: ``w0 * exp(-(d1 + d2)^2 / sigma0^2)``, ``(Y, X) float32``.

    ``d1`` and ``d2`` are the Euclidean distances of each pixel to the nearest and second nearest
    cell (0 inside a cell for that cell). Computed per cell inside its bounding box grown by the
    distance beyond which the weight falls under 1e-3 * w0, so the cost grows with the number of
    cells, not with their number times the image size.
    """
    labels = np.asarray(labels)
    shape = labels.shape
    d1 = np.full(shape, np.inf, dtype=np.float32)
    d2 = np.full(shape, np.inf, dtype=np.float32)
    reach = int(np.ceil(sigma0 * np.sqrt(np.log(1000.0)))) + 1
    objects = ndi.find_objects(labels)
    for index, box in enumerate(objects):
        if box is None:
            continue
        label = index + 1
        grown = tuple(
            slice(max(s.start - reach, 0), min(s.stop + reach, n)) for s, n in zip(box, shape)
        )
        dist = ndi.distance_transform_edt(labels[grown] != label).astype(np.float32)
        a, b = d1[grown], d2[grown]
        closer = dist < a
        b[...] = np.where(closer, a, np.minimum(b, dist))
        a[...] = np.where(closer, dist, a)
    total = d1 + d2
    with np.errstate(over="ignore", invalid="ignore"):
        w = w0 * np.exp(-(total**2) / sigma0**2)
    w[~np.isfinite(total)] = 0.0
    return w.astype(np.float32)


def loss_weights(
    classes: np.ndarray,
    labels: np.ndarray,
    class_weights: tuple[float, ...],
    w0: float,
    sigma0: float,
) -> np.ndarray:
    """Per-pixel weight ``w_c + w_d`` of eq. 9, ``(Y, X) float32``."""
    wc = np.asarray(class_weights, dtype=np.float32)
    if classes.max(initial=0) >= wc.size:
        raise ValueError(f"class_weights {tuple(class_weights)} has too few entries")
    return wc[classes] + separation_weights(labels, w0, sigma0)


def weight_map(
    classes: np.ndarray,
    labels: np.ndarray,
    class_weights: tuple[float, ...],
    w0: float,
    sigma0: float,
    weighting: str = "separation",
    edge_weight: float = 10.0,
) -> np.ndarray:
    """Per-pixel loss weights ``(Y, X) float32`` of one frame for the chosen loss.

    ``weighting`` (see :data:`napari_cellseq.core.losses.WEIGHTING`): ``"separation"`` is eq. 9,
    ``w_c + w_d``; ``"class"`` is ``w_c``; ``"edge"`` is ``w_c * edge`` with the edge weights of
    the FCN-GoogLeNet blog (:func:`napari_cellseq.core.losses.edge_weights`) computed on
    ``labels`` (instance ids, or a class map for semantic targets). ``w0 = 0`` turns the
    separation term off.
    """
    wc = np.asarray(class_weights, dtype=np.float32)
    if classes.max(initial=0) >= wc.size:
        raise ValueError(f"class_weights {tuple(class_weights)} has too few entries")
    w = wc[classes]
    if weighting == "separation":
        return w + separation_weights(labels, w0, sigma0) if w0 else w
    if weighting == "class":
        return w
    if weighting == "edge":
        from ..losses import edge_weights

        return w * edge_weights(np.asarray(labels, dtype=np.int64), edge_weight).numpy()
    raise ValueError(f"unknown weighting {weighting!r}: use 'separation', 'class' or 'edge'")
