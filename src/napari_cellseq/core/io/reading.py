"""Reading TIFF files: whole (:func:`read_image`, :func:`read_labels`) or lazily (:func:`open_image`).

Arrays come back as stored (nothing squeezed, no dtype change); validating them for
segmentation or training is :mod:`.checks`' job. Compressed files (LZW, zstd, deflate,
packbits, JPEG, ...) are decoded by tifffile through the ``imagecodecs`` package, a required
dependency. Foreseeable problems raise :class:`~napari_cellseq.core.errors.InputError` with one
message saying what is wrong and what to do (see :mod:`.tiff_file`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError
from .tiff_file import PathLike, check_tiff_file, first_series, tiff_error
from .views import TiffFrames

__all__ = ["read_image", "read_labels", "open_image"]

logger = logging.getLogger(__name__)


def _read_tiff(path: PathLike, what: str) -> np.ndarray:
    """Read the first series of a TIFF file; see :func:`read_image`."""
    p = check_tiff_file(path, what)
    try:
        with tifffile.TiffFile(p) as tif:
            series = first_series(tif, p, what)
            try:
                array = series.asarray()
            except MemoryError:
                gib = np.prod(series.shape, dtype=np.float64) * np.dtype(series.dtype).itemsize / 2**30
                raise InputError(
                    f"{p} ({series.shape}, {series.dtype}, {gib:.1f} GiB) does not fit in memory; "
                    "crop it or split it into smaller files"
                ) from None
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files (ValueError, struct...)
        raise tiff_error(p, exc) from None
    if array.size == 0:
        raise InputError(f"{p} contains no image data (shape {array.shape}); export the {what} again as TIFF")
    return array


def read_image(path: PathLike) -> np.ndarray:
    """Read an image or movie from a TIFF file.

    Parameters
    ----------
    path : a ``.tif`` / ``.tiff`` file (ImageJ, OME or plain TIFF, uncompressed or compressed;
        ``~`` is expanded).

    Returns
    -------
    np.ndarray
        The first image series exactly as stored: shape and dtype unchanged, nothing squeezed,
        e.g. (T, Y, X) uint16 for a time-lapse or (Y, X) for a single frame. Use
        :func:`~napari_cellseq.core.io.checks.check_image` to validate it for segmentation.

    Raises
    ------
    InputError
        File missing, a folder, empty, not a TIFF, truncated/corrupt, needs a codec that is not
        installed, or too large for memory.
    """
    return _read_tiff(path, "image")


def read_labels(path: PathLike) -> np.ndarray:
    """Read instance labels (e.g. painted annotations) from a TIFF file.

    Returns the first series as stored, typically (T, Y, X) or (Y, X) uint16 / uint32 with
    0 = background. Raises :class:`InputError` as :func:`read_image`; use
    :func:`~napari_cellseq.core.io.checks.check_labels` to validate them against their image.
    """
    return _read_tiff(path, "labels")


def _memmap(p, series: tifffile.TiffPageSeries) -> np.memmap | None:
    """The first series of ``p`` memory-mapped read-only, or None when its data cannot be mapped
    (compressed, scattered in the file, or truncated)."""
    try:
        array = tifffile.memmap(p, series=0, mode="r")
    except (ValueError, OSError):
        return None
    if tuple(array.shape) != tuple(series.shape):  # pragma: no cover - tifffile oddity
        array = array.reshape(series.shape)
    return array


@contextmanager
def open_image(path: PathLike, what: str = "image", memmap: bool = True) -> Iterator[Any]:
    """Open an image or movie TIFF without reading its pixels; pixels are read when indexed.

    Yields the first image series as an array-like with ``shape``, ``dtype`` and numpy-style
    indexing, with the same shape and dtype as :func:`read_image` returns: a read-only
    :class:`numpy.memmap` when the data are stored uncompressed in one piece (what ImageJ and
    tifffile write), else a :class:`~napari_cellseq.core.io.views.TiffFrames` that reads page by
    page (compressed files). Either way ``movie[t]`` of a ``(T, Y, X)`` movie reads one frame,
    so a movie larger than memory can be processed frame by frame. Use it only inside the
    ``with`` block.

    ``what`` ("image", "labels") names the file in messages. ``memmap=False``: always page by
    page (pages read once, e.g. a label stack scanned for its painted frames, then stay out of
    the process's resident memory, which mapped pages would count in). Raises :class:`InputError` as
    :func:`read_image` (for damaged pages: when they are read).
    """
    p = check_tiff_file(path, what)
    try:
        tif = tifffile.TiffFile(p)
    except Exception as exc:  # noqa: BLE001 - damaged header
        raise tiff_error(p, exc) from None
    with tif:
        try:
            series = first_series(tif, p, what)
            array: Any = _memmap(p, series) if memmap else None
            if array is None:  # compressed, scattered or truncated data, or page by page asked
                try:
                    array = TiffFrames(tif, p)
                except ValueError:  # pages that do not map onto the shape: read it all
                    logger.warning("%s cannot be read frame by frame; reading all of it", p)
                    array = series.asarray()
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
            raise tiff_error(p, exc) from None
        yield array
