"""The built-in weights on the command line: train --init builtin|NAME|random, segment --model
builtin|NAME, models, and the one-line errors where no built-in fits or the package data is missing."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellseq.cli import main
from napari_cellseq.core.checkpoint import load_checkpoint


@pytest.fixture()
def files(tiny_movie, tmp_path):
    image, painted = tiny_movie
    tifffile.imwrite(tmp_path / "img.tif", image, photometric="minisblack")  # 4 frames, not RGBA
    tifffile.imwrite(tmp_path / "lab.tif", painted, photometric="minisblack")
    tifffile.imwrite(tmp_path / "frame.tif", image[0])
    return tmp_path


def _train(d, *extra):
    return main(["train", "--image", str(d / "img.tif"), "--labels", str(d / "lab.tif"), "--iterations", "2",
                 "--crop", "32", "--batch-size", "1", "--device", "cpu", *extra])


@pytest.mark.parametrize("model, init, network", [("ulstm", "builtin", "ulstm"), (None, "builtin", "unet"),
                                                  (None, "builtin-ulstm", "ulstm")])
def test_train_init_builtin_fine_tunes_and_the_record_names_it(files, model, init, network):
    d = files
    assert _train(d, "--out", str(d / "m.pt"), "--init", init, *(["--model", model] if model else [])) == 0
    ckpt = load_checkpoint(d / "m.pt")
    assert ckpt.model_config.name == network
    assert ckpt.training["started_from"] == f"builtin-{network}" and ckpt.training["iterations"] == 2
    assert ckpt.data_config.crop_size == 32  # the user's crop, the built-in's other data settings


def test_train_init_random_is_fresh_weights(files):
    d = files
    assert _train(d, "--out", str(d / "m.pt"), "--init", "random", "--width", "4") == 0
    ckpt = load_checkpoint(d / "m.pt")
    assert ckpt.model_config.base_channels == 4 and "started_from" not in ckpt.training


@pytest.mark.parametrize("extra, message", [
    (["--init", "builtin", "--model", "segnet"], "no built-in weights for the 'segnet' network"),
    (["--init", "builtin", "--target", "classes"], "no built-in weights for target 'classes'"),
    (["--init", "builtin-ulstm", "--model", "unet"], "holds a 'ulstm' model but --model asks for 'unet'"),
    (["--init", "builtin", "--width", "4"], "--width 4: the built-in builtin-unet has width"),
])
def test_train_init_builtin_where_none_fits_is_one_line(files, one_line_error, extra, message):
    d = files
    assert _train(d, "--out", str(d / "m.pt"), *extra) == 2
    line = one_line_error("train")
    assert message in line and "--init random" in line
    assert not (d / "m.pt").exists()


@pytest.mark.parametrize("model", ["builtin", "builtin-unet"])
def test_segment_with_the_builtin_before_any_training(files, model):
    d = files
    for image in ("img.tif", "frame.tif"):
        out = d / f"{model}-{image}"
        assert main(["segment", "--model", model, "--image", str(d / image), "--out", str(out), "--device", "cpu"]) == 0
        pred = tifffile.imread(out)
        assert pred.shape == tifffile.imread(d / image).shape and pred.dtype == np.uint16


def test_models_lists_the_builtins(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    listed = out.split("built-in weights")[1]
    for name, network in (("builtin-unet", "unet"), ("builtin-ulstm", "ulstm")):
        row = next(line for line in listed.splitlines() if line.startswith(name))
        assert network in row and "3class" in row and " MB" in row and "learned from synthetic" in row
    # which network to pick, and why (the measured recommendation, core.models.recommend)
    recommended = next(line for line in out.splitlines() if line.startswith("recommended:"))
    assert "unet, for single images and for movies" in recommended and "HeLa" in recommended


def test_the_recommended_network_and_builtin_for_movies_and_images():
    from napari_cellseq.core.builtin import builtin_path, segment_model
    from napari_cellseq.core.models.recommend import recommended_network

    assert recommended_network(1) == recommended_network(20) == "unet"
    assert segment_model("builtin", n_frames=20) == builtin_path("builtin-unet")


def test_missing_package_data_says_reinstall(files, monkeypatch, capsys, one_line_error):
    import importlib.resources

    monkeypatch.setattr(importlib.resources, "files", lambda package: files / "nothing")
    assert main(["models"]) == 0
    assert capsys.readouterr().out.count("MISSING (broken installation") == 2
    d = files
    assert main(["segment", "--model", "builtin", "--image", str(d / "img.tif"), "--out", str(d / "p.tif")]) == 2
    assert "missing from this installation" in one_line_error("segment")
    assert _train(d, "--out", str(d / "m.pt"), "--init", "builtin") == 2
    assert "reinstall napari-cellseq" in one_line_error("train")
