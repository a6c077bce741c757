"""Files in and out: TIFF reading, atomic writing, Cell Tracking Challenge masks, input checks.

Reading
    :func:`read_image`, :func:`read_labels` read a TIFF with tifffile and return the array as
    stored (nothing squeezed, no dtype change). Foreseeable problems (missing file, a folder, not
    a TIFF, corrupt file, missing codec) raise :class:`~napari_cellseq.core.errors.InputError`
    with one message that says what is wrong and what to do.
Writing
    Every file is written atomically: to a hidden temporary file in the target folder that is
    renamed into place only when complete (:func:`atomic_path`), so an interrupted run never
    leaves a half-written TIFF or model file behind and never destroys the previous version.
    Existing files are kept unless ``overwrite=True`` (:class:`OutputExistsError` otherwise).
Checking
    :func:`check_image`, :func:`check_labels`, :func:`parse_frames` turn the usual user mistakes
    (RGB image, 4-D stack, labels of another shape, "5-2") into clear messages.
"""

from __future__ import annotations

import io as _io
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Union

import numpy as np
import tifffile

from .errors import InputError

__all__ = [
    "OutputExistsError",
    "read_image",
    "read_labels",
    "open_image",
    "TiffFrames",
    "atomic_path",
    "atomic_write_bytes",
    "write_tiff_atomic",
    "label_stack_writer",
    "LabelStackWriter",
    "ctc_mask_writer",
    "ctc_mask_name",
    "write_ctc_masks",
    "parse_frames",
    "check_image",
    "check_image_layout",
    "check_labels",
    "select_channel",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Signatures of formats people often pass by mistake, to name them in the error message.
_OTHER_FORMATS = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"ZISRAWFILE", "a Zeiss CZI file"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\xda\xce\xbe\x0a", "a Nikon ND2 file"),
)
_CONVERT_HINT = "convert it to TIFF, e.g. open it in Fiji and use File > Save As > Tiff..."
# Dtypes (and axes orders) that ImageJ / Fiji opens natively from an ImageJ hyperstack TIFF.
_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_IMAGEJ_AXES = ("YX", "TYX", "ZYX", "CYX", "TZYX", "TCYX", "ZCYX", "TZCYX")
_BIGTIFF_BYTES = 2**32 - 2**25  # classic TIFF holds < 4 GiB; keep a margin for metadata
_MIN_FRAME_SIDE = 8  # smaller frames are almost always a mix-up of axes


class OutputExistsError(InputError, FileExistsError):
    """An output file exists and ``overwrite`` was not given; also a :class:`FileExistsError`."""


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _describe_non_tiff(head: bytes) -> str:
    for magic, what in _OTHER_FORMATS:
        if head.startswith(magic):
            return f" (it looks like {what})"
    return ""


