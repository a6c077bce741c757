"""scripts/train_builtin.py: seeded, from scratch, synthetic only; a tiny run end to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.models import default_model_config
from napari_cellseq.core.synthetic_styles import FAMILIES

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_builtin.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_builtin", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--iterations", "2", "--movies", "2", "--frames", "3", "--side", "64", "--heldout", "1", "--threads", "1"]


def test_a_tiny_run_writes_an_ordinary_seeded_model_file(script, tmp_path, capsys):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert script.main(["--model", "unet", *TINY, "--out", str(a)]) == 0
    out = capsys.readouterr().out
    assert "1 torch threads" in out and "held-out synthetic movies" in out
    assert all(f in out for f in FAMILIES)  # the per-style table
    assert script.main(["--model", "unet", *TINY, "--out", str(b)]) == 0
    first, second = load_checkpoint(a), load_checkpoint(b)
    assert first.model_config == default_model_config("unet") and first.data_config.target == "3class"
    for key, value in first.state_dict.items():  # same seed, same machine: the same weights
        assert torch.equal(value, second.state_dict[key]), key
    origin = first.training.origin
    assert origin["seed"] == 0 and origin["steps"] == 2 and origin["movies"] == 2
    assert sum(origin["styles"].values()) == 2 and set(origin["heldout_per_style"]) == set(FAMILIES)
    assert origin["train_seconds"] > 0  # the recorded command: what makes the weights, not where they go
    assert origin["command"] == "scripts/train_builtin.py --model unet " + " ".join(TINY)
    assert first.postprocess_config.threshold in script.CANDIDATES
    assert first.training.threshold.method == "calibration" and first.training.threshold.frames == ()
    assert not list(tmp_path.glob(".*training"))  # the file being trained is gone


def test_a_second_stage_continues_a_file_and_records_it(script, tmp_path, capsys):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    assert script.main(["--model", "unet", *TINY, "--out", str(first)]) == 0
    assert load_checkpoint(first).training.origin["init"] == "random"  # from scratch by default
    assert script.main(["--model", "unet", *TINY, "--init", str(first), "--out", str(second)]) == 0
    a, b = load_checkpoint(first), load_checkpoint(second)
    init = b.training.origin["init"]
    assert init["file"] == "a.pt" and init["steps"] == 2 and init["init"] == "random"
    assert init["command"] == a.training.origin["command"] and len(init["sha256"]) == 64
    assert any(not torch.equal(v, b.state_dict[k]) for k, v in a.state_dict.items())  # trained on
    with pytest.raises(SystemExit, match="ulstm"):  # a file of another network
        script.main(["--model", "ulstm", *TINY, "--init", str(first), "--out", str(tmp_path / "c.pt")])


def test_an_existing_file_is_not_replaced_silently(script, tmp_path, capsys):
    out = tmp_path / "m.pt"
    out.write_bytes(b"keep")
    assert script.main(["--model", "unet", *TINY, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep"


def test_pool_and_heldout_movies_differ_and_repeat(script):
    image, labels, lengths, families = script.training_pool(0, 3, 2, 64)
    again = script.training_pool(0, 3, 2, 64)
    assert image.shape == labels.shape == (6, 64, 64) and lengths == (2, 2, 2) and len(families) == 3
    np.testing.assert_array_equal(image, again[0])
    held = script.heldout_movies(0, 1, 2, 64)
    assert [m.style.family for m in held] == list(FAMILIES)
    assert not any(np.array_equal(m.image.astype(np.float32), image[:2]) for m in held)
