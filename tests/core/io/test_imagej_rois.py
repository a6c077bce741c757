"""ImageJ ROI sets read back with roifile (the library that owns the format), and the ImageJ
hyperstack metadata of label stacks (Fiji opens them as a time series)."""

from __future__ import annotations

import numpy as np
import pytest
import roifile
import tifffile
from skimage.draw import polygon as draw_polygon

from napari_cellseq.cli import main
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io.imagej_rois import label_polygons, write_imagej_rois


def _mask(roi, shape):
    """The pixels whose centres lie inside the ROI polygon (ImageJ: pixel centre at +0.5)."""
    xy = roi.coordinates()
    mask = np.zeros(shape, bool)
    rr, cc = draw_polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)
    mask[rr, cc] = True
    return mask


def test_one_polygon_per_cell_and_frame_with_the_frame_as_position(small_movie, tmp_path):
    _, labels = small_movie
    path = write_imagej_rois(tmp_path / "cells.zip", labels)
    rois = roifile.roiread(path)
    per_frame = [len(np.unique(f)) - 1 for f in labels]
    assert len(rois) == sum(per_frame)
    for t in range(len(labels)):
        frame_rois = [r for r in rois if r.t_position == t + 1]
        assert len(frame_rois) == per_frame[t]
        assert all(r.position == t + 1 and r.roitype == roifile.ROI_TYPE.POLYGON for r in frame_rois)
        for roi in frame_rois:
            cell = int(roi.name.split("cell")[1])
            truth = labels[t] == cell
            drawn = _mask(roi, truth.shape)
            assert (drawn & truth).sum() / (drawn | truth).sum() > 0.75  # the outline encloses the cell
    assert len({r.name for r in rois}) == len(rois)


def test_single_pixel_and_touching_cells():
    labels = np.zeros((20, 20), np.uint16)
    labels[3, 3] = 7
    labels[10:15, 5:10] = 1
    labels[10:15, 10:15] = 2
    found = dict(label_polygons(labels))
    assert sorted(found) == [1, 2, 7]
    x, y = found[7].T
    assert 3 < x.mean() < 4 and 3 < y.mean() < 4  # the pixel (3, 3) spans 3..4 in ImageJ coordinates
    assert found[1][:, 0].max() <= found[2][:, 0].min() + 1


def test_cli_segment_writes_rois(small_movie, tmp_path, capsys):
    image, labels = small_movie
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    assert main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lab.tif"),
                 "--out", str(tmp_path / "m.pt"), "--iterations", "15", "--width", "4", "--crop", "48",
                 "--device", "cpu", "--no-calibrate"]) == 0
    assert main(["segment", "--model", str(tmp_path / "m.pt"), "--image", str(tmp_path / "img.tif"),
                 "--out", str(tmp_path / "pred.tif"), "--rois", str(tmp_path / "rois.zip"), "--device", "cpu"]) == 0
    pred = tifffile.imread(tmp_path / "pred.tif")
    rois = roifile.roiread(tmp_path / "rois.zip")
    assert len(rois) == sum(len(np.unique(f)) - 1 for f in pred)
    # the label stack is an ImageJ hyperstack with a time axis: Fiji opens it as frames, not slices
    with tifffile.TiffFile(tmp_path / "pred.tif") as tif:
        assert tif.is_imagej and tif.imagej_metadata["frames"] == len(image)
        assert "slices" not in tif.imagej_metadata and tif.series[0].axes == "TYX"
    # exists: refused before any work
    assert main(["segment", "--model", str(tmp_path / "m.pt"), "--image", str(tmp_path / "img.tif"),
                 "--out", str(tmp_path / "pred2.tif"), "--rois", str(tmp_path / "rois.zip")]) == 2
    assert "--rois" in capsys.readouterr().err and not (tmp_path / "pred2.tif").exists()


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(InputError, match="zip"):
        write_imagej_rois(tmp_path / "x.roi", np.ones((4, 4), np.uint16))
    with pytest.raises(InputError, match="integer"):
        write_imagej_rois(tmp_path / "x.zip", np.ones((4, 4), np.float32))
    empty = write_imagej_rois(tmp_path / "none.zip", np.zeros((3, 8, 8), np.uint16))
    assert roifile.roiread(empty) == []
