"""Tests of the synthetic nuclei time-lapse (napari_cellseq.core.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.synthetic import SyntheticMovie, sample_data, synthetic_timelapse


@pytest.fixture(scope="module")
def movie() -> SyntheticMovie:
    return synthetic_timelapse()


def touching_pairs(frame: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (i, j), i < j, of different non-zero ids that are 4-adjacent in a (Y, X) frame."""
    pairs: set[tuple[int, int]] = set()
    for a, b in ((frame[:, :-1], frame[:, 1:]), (frame[:-1], frame[1:])):
        edge = (a != b) & (a > 0) & (b > 0)
        lo = np.minimum(a[edge], b[edge]).astype(int)
        hi = np.maximum(a[edge], b[edge]).astype(int)
        pairs.update(zip(lo.tolist(), hi.tolist()))
    return pairs


def track_frames(labels: np.ndarray) -> dict[int, np.ndarray]:
    """id -> sorted frame indices where it occurs."""
    present = {}
    for i in np.unique(labels)[1:]:
        present[int(i)] = np.nonzero((labels == i).any(axis=(1, 2)))[0]
    return present


def centroid(frame: np.ndarray, i: int) -> np.ndarray:
    return np.array(ndi.center_of_mass(frame == i))


def test_shapes_and_dtypes(movie):
    image, labels = movie
    assert image.shape == labels.shape == (20, 256, 256)
    assert image.dtype == np.uint16 and labels.dtype == np.uint16
    assert isinstance(movie, tuple) and movie.image is image and movie.labels is labels


def test_initial_ids_and_sizes(movie):
    _, labels = movie
    # 14 nuclei numbered 1..14 at the first frame, each a single connected region of about
    # 100-650 px (radius 6-14 px with an aspect ratio up to 1.5).
    assert np.unique(labels[0]).tolist() == list(range(15))
    for t in (0, 10, 19):
        ids = np.unique(labels[t])[1:]
        sizes = ndi.sum_labels(np.ones(labels[t].shape), labels[t], ids)
        assert sizes.min() >= 50 and sizes.max() <= 700
        for i in ids:
            assert ndi.label(labels[t] == i)[1] == 1


