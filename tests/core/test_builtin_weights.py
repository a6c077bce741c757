"""The built-in starting weights shipped in the package (src/napari_cellseq/builtin_weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

import napari_cellseq
from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.models import default_model_config
from napari_cellseq.core.synthetic_styles import FAMILIES

WEIGHTS = Path(napari_cellseq.__file__).parent / "builtin_weights"


@pytest.mark.parametrize("name", ["unet", "ulstm"])
def test_builtin_file_is_an_ordinary_model_file_with_its_origin(name):
    path = WEIGHTS / f"{name}.pt"
    assert path.stat().st_size < 10e6  # a few MB: default widths
    ckpt = load_checkpoint(path)  # torch.load(weights_only=True) and every field checked
    assert ckpt.model_config == default_model_config(name)
    assert ckpt.model_config.num_classes == 3 and ckpt.data_config.target == "3class"
    origin = ckpt.training.origin
    assert origin["script"] == "scripts/train_builtin.py"
    assert origin["steps"] == ckpt.training.iterations > 0
    assert isinstance(origin["seed"], int) and origin["cores"] >= 1 and origin["torch_threads"] >= 1
    assert origin["train_seconds"] > 0
    assert set(origin["styles"]) == set(FAMILIES) and sum(origin["styles"].values()) == origin["movies"]
    assert set(origin["heldout_per_style"]) == set(FAMILIES)
    assert ckpt.training.threshold is not None and ckpt.training.threshold.method == "calibration"
    assert ckpt.postprocess_config.threshold == ckpt.training.threshold.threshold


def test_the_readme_describes_both_files():
    text = (WEIGHTS / "README.md").read_text()
    assert "## unet.pt" in text and "## ulstm.pt" in text and "scripts/train_builtin.py" in text
