"""The command line as a user calls it: train, segment, evaluate, models, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_cellseq.cli import main


@pytest.fixture()
def files(small_movie, tmp_path):
    image, labels = small_movie
    painted = labels.copy()
    painted[3:] = 0
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", painted)
    tifffile.imwrite(tmp_path / "gt.tif", labels)
    return tmp_path


def test_train_segment_evaluate(files, capsys):
    d = files
    assert main(["train", "--image", str(d / "img.tif"), "--labels", str(d / "lab.tif"), "--frames", "0-2",
                 "--model", "unet", "--out", str(d / "m.pt"), "--iterations", "3", "--width", "4",
                 "--crop", "48", "--batch-size", "2", "--device", "cpu", "--seed", "1"]) == 0
    assert main(["segment", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"),
                 "--out", str(d / "pred.tif")]) == 0
    pred = tifffile.imread(d / "pred.tif")
    assert pred.shape == (6, 96, 96) and pred.dtype == np.uint16
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(d / "gt.tif"), "--pred", str(d / "pred.tif"), "--frames", "3-5"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"seg", "ap50", "dice"} <= set(scores)
    assert 0.0 <= scores["dice"] <= 1.0


def test_evaluate_perfect_prediction(files, capsys):
    d = files
    assert main(["evaluate", "--gt", str(d / "gt.tif"), "--pred", str(d / "gt.tif")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["seg"] == 1.0 and scores["ap50"] == 1.0 and scores["dice"] == 1.0


def test_segment_writes_ctc_masks_and_continues_training(files):
    d = files
    args = ["--image", str(d / "img.tif"), "--labels", str(d / "lab.tif"), "--iterations", "1",
            "--width", "4", "--crop", "32", "--batch-size", "1"]
    assert main(["train", *args, "--out", str(d / "a.pt")]) == 0
    assert main(["train", *args, "--out", str(d / "b.pt"), "--init", str(d / "a.pt")]) == 0
    assert main(["segment", "--model", str(d / "b.pt"), "--image", str(d / "img.tif"),
                 "--out", str(d / "res"), "--ctc"]) == 0
    names = sorted(p.name for p in (d / "res").iterdir())
    assert names == [f"mask{t:03d}.tif" for t in range(6)]
    assert tifffile.imread(d / "res" / "mask004.tif").dtype == np.uint16


def test_train_unroll_reaches_the_model_file(files):
    d = files
    argv = ["train", "--image", str(d / "img.tif"), "--labels", str(d / "lab.tif"), "--frames", "0-2",
            "--model", "ulstm", "--iterations", "2", "--width", "4", "--crop", "32", "--device", "cpu",
            "--init", "random", "--no-calibrate"]
    assert main([*argv, "--out", str(d / "u3.pt"), "--unroll", "3"]) == 0
    assert main([*argv, "--out", str(d / "u.pt")]) == 0
    from napari_cellseq.core.checkpoint import load_checkpoint
    from napari_cellseq.core.config import UNROLL

    assert load_checkpoint(d / "u3.pt").training.unroll == 3
    assert load_checkpoint(d / "u.pt").training.unroll == UNROLL == 2


def test_train_precision_reaches_the_steps_and_the_model_file(files, caplog):
    d = files
    argv = ["train", "--image", str(d / "img.tif"), "--labels", str(d / "lab.tif"), "--frames", "0-2",
            "--model", "ulstm", "--iterations", "2", "--width", "4", "--crop", "32", "--device", "cpu",
            "--init", "random", "--no-calibrate"]
    from napari_cellseq.core.checkpoint import load_checkpoint

    with caplog.at_level("INFO", logger="napari_cellseq.cli"):
        assert main([*argv, "--out", str(d / "bf.pt"), "--precision", "bf16"]) == 0
    assert "training on cpu in bfloat16" in caplog.text
    assert main([*argv, "--out", str(d / "fp.pt"), "--precision", "off"]) == 0
    assert load_checkpoint(d / "bf.pt").training.precision == "bfloat16"
    assert load_checkpoint(d / "fp.pt").training.precision is None  # float32


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--image", "missing.tif", "--labels", "lab.tif", "--out", "m.pt"], "no such file"),
        (["train", "--image", "img.tif", "--labels", "empty.tif", "--out", "m.pt", "--iterations", "1"], "no annotated frame"),
        (["train", "--image", "img.tif", "--labels", "small.tif", "--out", "m.pt"], "shape"),
        (["train", "--image", "img.tif", "--labels", "lab.tif", "--out", "m.pt", "--frames", "0-99"], "0..5"),
        (["train", "--image", "img.tif", "--labels", "lab.tif", "--out", "m.pt", "--model", "nope"], "unknown model"),
        (["train", "--image", "img.tif", "--labels", "lab.tif", "--out", "exists.pt"], "exists"),
        (["segment", "--model", "missing.pt", "--image", "img.tif", "--out", "p.tif"], "no model file"),
        (["segment", "--model", "exists.pt", "--image", "img.tif", "--out", "p.tif"], "model file"),
        (["train", "--image", "img.tif", "--labels", "lab.tif", "--out", "m.pt", "--device", "cuda"], "not available"),
    ],
)
def test_errors_are_one_clear_line(files, monkeypatch, one_line_error, argv, message):
    d = files
    monkeypatch.chdir(d)
    tifffile.imwrite(d / "empty.tif", np.zeros((6, 96, 96), np.uint16))
    tifffile.imwrite(d / "small.tif", np.zeros((6, 90, 96), np.uint16))
    (d / "exists.pt").write_text("not a model")
    assert main(argv) == 2
    assert message in one_line_error(argv[0])


def test_models_lists_parameters(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "unet" in out and "ulstm" in out and "parameters" in out


def test_console_script_installed():
    proc = subprocess.run([sys.executable, "-m", "napari_cellseq.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "napari-cellseq" in proc.stdout


def test_core_imports_no_gui():
    code = (
        "import sys, napari_cellseq.core.training, napari_cellseq.core.pipeline, napari_cellseq.cli;"
        "import napari_cellseq.core.models as m; m.available_models();"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('napari', 'magicgui', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
