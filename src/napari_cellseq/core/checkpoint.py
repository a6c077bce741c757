"""Model files: one file with weights, configs, normalisation and versions.

The file is a ``torch.save`` of a dict holding only tensors, strings, numbers, lists and dicts,
and is always read with ``torch.load(weights_only=True)``: loading never unpickles arbitrary
objects, so a crafted file cannot execute code. Files are written atomically (temporary file
in the same folder, then rename), so an interrupted save never leaves a broken model.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import __version__
from .config import DataConfig, ModelConfig, PostprocessConfig, from_dict, to_dict
from .errors import ModelFileError
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

    def build(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """The network with these weights, in eval mode on ``device``."""
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
    """Read a model file without executing code from it; clear errors for bad files."""
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
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model-file format {version}, newer than this napari-cellseq reads "
            f"({FORMAT_VERSION}): upgrade napari-cellseq"
        )
    try:
        ckpt = Checkpoint(
            model_config=from_dict(ModelConfig, data["model_config"]),
            data_config=from_dict(DataConfig, data["data_config"]),
            postprocess_config=from_dict(PostprocessConfig, data.get("postprocess_config", {})),
            state_dict=data["state_dict"],
            training=TrainingRecord.from_dict(data.get("training", {}), where=str(path)),
        )
    except KeyError as err:
        raise ModelFileError(f"{path} lacks {err}: the file is incomplete; save it again") from err
    try:
        build_model(ckpt.model_config).load_state_dict(ckpt.state_dict)
    except RuntimeError as err:
        raise ModelFileError(
            f"{path}: its weights do not fit a {ckpt.model_config.name!r} network as configured "
            "in the file; the file is damaged or was edited"
        ) from err
    return ckpt
