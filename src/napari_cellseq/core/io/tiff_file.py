"""What a file must pass before its pixels are read as TIFF, and the errors when it does not.

Shared by :mod:`.reading` (whole-file reads) and :mod:`.views` (page-by-page reads): the path
checks that need only the first bytes (missing file, folder, empty, another format), the first
image series of an open file, and the one :class:`~napari_cellseq.core.errors.InputError` for
an exception tifffile raises on a damaged file or a missing codec.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Union

import tifffile

from ..errors import InputError

__all__ = ["PathLike", "check_tiff_file", "first_series", "tiff_error", "CONVERT_HINT"]

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
CONVERT_HINT = "convert it to TIFF, e.g. open it in Fiji and use File > Save As > Tiff..."


def _describe_non_tiff(head: bytes) -> str:
    for magic, what in _OTHER_FORMATS:
        if head.startswith(magic):
            return f" (it looks like {what})"
    return ""


def check_tiff_file(path: PathLike, what: str) -> Path:
    """``path`` with ``~`` expanded, after the checks that need only its first 16 bytes.

    ``what`` ("image", "labels") names the file in messages. Raises :class:`InputError` for a
    missing file, a folder, an unreadable or empty file, and a file that is not a TIFF (naming
    the format when it is a common one: PNG, JPEG, CZI, ND2, HDF5, ...).
    """
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
        raise InputError(f"{p} is not a TIFF file{_describe_non_tiff(head)}; {CONVERT_HINT}")
    return p


def tiff_error(p: Path, exc: BaseException) -> InputError:
    """The :class:`InputError` for an exception tifffile raised while reading ``p``.

    A codec tifffile cannot find (it decodes LZW, zstd, JPEG, ... through the ``imagecodecs``
    package) gives one line naming the package to install; anything else reads as a damaged file.
    """
    if "imagecodecs" in str(exc):
        return InputError(
            f"{p} is compressed with a codec that needs the 'imagecodecs' package, which is missing or too old "
            "here; run `pip install --upgrade imagecodecs`, or re-save the TIFF uncompressed "
            "(Fiji: File > Save As > Tiff...)"
        )
    detail = (str(exc).strip().splitlines() or [""])[0]
    return InputError(
        f"cannot read {p} as TIFF ({type(exc).__name__}: {detail}); the file is probably truncated or "
        "corrupt: export it again, e.g. Fiji: File > Save As > Tiff..."
    )


def first_series(tif: tifffile.TiffFile, p: Path, what: str) -> tifffile.TiffPageSeries:
    """The first image series of the open file ``tif`` (a warning if it holds more than one).

    Raises :class:`InputError` when the file holds no image data or an empty series.
    """
    if not tif.series:
        raise InputError(f"{p} contains no image data; export the {what} again as TIFF")
    if len(tif.series) > 1:
        logger.warning("%s holds %d image series; reading only the first", p, len(tif.series))
    series = tif.series[0]
    if 0 in tuple(series.shape):
        raise InputError(f"{p} contains no image data (shape {tuple(series.shape)}); export the {what} again as TIFF")
    return series
