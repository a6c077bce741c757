"""Cell Tracking Challenge folders: t000.tif sequences and sparse man_seg ground truth, written
by tifffile as the challenge's data sets are; trained on and segmented with the CLI only."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellseq.cli import main
from napari_cellseq.core.io.ctc_folder import open_ctc_sequence, read_ctc_ground_truth
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io.sources import open_movie, read_training_labels


@pytest.fixture()
def ctc(small_movie, tmp_path):
    """DATA/01/t000.tif ... and DATA/01_GT/SEG/man_seg000.tif, man_seg002.tif (sparse)."""
    image, labels = small_movie
    seq, gt = tmp_path / "01", tmp_path / "01_GT" / "SEG"
    seq.mkdir()
    gt.mkdir(parents=True)
    for t, frame in enumerate(image):
        tifffile.imwrite(seq / f"t{t:03d}.tif", frame)
    for t in (0, 2):
        tifffile.imwrite(gt / f"man_seg{t:03d}.tif", labels[t].astype(np.uint16))
    return tmp_path, image, labels


def test_sequence_reads_lazily_as_the_movie(ctc):
    d, image, _ = ctc
    seq = open_ctc_sequence(d / "01")
    assert seq.shape == image.shape and seq.dtype == image.dtype and len(seq) == 6
    np.testing.assert_array_equal(seq[4], image[4])
    np.testing.assert_array_equal(seq[1:3, 5:9], image[1:3, 5:9])
    np.testing.assert_array_equal(np.asarray(seq), image)
    with open_movie(d / "01") as movie:
        np.testing.assert_array_equal(movie[-1], image[-1])


def test_ground_truth_frames_come_from_file_names(ctc):
    d, image, labels = ctc
    gt, frames = read_ctc_ground_truth(d / "01_GT" / "SEG", len(image), image.shape[1:])
    assert frames == [0, 2]
    np.testing.assert_array_equal(gt[[0, 2]], labels[[0, 2]])
    assert not gt[[1, 3, 4, 5]].any()
    assert read_training_labels(d / "01_GT" / "SEG", image.shape)[1] == [0, 2]


def test_cli_trains_on_ctc_folders_and_writes_ctc_results(ctc, capsys):
    d, image, labels = ctc
    assert main(["train", "--image", str(d / "01"), "--labels", str(d / "01_GT" / "SEG"), "--out", str(d / "m.pt"),
                 "--iterations", "2", "--width", "4", "--crop", "32", "--batch-size", "1", "--device", "cpu"]) == 0
    assert main(["segment", "--model", str(d / "m.pt"), "--image", str(d / "01"), "--out", str(d / "01_RES"),
                 "--ctc", "--device", "cpu"]) == 0
    names = sorted(p.name for p in (d / "01_RES").iterdir())
    assert names == [f"mask{t:03d}.tif" for t in range(6)]
    mask = tifffile.imread(d / "01_RES" / "mask003.tif")
    assert mask.shape == image.shape[1:] and mask.dtype == np.uint16
    # the same movie as one TIFF gives the same masks
    tifffile.imwrite(d / "movie.tif", image)
    assert main(["segment", "--model", str(d / "m.pt"), "--image", str(d / "movie.tif"), "--out",
                 str(d / "stack.tif"), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(tifffile.imread(d / "stack.tif")[3], mask)


def test_train_uses_exactly_the_annotated_frames(ctc, monkeypatch):
    """Frames without a man_seg file are not background: training gets frames [0, 2] only."""
    import napari_cellseq.core.training as training

    d, _, _ = ctc
    seen = {}

    def fake_train(out_path=None, stop=None, plan=None, **kwargs):  # the CLI hands train its plan
        seen["frames"], seen["labels"] = list(plan.frames), plan.labels
        return iter(())

    monkeypatch.setattr(training, "train", fake_train)
    assert main(["train", "--image", str(d / "01"), "--labels", str(d / "01_GT" / "SEG"), "--out",
                 str(d / "m.pt"), "--iterations", "1"]) == 0
    assert seen["frames"] == [0, 2] and seen["labels"].shape == (6, 96, 96)
    assert main(["train", "--image", str(d / "01"), "--labels", str(d / "01_GT" / "SEG"), "--out",
                 str(d / "m2.pt"), "--iterations", "1", "--frames", "2"]) == 0
    assert seen["frames"] == [2]


def test_3d_layouts_are_refused_clearly(tmp_path, capsys):
    seq = tmp_path / "01"
    seq.mkdir()
    for t in range(2):
        tifffile.imwrite(seq / f"t{t:03d}.tif", np.ones((5, 32, 32), np.uint16))
    with pytest.raises(InputError, match="3D"):
        open_ctc_sequence(seq)
    assert main(["segment", "--model", "x.pt", "--image", str(seq), "--out", str(tmp_path / "o.tif")]) == 2
    assert "3D" in capsys.readouterr().err
    gt = tmp_path / "SEG"
    gt.mkdir()
    tifffile.imwrite(gt / "man_seg_000_003.tif", np.ones((32, 32), np.uint16))
    with pytest.raises(InputError, match="3D"):
        read_ctc_ground_truth(gt, 2, (32, 32))
    gt2 = tmp_path / "SEG2"
    gt2.mkdir()
    tifffile.imwrite(gt2 / "man_seg000.tif", np.ones((5, 32, 32), np.uint16))
    with pytest.raises(InputError, match="3D"):
        read_ctc_ground_truth(gt2, 2, (32, 32))


def test_broken_folders_are_refused_clearly(tmp_path):
    seq = tmp_path / "01"
    seq.mkdir()
    for t in (0, 1, 3):
        tifffile.imwrite(seq / f"t{t:03d}.tif", np.ones((32, 32), np.uint16))
    with pytest.raises(InputError, match="t002.tif"):
        open_ctc_sequence(seq)
    (seq / "t003.tif").unlink()
    tifffile.imwrite(seq / "t002.tif", np.ones((16, 32), np.uint16))
    with pytest.raises(InputError, match="one shape"):
        open_ctc_sequence(seq)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="neither"):
        with open_movie(empty):
            pass
    gt = tmp_path / "SEG"
    gt.mkdir()
    with pytest.raises(InputError, match="man_seg000"):
        read_ctc_ground_truth(gt, 3, (32, 32))
    tifffile.imwrite(gt / "man_seg009.tif", np.ones((32, 32), np.uint16))
    with pytest.raises(InputError, match="frame 9"):
        read_ctc_ground_truth(gt, 3, (32, 32))
