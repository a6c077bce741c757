"""Built-in starting weights: U-Net and U-LSTM models shipped inside the package.

A built-in is an ordinary model file (as ``train`` writes it, read with
``torch.load(weights_only=True)`` by :func:`~napari_cellseq.core.checkpoint.load_checkpoint`),
trained only on synthetic movies (:mod:`napari_cellseq.core.synthetic_styles`), and lives in the
package data folder ``napari_cellseq/builtin_weights/`` (read with :mod:`importlib.resources`
when asked for: nothing happens at import). ``scripts/train_builtin.py`` reproduces each file
(see the README.md there: steps, seconds, cores); each file's ``training.origin`` says how.

What users type, resolved here for every entry point (CLI, Python, napari widgets):

* ``"builtin"``: the built-in that fits the chosen network and target (training), or the input
  (segmentation: the built-in of the network recommended for it,
  :func:`~napari_cellseq.core.models.recommend.recommended_network`); none fits: one
  :class:`~napari_cellseq.core.errors.InputError` naming the networks that have one;
* a built-in's name (``"builtin-unet"``, ``"builtin-ulstm"``): that built-in;
* ``"random"`` (training only): fresh random weights;
* anything else: a model file path.

:data:`DEFAULT_INIT` is what training starts from when the caller does not say.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING, Any

from .errors import CellseqError, InputError

if TYPE_CHECKING:  # (imported when used: the CLI's parser reads DEFAULT_INIT without torch)
    from .checkpoint import Checkpoint

__all__ = [
    "Builtin",
    "BUILTINS",
    "BUILTIN",
    "RANDOM",
    "DEFAULT_INIT",
    "StartingPoint",
    "builtin_names",
    "get_builtin",
    "builtin_for",
    "no_builtin_message",
    "builtin_path",
    "builtin_of_path",
    "load_builtin",
    "resolve_init",
    "segment_model",
]

#: What users type for "the built-in that fits".
BUILTIN = "builtin"
#: What users type for fresh random weights (training).
RANDOM = "random"
#: What training starts from when the caller does not say (CLI ``--init``, ``train(init=None)``,
#: the Train widget's "start from"): ``"builtin"``, chosen by measurement (README, "Built-in
#: starting weights": HeLa, frames 0-4 painted, 2 CPU cores, one run per arm; SEG on frames
#: 10-19 from built-in vs random: U-Net 0.861 vs 0.677 at 15 s and 0.933 vs 0.924 at 600 s,
#: U-LSTM 0.744 vs 0.644 at 15 s and 0.906 vs 0.876 at 600 s). As a default, ``"builtin"``
#: falls back to random weights where no built-in fits (e.g. target ``classes``, a network
#: without one, or other widths); asked for explicitly, it fails there instead.
DEFAULT_INIT = BUILTIN

_PACKAGE_FOLDER = "builtin_weights"


@dataclass(frozen=True)
class Builtin:
    """One built-in model.

    name : what users type (``--init NAME``, ``segment --model NAME``).
    network, target : the network (:func:`~napari_cellseq.core.models.build_model` name) and
        the target it was trained for; a run with that network and target can start from it.
    learned_from : one line on the data it learned from.
    filename : its file in the package data folder.
    """

    name: str
    network: str
    target: str
    learned_from: str
    filename: str

    @property
    def path(self) -> Path:
        return builtin_path(self.name)

    def size_bytes(self) -> int:
        """The file size (raises :class:`CellseqError` when the package data is missing)."""
        return self.path.stat().st_size


_SYNTHETIC = ("synthetic {what} only (napari_cellseq.core.synthetic_styles): fluorescent nuclei, bright-field and "
              "phase-contrast cells, bacteria-like rods; touching, dividing and dim cells; uneven light, blur, "
              "noise; 8 and 16 bit")

#: The built-ins, in the order ``napari-cellseq models`` lists them.
BUILTINS: tuple[Builtin, ...] = (
    Builtin("builtin-unet", "unet", "3class", _SYNTHETIC.format(what="images"), "unet.pt"),
    Builtin("builtin-ulstm", "ulstm", "3class", _SYNTHETIC.format(what="time-lapse movies"),
            "ulstm.pt"),
)


def builtin_names() -> list[str]:
    return [b.name for b in BUILTINS]


def get_builtin(name: str) -> Builtin | None:
    """The built-in called ``name`` (None: there is none)."""
    for b in BUILTINS:
        if b.name == name:
            return b
    return None


def builtin_for(network: str, target: str = "3class") -> Builtin | None:
    """The built-in a ``network`` run with ``target`` can start from (None: none fits)."""
    for b in BUILTINS:
        if b.network == network and b.target == target:
            return b
    return None


def _which_have_one() -> str:
    return ", ".join(f"{b.network} ({b.name})" for b in BUILTINS)


def no_builtin_message(network: str, target: str) -> str:
    """Why ``"builtin"`` does not work for ``network`` / ``target``, and what to do instead."""
    what = (f"target {target!r}" if any(b.network == network for b in BUILTINS)
            else f"the {network!r} network")
    targets = sorted({b.target for b in BUILTINS})
    return (f"there are no built-in weights for {what}: built-ins exist for {_which_have_one()} with "
            f"target {' / '.join(targets)}; start from random weights (--init random) or a model file")


def builtin_path(name: str) -> Path:
    """The file of the built-in ``name`` inside the installed package.

    Raises :class:`CellseqError` for an unknown name, or when the file is missing (a broken
    installation: the package data was not installed).
    """
    from importlib.resources import files

    builtin = get_builtin(name)
    if builtin is None:
        raise InputError(f"{name!r} is not a built-in model: choose one of {', '.join(builtin_names())}")
    resource = files("napari_cellseq").joinpath(_PACKAGE_FOLDER, builtin.filename)
    path = Path(str(resource))
    if not path.is_file():
        raise CellseqError(
            f"the built-in model {name} is missing from this installation (no file {path}): the "
            "package data was not installed; reinstall napari-cellseq (pip install --force-reinstall "
            "napari-cellseq), or train a model of your own"
        )
    return path


def builtin_of_path(path: str | os.PathLike) -> Builtin | None:
    """The built-in whose installed file ``path`` is (None: ``path`` is another file)."""
    try:
        target = Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return None
    for b in BUILTINS:
        try:
            if builtin_path(b.name).resolve() == target:
                return b
        except CellseqError:
            continue
    return None


def load_builtin(name: str) -> Checkpoint:
    """The checkpoint of the built-in ``name``, read without executing code."""
    from .checkpoint import load_checkpoint

    return load_checkpoint(builtin_path(name))


@dataclass(frozen=True)
class StartingPoint:
    """What a training run starts from.

    checkpoint : the model to start from (None: random weights).
    builtin : the built-in's name when it is one (then the run is a fine-tuning: its record
        counts only this run's steps and says ``started_from``).
    """

    checkpoint: "Checkpoint | None" = None
    builtin: str | None = None

    @property
    def random(self) -> bool:
        return self.checkpoint is None


def resolve_init(init: Any, network: str, target: str = "3class", model_config: Any = None) -> StartingPoint:
    """What training starts from, for what the caller gave as ``init``.

    init : ``None`` (:data:`DEFAULT_INIT`), ``"random"``, ``"builtin"`` (the built-in of
        ``network`` and ``target``), a built-in's name, a model file path, a
        :class:`~napari_cellseq.core.checkpoint.Checkpoint` or a :class:`StartingPoint`
        (resolved before: returned as it is).
    network, target : the run's network and target (they choose the built-in for ``"builtin"``).
    model_config : the network config the caller asked for, if any: as a default (``init`` None
        with :data:`DEFAULT_INIT` ``"builtin"``), a built-in is only taken when it is the
        network's default config (a ``--width`` of the caller's own starts from random weights).

    Raises :class:`InputError` when ``"builtin"`` is asked for and none fits, or for a model
    file that cannot be read (:class:`~napari_cellseq.core.errors.ModelFileError`).
    """
    from .checkpoint import Checkpoint

    if isinstance(init, StartingPoint):
        return init
    if isinstance(init, Checkpoint):
        return StartingPoint(init)
    if init is None:
        if DEFAULT_INIT == RANDOM or builtin_for(network, target) is None or not _default_config(model_config):
            return StartingPoint()
        init = DEFAULT_INIT
    text = os.fspath(init)
    if text == RANDOM:
        return StartingPoint()
    if text == BUILTIN:
        builtin = builtin_for(network, target)
        if builtin is None:
            raise InputError(no_builtin_message(network, target))
        return StartingPoint(load_builtin(builtin.name), builtin.name)
    builtin = get_builtin(text) or builtin_of_path(text)
    if builtin is not None:
        if builtin.target != target:
            raise InputError(
                f"the built-in {builtin.name} was trained for target {builtin.target!r}, not {target!r}: "
                "start from random weights (--init random) or from a model file of that target"
            )
        return StartingPoint(load_builtin(builtin.name), builtin.name)
    from .pipeline import load_model

    return StartingPoint(load_model(text))


def _default_config(model_config: Any) -> bool:
    """Whether ``model_config`` (None: not given) is its network's default (any classes)."""
    if model_config is None:
        return True
    from dataclasses import replace

    from .models import default_model_config

    return replace(model_config, num_classes=3) == replace(default_model_config(model_config.name), num_classes=3)


def segment_model(model: Any, n_frames: int) -> Any:
    """The model to segment with, for what the caller gave: ``"builtin"`` is the built-in of the
    network recommended for ``n_frames`` frames (:func:`~.models.recommend.recommended_network`:
    the U-Net, for movies too, by measurement); a built-in's name is its file; anything else (a
    path, a checkpoint) is returned unchanged."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    text = os.fspath(model)
    if text == BUILTIN:
        from .models.recommend import recommended_network

        return builtin_path(builtin_for(recommended_network(n_frames)).name)
    if get_builtin(text) is not None:
        return builtin_path(text)
    return model
