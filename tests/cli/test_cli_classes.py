"""Command line of issue 5: --loss, --target classes, --sampling, --val-frames, --output, --classes."""

import json
import logging

import numpy as np
import pytest
import tifffile

from napari_cellseq.cli import main
from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.models import available_models

SMALL = ["--iterations", "2", "--width", "4", "--crop", "48", "--batch-size", "2", "--device", "cpu"]


@pytest.fixture()
def files(small_movie, tmp_path):
    image, labels = small_movie
    sem = np.where(labels > 0, 2, 1).astype(np.uint16)
    sem[labels == 2] = 3
    sem[3:] = 0
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    tifffile.imwrite(tmp_path / "sem.tif", sem)
    return tmp_path


def test_semantic_train_segment_evaluate(files, capsys):
    d = files
    assert main(["train", "--image", str(d / "img.tif"), "--labels", str(d / "sem.tif"), "--target", "classes",
                 "--sampling", "balanced", "--loss", "normalized_focal", "--out", str(d / "m.pt"), *SMALL]) == 0
    ckpt = load_checkpoint(d / "m.pt")
    assert ckpt.data_config.target == "classes" and ckpt.data_config.sampling == "balanced"
    assert ckpt.model_config.num_classes == 3 and ckpt.training["loss"] == "normalized_focal"
    assert main(["segment", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"),
                 "--out", str(d / "classes.tif")]) == 0
    classes = tifffile.imread(d / "classes.tif")
    assert classes.shape == (6, 96, 96) and set(np.unique(classes)) <= {1, 2, 3}
    assert main(["segment", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"),
                 "--out", str(d / "inst.tif"), "--output", "instances"]) == 0
    assert tifffile.imread(d / "inst.tif").shape == (6, 96, 96)
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(d / "sem.tif"), "--pred", str(d / "classes.tif"),
                 "--frames", "0-2", "--classes"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["num_classes"] == 3 and len(scores["dice_per_class"]) == 3
    assert 0.0 <= scores["mean_dice"] <= 1.0 and scores["n_pixels"] == 3 * 96 * 96


def test_val_frames_choose_threshold_and_report_auc(files, caplog):
    d = files
    with caplog.at_level(logging.INFO):
        assert main(["train", "--image", str(d / "img.tif"), "--labels", str(d / "lab.tif"), "--target", "2class",
                     "--frames", "0-2", "--val-frames", "4", "--loss", "edge_weighted",
                     "--out", str(d / "m.pt"), *SMALL]) == 0
    ckpt = load_checkpoint(d / "m.pt")
    assert ckpt.postprocess_config.threshold is not None and ckpt.training["loss"] == "edge_weighted"
    assert "ROC AUC" in caplog.text and f"{ckpt.training['roc_auc']:.4f}" in caplog.text


def _train_error(d, labels_file, extra, one_line_error) -> str:
    argv = ["train", "--image", str(d / "img.tif"), "--labels", str(d / labels_file), "--out", str(d / "x.pt"),
            *SMALL, *extra]
    assert main(argv) == 2
    return one_line_error("train")


def test_issue5_errors_are_one_line(files, one_line_error):
    d = files
    painted = tifffile.imread(d / "lab.tif")
    painted[5] = 0
    tifffile.imwrite(d / "painted.tif", painted)
    assert "validation frames [5] have no annotation" in _train_error(d, "painted.tif", ["--val-frames", "5"],
                                                                      one_line_error)
    tifffile.imwrite(d / "ids.tif", (painted + (painted > 0) * 100).astype(np.uint16))
    assert "each label value is a class" in _train_error(d, "ids.tif", ["--target", "classes"], one_line_error)


def test_models_lists_every_model_with_parameters_and_loss(capsys):
    assert main(["models"]) == 0
    networks = capsys.readouterr().out.split("\n\n")[0]  # (then the built-in weights' table)
    lines = networks.strip().splitlines()
    assert len(lines) == len(available_models())
    for name, line in zip(available_models(), lines):
        assert line.startswith(name) and "parameters" in line and "loss " in line
