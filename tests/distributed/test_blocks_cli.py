"""``napari-cellseq segment --blocks``: one frame larger than memory (TIFF, OME-Zarr level 0, a
plain zarr array; a movie's frame picked with --frames), block by block into a zarr array, on a
local cluster too. Each labels array equals what ``segment_blocks`` writes for that frame; every
bad combination is one line and exit code 2, before any work."""

from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import pytest
import tifffile

zarr = pytest.importorskip("zarr")

from napari_cellseq.cli import main  # noqa: E402
from napari_cellseq.core.distributed import INSTALL_HINT  # noqa: E402
from napari_cellseq.core.distributed.blocks import (BlocksDone, BlocksStitched, open_plane,  # noqa: E402
                                                    segment_blocks, segment_blocks_events)
from napari_cellseq.core.errors import InputError  # noqa: E402
from napari_cellseq.core.io import TiffPlane, open_ome_zarr  # noqa: E402
from napari_cellseq.core.synthetic import synthetic_timelapse  # noqa: E402

BLOCK, OVERLAP = 128, 32


@pytest.fixture(scope="module")
def movie():
    """(3, 320, 352) synthetic frames, cells on the 128-pixel block seams."""
    image, _ = synthetic_timelapse(n_frames=3, shape=(320, 352), n_cells=70, seed=3, radius_range=(5.0, 9.0))
    return np.asarray(image)


def _read(path):
    return zarr.open_array(str(path), mode="r")[:]


def _expected(tmp_path, frame, model):
    """What the Python function writes for this frame (in memory)."""
    ref = tmp_path / "expected" / "ref.zarr"
    segment_blocks(frame, model, ref, block=BLOCK, overlap=OVERLAP, device="cpu")
    return _read(ref)


def _segment(model, image, out, *extra):
    return main(["segment", "--model", str(model), "--image", str(image), "--out", str(out), "--device", "cpu",
                 "--blocks", str(BLOCK), "--overlap", str(OVERLAP), *extra])


def test_tiff_frame_and_movie_frame_equal_the_python_function(tmp_path, movie, unet_file, capsys):
    frame_tif, movie_tif = tmp_path / "frame.tif", tmp_path / "movie.tif"
    tifffile.imwrite(frame_tif, movie[0])  # uncompressed: memory-mapped
    tifffile.imwrite(movie_tif, movie, compression="zlib", photometric="minisblack")  # read page by page
    out = tmp_path / "out" / "labels.zarr"
    assert _segment(unet_file, frame_tif, out) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    expected = _expected(tmp_path, movie[0], unet_file)
    labels = _read(out)
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.uint32 and labels.max() == summary["cells"] > 20
    assert summary["blocks"] == 9 and summary["joined_at_seams"] > 0 and summary["shape"] == [320, 352]
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.zarr"]  # no temporary folder left

    out2 = tmp_path / "movie-frame2.zarr"
    assert _segment(unet_file, movie_tif, out2, "--frames", "2") == 0
    np.testing.assert_array_equal(_read(out2), _expected(tmp_path / "2", movie[2], unet_file))


def test_existing_output_needs_overwrite(tmp_path, movie, unet_file, capsys):
    tifffile.imwrite(tmp_path / "frame.tif", movie[1])
    out = tmp_path / "labels.zarr"
    assert _segment(unet_file, tmp_path / "frame.tif", out) == 0
    first = _read(out)
    tifffile.imwrite(tmp_path / "frame.tif", movie[0])
    capsys.readouterr()
    assert _segment(unet_file, tmp_path / "frame.tif", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]
    np.testing.assert_array_equal(_read(out), first)  # untouched
    assert _segment(unet_file, tmp_path / "frame.tif", out, "--overwrite") == 0
    np.testing.assert_array_equal(_read(out), _expected(tmp_path, movie[0], unet_file))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected", "frame.tif", "labels.zarr"]


