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


def test_a_pool_of_movies_is_normalised_movie_by_movie(small_movie):
    """Movies put end to end (``movie_lengths``): each is normalised with its own percentiles,
    so an 8-bit movie and a dark 16-bit one look alike to the network."""
    image, labels = small_movie
    dim = (image[:3] // 200).astype(np.float32)  # a much darker movie of 3 frames
    pool = np.concatenate([image[3:].astype(np.float32), dim])
    pool_labels = np.concatenate([labels[3:], labels[:3]])
    data = TrainingSet(pool, pool_labels, DataConfig(), movie_lengths=(3, 3))
    movie = data.normalized_movie()
    for a, b in ((0, 3), (3, 6)):
        assert np.percentile(movie[a:b], 1) == pytest.approx(0.0, abs=1e-4)
        assert np.percentile(movie[a:b], 99.8) == pytest.approx(1.0, abs=1e-4)
    assert data.value_range is None  # one range per movie
    one = TrainingSet(pool, pool_labels, DataConfig())
    assert np.percentile(one.normalized_movie()[3:], 99.8) < 0.2  # normalised as one movie: dim
    assert one.value_range is not None


def test_sequences_stay_inside_their_movie(small_movie):
    image, labels = small_movie
    pool = np.concatenate([image, image, image])
    pool_labels = np.concatenate([labels, labels, labels])
    data = TrainingSet(pool, pool_labels, DataConfig(crop_size=32), movie_lengths=(6, 6, 6))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        window = data._random_window(rng, 5)
        movies = {t // 6 for t in window}
        assert len(movies) == 1, window
        seen |= movies
    assert seen == {0, 1, 2}


def test_one_movie_windows_are_as_before(small_movie):
    """Without ``movie_lengths`` the windows (and so seeded runs) are those of one movie."""
    image, labels = small_movie
    data = TrainingSet(image, labels, DataConfig(crop_size=32))
    same = TrainingSet(image, labels, DataConfig(crop_size=32), movie_lengths=(6,))
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(20):
        assert data._random_window(a, 4) == same._random_window(b, 4)


@pytest.mark.parametrize("lengths", [(3, 2), (6, 0), (7,)])
def test_movie_lengths_must_split_the_frames(small_movie, lengths):
    image, labels = small_movie
    with pytest.raises(InputError, match="do not split the 6 frames"):
        TrainingSet(image, labels, DataConfig(), movie_lengths=lengths)
