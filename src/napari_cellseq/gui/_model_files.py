"""Where the GUI keeps model files, and the one way it reads one.

A trained model must survive napari closing, so the Train widget's default model file is
persistent: beside the image file when the image layer was opened from one (and that folder
is writable), else in the per-user data folder of napari-cellseq (``platformdirs``, a napari
dependency: ``~/.local/share/napari-cellseq/models`` on Linux). An existing file is never
replaced: :func:`free_name` numbers the new one (``cells-cellseq-2.pt``). :func:`find_models`
lists the model files there again after a restart (newest first), for the Segment widget.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..core.checkpoint import Checkpoint
from ..core.errors import CellseqError
from ..core.pipeline import load_model

__all__ = ["user_models_dir", "default_model_file", "free_name", "find_models", "builtin_choices", "read_model",
           "load_model_into", "ask_model_file", "SUFFIX"]

SUFFIX = "-cellseq"


def user_models_dir() -> Path:
    """The per-user folder for models of images that have no file of their own."""
    from platformdirs import user_data_path

    return user_data_path("napari-cellseq", appauthor=False) / "models"


def _stem(name: str) -> str:
    """A file-name-safe stem of a layer or file name (``.ome`` dropped)."""
    stem = re.sub(r"\.ome$", "", name, flags=re.IGNORECASE)
    stem = re.sub(r"[^\w.\- ]+", "_", stem).strip(" .")
    return stem or "model"


def _home_of(source: str | None) -> Path | None:
    """The folder of the image file ``source`` if it exists and is writable."""
    if not source:
        return None
    folder = Path(source).expanduser().parent
    return folder if folder.is_dir() and os.access(folder, os.W_OK) else None


def free_name(path: Path) -> Path:
    """``path`` if no file has that name, else ``stem-2.pt``, ``stem-3.pt``, ..."""
    path = Path(path)
    if not path.exists():
        return path
    base = re.sub(r"-\d+$", "", path.stem)
    n = 2
    while (candidate := path.with_name(f"{base}-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def default_model_file(image_name: str, source: str | None = None) -> Path:
    """A new model file for the image layer ``image_name`` opened from ``source`` (or None).

    ``<image folder>/<image stem>-cellseq.pt`` beside the image file, else
    ``<user data folder>/models/<layer name>-cellseq.pt``, numbered when it exists.
    """
    home = _home_of(source)
    if home is not None:
        stem = _stem(Path(source).stem)
    else:
        home = user_models_dir()
        stem = _stem(image_name)
    return free_name(home / f"{stem}{SUFFIX}.pt")


def find_models(source: str | None = None) -> list[Path]:
    """Model files napari-cellseq wrote: beside ``source`` and in the user folder, newest first."""
    found: set[Path] = set()
    home = _home_of(source)
    if home is not None:
        found.update(home.glob(f"*{SUFFIX}*.pt"))
    folder = user_models_dir()
    if folder.is_dir():
        found.update(folder.glob("*.pt"))
    files = [p for p in found if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def builtin_choices(ndim: int) -> list[tuple[str, str]]:
    """``(label, file)`` of the installed built-in models, the one of the network recommended for
    a ``ndim`` image first (:func:`~napari_cellseq.core.models.recommend.recommended_network`);
    a built-in whose file is missing (broken installation) is left out."""
    from ..core.builtin import BUILTINS, builtin_path
    from ..core.models.recommend import recommended_network

    first = recommended_network(2 if ndim == 3 else 1)
    found = []
    for b in sorted(BUILTINS, key=lambda b: b.network != first):
        try:
            path = builtin_path(b.name)
        except CellseqError:
            continue
        found.append((f"built-in {b.network} ({b.name})", str(path)))
    return found


def read_model(path: str | os.PathLike) -> Checkpoint:
    """The checkpoint at ``path``, read without executing code; CellseqError says what is wrong."""
    if not str(path).strip():
        raise CellseqError("choose a model file")
    return load_model(Path(path).expanduser())


def load_model_into(state, path: str | Path) -> bool:
    """Check that ``path`` is a readable model file and make it the session's current model.

    The one "load model" of the GUI (Segment and Export call it); errors become a notification.
    """
    from napari.utils.notifications import show_error, show_info

    try:
        ckpt = read_model(path)
    except CellseqError as err:
        show_error(str(err))
        return False
    state.model_path = str(Path(path).expanduser())
    show_info(f"loaded {ckpt.model_config.name} model ({ckpt.training.get('iterations', '?')} "
              f"iterations) from {path}")
    return True


def ask_model_file(parent=None) -> str | None:
    """A file dialog for one model file (None when cancelled)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(parent, "Load model", "", "napari-cellseq model (*.pt);;all files (*)")
    return path or None
