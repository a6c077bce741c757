"""Training on 2 processes (torchrun, gloo): one model, the ranks stop at the same step on the time
budget, only rank 0 writes, and the model file is the ordinary one and segments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.distributed.ddp import REASONS, DDPRun, launched
from napari_cellseq.core.io import write_tiff_atomic
from napari_cellseq.core.pipeline import load_model, segment
from napari_cellseq.core.synthetic import synthetic_timelapse

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def _torchrun(args, tmp_path, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def test_two_ranks_train_one_model_and_stop_together(tmp_path):
    run = _torchrun([str(HERE / "ddp_rank.py"), str(tmp_path), "6"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["reason"] == r1["reason"] == "time"
    assert r0["steps"] == r1["steps"] > 0  # the same step on both ranks
    assert r0["losses"] == r1["losses"]  # the loss each step reports is the mean over the ranks
    assert r0["path"] == str(tmp_path / "model.pt") and r1["path"] is None  # rank 0 alone writes
    ckpt = load_model(tmp_path / "model.pt")
    assert ckpt.training["iterations"] == r0["steps"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "rank0.json", "rank1.json"]


def test_torchrun_cli_module_trains_a_model_that_segments(tmp_path):
    image, labels = synthetic_timelapse(n_frames=4, shape=(64, 64), n_cells=5, seed=4, radius_range=(4.0, 8.0))
    write_tiff_atomic(tmp_path / "img.tif", np.asarray(image))
    write_tiff_atomic(tmp_path / "lab.tif", np.asarray(labels))
    run = _torchrun(["-m", "napari_cellseq", "train", "--image", "img.tif", "--labels", "lab.tif", "--model", "unet",
                     "--width", "4", "--crop", "48", "--batch-size", "2", "--max-time", "6", "--device", "cpu",
                     "--out", "m.pt"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("done (time) after") == 1  # rank 0 alone reports
    labels_out = segment(tifffile.imread(tmp_path / "img.tif"), tmp_path / "m.pt", device="cpu")
    assert labels_out.shape == (4, 64, 64) and labels_out.dtype == np.uint16


def test_rank_seeds_and_stop_priority():
    run = DDPRun(rank=1, world_size=2, device=None)
    assert run.seed(7) == [7, 1] and DDPRun(0, 2, None).seed(7) == [7, 0]
    assert np.random.default_rng(run.seed(7)).random() != np.random.default_rng([7, 0]).random()
    assert REASONS.index("stopped") > REASONS.index("time") > REASONS.index("iterations") > REASONS.index(None)
    assert not launched() or os.environ.get("WORLD_SIZE")


@pytest.mark.parametrize("value", ["2", "x"])
def test_launched_reads_world_size(monkeypatch, value):
    monkeypatch.setenv("WORLD_SIZE", value)
    assert launched() is (value == "2")
