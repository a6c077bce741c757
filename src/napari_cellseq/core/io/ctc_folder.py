"""Cell Tracking Challenge folders in: an image sequence ``01/t000.tif ...`` and its sparse
segmentation ground truth ``01_GT/SEG/man_seg000.tif ...``.

The layout of the challenge's data sets (Ulman et al., Nat. Methods 2017; Maska et al.,
Nat. Methods 2023): one TIFF per frame, named by the frame number (``t000.tif``, or ``t0000.tif``
for long movies); the ground truth annotates some frames only, and the file names say which
(``man_seg007.tif`` is frame 7). Results are written as ``01_RES/mask000.tif ...`` by
:mod:`.ctc` (``ctc_mask_writer``).

* :func:`is_ctc_sequence` / :func:`open_ctc_sequence`: the sequence as a lazy ``(T, Y, X)``
  array (:class:`CtcSequence`) that reads one file per frame when indexed, so a movie larger
  than memory is segmented frame by frame;
* :func:`read_ctc_ground_truth`: the annotated frames as a ``(T, Y, X)`` label movie
  (0 elsewhere) and the list of annotated frames, for ``train --labels 01_GT/SEG``.

The 3D layouts (``t000.tif`` holding a z stack; ``man_seg_000_012.tif`` slices, or a
``man_seg000.tif`` stack) are refused with a clear message: napari-cellseq segments 2D movies.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError
from .views import FrameStack
from .writers import label_dtype

__all__ = ["is_ctc_sequence", "open_ctc_sequence", "CtcSequence", "read_ctc_ground_truth", "ctc_frame_files"]

logger = logging.getLogger(__name__)

_FRAME = re.compile(r"^t(\d+)\.tiff?$", re.IGNORECASE)
_GT = re.compile(r"^man_seg(\d+)\.tiff?$", re.IGNORECASE)
_GT_3D_SLICE = re.compile(r"^man_seg_?(\d+)_(\d+)\.tiff?$", re.IGNORECASE)


def ctc_frame_files(folder: str | os.PathLike, pattern: re.Pattern = _FRAME) -> dict[int, Path]:
    """``{frame number: file}`` of the files of ``folder`` whose names match ``pattern``."""
    out: dict[int, Path] = {}
    for p in Path(folder).expanduser().iterdir():
        m = pattern.match(p.name)
        if m and p.is_file():
            t = int(m.group(1))
            if t in out:
                raise InputError(f"{folder} holds two files for frame {t} ({out[t].name}, {p.name}); keep one")
            out[t] = p
    return out


def is_ctc_sequence(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding Cell Tracking Challenge frames ``t000.tif ...``."""
    folder = Path(path).expanduser()
    return folder.is_dir() and any(_FRAME.match(p.name) for p in folder.iterdir())


