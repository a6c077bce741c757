"""Files as microscope and analysis software write them, through the command line.

LZW / zstd compressed TIFFs (read with imagecodecs, frame by frame in ``segment``, one channel
with ``--channel``) and instance labels stored as uint64 with ids >= 2**63 (renumbered safely;
refused with one line where values are classes).
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellseq.cli import main

HUGE = 2**63


@pytest.fixture()
def files(small_movie, tmp_path):
    """(T, C, Y, X) LZW image (channel 1 holds the cells) and uint64 LZW labels with huge ids."""
    image, labels = small_movie
    noise = np.random.default_rng(0).integers(0, 50, image.shape).astype(image.dtype)
    tcyx = np.stack([noise, image], axis=1)
    tifffile.imwrite(tmp_path / "img.tif", tcyx, compression="lzw", photometric="minisblack",
                     metadata={"axes": "TCYX"})
    huge = np.where(labels > 0, labels.astype(np.uint64) + np.uint64(HUGE), np.uint64(0))
    huge[3:] = 0  # painted: the first three frames
    tifffile.imwrite(tmp_path / "lab.tif", huge, compression="zstd")
    return tmp_path, labels


def test_train_and_segment_lzw_channel_with_uint64_ids(files, capsys, caplog):
    d, truth = files
    with tifffile.TiffFile(d / "img.tif") as tif:
        assert tif.pages[0].compression == 5  # LZW
    assert tifffile.imread(d / "lab.tif").max() >= HUGE
    assert main(["train", "--image", str(d / "img.tif"), "--channel", "1", "--labels", str(d / "lab.tif"),
                 "--out", str(d / "m.pt"), "--iterations", "2", "--width", "4", "--crop", "48",
                 "--batch-size", "1", "--device", "cpu", "--seed", "0"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    said = [r for r in caplog.records if "above 2**63-1" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING"  # the renumbering is said, once
    assert main(["segment", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"), "--channel", "1",
                 "--out", str(d / "pred.tif")]) == 0
    pred = tifffile.imread(d / "pred.tif")
    assert pred.shape == truth.shape and pred.dtype == np.uint16
    assert main(["segment", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"), "--channel", "1",
                 "--out", str(d / "res"), "--ctc"]) == 0
    assert sorted(p.name for p in (d / "res").iterdir()) == [f"mask{t:03d}.tif" for t in range(len(truth))]


def test_uint64_class_values_are_one_clear_line(files, capsys):
    d, _ = files
    code = main(["train", "--image", str(d / "img.tif"), "--channel", "1", "--labels", str(d / "lab.tif"),
                 "--target", "classes", "--out", str(d / "m.pt"), "--iterations", "1", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "with target 'classes' each label value is a class" in err[0], err
    assert not (d / "m.pt").exists()
