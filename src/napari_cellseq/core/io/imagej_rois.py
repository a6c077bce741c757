"""ImageJ / Fiji ROI sets: one polygon per cell and frame, in the ``.zip`` Fiji's ROI Manager opens.

Written with :mod:`roifile` (by tifffile's author; the format of ImageJ's ``RoiEncoder``). Each
cell ``n`` of frame ``t`` becomes a polygon ROI named ``t0003-cell0012`` whose position is the
frame: ``position = t + 1`` (the stack slice, 1-based as in ImageJ) and ``t_position = t + 1``
(the hyperstack frame), so Fiji shows it on the right frame of a ``TYX`` label or image stack.
The polygon is the cell's outer boundary (:func:`skimage.measure.find_contours` at level 0.5,
shifted by half a pixel because ImageJ puts pixel centres at ``x + 0.5``); a cell in several
pieces gets the outline of its largest piece; holes are not drawn.

:func:`imagej_roi_writer` writes frame by frame (a movie larger than memory: each frame's ROIs
are appended to a hidden temporary zip that gets its name at the end);
:func:`write_imagej_rois` writes a whole ``(Y, X)`` or ``(T, Y, X)`` label array.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .atomic import atomic_path

__all__ = ["label_polygons", "imagej_roi_writer", "ImagejRoiWriter", "write_imagej_rois"]

logger = logging.getLogger(__name__)


def label_polygons(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(label, points (N, 2) as x, y in ImageJ pixel coordinates)`` for every cell of ``labels (Y, X)``.

    Cells are listed in increasing label order; a cell of a single pixel gets its square.
    """
    from scipy import ndimage
    from skimage.measure import find_contours

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"ROIs are made from one frame (Y, X) at a time, got shape {labels.shape}")
    out = []
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        label = index + 1
        mask = np.pad(labels[box] == label, 1)
        contours = find_contours(mask.astype(np.float32), 0.5)
        if not contours:
            continue
        contour = max(contours, key=len)[:-1]  # closed: the last point repeats the first
        # (row, col) in the padded crop -> ImageJ (x, y): pixel centres sit at +0.5
        y = contour[:, 0] - 1 + box[0].start + 0.5
        x = contour[:, 1] - 1 + box[1].start + 0.5
        out.append((label, np.stack([x, y], axis=1).astype(np.float32)))
    return out


class ImagejRoiWriter:
    """Appends the ROIs of one frame at a time to an ImageJ ROI zip (see :func:`imagej_roi_writer`)."""

    def __init__(self, path: Path, n_frames: int):
        self._path, self.n_frames = path, n_frames
        self.count = 0
        self._digits = max(4, len(str(n_frames)))

    def write(self, t: int, labels: np.ndarray) -> int:
        """Add one polygon per cell of ``labels (Y, X)``, frame ``t`` (0-based); returns how many."""
        from roifile import ROI_TYPE, ImagejRoi, roiwrite

        if not 0 <= int(t) < self.n_frames:
            raise InputError(f"frame {t} does not exist: the movie has frames 0..{self.n_frames - 1}")
        rois = []
        for label, points in label_polygons(labels):
            name = f"t{t + 1:0{self._digits}d}-cell{label:05d}"
            roi = ImagejRoi.frompoints(points, name=name, position=int(t), t=int(t))  # 0-based here, stored 1-based
            roi.roitype = ROI_TYPE.POLYGON  # (frompoints makes a freehand ROI; both are ImageJ PolygonRois)
            rois.append(roi)
        if rois:
            roiwrite(self._path, rois, mode="a")
        self.count += len(rois)
        return len(rois)


@contextmanager
def imagej_roi_writer(path: str | os.PathLike, n_frames: int, overwrite: bool = False) -> Iterator[ImagejRoiWriter]:
    """Context manager writing an ImageJ ROI set ``path`` (a ``.zip``) frame by frame, atomically.

    Raises :class:`~napari_cellseq.core.io.OutputExistsError` when ``path`` exists and
    ``overwrite`` is False, and :class:`InputError` for a name that is not a ``.zip``.
    """
    target = Path(path).expanduser()
    if target.suffix.lower() != ".zip":
        raise InputError(f"{target}: an ImageJ ROI set is a .zip file; name it e.g. {target.with_suffix('.zip').name}")
    try:
        import roifile  # noqa: F401
    except ImportError:  # pragma: no cover - a required dependency
        raise InputError("writing ImageJ ROIs needs the roifile package: pip install roifile") from None
    with atomic_path(target, overwrite=overwrite) as tmp:
        tmp.unlink()  # roifile creates the zip on the first frame with cells
        writer = ImagejRoiWriter(tmp, int(n_frames))
        yield writer
        if not tmp.exists():  # no cell anywhere: an empty but valid zip
            import zipfile

            zipfile.ZipFile(tmp, "w").close()
    logger.info("wrote %d ImageJ ROIs to %s", writer.count, target)


def write_imagej_rois(path: str | os.PathLike, labels: Any, overwrite: bool = False) -> Path:
    """Write every cell of ``labels`` ``(Y, X)`` or ``(T, Y, X)`` as an ImageJ ROI set ``path``."""
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or labels.dtype.kind not in "ui":
        raise InputError(f"ROIs are made from integer labels (Y, X) or (T, Y, X), got {labels.dtype} {labels.shape}")
    movie = labels[None] if labels.ndim == 2 else labels
    with imagej_roi_writer(path, len(movie), overwrite=overwrite) as writer:
        for t, frame in enumerate(movie):
            writer.write(t, frame)
    return Path(path).expanduser()
