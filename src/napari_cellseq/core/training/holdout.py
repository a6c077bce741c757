"""Painted pixels no optimiser step sees: a stripe of the painted frames held out of training.

What training chooses after its steps (the post-processing foreground threshold) is chosen on
these pixels, not on the pixels the network fitted. Choosing on training pixels is choosing on
memorised data: their probabilities are sharper than on unseen frames, so a low threshold looks
best there and draws cells too large elsewhere. (Issue 13, measured on an 8-bit set of densely
packed nuclei: the threshold 0.25 chosen on the three painted images scored SEG 0.895 there but
0.796 on 11 held-out images, where 0.65 gave 0.840.)

Per completely painted frame used for the choice (:func:`~napari_cellseq.core.calibration.
calibration_frames`: at most 4, evenly spread), a band across the frame (parallel to its shorter
side, :data:`HOLDOUT_FRACTION` of its longer side wide, at a different place in each frame) plus
every painted cell that touches the band, whole, is the held-out region. Training gives its
pixels, grown by :data:`GUARD` pixels, no loss (the network still sees the image there). The
threshold is then scored on the region only: the painted cells in it against the predicted
objects that lie mostly (at least half their area) in it.

Too little painted to hold any out (fewer than :data:`MIN_HELDOUT_CELLS` cells in the regions,
or fewer than :data:`MIN_TRAINING_CELLS` left to train on): nothing is held out and the
threshold stays the argmax (the papers' choice), logged and recorded as such.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..config import TrainConfig

__all__ = ["Holdout", "HOLDOUT_FRACTION", "MIN_HELDOUT_CELLS", "MIN_TRAINING_CELLS", "GUARD",
           "choose_holdout"]

logger = logging.getLogger(__name__)

#: Width of the held-out band, as a fraction of the frame's longer side (``TrainConfig.holdout``).
HOLDOUT_FRACTION = TrainConfig.holdout
#: Fewer painted cells than this in all held-out regions: nothing is held out (argmax).
MIN_HELDOUT_CELLS = 4
#: Fewer painted cells than this left outside the regions: nothing is held out.
MIN_TRAINING_CELLS = 4
#: The held-out region grown by this many pixels carries no loss (the boundary class and the
#: separation weights of a neighbouring training cell reach about this far).
GUARD = 2
#: A frame whose region would cover more than this fraction of it (cells large against the
#: frame) holds nothing out.
MAX_REGION_SHARE = 0.5
# Successive frames place their band at multiples of the golden ratio along the longer side,
# so that a few frames cover different parts of the field.
_GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class Holdout:
    """The held-out regions of a run.

    regions : frame -> ``(Y, X)`` bool, the held-out pixels (band plus whole touching cells).
    cells : painted cells inside the regions, all frames together.
    fraction : share of the painted pixels of the training frames the regions hold.
    """

    regions: Mapping[int, np.ndarray]
    cells: int
    fraction: float

    @property
    def frames(self) -> tuple[int, ...]:
        return tuple(sorted(self.regions))

    def excluded(self) -> dict[int, np.ndarray]:
        """frame -> ``(Y, X)`` bool: the pixels that carry no loss (regions grown by GUARD)."""
        grow = np.ones((2 * GUARD + 1, 2 * GUARD + 1), dtype=bool)
        return {t: ndi.binary_dilation(r, grow) for t, r in self.regions.items()}


def _band(shape: tuple[int, int], index: int, fraction: float) -> np.ndarray:
    """``(Y, X)`` bool: a band across the frame ``fraction`` of its longer side wide, placed by
    ``index`` (the frame's rank among the held-out frames)."""
    h, w = shape
    long_axis = 1 if w >= h else 0
    n = shape[long_axis]
    width = max(1, int(round(fraction * n)))
    start = int(round(((index + 0.5) * _GOLDEN % 1.0) * (n - width)))
    band = np.zeros(shape, dtype=bool)
    if long_axis == 1:
        band[:, start:start + width] = True
    else:
        band[start:start + width, :] = True
    return band


def _instances(frame: Any, background_label: int | None) -> np.ndarray:
    lab = np.asarray(frame).astype(np.int64, copy=True)
    if background_label is not None:
        lab[lab == background_label] = 0
    return lab


def choose_holdout(
    labels: Any,
    frames: Sequence[int],
    all_frames: Sequence[int],
    partial_frames: Sequence[int] = (),
    background_label: int | None = None,
    fraction: float = HOLDOUT_FRACTION,
) -> Holdout | None:
    """The held-out regions in ``frames`` of ``labels (T, Y, X)`` (instance ids), or None.

    frames : completely painted frames to hold a band out of (in order; each gets its own place);
    all_frames : every frame trained on (for the share of painted pixels and the cells left);
    partial_frames : those of them painted only in part (their unpainted pixels do not count).
    Reads only those frames. None when ``fraction`` is 0 or too little is painted (see module).
    """
    if fraction <= 0 or not frames:
        return None
    rank = {t: i for i, t in enumerate(sorted(int(t) for t in frames))}  # each band its own place
    partial = set(int(t) for t in partial_frames)
    regions: dict[int, np.ndarray] = {}
    held = painted = total_cells = 0
    trained = set(int(t) for t in all_frames)
    for t in sorted(trained | set(rank)):  # each frame read once
        frame = np.asarray(labels[t])
        lab = _instances(frame, background_label)
        if t in trained:
            painted += int(np.count_nonzero(frame)) if t in partial else int(frame.size)
            total_cells += int(np.count_nonzero(np.unique(lab)))
        if t not in rank:
            continue
        band = _band(lab.shape, rank[t], fraction)
        touching = np.unique(lab[band])
        touching = touching[touching > 0]
        region = band | np.isin(lab, touching)
        if region.mean() > MAX_REGION_SHARE:
            continue
        regions[t] = region
        held += int(touching.size)
    left = total_cells - held
    if held < MIN_HELDOUT_CELLS or left < MIN_TRAINING_CELLS:
        logger.info("too little painted to hold any out (%d cells would be held out, %d left to train on; "
                    "need %d and %d): the threshold stays the argmax", held, left, MIN_HELDOUT_CELLS,
                    MIN_TRAINING_CELLS)
        return None
    share = sum(int(r.sum()) for r in regions.values()) / max(painted, 1)
    logger.info("held out of training: %d painted cells in frames %s (%.0f %% of the painted pixels)",
                held, sorted(regions), 100 * share)
    return Holdout(regions=regions, cells=held, fraction=float(share))
