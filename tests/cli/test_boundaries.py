"""Bad input at every door: one clear line through the CLI, a clear InputError through the API.

Also the resource boundaries: images smaller than a crop, frames larger than a tile, devices
running out of memory, movies read lazily (memmap, dask) frame by frame, and model files that
are data, never code.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest
import tifffile
import torch

from napari_cellseq.cli import main
from napari_cellseq.core import pipeline
from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.config import DataConfig, TrainConfig
from napari_cellseq.core.errors import CellseqError, InputError, ModelFileError
from napari_cellseq.core.inference import Predictor, is_out_of_memory
from napari_cellseq.core.io import select_channel
from napari_cellseq.core.models import build_model, default_model_config
from napari_cellseq.core.pipeline import prepare_training_inputs, segment, segment_events
from napari_cellseq.core.training import fit, train

def imwrite(path, data, **kwargs):
    tifffile.imwrite(path, data, photometric="minisblack", **kwargs)


TINY = ["--iterations", "2", "--width", "4", "--crop", "32", "--batch-size", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def movie(tiny_movie):
    return tiny_movie


@pytest.fixture(scope="module")
def model_file(movie, tmp_path_factory):
    image, painted = movie
    path = tmp_path_factory.mktemp("model") / "m.pt"
    fit(image, painted, path, model_config=default_model_config("unet", base_channels=4),
        data_config=DataConfig(crop_size=32), train_config=TrainConfig(iterations=2, max_time=None,
                                                                      batch_size=1, device="cpu"))
    return path


@pytest.fixture()
def files(movie, tmp_path, monkeypatch):
    image, painted = movie
    imwrite(tmp_path / "img.tif", image)
    imwrite(tmp_path / "lab.tif", painted)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------- CLI table


def _bad_files(d, image, painted):
    t, h, w = image.shape
    imwrite(d / "rgb.tif", np.stack([image[0], image[0] // 2, image[0] // 3], axis=-1))
    imwrite(d / "tcyx.tif", np.stack([image, image // 2], axis=1), metadata={"axes": "TCYX"})
    imwrite(d / "5d.tif", np.stack([np.stack([image] * 2, 1)] * 2, 2), metadata={"axes": "TZCYX"})
    imwrite(d / "nan.tif", np.where(np.eye(h, w, dtype=bool), np.nan, image.astype(np.float32)))
    imwrite(d / "const.tif", np.full(image.shape, 7, np.uint16))
    imwrite(d / "otherlab.tif", painted[:, :40])
    imwrite(d / "floatlab.tif", painted.astype(np.float32) / 2)
    imwrite(d / "neglab.tif", painted.astype(np.int16) - 1)
    imwrite(d / "emptylab.tif", np.zeros_like(painted))
    (d / "png.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (d / "empty.tif").write_bytes(b"")
    (d / "trunc.tif").write_bytes((d / "img.tif").read_bytes()[:300])
    (d / "folder.tif").mkdir()


TRAIN = ["train", "--out", "m.pt", *TINY]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image", "missing.tif", "--labels", "lab.tif"], "no such file"),
        (["--image", "folder.tif", "--labels", "lab.tif"], "is a folder"),
        (["--image", "png.tif", "--labels", "lab.tif"], "not a TIFF file (it looks like a PNG image)"),
        (["--image", "empty.tif", "--labels", "lab.tif"], "is empty (0 bytes)"),
        (["--image", "trunc.tif", "--labels", "lab.tif"], "truncated or corrupt"),
        (["--image", "rgb.tif", "--labels", "lab.tif"], "looks like an RGB image"),
        (["--image", "rgb.tif", "--labels", "lab.tif"], "--channel N (N in 0..2)"),
        (["--image", "tcyx.tif", "--labels", "lab.tif"], "4 dimensions"),
        (["--image", "tcyx.tif", "--labels", "lab.tif"], "--channel N (N in 0..1)"),
        (["--image", "5d.tif", "--labels", "lab.tif"], "5 dimensions"),
        (["--image", "img.tif", "--labels", "lab.tif", "--channel", "0"], "no channel axis (napari-cellseq reads channels from"),
        (["--image", "rgb.tif", "--labels", "lab.tif", "--channel", "5"], "channel 5 does not exist"),
        (["--image", "nan.tif", "--labels", "lab.tif"], "NaN"),
        (["--image", "const.tif", "--labels", "lab.tif"], "is constant"),
        (["--image", "img.tif", "--labels", "otherlab.tif"], "labels have shape (4, 40, 48) but the image (4, 48, 48)"),
        (["--image", "img.tif", "--labels", "floatlab.tif"], "fractional values"),
        (["--image", "img.tif", "--labels", "neglab.tif"], "negative values"),
        (["--image", "img.tif", "--labels", "emptylab.tif"], "no annotated frame"),
        (["--image", "img.tif", "--labels", "lab.tif", "--frames", "2-9"], "out of range"),
        (["--image", "img.tif", "--labels", "lab.tif", "--model", "nope"], "unknown model 'nope'"),
        (["--image", "img.tif", "--labels", "lab.tif", "--init", "missing.pt"], "no model file"),
        (["--image", "img.tif", "--labels", "lab.tif", "--init", "img.tif"], "is not a napari-cellseq model file"),
    ],
)
def test_train_bad_input_is_one_clear_line(files, movie, one_line_error, argv, message):
    _bad_files(files, *movie)
    assert main([*TRAIN, *argv]) == 2
    assert message in one_line_error("train")
    assert not (files / "m.pt").exists()


def test_more_than_the_memory_is_one_clear_line(files, one_line_error):
    """A network far too wide to allocate (torch raises RuntimeError, not MemoryError)."""
    assert main([*TRAIN, "--image", "img.tif", "--labels", "lab.tif", "--width", str(10**7)]) == 2
    assert "out of memory" in one_line_error("train")
    assert not (files / "m.pt").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(files, one_line_error):
    (files / "img.tif").chmod(0)
    try:
        assert main([*TRAIN, "--image", "img.tif", "--labels", "lab.tif"]) == 2
    finally:
        (files / "img.tif").chmod(0o644)
    assert "permission denied" in one_line_error("train")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--crop", "0"], "--crop: must be at least 16"),
        (["--iterations", "0"], "--iterations: must be at least 1"),
        (["--batch-size", "-1"], "--batch-size: must be at least 1"),
        (["--checkpoint-every", "0"], "--checkpoint-every: must be positive"),
        (["--lr", "nan"], "--lr: must be positive"),
        (["--channel", "-1"], "--channel: must be 0 or more"),
        (["--width", "two"], "--width: 'two' is not a whole number"),
        (["--width", "0"], "--width: must be at least 1"),
        (["--seed", "-1"], "--seed: must be a whole number from 0 to 2**64 - 1"),
        (["--seed", str(1 << 64)], "--seed: must be a whole number from 0"),
        (["--seed", "1.5"], "--seed: '1.5' is not a whole number"),
        (["--iterations", "-3"], "--iterations: must be at least 1"),
        (["--max-time", "0"], "--max-time: must be positive"),
        (["--max-time", "-5"], "--max-time: must be positive"),
        (["--max-time", "inf"], "--max-time: must be positive"),
        (["--batch-size", "0"], "--batch-size: must be at least 1"),
        (["--crop", "-1"], "--crop: must be at least 16"),
        (["--lr", "0"], "--lr: must be positive"),
        (["--lr", "-0.1"], "--lr: must be positive"),
        (["--lr", "inf"], "--lr: must be positive"),
        (["--checkpoint-every", "-1"], "--checkpoint-every: must be positive"),
        (["--device", "gpu"], "--device: unknown device 'gpu': choose one of auto, cpu, cuda, mps"),
        (["--optimizer", "sgd"], "--optimizer: invalid choice: 'sgd'"),
        (["--loss", "dice"], "--loss: invalid choice: 'dice'"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser(files, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main([*TRAIN, "--image", "img.tif", "--labels", "lab.tif", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("napari-cellseq train: error: argument"), err
    assert message in err[0]
    assert not (files / "m.pt").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["segment", "--model", "m.pt", "--image", "img.tif", "--out", "p.tif", "--tile", "0"],
        ["segment", "--model", "m.pt", "--image", "img.tif", "--out", "p.tif", "--device", "cuda:x"],
        ["segment", "--model", "m.pt", "--image", "img.tif", "--out", "p.tif", "--output", "masks"],
        ["demo", "--seed", "-1"],
        ["demo", "--iterations", "0"],
        ["demo", "--frames", "1"],
    ],
)
def test_bad_numbers_of_other_commands_are_refused_by_the_parser(files, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"napari-cellseq {argv[0]}: error: argument"), err
    assert sorted(p.name for p in files.iterdir()) == ["img.tif", "lab.tif"]


@pytest.mark.parametrize(
    "argv",
    [
        [*TRAIN, "--image", "img.tif", "--labels", "lab.tif", "--frames", ""],
        [*TRAIN, "--image", "img.tif", "--labels", "lab.tif", "--frames", " , "],
        [*TRAIN, "--image", "img.tif", "--labels", "lab.tif", "--val-frames", ""],
        ["segment", "--model", "M", "--image", "img.tif", "--out", "p.tif", "--device", "cpu", "--frames", ""],
        ["segment", "--model", "M", "--image", "img.tif", "--out", "res", "--ctc", "--device", "cpu", "--frames", ""],
        ["evaluate", "--gt", "lab.tif", "--pred", "lab.tif", "--frames", ""],
    ],
)
def test_empty_frame_selection_is_an_error_not_all_frames(files, model_file, capsys, argv):
    """An empty --frames / --val-frames value is not the absent flag (which means every frame)."""
    argv = [str(model_file) if a == "M" else a for a in argv]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert not out  # evaluate printed no scores
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"napari-cellseq {argv[0]}: error: empty frame selection"), lines
    assert sorted(p.name for p in files.iterdir()) == ["img.tif", "lab.tif"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "missing.pt", "--image", "img.tif"], "no model file"),
        (["--model", "img.tif", "--image", "img.tif"], "is not a napari-cellseq model file"),
        (["--model", "M", "--image", "rgb.tif"], "looks like an RGB image"),
        (["--model", "M", "--image", "const.tif"], "is constant"),
        (["--model", "M", "--image", "nan.tif"], "NaN"),
        (["--model", "M", "--image", "5d.tif"], "5 dimensions"),
        (["--model", "M", "--image", "img.tif", "--frames", "7"], "out of range"),
        (["--model", "M", "--image", "img.tif", "--tile", "8"], "--tile: must be at least 32"),
    ],
)
def test_segment_bad_input_is_one_clear_line(files, movie, model_file, capsys, argv, message):
    _bad_files(files, *movie)
    argv = [str(model_file) if a == "M" else a for a in argv]
    try:
        code = main(["segment", "--out", "p.tif", "--device", "cpu", *argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)
    assert not (files / "p.tif").exists()


# ------------------------------------------------------------------------------- what works


def test_channel_option_selects_a_channel(files, movie, model_file):
    image, painted = movie
    tyxc = np.stack([image // 3, image], axis=-1)  # channel 1 holds the cells
    imwrite(files / "tyxc.tif", tyxc, metadata={"axes": "TYXC"})
    imwrite(files / "tcyx.tif", np.moveaxis(tyxc, -1, 1), metadata={"axes": "TCYX"})
    assert main([*TRAIN, "--image", "tyxc.tif", "--channel", "1", "--labels", "lab.tif"]) == 0
    assert load_checkpoint(files / "m.pt").training["iterations"] == 2
    for name in ("tyxc.tif", "tcyx.tif"):
        out = f"{name}.labels.tif"
        assert main(["segment", "--model", "m.pt", "--image", name, "--channel", "1", "--out", out,
                     "--device", "cpu"]) == 0
        assert tifffile.imread(files / out).shape == image.shape
    # (Y, X, C): an RGB frame, green channel
    imwrite(files / "rgb.tif", np.stack([image[0] // 2, image[0], image[0] // 3], axis=-1))
    assert main(["segment", "--model", "m.pt", "--image", "rgb.tif", "--channel", "1", "--out", "rgb.labels.tif",
                 "--device", "cpu"]) == 0
    assert tifffile.imread(files / "rgb.labels.tif").shape == image.shape[1:]


def test_select_channel_indexes_lazily():
    arr = np.arange(2 * 3 * 16 * 16).reshape(2, 3, 16, 16)
    np.testing.assert_array_equal(select_channel(arr, 2), arr[:, 2])
    assert select_channel(arr, None) is arr
    assert select_channel(np.zeros((16, 16, 2)), 1).shape == (16, 16)
    with pytest.raises(InputError, match="no channel axis"):
        select_channel(np.zeros((5, 16, 16)), 0)


def test_image_smaller_than_the_crop_trains_and_segments(files, movie):
    image, painted = movie
    imwrite(files / "small.tif", image[:, 10:30, 12:36])  # 20 x 24 frames, crop 32
    imwrite(files / "small_lab.tif", painted[:, 10:30, 12:36])
    assert main([*TRAIN, "--image", "small.tif", "--labels", "small_lab.tif"]) == 0
    assert main(["segment", "--model", "m.pt", "--image", "small.tif", "--out", "s.tif", "--device", "cpu"]) == 0
    assert tifffile.imread(files / "s.tif").shape == (4, 20, 24)


def test_single_annotated_object_and_single_frame(tmp_path, movie):
    image, painted = movie
    one = np.zeros_like(painted[0])
    one[painted[0] == painted[0].max()] = 5
    ckpt = fit(image[0], one, tmp_path / "one.pt", model_config=default_model_config("unet", base_channels=4),
               data_config=DataConfig(crop_size=32),
               train_config=TrainConfig(iterations=1, max_time=None, batch_size=1, device="cpu"))
    assert ckpt.training["frames"] == [0]
    assert segment(image[0], ckpt, device="cpu").shape == image.shape[1:]


def test_whole_number_float_labels_are_accepted(files, movie):
    imwrite(files / "flab.tif", movie[1].astype(np.float32))
    assert main([*TRAIN, "--image", "img.tif", "--labels", "flab.tif"]) == 0


def test_frames_larger_than_the_tile_are_tiled(files, model_file, movie):
    image = np.tile(movie[0], (1, 3, 3))  # 144 x 144 frames
    imwrite(files / "big.tif", image)
    assert main(["segment", "--model", str(model_file), "--image", "big.tif", "--out", "big_l.tif",
                 "--tile", "64", "--device", "cpu"]) == 0
    whole = segment(image, model_file, device="cpu")
    tiled = tifffile.imread(files / "big_l.tif")
    assert tiled.shape == image.shape
    assert np.mean((tiled > 0) == (whole > 0)) > 0.95  # blending changes only a few pixels


# ------------------------------------------------------------------------------- Python API


BAD_PAIRS = [
    (lambda im, lab: (np.stack([im] * 3, -1), lab), "looks like an RGB"),
    (lambda im, lab: (np.stack([im] * 2, 1), lab), "--channel N"),
    (lambda im, lab: (im.astype(np.float32) * np.nan, lab), "NaN"),
    (lambda im, lab: (np.zeros_like(im), lab), "constant"),
    (lambda im, lab: (im, lab[:, :40]), "shape"),
    (lambda im, lab: (im, lab + 0.5), "fractional"),
    (lambda im, lab: (im, lab.astype(np.int32) - 1), "negative"),
    (lambda im, lab: (im, np.zeros_like(lab)), "no annotated frame"),
]


@pytest.mark.parametrize("make, message", BAD_PAIRS)
def test_prepare_training_inputs_refuses(movie, make, message):
    image, labels = make(*movie)
    with pytest.raises(InputError, match=message.replace("-", r"\-").replace(".", r"\.")):
        prepare_training_inputs(image, labels)


def test_prepare_training_inputs_checks_frames_and_returns_arrays(movie):
    image, labels = prepare_training_inputs(*movie)
    assert isinstance(image, np.ndarray) and labels.shape == image.shape
    with pytest.raises(InputError, match=r"frames \[9\] do not all exist: the movie has frames 0\.\.3"):
        prepare_training_inputs(*movie, frames=[9])
    # explicit frames may be all background: no error
    prepare_training_inputs(movie[0], np.zeros_like(movie[1]), frames=[3])


@pytest.mark.parametrize("make, message", [BAD_PAIRS[2], BAD_PAIRS[3], BAD_PAIRS[5], BAD_PAIRS[6]])
def test_fit_refuses_bad_input_before_training(tmp_path, movie, make, message):
    image, labels = make(*movie)
    with pytest.raises(InputError, match=message):
        fit(image, labels, tmp_path / "m.pt", model_config=default_model_config("unet", base_channels=4),
            data_config=DataConfig(crop_size=32),
            train_config=TrainConfig(iterations=1, max_time=None, batch_size=1, device="cpu"))
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("make, message", BAD_PAIRS[:4])
def test_segment_refuses_before_the_first_event(movie, model_file, make, message):
    image, _ = make(*movie)
    events = segment_events(image, model_file, device="cpu")
    with pytest.raises(InputError, match=message.replace("-", r"\-")):
        next(events)
    with pytest.raises(InputError):
        segment(image, model_file, device="cpu")


def test_segment_refuses_bad_frames_and_tile(movie, model_file):
    with pytest.raises(InputError, match=r"frames \[4\] do not exist"):
        segment(movie[0], model_file, device="cpu", frames=[0, 4])
    with pytest.raises(InputError, match="tile size"):
        segment(movie[0], model_file, device="cpu", tile=8)


# ------------------------------------------------------------------------------- out of memory


class _RaisesOOM(torch.nn.Module):
    """Wraps a network and raises out-of-memory for inputs above ``limit`` pixels."""

    def __init__(self, net, limit, error=None):
        super().__init__()
        self.net, self.limit = net, limit
        self.temporal, self.stride = net.temporal, net.stride
        self.error = error or (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
        self.sizes = []

    def forward(self, x, *state):
        self.sizes.append(x.shape[-2] * x.shape[-1])
        if self.sizes[-1] > self.limit:
            raise self.error()
        return self.net(x, *state)


def _net(name="unet"):
    torch.manual_seed(0)
    return build_model(default_model_config(name, base_channels=4, num_classes=3)).eval()


def test_out_of_memory_halves_the_tile_and_retries(caplog):
    movie = np.random.default_rng(0).random((2, 224, 224), dtype=np.float32)
    net = _net()
    wrapped = _RaisesOOM(net, limit=200 * 200)
    predictor = Predictor(wrapped, torch.device("cpu"), margin=16)
    out = dict(predictor.predict(movie))
    assert predictor.tile == 128  # 256 padded frame -> 128 tiles fit under the limit
    assert max(wrapped.sizes) > 200 * 200 and wrapped.sizes[-1] <= 200 * 200
    reference = dict(Predictor(net, torch.device("cpu"), tile=128, margin=16).predict(movie))
    for t in (0, 1):
        np.testing.assert_allclose(out[t], reference[t], atol=1e-5)
    assert "out of memory" in caplog.text


def test_out_of_memory_as_runtime_error_and_at_the_floor():
    movie = np.random.default_rng(0).random((1, 96, 96), dtype=np.float32)
    error = lambda: RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)")  # noqa: E731
    assert is_out_of_memory(error()) and not is_out_of_memory(RuntimeError("shape mismatch"))
    with pytest.raises(CellseqError, match="out of memory on cpu even with tiles of 128 pixels"):
        list(Predictor(_RaisesOOM(_net(), limit=10, error=error), torch.device("cpu")).predict(movie))
    other = _RaisesOOM(_net(), limit=10, error=lambda: RuntimeError("weird failure"))
    with pytest.raises(RuntimeError, match="weird failure"):
        list(Predictor(other, torch.device("cpu")).predict(movie))


def test_out_of_memory_in_a_temporal_model_restarts_its_memory():
    movie = np.random.default_rng(1).random((5, 224, 224), dtype=np.float32)
    calls = {"n": 0}

    def fail_once():
        return torch.OutOfMemoryError("CUDA out of memory")

    wrapped = _RaisesOOM(_net("ulstm"), limit=10**9, error=fail_once)
    original = wrapped.forward

    def forward(x, *state):  # out of memory once, on the 6th call (frame 2 after the lead-in)
        calls["n"] += 1
        if calls["n"] == 6:
            raise fail_once()
        return original(x, *state)

    wrapped.forward = forward
    predictor = Predictor(wrapped, torch.device("cpu"), warmup=2)
    got = [t for t, probs in predictor.predict(movie)]
    assert got == [0, 1, 2, 3, 4] and predictor.tile == 128


# ------------------------------------------------------------------------------- lazy movies


class _FrameOnly:
    """An array-like that hands out single frames only (as a huge movie on disk would)."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, []

    def __getitem__(self, index):
        assert isinstance(index, (int, np.integer)), f"read more than one frame: {index!r}"
        self.reads.append(int(index))
        return self.array[index]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole movie was loaded")


