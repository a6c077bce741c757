"""Read a BioImage Model Zoo package written by napari-cellseq back as a :class:`Checkpoint`.

Needs neither bioimageio.spec nor bioimageio.core: the ``.zip`` is opened with :mod:`zipfile`,
``rdf.yaml`` parsed with PyYAML (safe loader), the ``pytorch_state_dict`` weights read with
``torch.load(weights_only=True)`` (no code runs from the file), and the napari-cellseq settings
(normalisation percentiles, target, post-processing threshold) come from ``config.napari_cellseq``.
So ``segment --model PACKAGE.zip`` gives the labels the original model file gives.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import Checkpoint
from ..config import DataConfig, ModelConfig, PostprocessConfig, from_dict
from ..errors import CellseqError, ModelFileError
from ..models import build_model

__all__ = ["is_zoo_package", "load_package"]

_PREFIX = "net."  # CellseqZooModel keeps the network in .net


def is_zoo_package(path: str | os.PathLike) -> bool:
    """True when ``path`` is a zip holding an ``rdf.yaml`` (a BioImage Model Zoo package)."""
    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    try:
        with zipfile.ZipFile(p) as zf:
            return "rdf.yaml" in zf.namelist() or "bioimageio.yaml" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _rdf(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    import yaml

    names = zf.namelist()
    rdf_name = "rdf.yaml" if "rdf.yaml" in names else "bioimageio.yaml"
    try:
        rdf = yaml.safe_load(zf.read(rdf_name).decode("utf-8"))
    except (KeyError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ModelFileError(f"{path}: its {rdf_name} cannot be read ({type(err).__name__}); "
                             "the package is damaged: export it again") from None
    if not isinstance(rdf, dict):
        raise ModelFileError(f"{path}: its {rdf_name} is not a model description; export it again")
    return rdf


def load_package(path: str | os.PathLike) -> Checkpoint:
    """The napari-cellseq model inside zoo package ``path`` (see module docstring).

    Raises :class:`ModelFileError` for a package napari-cellseq did not write (no
    ``config.napari_cellseq``), damaged weights, or weights that do not fit the network.
    """
    p = Path(path)
    try:
        zf = zipfile.ZipFile(p)
    except (OSError, zipfile.BadZipFile) as err:
        raise ModelFileError(f"{p} cannot be opened as a zip file ({type(err).__name__}): "
                             "it is damaged; export the package again") from None
    with zf:
        rdf = _rdf(zf, p)
        settings = (rdf.get("config") or {}).get("napari_cellseq")
        if not isinstance(settings, dict):
            raise ModelFileError(
                f"{p} is a BioImage Model Zoo package that napari-cellseq did not export (it has no "
                "config.napari_cellseq): use it with the zoo's tools (bioimageio.core, deepImageJ), or "
                "train a napari-cellseq model")
        try:
            weights = rdf["weights"]["pytorch_state_dict"]["source"]
            data = zf.read(str(weights))
        except (KeyError, TypeError):
            raise ModelFileError(f"{p} has no pytorch_state_dict weights file; export the package again") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or objects other than tensors
        raise ModelFileError(f"{p}: its weights {weights} cannot be read ({type(err).__name__}); "
                             "export the package again") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and k.startswith(_PREFIX) for k in state):
        raise ModelFileError(f"{p}: its weights {weights} are not those of a napari-cellseq network")
    state = {k[len(_PREFIX):]: v for k, v in state.items()}
    try:
        ckpt = Checkpoint(
            model_config=from_dict(ModelConfig, settings["model_config"]),
            data_config=from_dict(DataConfig, settings["data_config"]),
            postprocess_config=from_dict(PostprocessConfig, settings.get("postprocess_config", {})),
            state_dict=state,
            training=dict(settings.get("training") or {}),
        )
        build_model(ckpt.model_config).load_state_dict(state)
    except KeyError as err:
        raise ModelFileError(f"{p}: config.napari_cellseq lacks {err}; export the package again") from None
    except RuntimeError:
        raise ModelFileError(f"{p}: its weights do not fit a {settings['model_config'].get('name')!r} network; "
                             "the package is damaged or was edited") from None
    except CellseqError as err:
        raise ModelFileError(f"{p}: {err}") from None
    return ckpt
