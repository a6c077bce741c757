"""Writing TIFF files: whole arrays (:func:`write_tiff_atomic`) or label stacks frame by frame.

Both write atomically (:mod:`.atomic`) and refuse to replace a file without ``overwrite``.
Grey-scale images and label stacks are written so that Fiji opens a ``(T, Y, X)`` stack as a
time series (ImageJ hyperstack metadata) and :func:`~napari_cellseq.core.io.read_image` gives
back the same shape and dtype. :func:`label_dtype` is the one rule for the dtype of label
images: uint16 while every id fits, else uint32 (uint64 beyond ``2**32 - 1``).
"""

from __future__ import annotations

import io as _io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError
from .atomic import atomic_path, new_temp, write_error
from .tiff_file import PathLike

__all__ = ["label_dtype", "write_tiff_atomic", "label_stack_writer", "LabelStackWriter"]

logger = logging.getLogger(__name__)

# Dtypes (and axes orders) that ImageJ / Fiji opens natively from an ImageJ hyperstack TIFF.
_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_IMAGEJ_AXES = ("YX", "TYX", "ZYX", "CYX", "TZYX", "TCYX", "ZCYX", "TZCYX")
_BIGTIFF_BYTES = 2**32 - 2**25  # classic TIFF holds < 4 GiB; keep a margin for metadata


def label_dtype(max_id: int) -> np.dtype:
    """The unsigned dtype of a label image whose largest id is ``max_id``.

    ``uint16`` when ``max_id <= 65535`` (what Fiji and the Cell Tracking Challenge expect),
    else ``uint32``, and ``uint64`` beyond ``2**32 - 1``. Raises :class:`ValueError` for a
    negative ``max_id``.
    """
    max_id = int(max_id)
    if max_id < 0:
        raise ValueError(f"label ids must be >= 0, got a largest id of {max_id}")
    if max_id < 1 << 16:
        return np.dtype(np.uint16)
    if max_id < 1 << 32:
        return np.dtype(np.uint32)
    return np.dtype(np.uint64)


def check_compression(compression: Any) -> Any:
    """Return ``compression`` if tifffile can write it here, else raise :class:`InputError`."""
    if compression is None or (isinstance(compression, str) and compression.lower() == "none"):
        return None
    try:
        tifffile.imwrite(_io.BytesIO(), np.zeros((2, 2), np.uint8), compression=compression)
    except Exception as exc:  # unknown name, or a codec that needs imagecodecs
        raise InputError(
            f"TIFF compression {compression!r} is not available ({exc}); use compression=None or 'zlib'"
        ) from None
    return compression