def test_segment_reads_frame_by_frame_with_bounded_sampling(movie, model_file, monkeypatch):
    image = np.concatenate([movie[0]] * 3)  # 12 frames
    expected = segment(image, model_file, device="cpu")
    lazy = _FrameOnly(image)
    np.testing.assert_array_equal(segment(lazy, model_file, device="cpu"), expected)
    monkeypatch.setattr(pipeline, "_SAMPLE_PIXELS", 3 * 48 * 48)
    lazy = _FrameOnly(image)
    segment(lazy, model_file, device="cpu", frames=[5])
    assert lazy.reads == [0, 2, 3, 5, 6, 8, 9, 11, 5]  # 8 frames for the percentiles, then the one wanted
    frames = pipeline._Frames(np.arange(12 * 48 * 48, dtype=np.float32).reshape(12, 48, 48))
    frames.fit_range((0.0, 100.0))  # 8 frames, every 3rd pixel: spans nearly the whole movie
    assert frames.value_range[0] == 0.0 and frames.value_range[1] > 0.99 * (12 * 48 * 48 - 1)


def test_segment_memmap_and_dask(tmp_path, movie, model_file):
    image = movie[0]
    expected = segment(image, model_file, device="cpu")
    mm = np.lib.format.open_memmap(tmp_path / "movie.npy", mode="w+", dtype=image.dtype, shape=image.shape)
    mm[:] = image
    mm.flush()
    del mm
    mm = np.load(tmp_path / "movie.npy", mmap_mode="r")
    np.testing.assert_array_equal(segment(mm, model_file, device="cpu"), expected)
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(image, chunks=(1, 48, 48))
    np.testing.assert_array_equal(segment(lazy, model_file, device="cpu"), expected)
    bad = da.from_array(np.where(np.arange(4)[:, None, None] == 3, np.nan, image.astype(np.float32)),
                        chunks=(1, 48, 48))
    with pytest.raises(InputError, match="frame 3 of image contains NaN"):
        segment(bad, model_file, device="cpu", frames=[3])