def _page_info(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(int(n) for n in series.shape), np.dtype(series.dtype)
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
        raise InputError(f"{path} cannot be read as TIFF ({type(exc).__name__}): export the frame again") from None


class CtcSequence(FrameStack):
    """A Cell Tracking Challenge sequence folder as a lazy ``(T, Y, X)`` array.

    A :class:`~napari_cellseq.core.io.views.FrameStack`: ``shape``, ``dtype``, ``len()``,
    ``seq[t]`` (reads ``t{t:03d}.tif`` only), slices and ``...``, ``np.asarray(seq)`` (reads all). Frames must be numbered
    0..T-1 without gaps and all have one 2D shape and dtype (checked from the file headers).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).expanduser()
        files = ctc_frame_files(self.folder)
        if not files:
            raise InputError(f"{self.folder} holds no Cell Tracking Challenge frames (t000.tif, t001.tif, ...)")
        numbers = sorted(files)
        missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise InputError(f"{self.folder}: frame t{missing[0]:03d}.tif{more} missing; the frames must be "
                             f"numbered 0..{numbers[-1]} without gaps")
        self.files = [files[t] for t in numbers]
        shape, dtype = _page_info(self.files[0])
        if len(shape) == 3 and min(shape) > 1 and shape[-1] > 4:
            raise InputError(f"{self.files[0]} holds a 3D stack {shape}: 3D Cell Tracking Challenge data sets are "
                             "not supported yet; napari-cellseq segments 2D movies")
        if len(shape) != 2:
            raise InputError(f"{self.files[0]} has shape {shape}; Cell Tracking Challenge frames are 2D (Y, X) images")
        for p in self.files[1:]:
            other = _page_info(p)
            if other != (shape, dtype):
                raise InputError(f"{p.name} is {other[0]} {other[1]} but {self.files[0].name} is {shape} {dtype}: "
                                 f"every frame of {self.folder} must have one shape and type")
        self.shape = (len(self.files),) + shape
        self.dtype = dtype

    def _frame(self, t: int) -> np.ndarray:
        try:
            frame = tifffile.imread(self.files[t])
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{self.files[t]} cannot be read ({type(exc).__name__}): export the frame again") from None
        return frame.reshape(self.shape[1:])


def open_ctc_sequence(folder: str | os.PathLike) -> CtcSequence:
    """The sequence folder ``folder`` (``t000.tif ...``) as a lazy :class:`CtcSequence`."""
    return CtcSequence(folder)


def read_ctc_ground_truth(folder: str | os.PathLike, n_frames: int, frame_shape: tuple[int, int]
                          ) -> tuple[np.ndarray, list[int]]:
    """The ground truth ``man_seg000.tif ...`` of ``folder`` as ``(labels (T, Y, X), annotated frames)``.

    ``labels`` is uint16 (uint32 when needed), 0 in frames without a file; the annotated frames
    are the numbers in the file names, sorted. Raises :class:`InputError` for a folder without
    ground truth, the 3D layouts, a frame number beyond the movie, or a file of another shape.
    """
    gt = Path(folder).expanduser()
    if not gt.is_dir():
        raise InputError(f"{gt} is not a folder of Cell Tracking Challenge ground truth (man_seg000.tif, ...)")
    if any(_GT_3D_SLICE.match(p.name) for p in gt.iterdir()):
        raise InputError(f"{gt} holds 3D ground truth slices (man_seg_TTT_ZZZ.tif): 3D data sets are not "
                         "supported yet; napari-cellseq trains on 2D movies")
    files = ctc_frame_files(gt, _GT)
    if not files:
        raise InputError(f"{gt} holds no ground truth files man_seg000.tif, man_seg001.tif, ...: give the "
                         "SEG folder of the ground truth, e.g. DATA/01_GT/SEG")
    beyond = [t for t in files if t >= n_frames]
    if beyond:
        raise InputError(f"{files[beyond[0]].name} is for frame {beyond[0]}, but the movie has frames "
                         f"0..{n_frames - 1}: is it the ground truth of this sequence?")
    frames = sorted(files)
    labels = np.zeros((n_frames,) + tuple(frame_shape), dtype=np.uint16)
    for t in frames:
        try:
            frame = tifffile.imread(files[t])
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{files[t]} cannot be read ({type(exc).__name__}): export it again") from None
        if frame.ndim == 3 and frame.shape[0] > 1:
            raise InputError(f"{files[t].name} holds a 3D stack {frame.shape}: 3D ground truth is not supported "
                             "yet; napari-cellseq trains on 2D movies")
        frame = frame.reshape(frame.shape[-2:]) if frame.ndim == 3 else frame
        if frame.shape != tuple(frame_shape):
            raise InputError(f"{files[t].name} is {frame.shape} but the frames are {tuple(frame_shape)}: "
                             "is it the ground truth of this sequence?")
        if frame.dtype.kind not in "ui":
            raise InputError(f"{files[t].name} holds {frame.dtype} values; ground truth is integer labels")
        if int(frame.max()) > np.iinfo(labels.dtype).max:
            labels = labels.astype(label_dtype(int(frame.max())))
        labels[t] = frame
    logger.info("ground truth %s: frames %s annotated", gt, frames)
    return labels, frames
