"""Training on movies larger than memory: lazy image and labels are read frame by frame, and only
the frames training needs (painted frames, U-LSTM context frames, the normalisation sample)."""

import tracemalloc

import numpy as np
import pytest

from napari_cellseq.core import pipeline
from napari_cellseq.core.config import DataConfig, TrainConfig
from napari_cellseq.core.data.dataset import TrainingSet, context_frames, sequence_windows
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.events import Step
from napari_cellseq.core.io import LazyArray, PaintedFrames
from napari_cellseq.core.models import default_model_config
from napari_cellseq.core.synthetic import synthetic_timelapse
from napari_cellseq.core.training import plan_run, train


class CountingFrames(LazyArray):
    """A numpy movie behind a lazy view that records every frame read (``reads``)."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape, self.dtype = array.shape, array.dtype
        self.reads: list[int] = []

    def _read(self, key):
        lead = key[0]
        picks = range(*lead.indices(self.shape[0])) if isinstance(lead, slice) else [int(lead)]
        self.reads.extend(picks)
        return self.array[key]


def _movie(n_frames: int, painted: list[int], size: int = 64):
    """A ``n_frames`` movie (8 synthetic frames repeated) and labels painted only on ``painted``."""
    image, labels = synthetic_timelapse(n_frames=8, shape=(size, size), n_cells=3 if size < 96 else 6, seed=1,
                                        radius_range=(4.0, 8.0))
    image = np.asarray(image)[np.arange(n_frames) % 8]
    truth = np.asarray(labels)[np.arange(n_frames) % 8]
    painted_labels = np.zeros_like(truth)
    painted_labels[painted] = truth[painted]
    return image, painted_labels


def _sample_frames(n_frames: int, hw: int) -> set[int]:
    """The frames the normalisation sample reads (as ``pipeline._Frames.fit_range`` picks them)."""
    k = min(n_frames, max(8, pipeline._SAMPLE_PIXELS // hw))
    return set(np.unique(np.linspace(0, n_frames - 1, k).round().astype(int)).tolist())


def _losses(image, labels, tmp_path, name, model="unet", **train_kw):
    config = TrainConfig(iterations=3, max_time=None, batch_size=1, seed=3, calibrate=False, **train_kw)
    events = train(image, labels, tmp_path / f"{name}.pt", model_config=default_model_config(model, base_channels=4),
                   data_config=DataConfig(crop_size=32), train_config=config)
    return [e.loss for e in events if isinstance(e, Step)]


@pytest.mark.parametrize("model", ["unet", "ulstm"])
def test_lazy_and_numpy_train_alike(tmp_path, model):
    """Same seed, same losses: the lazy path reads the same pixels and normalises them alike."""
    image, labels = _movie(12, [3, 8])
    numpy_losses = _losses(image, labels, tmp_path, "numpy", model, unroll=2)
    lazy_losses = _losses(CountingFrames(image), CountingFrames(labels), tmp_path, "lazy", model, unroll=2)
    assert len(numpy_losses) == 3 and numpy_losses == lazy_losses


def test_unet_reads_only_painted_and_sample_frames(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_SAMPLE_PIXELS", 8 * 64 * 64)  # an 8-frame sample of 60 frames
    painted = [5, 30, 51]
    image, labels = _movie(60, painted)
    lazy_image, lazy_labels = CountingFrames(image), CountingFrames(labels)
    config = TrainConfig(iterations=2, max_time=None, batch_size=1)  # calibration on: reads painted frames
    events = list(train(lazy_image, lazy_labels, tmp_path / "m.pt", data_config=DataConfig(crop_size=32),
                        model_config=default_model_config("unet", base_channels=4), train_config=config))
    assert sum(isinstance(e, Step) for e in events) == 2
    allowed = set(painted) | _sample_frames(60, 64 * 64)
    assert set(lazy_image.reads) <= allowed and len(allowed) < 15
    # the labels: one scan for the painted frames, then only the painted frames again
    unpainted_reads = [t for t in lazy_labels.reads if t not in painted]
    assert sorted(unpainted_reads) == sorted(set(range(60)) - set(painted))


def test_ulstm_reads_only_context_frames(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_SAMPLE_PIXELS", 8 * 64 * 64)
    painted = [60, 62]
    image, labels = _movie(120, painted)
    lazy_image = CountingFrames(image)
    config = TrainConfig(iterations=2, max_time=None, batch_size=1, unroll=2, calibrate=False)
    plan = plan_run(lazy_image, PaintedFrames.of(labels, painted), data_config=DataConfig(crop_size=32),
                    model_config=default_model_config("ulstm", base_channels=4), train_config=config)
    lazy_image.reads.clear()  # the plan read the normalisation sample
    assert sum(isinstance(e, Step) for e in train(plan=plan, out_path=tmp_path / "m.pt")) == 2
    context = context_frames(painted, 120, 4 * 2)  # sequences of 4 chunks of 2 frames
    assert set(lazy_image.reads) == set(context)
    assert min(context) >= 60 - 7 * 4 and max(context) <= 62 + 7 * 4  # down-sampling by up to 4


def test_context_frames_hold_every_drawn_window():
    """Every sequence ``sequence_batch`` draws stays inside ``context_frames`` (short movies too)."""
    rng = np.random.default_rng(0)
    for n_frames, length, frames in [(7, 4, [3]), (120, 8, [60, 62]), (10, 20, [0, 9]), (50, 20, [1, 48])]:
        image, labels = _movie(n_frames, frames)
        data = TrainingSet(image, labels, DataConfig(crop_size=16), context=length)
        kept = set(context_frames(frames, n_frames, length))
        assert set(data._slot) == kept
        for _ in range(200):
            window = data._random_window(rng, length)
            assert set(window) <= kept
            assert sorted(window) in [sorted(w) for a in frames for w in sequence_windows(a, length, n_frames)]
        data.sequence_batch(rng, 2, length)  # reads only kept frames


def test_lazy_inputs_are_checked_frame_by_frame(tmp_path):
    image, labels = _movie(20, [4, 9])
    nan_movie = image.astype(np.float32)
    nan_movie[9, 3, 3] = np.nan
    kw = dict(data_config=DataConfig(crop_size=32), train_config=TrainConfig(iterations=1, max_time=None))
    with pytest.raises(InputError, match="frame 9 of image contains NaN"):
        list(train(CountingFrames(nan_movie), labels, tmp_path / "a.pt", **kw))
    with pytest.raises(InputError, match="image is constant"):
        plan_run(CountingFrames(np.full_like(image, 7)), labels, **kw)
    negative = labels.astype(np.int32)
    negative[4, 0, 0] = -2
    with pytest.raises(InputError, match=r"labels \(frame 4\) contain negative values"):
        list(train(image, CountingFrames(negative), tmp_path / "b.pt", **kw))
    with pytest.raises(InputError, match="have shape"):
        plan_run(CountingFrames(image), CountingFrames(labels[:, :40]), **kw)
    with pytest.raises(InputError, match="must be integer instance ids"):
        plan_run(CountingFrames(image), CountingFrames(labels.astype(np.complex64)), **kw)
    with pytest.raises(InputError, match="no annotated frame"):
        plan_run(CountingFrames(image), CountingFrames(np.zeros_like(labels)), **kw)


def test_memory_stays_far_below_the_movie(tmp_path):
    """A 300-frame 256x256 uint16 movie memory-mapped from disk trains in a small part of its size."""
    n, size, painted = 300, 256, [40, 150, 260]
    frame, truth = _movie(8, [], size=size)[0], _movie(8, list(range(8)), size=size)[1]
    movie = np.lib.format.open_memmap(tmp_path / "movie.npy", mode="w+", dtype=np.uint16, shape=(n, size, size))
    for t in range(n):
        movie[t] = frame[t % 8]
    movie.flush()
    del movie
    labels = PaintedFrames({t: np.asarray(truth)[t % 8] for t in painted}, (n, size, size), np.uint16)
    image = np.load(tmp_path / "movie.npy", mmap_mode="r")
    config = TrainConfig(iterations=1, max_time=None, batch_size=1, calibrate=False)
    kw = dict(data_config=DataConfig(crop_size=32), model_config=default_model_config("unet", base_channels=4),
              train_config=config)
    list(train(*_movie(4, [1]), tmp_path / "warm.pt", **kw))  # the modules training imports are not traced
    tracemalloc.start()
    try:
        events = list(train(image, labels, tmp_path / "m.pt", **kw))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(isinstance(e, Step) for e in events) == 1
    movie_bytes = n * size * size * 2  # 37.5 MiB; as float32 the normalised movie would be 75 MiB
    # the normalisation sample (at most SAMPLE_PIXELS uint16 values, 7.6 MiB) and 3 frames' targets
    assert peak < movie_bytes / 3, f"peak {peak / 2**20:.1f} MiB"


def test_lazy_pool_of_movies_trains_alike(tmp_path):
    """Movies end to end (``movie_lengths``): per-movie ranges and sequences inside each movie,
    lazy as numpy."""
    image, labels = _movie(12, [2, 9])
    image = image.copy()
    image[6:] = image[6:] // 2 + 50  # the second movie is darker: its own percentiles
    kw = dict(model_config=default_model_config("ulstm", base_channels=4), data_config=DataConfig(crop_size=32),
              train_config=TrainConfig(iterations=3, max_time=None, batch_size=1, seed=3, calibrate=False,
                                       unroll=2), movie_lengths=(6, 6))
    numpy_losses = [e.loss for e in train(image, labels, tmp_path / "a.pt", **kw) if isinstance(e, Step)]
    lazy_losses = [e.loss for e in train(CountingFrames(image), CountingFrames(labels), tmp_path / "b.pt", **kw)
                   if isinstance(e, Step)]
    assert len(numpy_losses) == 3 and numpy_losses == lazy_losses
    assert set(context_frames([2, 9], 12, 8, [(0, 6), (6, 12)])) == set(range(12))
    assert context_frames([8], 12, 3, [(0, 6), (6, 12)]) == [6, 7, 8, 9, 10]  # not into movie 0
