"""Model files: one file with weights, configs, normalisation and versions.

The file is a ``torch.save`` of a dict holding only tensors, strings, numbers, lists and dicts,
and is always read with ``torch.load(weights_only=True)``: loading never unpickles arbitrary
objects, so a crafted file cannot execute code. Files are written atomically (temporary file
in the same folder, then rename), so an interrupted save never leaves a broken model.

Every field read from a model file is data from outside: :func:`load_checkpoint` checks all of
them (types of every config field, value ranges segmentation relies on, unknown or missing
fields, weights that are tensors, finite and fit the network) and reports the first problem as
one :class:`~napari_cellseq.core.errors.ModelFileError` naming the field and the fix, never a
``TypeError`` from a config or a numpy error later in post-processing.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import pickle
import platform
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import torch

from .. import __version__
from .config import DataConfig, ModelConfig, PostprocessConfig, to_dict
from .errors import CellseqError, ModelFileError
from .models import build_model

if TYPE_CHECKING:
    from .training.record import TrainingRecord

logger = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint"]

FORMAT_VERSION = 1
_MAGIC = "napari-cellseq model"


@dataclass
class Checkpoint:
    """A trained model and everything needed to apply it to new images."""

    model_config: ModelConfig
    data_config: DataConfig
    state_dict: dict[str, torch.Tensor]
    postprocess_config: PostprocessConfig = field(default_factory=PostprocessConfig)
    # what the run did (iterations, seconds, frames, loss, threshold choice, ...); a dict in the
    # stored layout is accepted and converted
    training: TrainingRecord = None  # type: ignore[assignment]

    def __post_init__(self):
        from .training.record import TrainingRecord

        if not isinstance(self.training, TrainingRecord):
            self.training = TrainingRecord.from_dict({} if self.training is None else self.training,
                                                     where="the checkpoint")

    # the network load_checkpoint built to check the weights, handed to the first build()
    _network: torch.nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    def build(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """The network with these weights, in eval mode on ``device``.

        The first call after :func:`load_checkpoint` returns the network the load built to check
        the weights (a file is turned into a network once); later calls build a new one.
        """
        model, self._network = self._network, None
        if model is None:
            model = build_model(self.model_config)
            model.load_state_dict(self.state_dict)
        return model.to(device).eval()


def _payload(ckpt: Checkpoint) -> dict[str, Any]:
    return {
        "magic": _MAGIC,
        "format_version": FORMAT_VERSION,
        "model_config": to_dict(ckpt.model_config),
        "data_config": to_dict(ckpt.data_config),
        "postprocess_config": to_dict(ckpt.postprocess_config),
        "training": ckpt.training.to_dict(),
        "versions": {
            "napari_cellseq": __version__,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
        },
        # contiguous: files keep one layout whether the network ran channels-last or not
        "state_dict": {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in ckpt.state_dict.items()},
    }


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``ckpt`` to ``path`` atomically; returns the path."""
    from .io import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(_payload(ckpt), buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a model file without executing code from it; every field is checked.

    Raises :class:`ModelFileError` (an ``InputError``) naming the problem and the fix for a
    missing, damaged, foreign or newer file, a field of the wrong type or out of range, unknown
    or missing fields, and weights that are not finite tensors fitting the configured network.
    """
    from .training.record import TrainingRecord

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}: train one first or check the path")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelFileError(
            f"{path} is not a napari-cellseq model file or contains objects other than weights "
            "and settings (it was refused without running it): use a file saved by napari-cellseq"
        ) from err
    except Exception as err:  # corrupt zip, truncated file, not a torch file at all
        raise ModelFileError(
            f"{path} could not be read as a model file ({type(err).__name__}): "
            "it is damaged or not a napari-cellseq model; train or save it again"
        ) from err
    if not isinstance(data, dict) or data.get("magic") != _MAGIC:
        raise ModelFileError(f"{path} is not a napari-cellseq model file: use a file it saved")
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _field_error(path, "format_version", version, "a whole number >= 1")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model-file format {version}, newer than this napari-cellseq reads "
            f"({FORMAT_VERSION}): upgrade napari-cellseq"
        )
    unknown = sorted(str(k) for k in set(data) - _FIELDS)
    if unknown:
        raise ModelFileError(
            f"{path} has unknown fields {unknown}: it was written by a newer napari-cellseq or "
            "edited; upgrade napari-cellseq or save the model again"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ModelFileError(f"{path} lacks the field(s) {missing}: the file is incomplete; save it again")
    model_config = _config(path, "model_config", ModelConfig, data["model_config"])
    data_config = _config(path, "data_config", DataConfig, data["data_config"])
    postprocess_config = _config(path, "postprocess_config", PostprocessConfig, data.get("postprocess_config", {}))
    versions = data.get("versions", {})
    if not isinstance(versions, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in versions.items()):
        raise _field_error(path, "versions", versions, "a mapping of package names to version texts")
    state_dict = _state_dict(path, data["state_dict"])
    training = TrainingRecord.from_dict(data.get("training", {}), where=str(path))
    network = _network(path, model_config, state_dict)
    ckpt = Checkpoint(model_config=model_config, data_config=data_config, state_dict=state_dict,
                      postprocess_config=postprocess_config, training=training)
    ckpt._network = network
    return ckpt


_REQUIRED = ("magic", "format_version", "model_config", "data_config", "state_dict")
_FIELDS = frozenset(_REQUIRED) | {"postprocess_config", "training", "versions"}
_DAMAGED = "the file is damaged or was edited; train the model again or use a file napari-cellseq saved"

# Value ranges the configs need to be usable (checked on top of the field types).
_AT_LEAST: dict[tuple[str, str], float] = {
    ("model_config", "in_channels"): 1, ("model_config", "num_classes"): 2,
    ("model_config", "base_channels"): 1, ("model_config", "depth"): 1,
    ("data_config", "boundary_width"): 0, ("data_config", "w0"): 0, ("data_config", "crop_size"): 8,
    ("postprocess_config", "min_size"): 0,
}


def _field_error(path: Path, name: str, value: Any, expected: str) -> ModelFileError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return ModelFileError(f"{path}: field {name} is {shown} ({type(value).__name__}), expected {expected}: {_DAMAGED}")


def _expected(tp: Any) -> str:
    """How a field type reads in a message."""
    if tp is Any:
        return "a number, text, true/false or a list of them"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of ({_expected(args[0])})"
        return f"{len(args)} values ({', '.join(_expected(a) for a in args)})"
    return {bool: "true or false", int: "a whole number", float: "a finite number", str: "a text",
            type(None): "none"}.get(tp, getattr(tp, "__name__", str(tp)))


def _typed(value: Any, tp: Any) -> tuple[bool, Any]:
    """``(ok, value converted)``: ``value`` (as stored: lists for tuples) checked against ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        if isinstance(value, (list, tuple)):
            ok = all(_typed(v, Any)[0] for v in value)
            return ok, tuple(_typed(v, Any)[1] for v in value) if ok else value
        ok = value is None or isinstance(value, (bool, int, str)) or (
            isinstance(value, float) and math.isfinite(value))
        return ok, value
    if origin in (Union, types.UnionType):
        for arg in args:
            ok, converted = _typed(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is Literal:
        return (isinstance(value, str) and value in args), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        kinds = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(kinds) != len(value):
            return False, value
        parts = [_typed(v, k) for v, k in zip(value, kinds)]
        return all(ok for ok, _ in parts), tuple(v for _, v in parts)
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def _config(path: Path, section: str, cls: type, stored: Any) -> Any:
    """Config ``cls`` from the file's ``section``, every field checked."""
    if not isinstance(stored, Mapping):
        raise _field_error(path, section, stored, f"a mapping of {cls.__name__} settings")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(stored) - names)
    if unknown:
        raise ModelFileError(
            f"{path}: field {section} has unknown entries {unknown}: the file was written by a newer "
            "napari-cellseq or edited; upgrade napari-cellseq or save the model again"
        )
    values = {}
    for name, value in stored.items():
        ok, converted = _typed(value, hints[name])
        if not ok:
            raise _field_error(path, f"{section}.{name}", value, _expected(hints[name]))
        low = _AT_LEAST.get((section, name))
        if low is not None and converted < low:
            raise _field_error(path, f"{section}.{name}", value, f"at least {low}")
        values[name] = converted
    try:
        config = cls(**values)
    except CellseqError as err:  # the config's own validation
        raise ModelFileError(f"{path}: field {section}: {err}") from None
    _check_ranges(path, section, config)
    return config


def _check_ranges(path: Path, section: str, config: Any) -> None:
    """Value rules beyond types that segmentation and continued training rely on."""
    from .config import TARGETS

    if section == "postprocess_config":
        t = config.threshold
        if t is not None and not 0.0 <= t <= 1.0:
            raise _field_error(path, "postprocess_config.threshold", t, "none or a number from 0 to 1")
    elif section == "data_config":
        lo, hi = config.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise _field_error(path, "data_config.percentiles", list(config.percentiles),
                               "two percentiles low < high between 0 and 100")
        if config.target not in TARGETS:
            raise _field_error(path, "data_config.target", config.target, "one of " + ", ".join(TARGETS))
        if config.sigma0 <= 0:
            raise _field_error(path, "data_config.sigma0", config.sigma0, "a positive number")
        if any(w < 0 for w in config.class_weights):
            raise _field_error(path, "data_config.class_weights", list(config.class_weights),
                               "weights of 0 or more")
    elif section == "model_config":
        keys = [k for k, _ in config.options]
        if not all(isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str) for o in config.options) \
                or len(set(keys)) != len(keys):
            raise _field_error(path, "model_config.options", config.options, "a list of distinct [name, value] pairs")