def test_zarr_on_a_local_cluster_and_ome_zarr(tmp_path, movie, unet_file):
    """`--scheduler local:2`: worker processes read their blocks from the zarr store themselves;
    an OME-Zarr image's channel is picked as `segment` picks it."""
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    plain = zarr.open_array(str(tmp_path / "movie.zarr"), mode="w", shape=movie.shape, chunks=(1, 100, 100),
                            dtype=movie.dtype)
    plain[:] = movie
    root = zarr.group(store=parse_url(str(tmp_path / "two.ome.zarr"), mode="w", fmt=FormatV04()).store,
                      zarr_format=2)
    two_channels = np.stack([movie[1], movie[0]])  # (C, Y, X): channel 1 is frame 0
    write_image(two_channels, root, axes="cyx", fmt=FormatV04())
    expected = {"plain": _expected(tmp_path / "p", movie[2], unet_file),
                "ome": _expected(tmp_path / "o", movie[0], unet_file)}
    assert _segment(unet_file, tmp_path / "movie.zarr", tmp_path / "plain.zarr", "--frames", "2",
                    "--scheduler", "local:2") == 0
    assert _segment(unet_file, tmp_path / "two.ome.zarr", tmp_path / "ome.zarr", "--channel", "1") == 0
    for name in ("plain", "ome"):
        np.testing.assert_array_equal(_read(tmp_path / f"{name}.zarr"), expected[name])


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "is a movie of 3 frames, but block-wise segmentation takes one 2-D frame: pick one with --frames N"),
        (["--frames", "0-1"], "--frames picks the one frame of a movie, e.g. --frames 0"),
        (["--frames", "5"], "has frames 0..2, not 5"),
        (["--ctc"], "--ctc writes a movie's mask files: drop --ctc"),
        (["--rois", "ROIS.zip"], "--rois writes a movie's ROI set: drop --rois"),
        (["--frames-per-task", "2"], "--frames-per-task cuts a movie into ranges of frames"),
        (["--context", "2"], "--context cuts a movie into ranges of frames"),
        (["--output", "classes"], "not class maps: drop --output classes"),
        (["--out", "OUT/labels.tif"], "--out OUT/labels.tif must be a .zarr folder to make, e.g. labels.zarr"),
        (["--image", "IMAGE"], "give one --image"),
        (["--scheduler", "slurm"], "--scheduler 'slurm' is not understood"),
        (["--blocks", "32"], "argument --blocks: must be at least 64 pixels, got 32"),
        (["--overlap", "0"], "argument --overlap: must be at least 1 pixels, got 0"),
        (["--overlap", "500"], "--overlap 500 must be at most --blocks (128) pixels"),
    ],
)
def test_bad_combinations_are_one_line(tmp_path, movie, unet_file, capsys, extra, message):
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack")
    extra = [str(tmp_path / a.replace("OUT/", "")) if a in ("OUT/labels.tif", "ROIS.zip", "IMAGE") else a for a in extra]
    if "--image" in extra:
        extra[extra.index("--image") + 1] = str(tmp_path / "movie.tif")
    message = message.replace("OUT/", f"{tmp_path}/")
    if "--out" in extra:
        argv = ["segment", "--model", str(unet_file), "--image", str(tmp_path / "movie.tif"), "--device", "cpu",
                "--blocks", str(BLOCK), *extra]
    else:
        argv = ["segment", "--model", str(unet_file), "--image", str(tmp_path / "movie.tif"),
                "--out", str(tmp_path / "labels.zarr"), "--device", "cpu", "--blocks", str(BLOCK), *extra]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses bad numbers itself
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("napari-cellseq segment: error: "), err
    assert message in err[0], err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.tif"]  # nothing made


def test_overlap_without_blocks_and_out_onto_an_image(tmp_path, movie, unet_file, capsys):
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    tifffile.imwrite(tmp_path / "frame.tif", movie[0])
    assert main(["segment", "--model", str(unet_file), "--image", str(tmp_path / "frame.tif"), "--out",
                 str(tmp_path / "l.tif"), "--overlap", "16"]) == 2
    assert "--overlap is the overlap of the blocks of --blocks PIXELS" in capsys.readouterr().err
    root = zarr.group(store=parse_url(str(tmp_path / "img.zarr"), mode="w", fmt=FormatV04()).store, zarr_format=2)
    write_image(movie[0], root, axes="yx", fmt=FormatV04())
    assert _segment(unet_file, tmp_path / "img.zarr", tmp_path / "img.zarr", "--overwrite") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is an image" in err[0] and "give a new name" in err[0]
    np.testing.assert_array_equal(np.asarray(open_ome_zarr(tmp_path / "img.zarr")), movie[0])  # untouched


def test_missing_extra_is_one_line(tmp_path, movie, unet_file, monkeypatch, capsys):
    tifffile.imwrite(tmp_path / "frame.tif", movie[0])
    monkeypatch.setitem(sys.modules, "dask_image", None)  # import dask_image -> ImportError
    assert _segment(unet_file, tmp_path / "frame.tif", tmp_path / "labels.zarr") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dask-image is not installed" in err[0] and INSTALL_HINT in err[0]
    assert not (tmp_path / "labels.zarr").exists()


def test_tiff_plane_pickles_as_its_path_and_reads_windows(tmp_path, movie):
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack")
    plane = open_plane(tmp_path / "movie.tif", frame=1)
    assert isinstance(plane, TiffPlane) and plane.shape == movie.shape[1:] and plane.dtype == movie.dtype
    data = pickle.dumps(plane)
    assert len(data) < 1000  # the path, not the pixels
    np.testing.assert_array_equal(pickle.loads(data)[40:90, 100:300], movie[1, 40:90, 100:300])
    with pytest.raises(InputError, match="pick one with --frames N"):
        open_plane(tmp_path / "movie.tif")
    with pytest.raises(InputError, match="does not exist"):
        open_plane(tmp_path / "nothing.tif")


def test_events_count_blocks_and_stop_leaves_nothing(tmp_path, movie, unet_file):
    events = list(segment_blocks_events(movie[0], unet_file, tmp_path / "l.zarr", block=BLOCK, overlap=OVERLAP))
    done = [e for e in events if isinstance(e, BlocksDone)]
    assert [(e.done, e.total) for e in done] == [(k, 9) for k in range(1, 10)]
    assert isinstance(events[-2], BlocksStitched) and events[-1].reason == "finished"
    calls = []
    stopped = list(segment_blocks_events(movie[0], unet_file, tmp_path / "s.zarr", block=BLOCK, overlap=OVERLAP,
                                         stop=lambda: calls.append(1) or len(calls) >= 3))
    assert stopped[-1].reason == "stopped" and stopped[-1].iteration == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.zarr"]  # nothing of the stopped run