def test_deterministic_given_seed():
    a = synthetic_timelapse(n_frames=4, shape=(96, 96), n_cells=4, seed=3)
    b = synthetic_timelapse(n_frames=4, shape=(96, 96), n_cells=4, seed=3)
    c = synthetic_timelapse(n_frames=4, shape=(96, 96), n_cells=4, seed=4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_nuclei_are_bright_against_background(movie):
    image, labels = movie
    inside = image[labels > 0].astype(float).mean()
    outside = image[labels == 0].astype(float).mean()
    # background 100 counts; nuclei add ~200 counts on average
    assert 90 < outside < 115
    assert inside > outside + 100
    # per frame too, also at the end of the (photobleached) movie
    for t in (0, 19):
        assert image[t][labels[t] > 0].mean() > 2 * image[t][labels[t] == 0].mean()


def test_touching_nuclei_in_every_frame(movie):
    _, labels = movie
    counts = [len(touching_pairs(frame)) for frame in labels]
    assert min(counts) >= 2  # the default has 2 bound pairs that touch all the time
    assert touching_pairs(labels[0]) >= {(1, 2), (3, 4)}


def test_divisions(movie):
    _, labels = movie
    frames = track_frames(labels)
    n = labels.shape[0]
    ended = {i: f[-1] for i, f in frames.items() if f[-1] < n - 1}
    born = {i: f[0] for i, f in frames.items() if f[0] > 0}
    # default: max(1, 14 // 7) = 2 divisions, daughters get ids 15..18
    assert sorted(born) == [15, 16, 17, 18]
    assert len(ended) == 2
    for mother, last in ended.items():
        daughters = [i for i, first in born.items() if first == last + 1]
        assert len(daughters) >= 2
        c_mother = centroid(labels[last], mother)
        near = [d for d in daughters if np.hypot(*(centroid(labels[last + 1], d) - c_mother)) < 15]
        assert len(near) == 2
        # the two daughters touch when they appear and are apart a few frames later
        d1, d2 = sorted(near)
        assert (d1, d2) in touching_pairs(labels[last + 1])
        later = min(last + 6, n - 1)
        gap_now = np.hypot(*(centroid(labels[last + 1], d1) - centroid(labels[last + 1], d2)))
        gap_later = np.hypot(*(centroid(labels[later], d1) - centroid(labels[later], d2)))
        assert gap_later > gap_now


def test_ids_are_consistent_tracks(movie):
    _, labels = movie
    for i, frames in track_frames(labels).items():
        assert np.all(np.diff(frames) == 1), f"id {i} reappears"
        cents = np.array([centroid(labels[t], i) for t in frames])
        if len(cents) > 1:
            assert np.hypot(*np.diff(cents, axis=0).T).max() < 5.0


def test_photobleaching_dims_the_movie():
    image, labels = synthetic_timelapse(n_frames=30, shape=(96, 96), n_cells=4, seed=1, bleaching=0.05, noise=0.0)
    first = image[0][labels[0] > 0].mean() - 100
    last = image[-1][labels[-1] > 0].mean() - 100
    assert last < 0.5 * first  # exp(-0.05 * 29) = 0.23, nuclei sizes vary a little


def test_leave_border_lets_nuclei_go():
    _, labels = synthetic_timelapse(n_frames=40, shape=(64, 64), n_cells=3, seed=2, border="leave",
                                    max_speed=4.0, n_divisions=0, n_touching_pairs=0)
    frames = track_frames(labels)
    assert any(f[-1] < 39 for f in frames.values())  # some nucleus left the field


def test_sample_data_is_napari_layer_data_tuples():
    layers = sample_data()
    assert isinstance(layers, list) and len(layers) == 2
    (image, image_kw, image_type), (labels, labels_kw, labels_type) = layers
    assert (image_type, labels_type) == ("image", "labels")
    assert image_kw == {"name": "synthetic nuclei"}
    assert labels_kw == {"name": "synthetic nuclei labels"}
    assert image.shape == labels.shape == (20, 256, 256)
    assert image.dtype == labels.dtype == np.uint16


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"n_frames": 0}, "n_frames"),
        ({"shape": (8, 8)}, "shape"),
        ({"shape": (64, 64), "n_cells": 40}, "lower n_cells"),
        ({"border": "wrap"}, "border"),
        ({"n_cells": 4, "n_touching_pairs": 3}, "at most 2 pairs"),
        ({"n_cells": 4, "n_touching_pairs": 2, "n_divisions": 1}, "n_divisions"),
        ({"n_frames": 3, "n_divisions": 1}, "n_frames >= 5"),
        ({"radius_range": (10, 5)}, "radius_range"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_invalid_arguments_raise_input_error(kwargs, words):
    with pytest.raises(InputError, match=words):
        synthetic_timelapse(**kwargs)


def test_no_cells_gives_empty_labels():
    image, labels = synthetic_timelapse(n_frames=2, shape=(32, 32), n_cells=0)
    assert labels.max() == 0 and image.shape == (2, 32, 32)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_frames=st.integers(1, 7),
    side=st.integers(96, 128),
    n_cells=st.integers(1, 5),
)
def test_properties_of_any_movie(seed, n_frames, side, n_cells):
    image, labels = synthetic_timelapse(n_frames=n_frames, shape=(side, side + 8), n_cells=n_cells, seed=seed)
    assert image.shape == labels.shape == (n_frames, side, side + 8)
    assert image.dtype == labels.dtype == np.uint16
    # first frame holds ids 1..n_cells, all fully inside the field (border="reflect")
    assert np.unique(labels[0]).tolist() == list(range(n_cells + 1))
    # ids form tracks: each id occurs in one run of consecutive frames, later ids are new nuclei
    for i, frames in track_frames(labels).items():
        assert np.all(np.diff(frames) == 1)
        assert (frames[0] == 0) == (i <= n_cells)
        cents = np.array([centroid(labels[t], i) for t in frames])
        if len(cents) > 1:
            assert np.hypot(*np.diff(cents, axis=0).T).max() < 5.0
    # determinism
    again = synthetic_timelapse(n_frames=n_frames, shape=(side, side + 8), n_cells=n_cells, seed=seed)
    np.testing.assert_array_equal(again.labels, labels)
    np.testing.assert_array_equal(again.image, image)
