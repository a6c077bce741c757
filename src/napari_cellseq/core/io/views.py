"""Lazy array views: arrays whose pixels are read from disk only when indexed.

:class:`LazyArray` is the one base: ``shape``, ``dtype``, ``ndim``, ``len()``, numpy-style
indexing with integers, slices and ``...`` (normalised to one index per axis here, once), and
``np.asarray(view)`` (reads everything). A subclass says only how to read one fully indexed
region (:meth:`LazyArray._read`).

- :class:`FrameStack`: the base of stacks read one frame (axis 0) at a time: a subclass says
  how to read frame ``t`` (``_frame``); indexing, negative frames, bounds and slices are here.
- :class:`TiffFrames`: the first image series of an open TIFF file, read page by page, e.g.
  ``frames[t]`` of a ``(T, Y, X)`` movie reads one page; for files that cannot be
  memory-mapped (compressed, or pages scattered in the file).
- :class:`ChannelView`: one channel of such a view, ``(T, C, Y, X)`` -> ``(T, Y, X)``, still
  read only when indexed (see :func:`~napari_cellseq.core.io.checks.select_channel`).
- :class:`TiffPlane`: one 2-D frame of a TIFF file named by its path, each region read from the
  file opened anew: it pickles as its path, so dask workers read their own blocks of a frame
  larger than memory (:mod:`napari_cellseq.core.distributed.blocks`).
- :class:`PaintedFrames`: a ``(T, Y, X)`` label stack of which only the painted frames are held
  (the others are zero), e.g. the annotations of a long movie sent to a training process.

:func:`is_lazy` tells such array-likes (and memory maps, dask, zarr) from in-memory numpy arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .tiff_file import first_series, tiff_error

__all__ = ["LazyArray", "FrameStack", "TiffFrames", "ChannelView", "TiffPlane", "PaintedFrames", "is_lazy"]


def is_lazy(array: Any) -> bool:
    """True for array-likes whose pixels are read when indexed (numpy memory maps, dask, zarr,
    :class:`LazyArray`), False for an in-memory numpy array (and for anything without ``shape``)."""
    if isinstance(array, np.ndarray):
        return isinstance(array, np.memmap)
    return hasattr(array, "shape") and hasattr(array, "__getitem__")


class LazyArray:
    """Base of array-likes read on indexing; subclasses set ``shape`` / ``dtype`` and ``_read``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _full_key(self, key: Any) -> tuple:
        """``key`` as one integer or slice per axis (``...`` expanded, missing axes added)."""
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim or not all(isinstance(k, (slice, int, np.integer)) for k in key):
            raise IndexError(f"{type(self).__name__} takes integers, slices and ... as indices, got {key!r}")
        return key

    def __getitem__(self, key: Any) -> np.ndarray:
        return self._read(self._full_key(key))

    def _read(self, key: tuple) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype, copy=False)