def _check_tiff_file(path: PathLike, what: str) -> Path:
    """``path`` expanded, after the checks that need only its first bytes; see :func:`read_image`."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"no such file: {p}; check the path (relative paths start at {Path.cwd()})")
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a TIFF file; give the path of a .tif file {what}")
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except PermissionError:
        raise InputError(f"cannot read {p}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}; check the file and the disk") from None
    if not head:
        raise InputError(f"{p} is empty (0 bytes); the file was not saved completely: export it again")
    if not head.startswith(_TIFF_MAGIC):
        raise InputError(f"{p} is not a TIFF file{_describe_non_tiff(head)}; {_CONVERT_HINT}")
    return p


def _tiff_error(p: Path, exc: BaseException) -> InputError:
    """The :class:`InputError` for an exception tifffile raised while reading ``p``."""
    if "imagecodecs" in str(exc):
        return InputError(
            f"{p} is compressed with a codec that needs the 'imagecodecs' package; "
            "run `pip install imagecodecs`, or re-save the TIFF uncompressed (Fiji: File > Save As > Tiff...)"
        )
    detail = (str(exc).strip().splitlines() or [""])[0]
    return InputError(
        f"cannot read {p} as TIFF ({type(exc).__name__}: {detail}); the file is probably truncated or "
        "corrupt: export it again, e.g. Fiji: File > Save As > Tiff..."
    )


def _first_series(tif: tifffile.TiffFile, p: Path, what: str):
    if not tif.series:
        raise InputError(f"{p} contains no image data; export the {what} again as TIFF")
    if len(tif.series) > 1:
        logger.warning("%s holds %d image series; reading only the first", p, len(tif.series))
    series = tif.series[0]
    if 0 in tuple(series.shape):
        raise InputError(f"{p} contains no image data (shape {tuple(series.shape)}); export the {what} again as TIFF")
    return series


def _read_tiff(path: PathLike, what: str) -> np.ndarray:
    """Read the first series of a TIFF file; see :func:`read_image`."""
    p = _check_tiff_file(path, what)
    try:
        with tifffile.TiffFile(p) as tif:
            series = _first_series(tif, p, what)
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
        raise _tiff_error(p, exc) from None
    if array.size == 0:
        raise InputError(f"{p} contains no image data (shape {array.shape}); export the {what} again as TIFF")
    return array


class TiffFrames:
    """The first image series of an open TIFF file, read page by page on indexing.

    For files that cannot be memory-mapped (compressed, or pages scattered in the file). Has
    ``shape``, ``dtype``, ``ndim`` and numpy-style ``__getitem__`` (ints, slices, ``...``);
    indexing reads only the TIFF pages (IFDs) that the result needs, e.g. ``frames[t]`` of a
    ``(T, Y, X)`` movie reads one page. ``np.asarray(frames)`` reads everything.

    Parameters
    ----------
    tif : an open :class:`tifffile.TiffFile` (kept open by the caller while this is used).
    path : the file's path, for error messages.
    """

    def __init__(self, tif: tifffile.TiffFile, path: Path):
        self._series = _first_series(tif, path, "image")
        self._path = path
        self.shape = tuple(int(n) for n in self._series.shape)
        self.dtype = np.dtype(self._series.dtype)
        self.ndim = len(self.shape)
        n_pages = len(self._series)
        # The leading axes count pages; the trailing ones (at least Y, X) are one page.
        self._lead = next((k for k in range(self.ndim - 1, -1, -1)
                           if int(np.prod(self.shape[:k], dtype=np.int64)) == n_pages), None)
        if self._lead is None:
            raise ValueError(f"cannot map the {n_pages} pages of {path} onto shape {self.shape}")
        self._pages = np.arange(n_pages).reshape(self.shape[: self._lead])

    def __len__(self) -> int:
        return self.shape[0]

    def _page(self, i: int) -> np.ndarray:
        try:
            page = self._series.pages[i]
            data = page.asarray()
        except MemoryError:
            raise
        except Exception as exc:  # a damaged page (truncated file, missing codec)
            raise _tiff_error(self._path, exc) from None
        return data.reshape(self.shape[self._lead:])

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:at] + fill + key[at + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim or not all(isinstance(k, (slice, int, np.integer)) for k in key):
            raise IndexError(f"TiffFrames takes integers, slices and ... as indices, got {key!r}")
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

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype, copy=False)


@contextmanager
def open_image(path: PathLike) -> Iterator[Any]:
    """Open an image or movie TIFF without reading its pixels; pixels are read when indexed.

    Yields the first image series as an array-like with ``shape``, ``dtype`` and numpy-style
    indexing, with the same shape and dtype as :func:`read_image` returns: a read-only
    :class:`numpy.memmap` when the data are stored uncompressed in one piece (what ImageJ and
    tifffile write), else a :class:`TiffFrames` that reads page by page. Either way
    ``movie[t]`` of a ``(T, Y, X)`` movie reads one frame, so a movie larger than memory can be
    processed frame by frame. Use it only inside the ``with`` block.

    Raises :class:`InputError` as :func:`read_image` (for damaged pages: when they are read).
    """
    p = _check_tiff_file(path, "image")
    try:
        tif = tifffile.TiffFile(p)
    except Exception as exc:  # noqa: BLE001 - damaged header
        raise _tiff_error(p, exc) from None
    with tif:
        try:
            series = _first_series(tif, p, "image")
            try:
                array: Any = tifffile.memmap(p, series=0, mode="r")
                if tuple(array.shape) != tuple(series.shape):  # pragma: no cover - tifffile oddity
                    array = array.reshape(series.shape)
            except (ValueError, OSError):  # compressed, scattered, or truncated data
                try:
                    array = TiffFrames(tif, p)
                except ValueError:  # pages that do not map onto the shape: read it all
                    logger.warning("%s cannot be read frame by frame; reading all of it", p)
                    array = series.asarray()
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
            raise _tiff_error(p, exc) from None
        yield array


def read_image(path: PathLike) -> np.ndarray:
    """Read an image or movie from a TIFF file.

    Parameters
    ----------
    path : a ``.tif`` / ``.tiff`` file (ImageJ, OME or plain TIFF; ``~`` is expanded).

    Returns
    -------
    np.ndarray
        The first image series exactly as stored: shape and dtype unchanged, nothing squeezed,
        e.g. (T, Y, X) uint16 for a time-lapse or (Y, X) for a single frame. Use
        :func:`check_image` to validate it for segmentation.

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
    0 = background. Raises :class:`InputError` as :func:`read_image`; use :func:`check_labels`
    to validate the array against its image.
    """
    return _read_tiff(path, "labels")


# --------------------------------------------------------------------------------------------
# atomic writing
# --------------------------------------------------------------------------------------------


def _exists_message(target: Path) -> str:
    return f"{target} already exists; pass --overwrite (overwrite=True) to replace it, or choose another name"


def _ensure_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) or raise :class:`InputError` saying why not."""
    if folder.is_dir():
        return
    if folder.exists():
        raise InputError(f"{folder} is a file, not a folder; choose another output folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise InputError(f"cannot create folder {folder}: permission denied; choose a folder you can write to") from None
    except OSError as exc:
        raise InputError(f"cannot create folder {folder}: {exc.strerror or exc}; choose another output folder") from None


def _fsync(path: Path) -> None:
    """Flush ``path`` to disk (best effort; some platforms do not allow it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_TEMP_NAME = re.compile(r"\.tmp-(\d+)-[0-9a-f]{8}-(.+)")


def _new_temp(target: Path) -> Path:
    """Create an empty hidden temporary file next to ``target`` and return its path."""
    for _ in range(100):
        candidate = target.parent / f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{target.name}"
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except PermissionError:
            raise InputError(
                f"cannot write to folder {target.parent}: permission denied; choose a folder you can write to"
            ) from None
        except OSError as exc:
            raise InputError(
                f"cannot write to folder {target.parent}: {exc.strerror or exc}; choose another output folder"
            ) from None
        return candidate
    raise InputError(  # pragma: no cover - 100 random-name collisions
        f"cannot create a temporary file in {target.parent}; remove the .tmp-* files there"
    )


def _process_gone(pid: int) -> bool:
    """True when no process ``pid`` runs on this machine (POSIX only; False when unsure)."""
    if os.name != "posix" or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it runs, under another user
        return False
    return False


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary files for ``target`` left by processes that were killed while writing.

    Only files named by :func:`_new_temp` for this very file name whose writing process no
    longer exists are removed; everything else in the folder is left alone.
    """
    try:
        names = [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]
    except OSError:
        return
    for p in names:
        m = _TEMP_NAME.fullmatch(p.name)
        if m and m.group(2) == target.name and _process_gone(int(m.group(1))):
            try:
                p.unlink()
                logger.info("removed %s, left by an interrupted earlier write of %s", p.name, target.name)
            except OSError:
                pass


@contextmanager
def atomic_path(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Context manager yielding a temporary path to write; it becomes ``path`` on success.

    The temporary file (hidden, ``.tmp-<pid>-<random>-<name>``) is created empty in the target
    folder, so the final rename is atomic (same file system). When the ``with`` block finishes
    without an exception the file is flushed to disk and moved to ``path``; on any exception
    (including KeyboardInterrupt) it is deleted and ``path`` is left as it was. Missing parent
    folders are created. A process killed outright (SIGKILL, power cut) can leave its temporary
    file behind; the next write of the same ``path`` removes it once its process is gone (POSIX).

    Parameters
    ----------
    path : the file to create.
    overwrite : replace ``path`` if it exists; otherwise :class:`OutputExistsError` is raised
        before anything is written (and again at the end if the file appeared meanwhile).

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    InputError
        ``path`` is a folder, or the folder cannot be created or written to.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise InputError(f"{target} is a folder; give a file name inside it, e.g. {target / 'out.tif'}")
    if target.exists() and not overwrite:
        raise OutputExistsError(_exists_message(target))
    _ensure_folder(target.parent)
    _remove_stale_temps(target)
    tmp = _new_temp(target)
    try:
        yield tmp
        _fsync(tmp)
        try:
            if overwrite:
                os.replace(tmp, target)
            else:
                try:  # a hard link fails if target exists: no race between the check and the rename
                    os.link(tmp, target)
                except FileExistsError:
                    raise OutputExistsError(_exists_message(target)) from None
                except OSError:  # file system without hard links (FAT, some network shares)
                    if target.exists():
                        raise OutputExistsError(_exists_message(target)) from None
                    os.replace(tmp, target)
        except InputError:
            raise
        except OSError as exc:
            raise InputError(f"cannot create {target}: {exc.strerror or exc}; choose another output folder") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError as exc:  # pragma: no cover - e.g. folder removed meanwhile
            logger.warning("could not remove temporary file %s: %s", tmp, exc)


def _write_error(target: Path, exc: OSError) -> InputError:
    return InputError(
        f"could not write {target}: {exc.strerror or exc}; free disk space or choose another output folder"
    )


def atomic_write_bytes(path: PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); return the path.

    Raises :class:`OutputExistsError` if ``path`` exists and ``overwrite`` is False, and
    :class:`InputError` when the folder cannot be written (permission, disk full).
    """
    target = Path(path).expanduser()
    with atomic_path(target, overwrite=overwrite) as tmp:
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise _write_error(target, exc) from None
    return target


def _check_compression(compression: Any) -> Any:
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
        unchanged (labels: pass uint16 or uint32), except bool, which is written as uint8 0/1.
    overwrite : replace an existing file; otherwise :class:`OutputExistsError`.
    compression : None (default), ``"zlib"`` or ``"lzma"`` (others need the imagecodecs package).
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
    compression = _check_compression(compression)
    kwargs = _tiff_kwargs(target, arr.shape, arr.dtype, axes, compression)
    with atomic_path(target, overwrite=overwrite) as tmp:
        try:
            tifffile.imwrite(tmp, arr, **kwargs)
        except OSError as exc:
            raise _write_error(target, exc) from None
    logger.debug("wrote %s %s %s to %s", arr.shape, arr.dtype, "imagej" if kwargs.get("imagej") else "tiff", target)
    return target


def _tiff_kwargs(target: Path, shape: tuple[int, ...], dtype: Any, axes: str | None,
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
    """An uncompressed TIFF label stack on disk whose frames are written in place."""

    def __init__(self, path: Path, target: Path, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.target, self.shape, self.dtype = path, target, shape, np.dtype(dtype)
        axes = {2: "YX", 3: "TYX"}[len(shape)]
        try:
            tifffile.imwrite(path, shape=shape, dtype=self.dtype,
                             **_tiff_kwargs(target, shape, self.dtype, axes, None))
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
            raise _write_error(target, exc) from None
        self.frame_bytes = int(np.prod(shape[-2:], dtype=np.int64)) * self.dtype.itemsize

    def write(self, t: int, frame: np.ndarray) -> None:
        try:
            self.fh.seek(self.offset + t * self.frame_bytes)
            self.fh.write(np.ascontiguousarray(frame, dtype=self.file_dtype).tobytes())
        except OSError as exc:
            raise _write_error(self.target, exc) from None

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
    whole array (uint16 with ImageJ metadata, or uint32 plain TIFF when an id exceeds 65535);
    frames never written stay 0. Only one frame is in memory at a time.
    """

    def __init__(self, stack: _LabelStackFile):
        self._stack = stack

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the file (uint16 until a frame needs uint32)."""
        return self._stack.dtype

    def write(self, t: int, labels: np.ndarray) -> None:
        """Store ``labels (Y, X)`` (non-negative integers) as frame ``t`` (0 for a 2-D image)."""
        labels = np.asarray(labels)
        shape = self._stack.shape
        n = 1 if len(shape) == 2 else shape[0]
        if labels.shape != tuple(shape[-2:]) or not 0 <= int(t) < n:
            raise InputError(f"frame {t} of shape {labels.shape} does not fit a label stack of shape {shape}")
        top = int(labels.max()) if labels.size else 0
        if top > np.iinfo(self._stack.dtype).max:
            self._upcast(np.dtype(np.uint32))
        self._stack.write(int(t), labels)

    def _upcast(self, dtype: np.dtype) -> None:
        """Rewrite the frames so far into a file of ``dtype`` (ids above 65535 appeared)."""
        old = self._stack
        logger.info("label ids exceed %d: writing %s as %s", np.iinfo(old.dtype).max, old.target, dtype)
        path = _new_temp(old.target)
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
        writer = LabelStackWriter(_LabelStackFile(tmp, target, shape, np.dtype(np.uint16)))
        try:
            yield writer
        finally:
            writer._stack.close()
    logger.debug("wrote %s %s to %s frame by frame", shape, writer.dtype, target)


def ctc_mask_name(index: int, n_frames: int, prefix: str = "mask") -> str:
    """Cell Tracking Challenge file name of frame ``index`` of an ``n_frames`` movie.

    Three digits (``mask000.tif``) up to 1000 frames, more digits (``mask0000.tif``) beyond.
    """
    digits = max(3, len(str(max(n_frames, 1) - 1)))
    return f"{prefix}{index:0{digits}d}.tif"


def write_ctc_masks(
    folder: PathLike,
    labels: Any,
    overwrite: bool = False,
    prefix: str = "mask",
    *,
    compression: Any = None,
) -> list[Path]:
    """Write one 16-bit TIFF per frame in Cell Tracking Challenge naming (``mask000.tif``, ...).

    Parameters
    ----------
    folder : output folder (created if missing), e.g. ``01_RES`` for CTC evaluation.
    labels : (T, Y, X) or (Y, X) integer instance ids, 0 = background, all <= 65535.
    overwrite : replace existing mask files; otherwise nothing is written if any exists.
    prefix : file name prefix (``"mask"`` for results, ``"man_seg"`` for ground truth).
    compression : as for :func:`write_tiff_atomic`.

    Returns
    -------
    list[Path]
        The T written files in frame order; each is (Y, X) uint16, written atomically.

    Raises
    ------
    InputError
        Wrong shape, non-integer or negative labels, an id > 65535, bad prefix.
    OutputExistsError
        A mask file exists and ``overwrite`` is False (checked before writing anything).
    """
    out = Path(folder).expanduser()
    if not prefix or any(sep in prefix for sep in ("/", "\\")) or prefix in (".", ".."):
        raise InputError(f"prefix {prefix!r} must be a plain file name part like 'mask'; put folders into `folder`")
    arr = np.asarray(labels)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.size == 0:
        raise InputError(
            f"labels for Cell Tracking Challenge masks must be (T, Y, X) or (Y, X), got shape {np.shape(labels)}; "
            "pass one label image per frame"
        )
    arr = check_labels(arr, arr.shape, name="labels")
    top = int(arr.max())
    if top > 65535:
        raise InputError(
            f"label id {top} is larger than 65535, but the Cell Tracking Challenge format requires 16-bit masks; "
            "renumber the ids (skimage.segmentation.relabel_sequential) or export the labels as one 32-bit TIFF stack instead"
        )
    with ctc_mask_writer(out, arr.shape[0], overwrite=overwrite, prefix=prefix,
                         compression=compression) as writer:
        for t in range(arr.shape[0]):
            writer.write(t, arr[t])
    return writer.paths


class CtcMaskWriter:
    """Writes the masks of :func:`ctc_mask_writer` one frame at a time."""

    def __init__(self, paths: list[Path], overwrite: bool, compression: Any, stack: ExitStack):
        self.paths, self._overwrite, self._compression, self._stack = paths, overwrite, compression, stack
        self._written: set[int] = set()

    def write(self, t: int, labels: np.ndarray) -> None:
        """Write ``labels (Y, X)`` (ids 0..65535) as the mask of frame ``t`` (to a hidden file
        that gets its name when the ``with`` block ends)."""
        arr = check_labels(labels, np.shape(labels), name="labels")
        if arr.ndim != 2 or arr.size == 0:
            raise InputError(f"a mask is one (Y, X) frame, got shape {arr.shape}")
        self._check_shape(arr.shape)
        top = int(arr.max())
        if top > 65535:
            raise InputError(
                f"label id {top} is larger than 65535, but the Cell Tracking Challenge format requires 16-bit masks; "
                "renumber the ids (skimage.segmentation.relabel_sequential) or export the labels as one 32-bit TIFF stack instead"
            )
        target = self.paths[int(t)]
        kwargs = _tiff_kwargs(target, arr.shape, np.uint16, "YX", self._compression)
        tmp = self._stack.enter_context(atomic_path(target, overwrite=self._overwrite))
        try:
            tifffile.imwrite(tmp, arr.astype(np.uint16, copy=False), **kwargs)
        except OSError as exc:
            raise _write_error(target, exc) from None
        self._written.add(int(t))

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if getattr(self, "frame_shape", None) is None:
            self.frame_shape = tuple(shape)
        elif tuple(shape) != self.frame_shape:
            raise InputError(f"masks of one movie must all have shape {self.frame_shape}, got {tuple(shape)}")

    def fill(self) -> None:
        """Write empty masks for the frames not written (needs one written frame for the shape)."""
        shape = getattr(self, "frame_shape", None)
        if shape is None:
            return
        for t in range(len(self.paths)):
            if t not in self._written:
                self.write(t, np.zeros(shape, np.uint16))


@contextmanager
def ctc_mask_writer(
    folder: PathLike,
    n_frames: int,
    overwrite: bool = False,
    prefix: str = "mask",
    *,
    compression: Any = None,
    shape: tuple[int, int] | None = None,
) -> Iterator[CtcMaskWriter]:
    """Context manager: write Cell Tracking Challenge masks one frame at a time.

    Everything :func:`write_ctc_masks` checks up front (prefix, folder, existing masks) is
    checked on entry. Each :meth:`CtcMaskWriter.write` writes one ``(Y, X)`` uint16 mask to a
    hidden temporary file; when the ``with`` block ends normally, frames not written get empty
    masks (frame size from ``shape`` or the written frames) and all files are renamed into place;
    on an exception none of them appears. Only one frame is held in memory.
    """
    out = Path(folder).expanduser()
    if not prefix or any(sep in prefix for sep in ("/", "\\")) or prefix in (".", ".."):
        raise InputError(f"prefix {prefix!r} must be a plain file name part like 'mask'; put folders into `folder`")
    n = int(n_frames)
    paths = [out / ctc_mask_name(t, n, prefix) for t in range(n)]
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder; choose another output folder")
    if not overwrite:
        existing = [p for p in paths if p.exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise OutputExistsError(
                f"{existing[0]}{more} already exist; pass --overwrite (overwrite=True) to replace them, "
                "or choose another folder"
            )
    _ensure_folder(out)
    names = {p.name for p in paths}
    pattern = re.compile(re.escape(prefix) + r"\d+\.tif")
    stale = sorted(p.name for p in out.iterdir() if pattern.fullmatch(p.name) and p.name not in names)
    if stale:
        logger.warning(
            "%s also holds %d older mask files (e.g. %s) that are not part of this export; "
            "delete them before evaluating", out, len(stale), stale[0],
        )
    compression = _check_compression(compression)
    with ExitStack() as stack:  # one atomic_path per mask: all renamed at the end, or none
        writer = CtcMaskWriter(paths, overwrite, compression, stack)
        if shape is not None:
            writer.frame_shape = tuple(int(v) for v in shape)
        yield writer
        writer.fill()


# --------------------------------------------------------------------------------------------
# frame selection
# --------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+")
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def parse_frames(spec: str, n_frames: int) -> list[int]:
    """Parse a frame selection such as ``"0-4, 7"`` into sorted unique frame indices.

    Parameters
    ----------
    spec : comma-separated frame numbers (0-based) and inclusive ranges ``a-b``; spaces are
        allowed; ``"all"`` selects every frame.
    n_frames : number of frames T of the movie; valid frames are ``0..T-1``.

    Returns
    -------
    list[int]
        Sorted, unique frame indices, e.g. ``"0-4,7"`` -> ``[0, 1, 2, 3, 4, 7]``.

    Raises
    ------
    InputError
        Empty or malformed spec, negative numbers, a backwards range, or a frame >= T.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise InputError(f"the movie has no frames (n_frames={n_frames!r}); load an image first")
    n_frames = int(n_frames)
    valid = f"valid frames are 0..{n_frames - 1}"
    if not isinstance(spec, str):
        raise InputError(f"frame selection must be text like '0-4,7', got {spec!r}")
    text = spec.strip()
    if text.lower() == "all":
        return list(range(n_frames))
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise InputError(f"empty frame selection; give frames like '0-4,7' ({valid})")
    frames: set[int] = set()
    for part in parts:
        if not part:
            continue  # "1,,2" or a trailing comma: harmless
        if _NUMBER.fullmatch(part):
            lo = hi = int(part)
        elif m := _RANGE.fullmatch(part):
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise InputError(f"frame range {part!r} in {spec!r} goes backwards; write it as '{hi}-{lo}'")
        elif part.startswith("-") or re.search(r"(^|[,\s-])-\s*\d", part):
            raise InputError(f"negative frame number in {spec!r}; frames are counted from 0 ({valid})")
        else:
            raise InputError(
                f"{part!r} in {spec!r} is not a frame number or range; use numbers and ranges like '0-4,7' ({valid})"
            )
        if hi >= n_frames:
            raise InputError(f"frame {hi} in {spec!r} is out of range: the movie has {n_frames} frames, {valid}")
        frames.update(range(lo, hi + 1))
    return sorted(frames)


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------


def check_image(array: Any, name: str = "image") -> np.ndarray:
    """Check that ``array`` is a grey-scale image (Y, X) or movie (T, Y, X) worth segmenting.

    Parameters
    ----------
    array : the image; any real numeric dtype (uint8/uint16/float32, ...).
    name : what to call it in messages (e.g. the napari layer name).

    Returns
    -------
    np.ndarray
        ``np.asarray(array)``, unchanged (same object for an ndarray).

    Raises
    ------
    InputError
        bool / complex / non-numeric dtype; RGB(A) (last axis of size 3 or 4); not 2-D or 3-D;
        frames smaller than 8x8 pixels (usually a mix-up of axes); empty; NaN or infinite values;
        constant (nothing to segment).
    """
    arr = np.asarray(array)
    kind = arr.dtype.kind
    check_image_layout(arr.shape, arr.dtype, name)
    if kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(arr.size - finite.sum()) - n_nan
            raise InputError(
                f"{name} contains {n_nan} NaN and {n_inf} infinite values; replace them "
                f"(e.g. np.nan_to_num({name})) or export the image again"
            )
    lo, hi = arr.min(), arr.max()
    if lo == hi:
        raise InputError(
            f"{name} is constant (all values = {lo.item()!r}): nothing to segment; check that the right file "
            "or channel was loaded"
        )
    return arr


def _channel_axis(shape: tuple[int, ...]) -> int | None:
    """The axis of ``shape`` that holds channels, or None if there is no (unambiguous) one.

    ``(Y, X, C)`` and ``(T, Y, X, C)``: the last axis when it has fewer than 8 entries
    (frames are at least 8x8 pixels); ``(T, C, Y, X)``: axis 1 when it has fewer than 8.
    """
    if len(shape) == 3 and shape[-1] < _MIN_FRAME_SIDE:
        return 2
    if len(shape) == 4:
        if shape[-1] < _MIN_FRAME_SIDE:
            return 3
        if shape[1] < _MIN_FRAME_SIDE:
            return 1
    return None


def _channel_hint(shape: tuple[int, ...], name: str) -> str:
    axis = _channel_axis(shape)
    if axis is None:
        return ""
    n = shape[axis]
    index = ("...", "N") if axis == len(shape) - 1 else (":", "N")
    return (f"; to use one of its {n} channels pass --channel N (N in 0..{n - 1}) on the command line, "
            f"or {name}[{', '.join(index)}] in Python")


def select_channel(array: Any, channel: int | None, name: str = "image") -> Any:
    """Pick channel ``channel`` of a multichannel image; ``None`` returns ``array`` unchanged.

    Parameters
    ----------
    array : ``(Y, X, C)``, ``(T, Y, X, C)`` or ``(T, C, Y, X)`` with fewer than 8 channels
        (an RGB image is ``(Y, X, 3)``); any array-like with ``shape`` and ``__getitem__``
        (numpy, memmap, dask), which is indexed, not loaded.
    channel : 0-based channel index.

    Returns
    -------
    ``(Y, X)`` or ``(T, Y, X)``: the selected channel.

    Raises
    ------
    InputError
        The image has no channel axis (``(Y, X)``, ``(T, Y, X)`` with frames >= 8x8 pixels), or
        ``channel`` is out of range.
    """
    if channel is None:
        return array
    shape = tuple(int(s) for s in np.shape(array))
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or channel < 0:
        raise InputError(f"channel must be a number 0, 1, 2, ..., got {channel!r}")
    axis = _channel_axis(shape)
    if axis is None:
        raise InputError(
            f"{name} has shape {shape}, which has no channel axis (napari-cellseq reads channels from "
            "(Y, X, C), (T, Y, X, C) or (T, C, Y, X) with fewer than 8 channels); drop --channel"
        )
    n = shape[axis]
    if channel >= n:
        raise InputError(
            f"channel {channel} does not exist: {name} of shape {shape} has {n} channels (axis {axis}); "
            f"pass --channel 0..{n - 1}"
        )
    if isinstance(array, TiffFrames):  # indexing it reads pixels: pick the channel lazily
        return _ChannelView(array, axis, int(channel))
    index = [slice(None)] * len(shape)
    index[axis] = int(channel)
    return array[tuple(index)]


class _ChannelView:
    """Channel ``channel`` of axis ``axis`` of a lazy array-like, read only when indexed."""

    def __init__(self, source: Any, axis: int, channel: int):
        self.source, self.axis, self.channel = source, axis, channel
        self.shape = tuple(n for i, n in enumerate(source.shape) if i != axis)
        self.dtype = np.dtype(source.dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        return self.source[key[: self.axis] + (self.channel,) + key[self.axis:]]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype, copy=False)


def check_image_layout(shape: tuple[int, ...], dtype: Any, name: str = "image") -> None:
    """The checks of :func:`check_image` that need no pixel values: dtype, dimensions, size.

    Used for movies too large to read at once (dask arrays, memory maps), whose values are then
    checked frame by frame. Raises :class:`InputError` as :func:`check_image`.
    """
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    kind = dtype.kind
    ndim = len(shape)
    if kind == "b":
        raise InputError(
            f"{name} is a boolean mask, not an intensity image; choose the microscopy image "
            "(masks and labels go into the labels layer)"
        )
    if kind == "c":
        raise InputError(f"{name} has complex values ({dtype}); segment a real image, e.g. np.abs({name})")
    if kind not in "uif":
        raise InputError(f"{name} has unsupported dtype {dtype}; convert it to a numeric array (e.g. uint16 or float32)")
    if ndim in (3, 4) and shape[-1] in (3, 4):
        rgb = "RGBA" if shape[-1] == 4 else "RGB"
        movie = " movie" if ndim == 4 else ""
        raise InputError(
            f"{name} has shape {shape}, which looks like an {rgb}{movie} image (last axis of size {shape[-1]}); "
            "napari-cellseq needs grey-scale: convert it (Fiji: Image > Type > 8-bit or 16-bit; "
            "Python: skimage.color.rgb2gray) or split the channels and pick one"
            + _channel_hint(shape, name)
        )
    if ndim >= 4:
        hint = _channel_hint(shape, name)
        if ndim == 5:
            hint = hint or (f"; a (T, Z, C, Y, X) hyperstack needs one z-slice and one channel, "
                            f"e.g. {name}[:, 0, 0]")
        raise InputError(
            f"{name} has shape {shape} ({ndim} dimensions), but napari-cellseq takes (Y, X) or (T, Y, X); "
            f"pick one channel or z-slice, e.g. {name}[:, 0]{hint}"
        )
    if ndim < 2:
        raise InputError(
            f"{name} has shape {shape} ({ndim} dimension{'s' if ndim != 1 else ''}), "
            "but napari-cellseq takes a 2-D image (Y, X) or a movie (T, Y, X); load an image file"
        )
    if 0 in shape:
        raise InputError(f"{name} is empty (shape {shape}); load an image that contains pixels")
    if min(shape[-2:]) < _MIN_FRAME_SIDE:
        raise InputError(
            f"{name} has shape {shape}: frames of {shape[-2]}x{shape[-1]} pixels are too small to segment; "
            f"napari-cellseq takes (Y, X) or (T, Y, X) with frames of at least {_MIN_FRAME_SIDE}x{_MIN_FRAME_SIDE} pixels "
            f"(if the last axis is time or channels, move it first: np.moveaxis({name}, -1, 0))"
            + _channel_hint(shape, name)
        )


def check_labels(labels: Any, image_shape: tuple[int, ...], name: str = "labels") -> np.ndarray:
    """Check instance labels against their image and return them as an integer array.

    Parameters
    ----------
    labels : (Y, X) or (T, Y, X) instance ids, 0 = background, same shape as the image.
    image_shape : shape of the image the labels belong to.
    name : what to call them in messages.

    Returns
    -------
    np.ndarray
        Integer labels of shape ``image_shape``: unchanged for integer dtypes; bool is cast to
        uint8 (True -> 1); floats whose values are all whole numbers are cast to int32 (with a
        logged warning).

    Raises
    ------
    InputError
        Other shape than the image, non-integral floats, NaN/Inf, complex / non-numeric dtype, or
        negative ids.
    """
    arr = np.asarray(labels)
    image_shape = tuple(int(s) for s in image_shape)
    if arr.shape != image_shape:
        raise InputError(
            f"{name} have shape {arr.shape} but the image {image_shape}: paint on a Labels layer created from this image"
        )
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contain NaN or infinite values; save them as a 16-bit integer TIFF with ids 0, 1, 2, ...")
        if arr.size and not np.array_equal(arr, np.round(arr)):
            raise InputError(
                f"{name} must be integer instance ids, got {arr.dtype} with fractional values; "
                "save them as a 16-bit integer TIFF (Fiji: Image > Type > 16-bit)"
            )
        if arr.size and (arr.min() < 0):
            raise InputError(_negative_message(name, arr.min()))
        if arr.size and arr.max() > np.iinfo(np.int32).max:
            raise InputError(f"{name} contain ids up to {arr.max():.0f}, too large for instance ids; renumber them from 1")
        logger.warning("%s are %s; using them as integer ids (int32)", name, arr.dtype)
        return arr.astype(np.int32)
    if kind not in "ui":
        raise InputError(
            f"{name} must be integer instance ids, got dtype {arr.dtype}; save them as a 16-bit integer TIFF"
        )
    if kind == "i" and arr.size and arr.min() < 0:
        raise InputError(_negative_message(name, arr.min()))
    return arr


def _negative_message(name: str, lowest: Any) -> str:
    return (
        f"{name} contain negative values (minimum {lowest.item()!r}); instance ids must be 0 (background) "
        "or positive: renumber them, e.g. with skimage.segmentation.relabel_sequential"
    )