def write_tiff_atomic(
    path: PathLike,
    array: Any,
    overwrite: bool = False,
    compression: Any = None,
    *,
    axes: str | None = None,
) -> Path:
    """Write an array to a TIFF file atomically (temporary file + rename); return the path.

    Parameters
    ----------
    path : output file; missing parent folders are created.
    array : (Y, X) image, (T, Y, X) movie, or any array of >= 2 dimensions. Written with its dtype
        unchanged (labels: pass :func:`label_dtype`), except bool, which is written as uint8 0/1.
    overwrite : replace an existing file; otherwise :class:`OutputExistsError`.
    compression : None (default), or a codec name tifffile writes: ``"zlib"``, ``"lzma"``,
        ``"lzw"``, ``"zstd"``, ... (the last ones through ``imagecodecs``).
    axes : axes letters, default ``"YX"`` for 2-D and ``"TYX"`` for 3-D arrays.

    For uint8, uint16 and float32 arrays with ImageJ axes (``YX``, ``TYX``, ``ZYX``, ``CYX``,
    ``TZYX``, ...) the file carries ImageJ hyperstack metadata, so Fiji opens a (T, Y, X) stack as
    a time series. Other dtypes (e.g. uint32 labels), and arrays with a singleton T/Z/C axis or
    1 px wide, are written as plain TIFF with tifffile's shape metadata. Either way
    :func:`read_image` gives back the same shape and dtype. Files >= 4 GiB are BigTIFF.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    InputError
        Empty, 0-/1-D or non-numeric array, wrong ``axes``, unavailable compression, or the file
        cannot be written (folder not writable, disk full).
    """
    target = Path(path).expanduser()
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "uif":
        raise InputError(f"cannot write an array of dtype {arr.dtype} to TIFF; convert it to an integer or float array")
    if arr.ndim < 2 or arr.size == 0:
        raise InputError(f"cannot write an array of shape {arr.shape} as an image; it needs at least 2 non-empty axes (Y, X)")
    if axes is None:
        axes = {2: "YX", 3: "TYX"}.get(arr.ndim)
    elif len(axes) != arr.ndim:
        raise InputError(f"axes {axes!r} has {len(axes)} letters but the array has {arr.ndim} dimensions {arr.shape}; give one letter per axis")
    compression = check_compression(compression)
    kwargs = tiff_kwargs(target, arr.shape, arr.dtype, axes, compression)
    with atomic_path(target, overwrite=overwrite) as tmp:
        try:
            tifffile.imwrite(tmp, arr, **kwargs)
        except OSError as exc:
            raise write_error(target, exc) from None
    logger.debug("wrote %s %s %s to %s", arr.shape, arr.dtype, "imagej" if kwargs.get("imagej") else "tiff", target)
    return target


def tiff_kwargs(target: Path, shape: tuple[int, ...], dtype: Any, axes: str | None,
                compression: Any) -> dict[str, Any]:
    """tifffile.imwrite arguments for an array of ``shape`` / ``dtype`` (see :func:`write_tiff_atomic`)."""
    dtype = np.dtype(dtype)
    # ImageJ metadata drops singleton T/Z/C axes and tifffile misreads ImageJ stacks 1 px wide:
    # those few shapes are written as plain TIFF so that reading gives back the exact shape.
    imagej = (
        dtype in _IMAGEJ_DTYPES
        and axes is not None
        and axes.upper() in _IMAGEJ_AXES
        and shape[-1] > 1
        and all(n > 1 for n in shape[:-2])
    )
    bigtiff = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize >= _BIGTIFF_BYTES
    if bigtiff and imagej:
        logger.info("%s is >= 4 GiB: writing BigTIFF without ImageJ metadata", target)
        imagej = False
    # Always grey-scale: a (3, Y, X) or (4, Y, X) stack must never be stored as RGB(A) planes.
    kwargs: dict[str, Any] = {"compression": compression, "bigtiff": bigtiff, "photometric": "minisblack"}
    if imagej:
        kwargs.update(imagej=True, metadata={"axes": axes.upper()})  # type: ignore[union-attr]
    else:
        kwargs.update(metadata={"axes": axes} if axes is not None else {})
    return kwargs