# ------------------------------------------------------------------------------- model files


class _Eval:
    def __reduce__(self):
        return (eval, ("open('PWNED', 'w').write('eval ran')",))


def _zip_with_payload(model_file, path):
    """A real model file whose data.pkl is replaced by a pickle calling builtins.eval."""
    payload = pickle.dumps({"magic": "napari-cellseq model", "x": _Eval()}, protocol=2)
    assert b"__builtin__\neval" in payload  # GLOBAL builtins.eval
    with zipfile.ZipFile(model_file) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = payload if item.filename.endswith("/data.pkl") else src.read(item.filename)
            dst.writestr(item, data)


def test_crafted_model_files_are_refused_without_running(tmp_path, model_file, monkeypatch, one_line_error):
    monkeypatch.chdir(tmp_path)
    _zip_with_payload(model_file, tmp_path / "zip.pt")
    torch.save({"magic": "napari-cellseq model", "x": _Eval()}, tmp_path / "saved.pt")
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps(_Eval(), protocol=2))
    for name in ("zip.pt", "saved.pt", "legacy.pt"):
        with pytest.raises(ModelFileError):
            load_checkpoint(tmp_path / name)
        imwrite(tmp_path / "img.tif", np.arange(32 * 32, dtype=np.uint16).reshape(32, 32))
        assert main(["segment", "--model", name, "--image", "img.tif", "--out", "p.tif"]) == 2
        assert "model file" in one_line_error("segment")
    assert not (tmp_path / "PWNED").exists()


def test_model_file_for_another_network(tmp_path, files, model_file, one_line_error):
    raw = torch.load(model_file, weights_only=True)
    raw["model_config"]["name"] = "segformer"
    torch.save(raw, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="cannot use model file .*unknown model 'segformer'"):
        pipeline.load_model(tmp_path / "other.pt")
    assert main(["segment", "--model", str(tmp_path / "other.pt"), "--image", "img.tif", "--out", "p.tif"]) == 2
    assert "unknown model 'segformer'" in one_line_error("segment")
    assert main([*TRAIN, "--image", "img.tif", "--labels", "lab.tif", "--init", str(model_file),
                 "--model", "ulstm"]) == 2
    assert "--init holds a 'unet' model but --model asks for 'ulstm'" in one_line_error("train")
