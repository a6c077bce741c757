import numpy as np
import pytest

from napari_cellseq.core.config import DataConfig
from napari_cellseq.core.data.dataset import TrainingSet, annotated_frames
from napari_cellseq.core.errors import InputError


def test_annotated_frames(small_movie):
    _, labels = small_movie
    painted = labels.copy()
    painted[[1, 2, 4]] = 0
    assert annotated_frames(painted) == [0, 3, 5]
    assert annotated_frames(labels[0]) == [0]


def test_no_annotation_is_a_clear_error(small_movie):
    image, labels = small_movie
    with pytest.raises(InputError, match="no annotated frame"):
        TrainingSet(image, np.zeros_like(labels), DataConfig())


def test_shape_mismatch_names_both_shapes(small_movie):
    image, labels = small_movie
    with pytest.raises(InputError, match=r"\(6, 96, 96\)"):
        TrainingSet(image, labels[:, :90], DataConfig())


def test_frame_batch_shapes_and_targets(small_movie):
    image, labels = small_movie
    data = TrainingSet(image, labels, DataConfig(crop_size=64), frames=[0, 2])
    batch = data.frame_batch(np.random.default_rng(0), 3)
    assert batch.x.shape == (3, 1, 64, 64)
    assert batch.classes.shape == batch.weights.shape == batch.valid.shape == (3, 64, 64)
    assert set(np.unique(batch.classes.numpy())) <= {0, 1, 2}
    assert batch.valid.min() >= 0 and batch.valid.max() == 1
    # cells are brighter than background in the normalised crop
    x = batch.x[:, 0].numpy()
    c = batch.classes.numpy()
    assert x[c == 1].mean() > x[c == 0].mean() + 0.2


def test_batches_are_seeded(small_movie):
    image, labels = small_movie
    data = TrainingSet(image, labels, DataConfig(crop_size=48))
    a = data.frame_batch(np.random.default_rng(5), 2)
    b = data.frame_batch(np.random.default_rng(5), 2)
    assert np.array_equal(a.x.numpy(), b.x.numpy())
    assert np.array_equal(a.classes.numpy(), b.classes.numpy())


def test_crop_larger_than_image_is_masked(small_movie):
    image, labels = small_movie
    data = TrainingSet(image, labels, DataConfig(crop_size=128, augment_affine=False, augment_elastic=False))
    batch = data.frame_batch(np.random.default_rng(0), 1)
    assert batch.x.shape == (1, 1, 128, 128)
    # only the 96x96 frame area carries loss
    assert batch.valid.sum() == pytest.approx(96 * 96, abs=200)


def test_partial_frames_ignore_unpainted_pixels(small_movie):
    image, labels = small_movie
    painted = np.zeros_like(labels)
    painted[0, 10:40, 10:40] = labels[0, 10:40, 10:40]
    painted[0, 0:5, 0:5] = 999  # explicit background label
    data = TrainingSet(image, painted, DataConfig(crop_size=96, augment_affine=False, augment_elastic=False),
                       partial_frames=(0,), background_label=999)
    batch = data.frame_batch(np.random.default_rng(0), 1)
    valid = batch.valid.numpy()[0]
    painted_pixels = int(((painted[0] > 0)).sum())
    assert valid.sum() == painted_pixels
    # the background label is background, not a cell
    classes = batch.classes.numpy()[0]
    assert (classes[valid > 0] == 0).sum() >= 25


def test_sequence_batch_marks_unannotated_frames(small_movie):
    image, labels = small_movie
    painted = labels.copy()
    painted[[1, 2, 3, 4]] = 0
    data = TrainingSet(image, painted, DataConfig(crop_size=48))
    batch = data.sequence_batch(np.random.default_rng(0), 2, length=5)
    assert batch.x.shape == (2, 5, 1, 48, 48)
    per_frame = batch.valid.numpy().reshape(2, 5, -1).max(axis=2)
    # every window contains at least one annotated frame, and not all of them are annotated
    assert np.all(per_frame.max(axis=1) == 1)
    assert per_frame.sum() < 10