def _state_dict(path: Path, stored: Any) -> dict[str, torch.Tensor]:
    """The weights: a mapping of parameter names to finite tensors."""
    if not isinstance(stored, Mapping) or not stored:
        raise _field_error(path, "state_dict", stored, "a mapping of parameter names to weight tensors")
    for name, value in stored.items():
        if not isinstance(name, str):
            raise _field_error(path, "state_dict", name, "parameter names as texts")
        if not isinstance(value, torch.Tensor):
            raise _field_error(path, f"state_dict[{name!r}]", value, "a weight tensor")
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            raise ModelFileError(f"{path}: field state_dict[{name!r}] holds NaN or infinite weights: "
                                 "the model diverged or the file is damaged; train the model again")
    return dict(stored)


def _network(path: Path, config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The network ``config`` describes with ``state_dict`` loaded (checks the weights fit)."""
    from .models import model_info

    try:
        model_info(config.name)
    except CellseqError as err:
        raise ModelFileError(
            f"cannot use model file {path}: field model_config.name: {err}; the file was made for a "
            "network this napari-cellseq does not have: upgrade napari-cellseq or train a new model"
        ) from None
    try:
        model = build_model(config)
    except (CellseqError, TypeError, ValueError, KeyError, RuntimeError, ZeroDivisionError) as err:
        raise ModelFileError(
            f"{path}: field model_config does not describe a {config.name!r} network this napari-cellseq "
            f"can build ({type(err).__name__}: {err}); {_DAMAGED}"
        ) from None
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise ModelFileError(
            f"{path}: its weights do not fit a {config.name!r} network as configured "
            "in the file; the file is damaged or was edited"
        ) from err
    return model
