"""Which reader opens a path: a TIFF file, a Cell Tracking Challenge sequence folder
(``01/t000.tif ...``) or an OME-Zarr image (``.zarr`` folder), for the CLI and notebooks alike.

:func:`open_movie` gives a lazy ``(T, Y, X)`` / ``(Y, X)`` array (read one frame at a time, for
movies larger than memory), :func:`read_movie` the whole array, and :func:`read_training_labels`
the labels for training: a labels TIFF, or a ground truth folder ``01_GT/SEG`` whose
``man_seg000.tif ...`` file names say which frames are annotated; :func:`open_training_labels`
the same without reading a labels TIFF whole (training on movies larger than memory).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .ctc_folder import is_ctc_sequence, open_ctc_sequence, read_ctc_ground_truth
from ..errors import InputError
from .checks import select_channel
from .reading import open_image, read_labels
from .ome_zarr import is_ome_zarr, open_ome_zarr
from .views import PaintedFrames

__all__ = ["open_movie", "read_movie", "read_training_labels", "open_training_labels", "describe_folder_error"]


def describe_folder_error(p: Path) -> InputError:
    return InputError(f"{p} is a folder but neither a Cell Tracking Challenge sequence (t000.tif, t001.tif, ...) "
                      "nor an OME-Zarr image (.zarr); give an image file or such a folder")


@contextmanager
def open_movie(path: str | os.PathLike, channel: int | None = None) -> Iterator[Any]:
    """The image at ``path`` as a lazy array (TIFF file, CTC sequence folder, or OME-Zarr level 0).

    ``channel`` picks one channel of a multichannel image (see
    :func:`~napari_cellseq.core.io.select_channel`; for OME-Zarr, its ``c`` axis). Use the array
    inside the ``with`` block only (a TIFF stays open while it is used).
    """
    p = Path(path).expanduser()
    if is_ome_zarr(p):
        yield open_ome_zarr(p, channel)
    elif p.is_dir():
        if not is_ctc_sequence(p):
            raise describe_folder_error(p)
        yield select_channel(open_ctc_sequence(p), channel)
    else:
        with open_image(p) as raw:
            yield select_channel(raw, channel)


def read_movie(path: str | os.PathLike, channel: int | None = None) -> np.ndarray:
    """The whole image at ``path`` in memory (see :func:`open_movie`)."""
    with open_movie(path, channel) as movie:
        return np.asarray(movie)


def read_training_labels(path: str | os.PathLike, image_shape: tuple[int, ...]) -> tuple[np.ndarray, list[int] | None]:
    """``(labels, annotated frames or None)`` for training on an image of ``image_shape``.

    A folder is read as Cell Tracking Challenge ground truth (``man_seg000.tif ...``): the
    annotated frames come from the file names (their zeros are background). A file is a labels
    TIFF, or an OME-Zarr labels image such as ``IMAGE.zarr/labels/NAME`` (frames: None, i.e.
    every frame with labels).
    """
    p = Path(path).expanduser()
    if is_ome_zarr(p):  # e.g. IMAGE.zarr/labels/NAME
        return np.asarray(open_ome_zarr(p)), None
    if p.is_dir():
        shape = tuple(int(n) for n in image_shape)
        n = 1 if len(shape) == 2 else shape[0]
        labels, frames = read_ctc_ground_truth(p, n, shape[-2:])
        return (labels[0] if len(shape) == 2 else labels), frames
    return read_labels(p), None


@contextmanager
def open_training_labels(path: str | os.PathLike, image_shape: tuple[int, ...]
                         ) -> Iterator[tuple[Any, list[int] | None]]:
    """:func:`read_training_labels` without reading a labels TIFF whole: it is opened page by
    page (:func:`~napari_cellseq.core.io.open_image` with ``memmap=False``), so training finds
    the painted frames one page at a time and keeps only those. Ground truth
    folders and OME-Zarr labels are read as :func:`read_training_labels` reads them (frame by
    frame files; a lazy zarr array). Use the labels inside the ``with`` block only.
    """
    p = Path(path).expanduser()
    if is_ome_zarr(p):  # e.g. IMAGE.zarr/labels/NAME, read frame by frame
        yield open_ome_zarr(p), None
    elif p.is_dir():  # CTC ground truth: one file per annotated frame; keep only those frames
        labels, frames = read_training_labels(p, image_shape)
        yield (labels if labels.ndim == 2 else PaintedFrames.of(labels, frames)), frames
    else:
        with open_image(p, "labels", memmap=False) as labels:  # scanned once: not kept mapped
            yield labels, None