class FrameStack(LazyArray):
    """A stack ``(T, ...)`` read one frame at a time: subclasses set ``shape`` / ``dtype`` and
    :meth:`_frame` (frame ``t``, ``0 <= t < T``, as an array of the frame's shape).

    ``stack[t, ...]`` reads frame ``t`` (negative ``t`` counts from the end; outside the stack:
    ``IndexError``); ``stack[a:b, ...]`` reads those frames one by one into one array, whose
    dtype is the frames' (a subclass may cast them, e.g. checked labels).
    """

    def _frame(self, t: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read(self, key: tuple) -> np.ndarray:
        lead, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(lead, slice):
            picks = range(*lead.indices(n))
            out = None
            for i, t in enumerate(picks):
                part = self._frame(t)[rest]
                if out is None:
                    out = np.empty((len(picks),) + part.shape, part.dtype)
                out[i] = part
            return out if out is not None else np.zeros((0,) + self.shape[1:], self.dtype)[(slice(None),) + rest]
        t = int(lead) + (n if lead < 0 else 0)
        if not 0 <= t < n:
            raise IndexError(f"frame {int(lead)} is outside a stack of {n} frames")
        return self._frame(t)[rest]


class TiffFrames(LazyArray):
    """The first image series of an open TIFF file, read page by page on indexing.

    Shape and dtype are the series' (as :func:`~napari_cellseq.core.io.read_image` returns
    it); the leading axes count pages and the trailing ones (at least ``Y, X``) are one page,
    so ``frames[t]`` of ``(T, Y, X)`` reads page ``t`` and ``frames[t, c]`` of
    ``(T, C, Y, X)`` reads page ``t * C + c``: only the pages (IFDs) the result needs.

    Parameters
    ----------
    tif : an open :class:`tifffile.TiffFile` (kept open by the caller while this is used).
    path : the file's path, for error messages.

    Raises :class:`ValueError` when the pages do not map onto the series' shape, and
    :class:`~napari_cellseq.core.errors.InputError` for a damaged page when it is read.
    """

    def __init__(self, tif: tifffile.TiffFile, path: Path):
        self._series = first_series(tif, path, "image")
        self._path = path
        self.shape = tuple(int(n) for n in self._series.shape)
        self.dtype = np.dtype(self._series.dtype)
        n_pages = len(self._series)
        self._lead = next((k for k in range(self.ndim - 1, -1, -1)
                           if int(np.prod(self.shape[:k], dtype=np.int64)) == n_pages), None)
        if self._lead is None:
            raise ValueError(f"cannot map the {n_pages} pages of {path} onto shape {self.shape}")
        self._pages = np.arange(n_pages).reshape(self.shape[: self._lead])

    def _page(self, i: int) -> np.ndarray:
        try:
            data = self._series.pages[i].asarray()
        except MemoryError:
            raise
        except Exception as exc:  # a damaged page (truncated file, missing codec)
            raise tiff_error(self._path, exc) from None
        return data.reshape(self.shape[self._lead:])

    def _read(self, key: tuple) -> np.ndarray:
        lead, rest = key[: self._lead], key[self._lead:]
        pages = self._pages[lead]
        if np.ndim(pages) == 0:
            return self._page(int(pages))[rest]
        parts = [self._page(int(i))[rest] for i in pages.reshape(-1)]
        first = parts[0] if parts else np.zeros(self.shape[self._lead:], self.dtype)[rest]
        out = np.empty(pages.shape + first.shape, dtype=self.dtype)
        for i, part in zip(np.ndindex(pages.shape), parts):
            out[i] = part
        return out


class ChannelView(LazyArray):
    """Channel ``channel`` of axis ``axis`` of ``source`` (a :class:`LazyArray`), read when indexed.

    ``shape`` is the source's without ``axis``, e.g. ``(T, C, Y, X)`` with ``axis=1`` ->
    ``(T, Y, X)``; ``view[t]`` reads only what ``source[t, channel]`` reads.
    """

    def __init__(self, source: LazyArray, axis: int, channel: int):
        self.source, self.axis, self.channel = source, axis, channel
        self.shape = tuple(n for i, n in enumerate(source.shape) if i != axis)
        self.dtype = np.dtype(source.dtype)

    def _read(self, key: tuple) -> np.ndarray:
        return self.source[key[: self.axis] + (self.channel,) + key[self.axis:]]


class PaintedFrames(FrameStack):
    """A ``(T, Y, X)`` label stack holding only its painted frames; every other frame is zero.

    ``frames`` maps frame index -> ``(Y, X)`` labels (copied); ``shape`` is the whole stack's.
    ``painted`` lists the held frames that carry a label, so that finding the annotated frames
    (:func:`~napari_cellseq.core.data.dataset.annotated_frames`) reads nothing. Made from a
    napari Labels layer or a ground truth folder, it costs the painted frames' memory, not the
    movie's; it pickles as small as it is.
    """

    def __init__(self, frames: dict[int, Any], shape: tuple[int, ...], dtype: Any):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        if len(self.shape) != 3:
            raise ValueError(f"PaintedFrames holds a (T, Y, X) stack, got shape {self.shape}")
        self._frames: dict[int, np.ndarray] = {}
        for t, frame in frames.items():
            t = int(t)
            if not 0 <= t < self.shape[0]:
                raise IndexError(f"frame {t} is outside a stack of {self.shape[0]} frames")
            frame = np.array(frame, dtype=self.dtype, copy=True)
            if frame.shape != self.shape[1:]:
                raise ValueError(f"frame {t} has shape {frame.shape}, the stack's frames {self.shape[1:]}")
            self._frames[t] = frame
        self.painted = tuple(t for t in sorted(self._frames) if self._frames[t].any())

    @classmethod
    def of(cls, stack: Any, frames: Any) -> "PaintedFrames":
        """``frames`` of ``stack (T, Y, X)`` (numpy or lazy), copied one at a time."""
        return cls({int(t): np.asarray(stack[int(t)]) for t in frames}, tuple(stack.shape), stack.dtype)

    def _frame(self, t: int) -> np.ndarray:
        held = self._frames.get(t)  # a copy: the held frames stay as they were painted
        return held.copy() if held is not None else np.zeros(self.shape[1:], self.dtype)


class TiffPlane(LazyArray):
    """Frame ``frame`` (None: the image itself, 2-D) of channel ``channel`` of the TIFF at
    ``path``, a ``(Y, X)`` array read region by region.

    Each read opens the file with :func:`~napari_cellseq.core.io.reading.open_image` (memory-
    mapped when tifffile can, else page by page) and copies only the region asked for (a whole
    page for compressed files). Holding no open file, it pickles as ``(path, frame, channel)``:
    a dask array over it (``dask.array.from_array``) sends each worker the path, not the pixels,
    and never copies the frame into memory, as it does for a :class:`numpy.memmap`.

    ``shape`` and ``dtype`` are probed once here; a file that is not a 2-D image (or a movie
    with ``frame``) after ``channel`` raises :class:`~napari_cellseq.core.errors.InputError`.
    """

    def __init__(self, path: str | Path, frame: int | None = None, channel: int | None = None):
        self.path, self.frame, self.channel = Path(path), frame, channel
        with self._open() as plane:
            self.shape = tuple(int(n) for n in plane.shape)
            self.dtype = np.dtype(plane.dtype)

    def _open(self):
        from contextlib import contextmanager

        from ..errors import InputError
        from .checks import select_channel
        from .reading import open_image

        @contextmanager
        def plane():
            with open_image(self.path) as raw:
                movie = select_channel(raw, self.channel)
                if self.frame is None:
                    if movie.ndim != 2:
                        raise InputError(f"{self.path} has shape {tuple(movie.shape)}, not one 2-D frame: pick a frame")
                    yield movie
                elif movie.ndim != 3 or not 0 <= self.frame < movie.shape[0]:
                    raise InputError(f"{self.path} has shape {tuple(movie.shape)}: no frame {self.frame} "
                                     f"(frames 0..{movie.shape[0] - 1})" if movie.ndim == 3 else
                                     f"{self.path} has shape {tuple(movie.shape)}, not a (T, Y, X) movie")
                else:
                    yield _Indexed(movie, self.frame)

        return plane()

    def _read(self, key: tuple) -> np.ndarray:
        with self._open() as plane:
            return np.array(plane[key])

    def __dask_tokenize__(self):
        stat = self.path.stat()
        return (type(self).__name__, str(self.path.resolve()), stat.st_size, stat.st_mtime_ns, self.frame, self.channel)

    def __reduce__(self):
        return (type(self), (self.path, self.frame, self.channel))


class _Indexed:
    """``movie[frame]`` without reading it: indexing reads ``movie[frame, key]`` only."""

    def __init__(self, movie: Any, frame: int):
        self.movie, self.frame = movie, frame
        self.shape = tuple(movie.shape[1:])
        self.dtype = movie.dtype

    def __getitem__(self, key: tuple) -> np.ndarray:
        return self.movie[(self.frame, *key)]
