"""`napari-cellseq segment` streams: the movie is read frame by frame and the labels are written
frame by frame, with the same files as segmenting in memory and writing at once."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tifffile

from napari_cellseq.cli import main
from napari_cellseq.core import pipeline
from napari_cellseq.core.config import DataConfig, TrainConfig
from napari_cellseq.core.io import ctc_mask_name, write_tiff_atomic
from napari_cellseq.core.models import default_model_config
from napari_cellseq.core.pipeline import segment
from napari_cellseq.core.training import fit


@pytest.fixture(scope="module")
def movie():
    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, labels = synthetic_timelapse(n_frames=5, shape=(64, 64), n_cells=5, seed=4, radius_range=(4.0, 8.0))
    return np.asarray(image), np.asarray(labels)


@pytest.fixture(scope="module")
def model_file(movie, tmp_path_factory):
    image, labels = movie
    path = tmp_path_factory.mktemp("model") / "m.pt"
    fit(image, labels, path, model_config=default_model_config("unet", base_channels=8, depth=3),
        data_config=DataConfig(crop_size=64, augment_elastic=False),
        train_config=TrainConfig(iterations=30, max_time=None, batch_size=4, lr=3e-3, device="cpu"))
    return path


def _imwrite(path, data, **kwargs):
    tifffile.imwrite(path, data, photometric="minisblack", **kwargs)


@pytest.mark.parametrize("layout", ["plain", "zlib", "imagej", "tcyx-zlib", "tyxc", "2d"])
def test_cli_output_equals_in_memory_segmentation(tmp_path, movie, model_file, layout):
    image = movie[0]
    args = []
    if layout == "plain":
        _imwrite(tmp_path / "in.tif", image)
    elif layout == "zlib":  # compressed: read page by page
        _imwrite(tmp_path / "in.tif", image, compression="zlib")
    elif layout == "imagej":
        tifffile.imwrite(tmp_path / "in.tif", image, imagej=True, metadata={"axes": "TYX"})
    elif layout == "tcyx-zlib":
        _imwrite(tmp_path / "in.tif", np.stack([image // 3, image], axis=1), metadata={"axes": "TCYX"},
                 compression="zlib")
        args = ["--channel", "1"]
    elif layout == "tyxc":
        _imwrite(tmp_path / "in.tif", np.stack([image // 3, image], axis=-1), metadata={"axes": "TYXC"})
        args = ["--channel", "1"]
    else:
        image = image[2]
        _imwrite(tmp_path / "in.tif", image, compression="zlib")
    expected = segment(image, model_file, device="cpu")
    assert expected.max() > 0
    out = tmp_path / "out.tif"
    assert main(["segment", "--model", str(model_file), "--image", str(tmp_path / "in.tif"), "--out", str(out),
                 "--device", "cpu", *args]) == 0
    got = tifffile.imread(out)
    assert got.dtype == np.uint16 and got.shape == image.shape
    np.testing.assert_array_equal(got, expected)
    write_tiff_atomic(tmp_path / "ref.tif", expected)  # what segment wrote before it streamed
    assert out.read_bytes() == (tmp_path / "ref.tif").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.tif", "out.tif", "ref.tif"])


def test_cli_ctc_masks_and_frames_stream(tmp_path, movie, model_file):
    image = movie[0]
    _imwrite(tmp_path / "in.tif", image, compression="zlib")
    expected = segment(image, model_file, device="cpu", frames=[1, 3])
    assert main(["segment", "--model", str(model_file), "--image", str(tmp_path / "in.tif"),
                 "--out", str(tmp_path / "res"), "--ctc", "--frames", "1,3", "--device", "cpu"]) == 0
    names = sorted(p.name for p in (tmp_path / "res").iterdir())
    assert names == [ctc_mask_name(t, 5) for t in range(5)]
    for t in range(5):
        mask = tifffile.imread(tmp_path / "res" / ctc_mask_name(t, 5))
        assert mask.dtype == np.uint16
        np.testing.assert_array_equal(mask, expected[t])
    assert not expected[[0, 2, 4]].any() and expected[[1, 3]].all(axis=(1, 2)).sum() == 0
    assert expected[1].any() and expected[3].any()


def test_bad_frame_midway_keeps_the_old_output(tmp_path, movie, model_file, monkeypatch, capsys):
    image = np.concatenate([movie[0]] * 3)[:12].astype(np.float32)
    image[7, 5, 5] = np.nan  # not in the percentile sample: found when frame 7 is segmented
    monkeypatch.setattr(pipeline, "_SAMPLE_PIXELS", 2 * 64 * 64)  # sample frames 0,2,3,5,6,8,9,11
    _imwrite(tmp_path / "in.tif", image)
    for extra in ([], ["--ctc"]):
        out = tmp_path / ("res" if extra else "out.tif")
        argv = ["segment", "--model", str(model_file), "--image", str(tmp_path / "in.tif"), "--out", str(out),
                "--device", "cpu", *extra]
        assert main([*argv, "--frames", "0-6,8-11"]) == 0
        before = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        assert main([*argv, "--overwrite"]) == 2  # fails after frames 0-6 were written
        assert "frame 7 of image contains NaN" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_cli_memory_does_not_grow_with_the_movie(tmp_path, movie, model_file, monkeypatch, compression):
    """Peak of traced (numpy / Python) memory while segmenting a 400-frame movie from the CLI:
    far below the movie (and the labels), which were both held in memory before (>= 6 MiB here)."""
    frames = np.asarray(movie[0])[np.arange(400) % len(movie[0])]  # (400, 64, 64) uint16, 3.1 MiB
    _imwrite(tmp_path / "in.tif", frames, compression=compression)
    _imwrite(tmp_path / "few.tif", frames[:3], compression=compression)
    monkeypatch.setattr(pipeline, "_SAMPLE_PIXELS", 4 * 64 * 64)  # keep the percentile sample small
    argv = ["segment", "--model", str(model_file), "--device", "cpu"]
    # imports and first-call caches outside the trace
    assert main([*argv, "--image", str(tmp_path / "few.tif"), "--out", str(tmp_path / "few-out.tif")]) == 0
    tracemalloc.start()
    try:
        assert main([*argv, "--image", str(tmp_path / "in.tif"), "--out", str(tmp_path / "out.tif")]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tifffile.imread(tmp_path / "out.tif").shape == frames.shape
    assert peak < frames.nbytes / 4, f"peak {peak / 2**20:.2f} MiB for a {frames.nbytes / 2**20:.2f} MiB movie"
