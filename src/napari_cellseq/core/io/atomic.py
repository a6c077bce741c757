"""Atomic files: nothing half-written, nothing overwritten silently.

Every file napari-cellseq writes goes through :func:`atomic_path`: it is written to a hidden
temporary file ``.tmp-<pid>-<random>-<name>`` in the target folder and renamed into place only
when complete, so an interrupted run never leaves a half-written TIFF or model file and never
destroys the previous version. Temporary files of processes killed outright (SIGKILL, power
cut) are removed by the next write of the same file.

An existing file is kept unless ``overwrite=True``: :func:`refuse_existing` raises
:class:`OutputExistsError` with the one "already exists; pass --overwrite" message
(:func:`exists_message`) that the core, the CLI and the GUI all show.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
from .tiff_file import PathLike

__all__ = [
    "OutputExistsError",
    "OVERWRITE_HOW",
    "exists_message",
    "refuse_existing",
    "atomic_path",
    "atomic_write_bytes",
]

logger = logging.getLogger(__name__)

#: How to replace an existing output, in the CLI and the Python API.
OVERWRITE_HOW = "pass --overwrite (overwrite=True)"


class OutputExistsError(InputError, FileExistsError):
    """Output files exist and ``overwrite`` was not given; also a :class:`FileExistsError`.

    ``paths`` are the existing files and ``instead`` the alternative offered, so that a front
    end can say how to replace them in its own words (:meth:`reworded`).
    """

    def __init__(self, message: str, paths: Sequence[PathLike] = (), instead: str = "another name"):
        super().__init__(message)
        self.paths = [Path(p) for p in paths]
        self.instead = instead

    def __reduce__(self):  # pickled with its paths (also by tblib, which ships worker errors)
        return type(self), (self.args[0] if self.args else "", self.paths, self.instead)

    def reworded(self, how: str) -> str:
        """The message with ``how`` to replace the files, e.g. ``"tick 'overwrite existing files'"``."""
        return exists_message(self.paths, self.instead, how) if self.paths else str(self)


def exists_message(paths: Sequence[PathLike], instead: str = "another name", how: str = OVERWRITE_HOW) -> str:
    """The one message for outputs that exist, e.g.

    ``out.tif already exists; pass --overwrite (overwrite=True) to replace it, or choose another name``
    or ``res/mask001.tif and 2 more already exist; ... to replace them, or choose another folder``.

    ``instead`` is the alternative offered (``"another --out folder"``), ``how`` how to replace.
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1:
        return f"{paths[0]} already exists; {how} to replace it, or choose {instead}"
    return f"{paths[0]} and {len(paths) - 1} more already exist; {how} to replace them, or choose {instead}"


def refuse_existing(paths: Sequence[PathLike], overwrite: bool, instead: str = "another name") -> None:
    """Raise :class:`OutputExistsError` naming those of ``paths`` that exist, unless ``overwrite``."""
    if overwrite:
        return
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing:
        raise OutputExistsError(exists_message(existing, instead), existing, instead)


def ensure_folder(folder: Path) -> None:
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


def write_error(target: Path, exc: OSError) -> InputError:
    """The :class:`InputError` for an ``OSError`` (disk full, ...) while writing ``target``."""
    return InputError(
        f"could not write {target}: {exc.strerror or exc}; free disk space or choose another output folder"
    )


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


def new_temp(target: Path) -> Path:
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

    Only files named by :func:`new_temp` for this very file name whose writing process no
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
    refuse_existing([target], overwrite)
    ensure_folder(target.parent)
    _remove_stale_temps(target)
    tmp = new_temp(target)
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
                    raise OutputExistsError(exists_message([target]), [target]) from None
                except OSError:  # file system without hard links (FAT, some network shares)
                    if target.exists():
                        raise OutputExistsError(exists_message([target]), [target]) from None
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
            raise write_error(target, exc) from None
    return target
