"""Painted cells held out of training to choose the threshold on (issue 13): whole cells, no loss
there, the threshold scored on them only, the score stored and reported, argmax when too little
is painted."""

import numpy as np
import pytest

from napari_cellseq.core.calibration import region_objects
from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.config import DataConfig, ModelConfig, TrainConfig
from napari_cellseq.core.data.dataset import TrainingSet
from napari_cellseq.core.events import ThresholdChosen
from napari_cellseq.core.synthetic import synthetic_timelapse
from napari_cellseq.core.training import train
from napari_cellseq.core.training.holdout import MIN_HELDOUT_CELLS, choose_holdout


@pytest.fixture(scope="module")
def dense_movie():
    """(4, 128, 160) synthetic movie of about 28 nuclei per frame, exact labels."""
    movie = synthetic_timelapse(n_frames=4, shape=(128, 160), n_cells=28, seed=3, radius_range=(4.0, 7.0))
    return np.asarray(movie.image), np.asarray(movie.labels)


def test_regions_hold_whole_cells_at_different_places(dense_movie):
    _, labels = dense_movie
    holdout = choose_holdout(labels, [0, 1, 2], [0, 1, 2, 3])
    assert holdout is not None and holdout.frames == (0, 1, 2)
    for t, region in holdout.regions.items():
        ids = np.unique(labels[t][region])
        for i in ids[ids > 0]:  # every painted cell touching the region lies in it whole
            assert region[labels[t] == i].all()
        cols = np.flatnonzero(region.all(axis=0))  # the band spans the shorter side (frame is wider)
        assert cols.size >= round(0.15 * 160)
    bands = [tuple(np.flatnonzero(r.all(axis=0))[[0, -1]]) for r in holdout.regions.values()]
    assert len(set(bands)) == 3  # each frame holds out another part of the field
    assert holdout.cells >= MIN_HELDOUT_CELLS
    assert 0.05 < holdout.fraction < 0.4  # of the painted pixels of the 4 trained frames
    grown = holdout.excluded()
    for t, region in holdout.regions.items():
        assert grown[t][region].all() and grown[t].sum() > region.sum()


def test_too_little_painted_holds_nothing_out(dense_movie):
    _, labels = dense_movie
    few = np.where(np.isin(labels, [1, 2, 3]), labels, 0)  # three cells per frame
    assert choose_holdout(few, [0], [0]) is None
    assert choose_holdout(labels, [0], [0], fraction=0.0) is None


def test_held_out_pixels_carry_no_loss(dense_movie):
    image, labels = dense_movie
    holdout = choose_holdout(labels, [0, 1], [0, 1])
    data = TrainingSet(image, labels, DataConfig(crop_size=48), [0, 1], excluded=holdout.excluded())
    plain = TrainingSet(image, labels, DataConfig(crop_size=48), [0, 1])
    for t in (0, 1):
        valid = data._nearest[t][0, 1].numpy()
        grown = holdout.excluded()[t]
        assert not valid[grown].any() and valid[~grown].all()
        assert plain._nearest[t][0, 1].numpy().all()
    # crops drawn over held-out pixels there carry no loss: one crop per frame at a band's centre
    rng = np.random.default_rng(0)
    for t, region in holdout.regions.items():
        y, x = np.argwhere(region).mean(axis=0)
        _, _, _, v = data._crop([t], [True], rng, (float(y), float(x)))
        assert v.sum() < v.numel()  # part of the crop lies in the region and carries no loss


def test_region_objects_keeps_objects_mostly_inside():
    labels = np.zeros((10, 10), np.uint16)
    labels[0:4, 0:4] = 1  # all inside
    labels[5:9, 2:6] = 2  # half inside (columns 2-3 of 2-5)
    labels[0:4, 6:10] = 3  # one column of four inside
    region = np.zeros((10, 10), bool)
    region[:, :4] = True
    kept = region_objects(labels, region)
    assert set(np.unique(kept)) == {0, 1, 2}
    assert (kept[labels == 2] == 2).all()  # kept whole, also outside the region


def test_training_chooses_and_stores_the_threshold_on_held_out_cells(dense_movie, tmp_path):
    image, labels = dense_movie
    config = TrainConfig(iterations=4, max_time=None, batch_size=2)
    events = list(train(image, labels, tmp_path / "m.pt", train_config=config, frames=[0, 1, 2],
                        model_config=ModelConfig(base_channels=4), data_config=DataConfig(crop_size=48)))
    (chosen,) = [e.choice for e in events if isinstance(e, ThresholdChosen)]
    assert chosen.held_out is not None and 0.05 < chosen.held_out < 0.4
    holdout = choose_holdout(labels, [0, 1, 2], [0, 1, 2])
    assert chosen.cells == holdout.cells and chosen.frames == (0, 1, 2)
    assert "held-out SEG" in chosen.summary() and "% of the painted pixels" in chosen.summary()
    stored = load_checkpoint(tmp_path / "m.pt").training
    assert stored.threshold == chosen and stored["calibration"]["held_out"] == chosen.held_out


def test_too_little_painted_keeps_the_argmax_and_says_why(small_movie, tmp_path):
    image, labels = small_movie  # 5 cells a frame: too few to hold any out of one frame
    events = list(train(image, labels, tmp_path / "m.pt", frames=[0],
                        train_config=TrainConfig(iterations=2, max_time=None, batch_size=2),
                        model_config=ModelConfig(base_channels=4), data_config=DataConfig(crop_size=48)))
    (chosen,) = [e.choice for e in events if isinstance(e, ThresholdChosen)]
    assert chosen.threshold is None and "too little painted" in chosen.summary()
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.postprocess_config.threshold is None and ckpt.training.threshold == chosen
