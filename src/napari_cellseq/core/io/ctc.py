"""Cell Tracking Challenge masks: one 16-bit TIFF per frame, ``mask000.tif``, ``mask001.tif``, ...

The format of the challenge's result folders (``01_RES``) and ground truth (``man_seg000.tif``),
read by its evaluation tools (Ulman et al., Nat. Methods 2017; Maska et al., Nat. Methods 2023).
:func:`ctc_mask_writer` writes frame by frame (segmenting a movie larger than memory) and is
where every check lives; :func:`write_ctc_masks` writes a whole ``(T, Y, X)`` array through it.
All masks of one export appear together at the end, or none does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError
from .atomic import atomic_path, ensure_folder, refuse_existing, write_error
from .checks import check_labels
from .tiff_file import PathLike
from .writers import check_compression, tiff_kwargs

__all__ = ["ctc_mask_name", "ctc_mask_writer", "CtcMaskWriter", "write_ctc_masks"]

logger = logging.getLogger(__name__)

_MAX_ID = 65535  # the challenge's masks are 16-bit


def ctc_mask_name(index: int, n_frames: int, prefix: str = "mask") -> str:
    """Cell Tracking Challenge file name of frame ``index`` of an ``n_frames`` movie.

    Three digits (``mask000.tif``) up to 1000 frames, more digits (``mask0000.tif``) beyond.
    """
    digits = max(3, len(str(max(n_frames, 1) - 1)))
    return f"{prefix}{index:0{digits}d}.tif"


class CtcMaskWriter:
    """Writes the masks of :func:`ctc_mask_writer` one frame at a time.

    ``paths``: the ``n_frames`` mask files in frame order; ``frame_shape``: ``(Y, X)`` of every
    mask (from ``shape=`` or the first frame written).
    """

    def __init__(self, paths: list[Path], overwrite: bool, compression: Any, stack: ExitStack,
                 frame_shape: tuple[int, int] | None = None):
        self.paths, self._overwrite, self._compression, self._stack = paths, overwrite, compression, stack
        self.frame_shape = frame_shape
        self._written: set[int] = set()

    def write(self, t: int, labels: np.ndarray) -> None:
        """Write ``labels (Y, X)`` (ids 0..65535) as the mask of frame ``t`` (to a hidden file
        that gets its name when the ``with`` block ends).

        Raises :class:`InputError` for what :func:`~napari_cellseq.core.io.checks.check_labels`
        refuses, a frame that is not 2-D or has another shape than the others, and an id > 65535.
        """
        arr = check_labels(labels, np.shape(labels), name="labels")
        if arr.ndim != 2 or arr.size == 0:
            raise InputError(f"a mask is one (Y, X) frame, got shape {arr.shape}")
        if self.frame_shape is None:
            self.frame_shape = tuple(arr.shape)
        elif tuple(arr.shape) != self.frame_shape:
            raise InputError(f"masks of one movie must all have shape {self.frame_shape}, got {tuple(arr.shape)}")
        top = int(arr.max())
        if top > _MAX_ID:
            raise InputError(
                f"label id {top} is larger than {_MAX_ID}, but the Cell Tracking Challenge format requires 16-bit "
                "masks; renumber the ids (skimage.segmentation.relabel_sequential) or export the labels as one "
                "32-bit TIFF stack instead"
            )
        target = self.paths[int(t)]
        kwargs = tiff_kwargs(target, arr.shape, np.uint16, "YX", self._compression)
        tmp = self._stack.enter_context(atomic_path(target, overwrite=self._overwrite))
        try:
            tifffile.imwrite(tmp, arr.astype(np.uint16, copy=False), **kwargs)
        except OSError as exc:
            raise write_error(target, exc) from None
        self._written.add(int(t))

    def fill(self) -> None:
        """Write empty masks for the frames not written (needs the frame shape)."""
        if self.frame_shape is None:
            return
        for t in range(len(self.paths)):
            if t not in self._written:
                self.write(t, np.zeros(self.frame_shape, np.uint16))


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
    """Context manager: write the masks of an ``n_frames`` movie into ``folder`` frame by frame.

    Checked on entry: ``prefix`` (a plain file name part: ``"mask"``, ``"man_seg"``),
    ``folder`` (created if missing; not a file), existing masks (:class:`OutputExistsError`
    unless ``overwrite``, before anything is written), ``compression`` (as for
    :func:`~napari_cellseq.core.io.write_tiff_atomic`); older mask files beyond ``n_frames``
    are warned about. Each :meth:`CtcMaskWriter.write` checks and writes one ``(Y, X)`` uint16
    mask to a hidden temporary file; when the ``with`` block ends normally, frames not written
    get empty masks (frame size from ``shape`` or the written frames) and all files are renamed
    into place. On an exception none of them appears, and folders created here are removed
    again if they stayed empty. Only one frame is held in memory.
    """
    out = Path(folder).expanduser()
    if not prefix or any(sep in prefix for sep in ("/", "\\")) or prefix in (".", ".."):
        raise InputError(f"prefix {prefix!r} must be a plain file name part like 'mask'; put folders into `folder`")
    n = int(n_frames)
    paths = [out / ctc_mask_name(t, n, prefix) for t in range(n)]
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder; choose another output folder")
    refuse_existing(paths, overwrite, instead="another folder")
    compression = check_compression(compression)
    created = [d for d in (out, *out.parents) if not d.exists()]  # deepest first
    ensure_folder(out)
    names = {p.name for p in paths}
    pattern = re.compile(re.escape(prefix) + r"\d+\.tif")
    stale = sorted(p.name for p in out.iterdir() if pattern.fullmatch(p.name) and p.name not in names)
    if stale:
        logger.warning(
            "%s also holds %d older mask files (e.g. %s) that are not part of this export; "
            "delete them before evaluating", out, len(stale), stale[0],
        )
    try:
        with ExitStack() as stack:  # one atomic_path per mask: all renamed at the end, or none
            writer = CtcMaskWriter(paths, overwrite, compression, stack,
                                   None if shape is None else tuple(int(v) for v in shape))
            yield writer
            writer.fill()
    except BaseException:
        for d in created:  # leave no empty folders behind
            try:
                d.rmdir()
            except OSError:
                break
        raise


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
    compression : as for :func:`~napari_cellseq.core.io.write_tiff_atomic`.

    Returns
    -------
    list[Path]
        The T written files in frame order; each is (Y, X) uint16, written atomically.

    Raises
    ------
    InputError
        Wrong shape, and everything :func:`ctc_mask_writer` refuses (non-integer or negative
        labels, an id > 65535, a bad prefix); nothing is written then.
    OutputExistsError
        A mask file exists and ``overwrite`` is False (checked before writing anything).
    """
    arr = np.asarray(labels)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.size == 0:
        raise InputError(
            f"labels for Cell Tracking Challenge masks must be (T, Y, X) or (Y, X), got shape {np.shape(labels)}; "
            "pass one label image per frame"
        )
    with ctc_mask_writer(folder, arr.shape[0], overwrite=overwrite, prefix=prefix,
                         compression=compression) as writer:
        for t in range(arr.shape[0]):
            writer.write(t, arr[t])
    return writer.paths