class _LabelStackFile:
    """An uncompressed TIFF label stack ``(Y, X)`` / ``(T, Y, X)`` on disk, frames written in place."""

    def __init__(self, path: Path, target: Path, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.target, self.shape, self.dtype = path, target, shape, np.dtype(dtype)
        axes = {2: "YX", 3: "TYX"}[len(shape)]
        try:
            tifffile.imwrite(path, shape=shape, dtype=self.dtype,
                             **tiff_kwargs(target, shape, self.dtype, axes, None))
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                offset = series.dataoffset
                self.file_dtype = np.dtype(self.dtype).newbyteorder(tif.byteorder)
            if offset is None or tuple(series.shape) != tuple(shape):  # pragma: no cover
                raise InputError(f"cannot write {target} frame by frame (tifffile {tifffile.__version__}); "
                                 "upgrade tifffile")
            self.offset = int(offset)
            self.fh = open(path, "r+b")
        except OSError as exc:
            raise write_error(target, exc) from None
        self.frame_bytes = int(np.prod(shape[-2:], dtype=np.int64)) * self.dtype.itemsize

    def write(self, t: int, frame: np.ndarray) -> None:
        try:
            self.fh.seek(self.offset + t * self.frame_bytes)
            self.fh.write(np.ascontiguousarray(frame, dtype=self.file_dtype).tobytes())
        except OSError as exc:
            raise write_error(self.target, exc) from None

    def read(self, t: int) -> np.ndarray:
        self.fh.flush()
        self.fh.seek(self.offset + t * self.frame_bytes)
        raw = self.fh.read(self.frame_bytes)
        return np.frombuffer(raw, dtype=self.file_dtype).reshape(self.shape[-2:])

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()


class LabelStackWriter:
    """Write a label image ``(Y, X)`` or stack ``(T, Y, X)`` to a TIFF file one frame at a time.

    Use :func:`label_stack_writer`. The file is the one :func:`write_tiff_atomic` writes for the
    whole array as :func:`label_dtype` types it (uint16 with ImageJ metadata, or uint32 plain
    TIFF when an id exceeds 65535); frames never written stay 0. Only one frame is in memory.
    """

    def __init__(self, stack: _LabelStackFile):
        self._stack = stack

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the file (uint16 until a frame needs more)."""
        return self._stack.dtype

    def write(self, t: int, labels: np.ndarray) -> None:
        """Store ``labels (Y, X)`` (non-negative integers) as frame ``t`` (0 for a 2-D image)."""
        labels = np.asarray(labels)
        shape = self._stack.shape
        n = 1 if len(shape) == 2 else shape[0]
        if labels.shape != tuple(shape[-2:]) or not 0 <= int(t) < n:
            raise InputError(f"frame {t} of shape {labels.shape} does not fit a label stack of shape {shape}")
        needed = label_dtype(labels.max() if labels.size else 0)
        if needed.itemsize > self._stack.dtype.itemsize:
            self._upcast(needed)
        self._stack.write(int(t), labels)

    def _upcast(self, dtype: np.dtype) -> None:
        """Rewrite the frames so far into a file of ``dtype`` (ids above 65535 appeared)."""
        old = self._stack
        logger.info("label ids exceed %d: writing %s as %s", np.iinfo(old.dtype).max, old.target, dtype)
        path = new_temp(old.target)
        try:
            new = _LabelStackFile(path, old.target, old.shape, dtype)
            for t in range(1 if len(old.shape) == 2 else old.shape[0]):
                frame = old.read(t)
                if frame.any():
                    new.write(t, frame)
            new.close()
            old.close()
            os.replace(path, old.path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        new.path = old.path
        new.fh = open(old.path, "r+b")
        self._stack = new


@contextmanager
def label_stack_writer(path: PathLike, shape: tuple[int, ...], overwrite: bool = False) -> Iterator[LabelStackWriter]:
    """Context manager: write a ``(Y, X)`` or ``(T, Y, X)`` label stack to ``path`` frame by frame.

    The file is written to a hidden temporary file (see :func:`atomic_path`) that replaces
    ``path`` only when the ``with`` block ends without an exception; unwritten frames are 0. The
    result equals ``write_tiff_atomic(path, labels)`` of the whole uint16 (or uint32) array.

    Raises :class:`OutputExistsError` / :class:`InputError` as :func:`write_tiff_atomic`.
    """
    target = Path(path).expanduser()
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or 0 in shape:
        raise InputError(f"a label stack has shape (Y, X) or (T, Y, X) with no empty axis, got {shape}")
    with atomic_path(target, overwrite=overwrite) as tmp:
        writer = LabelStackWriter(_LabelStackFile(tmp, target, shape, label_dtype(0)))
        try:
            yield writer
        finally:
            writer._stack.close()
    logger.debug("wrote %s %s to %s frame by frame", shape, writer.dtype, target)
