"""Cell Tracking Challenge masks (napari_cellseq.core.io.ctc)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import OutputExistsError, ctc_mask_name, ctc_mask_writer, write_ctc_masks


def test_ctc_mask_names():
    assert ctc_mask_name(0, 20) == "mask000.tif"
    assert ctc_mask_name(999, 1000) == "mask999.tif"
    assert ctc_mask_name(0, 1001) == "mask0000.tif"
    assert ctc_mask_name(1000, 1001) == "mask1000.tif"
    assert ctc_mask_name(7, 12, prefix="man_seg") == "man_seg007.tif"


def test_write_ctc_masks(tmp_path, movie, listing):
    labels = movie(t=3, dtype=np.uint32)
    paths = write_ctc_masks(tmp_path / "01_RES", labels)
    assert [p.name for p in paths] == ["mask000.tif", "mask001.tif", "mask002.tif"]
    assert listing(tmp_path / "01_RES") == ["mask000.tif", "mask001.tif", "mask002.tif"]
    for t, p in enumerate(paths):
        frame = tifffile.imread(p)
        assert frame.dtype == np.uint16 and frame.shape == (20, 24)
        np.testing.assert_array_equal(frame, labels[t])


def test_write_ctc_masks_single_frame_and_prefix(tmp_path):
    lab = np.zeros((16, 16), np.int32)
    lab[4:8, 4:8] = 3
    (p,) = write_ctc_masks(tmp_path, lab, prefix="man_seg")
    assert p.name == "man_seg000.tif"
    np.testing.assert_array_equal(tifffile.imread(p), lab)


def test_write_ctc_masks_refuses_large_ids(tmp_path):
    lab = np.zeros((2, 8, 8), np.uint32)
    lab[1, 0, 0] = 70_000
    with pytest.raises(InputError) as err:
        write_ctc_masks(tmp_path / "res", lab)
    msg = str(err.value)
    assert "label id 70000 is larger than 65535" in msg and "16-bit" in msg and "32-bit TIFF stack" in msg
    assert not (tmp_path / "res").exists()


def test_write_ctc_masks_refuses_overwrite_before_writing(tmp_path, movie, listing):
    out = tmp_path / "res"
    write_ctc_masks(out, movie(t=2))
    (out / "mask000.tif").unlink()  # only mask001 remains
    with pytest.raises(OutputExistsError, match="mask001.tif already exists; pass --overwrite"):
        write_ctc_masks(out, movie(t=3) + 5)
    assert listing(out) == ["mask001.tif"]  # nothing new was written
    write_ctc_masks(out, movie(t=3) + 5, overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(out / "mask002.tif"), movie(t=3)[2] + 5)


def test_write_ctc_masks_warns_about_stale_files(tmp_path, caplog, movie):
    write_ctc_masks(tmp_path, movie(t=3))
    with caplog.at_level(logging.WARNING, logger="napari_cellseq.core.io"):
        write_ctc_masks(tmp_path, movie(t=2), overwrite=True)
    assert "1 older mask files (e.g. mask002.tif)" in caplog.text


def test_write_ctc_masks_bad_input(tmp_path):
    with pytest.raises(InputError, match=r"must be \(T, Y, X\) or \(Y, X\), got shape \(2, 3, 8, 8\)"):
        write_ctc_masks(tmp_path, np.zeros((2, 3, 8, 8), np.uint16))
    with pytest.raises(InputError, match="negative values"):
        write_ctc_masks(tmp_path, -np.ones((8, 8), np.int16))
    with pytest.raises(InputError, match="plain file name part"):
        write_ctc_masks(tmp_path, np.ones((8, 8), np.uint16), prefix="a/b")


def test_ctc_mask_writer_writes_all_masks_at_the_end_or_none(tmp_path, movie, listing):
    labels = movie().astype(np.uint16)
    with ctc_mask_writer(tmp_path / "res", 3) as writer:
        writer.write(1, labels[1])
        assert [n for n in listing(tmp_path / "res") if not n.startswith(".")] == []
    names = [ctc_mask_name(t, 3) for t in range(3)]
    assert listing(tmp_path / "res") == names
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "res" / names[1]), labels[1])
    assert not tifffile.imread(tmp_path / "res" / names[0]).any()
    before = {n: (tmp_path / "res" / n).read_bytes() for n in names}
    with pytest.raises(InputError, match="larger than 65535"):
        with ctc_mask_writer(tmp_path / "res", 3, overwrite=True) as writer:
            writer.write(0, labels[0] + 1)
            writer.write(1, labels[1].astype(np.uint32) + 70_000)
    assert {n: (tmp_path / "res" / n).read_bytes() for n in names} == before
    assert listing(tmp_path / "res") == names



def test_failed_export_leaves_no_folder_it_created(tmp_path, movie, listing):
    out = tmp_path / "new" / "01_RES"
    with pytest.raises(KeyboardInterrupt):
        with ctc_mask_writer(out, 3) as writer:
            writer.write(0, movie()[0])
            raise KeyboardInterrupt
    assert listing(tmp_path) == []  # neither 01_RES nor new/
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="larger than 65535"):
        write_ctc_masks(tmp_path / "kept", np.full((2, 8, 8), 70_000, np.uint32))
    assert listing(tmp_path / "kept") == ["notes.txt"]  # an existing folder stays, untouched


def test_write_ctc_masks_takes_whole_number_floats_and_bool(tmp_path):
    lab = np.zeros((2, 8, 8), np.float32)
    lab[1, 2:4, 2:4] = 3.0
    paths = write_ctc_masks(tmp_path / "f", lab)
    np.testing.assert_array_equal(tifffile.imread(paths[1]), lab[1].astype(np.uint16))
    (p,) = write_ctc_masks(tmp_path / "b", np.eye(8, dtype=bool))
    assert tifffile.imread(p).dtype == np.uint16 and tifffile.imread(p).sum() == 8
