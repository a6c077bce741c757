"""Tests of the styled synthetic movies (napari_cellseq.core.synthetic_styles)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.synthetic_styles import (
    FAMILIES,
    Style,
    StyledMovie,
    exact_labels,
    random_movie,
    random_style,
    render,
)

SHAPE = (96, 112)


@pytest.fixture(scope="module")
def movies() -> dict[str, StyledMovie]:
    """One small movie of every style family (6 frames, 96x112 px)."""
    rng = np.random.default_rng(7)
    return {f: random_movie(rng, 6, SHAPE, family=f) for f in FAMILIES}


def assert_exact(labels: np.ndarray) -> None:
    """Every id one 4-connected region per frame; an id occurs in consecutive frames only."""
    assert labels.dtype == np.uint16
    for frame in labels:
        for region in regionprops(frame):
            assert ndi.label(frame == region.label)[1] == 1, region.label
    present = {}
    for t, frame in enumerate(labels):
        for i in np.unique(frame)[1:]:
            present.setdefault(int(i), []).append(t)
    for i, ts in present.items():
        assert ts == list(range(ts[0], ts[-1] + 1)), f"id {i} comes back after it ended: frames {ts}"


def test_equal_seeds_give_equal_arrays():
    a = random_movie(np.random.default_rng(3), 5, SHAPE)
    b = random_movie(np.random.default_rng(3), 5, SHAPE)
    c = random_movie(np.random.default_rng(4), 5, SHAPE)
    assert a.style == b.style
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.style != c.style or not np.array_equal(a.image, c.image)
    style = random_style(np.random.default_rng(0), 4, SHAPE, "phase-contrast rods")
    np.testing.assert_array_equal(render(style, 11).image, render(style, 11).image)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_has_exact_labels_and_its_contrast(movies, family):
    image, labels, style = movies[family]
    cells, contrast = FAMILIES[family]
    assert (style.family, style.cells, style.contrast) == (family, cells, contrast)
    assert image.shape == labels.shape == (6, *SHAPE)
    assert image.dtype == (np.uint8 if style.bit_depth == 8 else np.uint16)
    assert labels[0].max() > 0
    assert_exact(labels)
    inside, outside = image[labels > 0].mean(), image[labels == 0].mean()
    if contrast == "bright":
        assert inside > outside
    else:  # bright field and phase contrast: cells darker than the background
        assert inside < outside


def test_rods_are_long():
    rng = np.random.default_rng(0)
    for family in ("fluorescent rods", "phase-contrast rods", "bright-field rods"):
        style = replace(random_style(rng, 2, (160, 160), family), size=(3.0, 5.0))
        labels = render(style, 1).labels[0]
        whole = [r for r in regionprops(labels)
                 if r.bbox[0] > 0 and r.bbox[1] > 0 and r.bbox[2] < 160 and r.bbox[3] < 160]
        assert len(whole) >= 3, family
        for r in whole:  # rods not cut by the frame edge
            assert r.axis_major_length >= 3 * r.axis_minor_length, (family, r.label)


def test_rods_are_packed_side_by_side():
    style = replace(random_style(np.random.default_rng(1), 3, (128, 128), "fluorescent rods"),
                    gap=0.0, density=0.75)
    labels = render(style, 0).labels[0]
    # many rods touch a neighbour along an edge (4-adjacent pixels of two ids)
    a, b = labels[:, :-1], labels[:, 1:]
    touching = (a != b) & (a > 0) & (b > 0)
    assert touching.sum() > 50
    assert (labels > 0).mean() > 0.3


def test_bit_depths_fit_their_type():
    rng = np.random.default_rng(2)
    for family in FAMILIES:
        style = random_style(rng, 2, (64, 64), family)
        for depth in (8, 16):
            full = 255 if depth == 8 else 65535
            s = replace(style, bit_depth=depth,
                        background=min(style.background, 0.6 * full),
                        signal=float(np.sign(style.signal)) * 0.3 * full)
            image = render(s, 0).image
            assert image.dtype == (np.uint8 if depth == 8 else np.uint16)
            assert image.max() <= full and image.max() > 0


def test_frames_of_any_size_and_random_sizes():
    movie = render(Style(n_frames=3, shape=(40, 200), size=(4.0, 6.0), density=0.2), 0)
    assert movie.image.shape == movie.labels.shape == (3, 40, 200)
    shapes = {random_style(np.random.default_rng(s)).shape for s in range(8)}
    assert len(shapes) > 1 and all(128 <= side <= 384 for shape in shapes for side in shape)


def test_nuclei_move_touch_and_divide():
    style = Style(n_frames=10, shape=(128, 128), size=(6.0, 9.0), density=0.25, speed=2.0)
    labels = render(style, 3).labels
    assert_exact(labels)
    first, last = set(np.unique(labels[0])[1:]), set(np.unique(labels[-1])[1:])
    assert last - first, "no new ids: no division"
    shared = sorted(first & last)
    moved = [np.hypot(*np.subtract(ndi.center_of_mass(labels[0] == i), ndi.center_of_mass(labels[-1] == i)))
             for i in shared]
    assert np.median(moved) > 1.0
    a, b = labels[0][:, :-1], labels[0][:, 1:]
    assert ((a != b) & (a > 0) & (b > 0)).any(), "no touching nuclei"


def test_deformed_nuclei_stay_exact():
    style = Style(n_frames=4, shape=(96, 96), size=(7.0, 10.0), density=0.25, deform=0.35)
    labels = render(style, 5).labels
    assert_exact(labels)
    plain = render(replace(style, deform=0.0), 5).labels
    assert not np.array_equal(labels, plain)


def test_dim_cells_uneven_illumination_and_noise_levels():
    base = Style(n_frames=1, shape=(128, 128), size=(6.0, 8.0), density=0.2, spread=0.0, dome=0.0,
                 texture=0.0, blur=0.0, noise=0.0, gain=0.0, background=100.0, signal=1000.0)
    image, labels, _ = render(replace(base, dim=0.5), 1)
    means = ndi.mean(image[0], labels[0], np.unique(labels[0])[1:])
    assert means.min() < 0.5 * means.max()  # dim cells among bright ones
    glow, _, _ = render(replace(base, glowing=0.3), 1)
    glowing = ndi.mean(glow[0], labels[0], np.unique(labels[0])[1:])
    assert glowing.max() > 1.8 * np.median(glowing)  # a few cells far brighter than most
    # uneven illumination: in transmitted light it changes the background, in fluorescence the
    # cells (the camera offset stays)
    dark = replace(base, contrast="dark", background=1000.0, signal=-400.0)
    flat, _, _ = render(dark, 1)
    uneven, _, _ = render(replace(dark, illumination=0.5), 1)
    assert flat[0][labels[0] == 0].std() < 1.0 and uneven[0][labels[0] == 0].std() > 50.0
    even, _, _ = render(base, 1)
    lit, _, _ = render(replace(base, illumination=0.5), 1)
    cells = np.unique(labels[0])[1:]
    assert np.ptp(ndi.mean(lit[0], labels[0], cells)) > 2 * np.ptp(ndi.mean(even[0], labels[0], cells)) + 50
    assert lit[0][labels[0] == 0].std() < 10.0
    noisy, _, _ = render(replace(base, noise=50.0), 1)
    assert noisy[0][labels[0] == 0].astype(float).std() > 30.0


def test_exact_labels_keeps_the_largest_piece():
    frame = np.zeros((1, 10, 10), np.uint16)
    frame[0, 1:4, 1:4] = 5  # 9 px
    frame[0, 7:9, 7:9] = 5  # 4 px, a second piece of id 5
    frame[0, 5, 5] = 2
    out = exact_labels(frame)
    assert (out == 5).sum() == 9 and (out == 2).sum() == 1
    assert out[0, 7:9, 7:9].max() == 0


def test_bad_styles_are_clear_errors():
    with pytest.raises(InputError, match="family"):
        random_style(np.random.default_rng(0), family="confocal unicorns")
    with pytest.raises(InputError, match="contrast"):
        render(Style(contrast="glow"))
    with pytest.raises(InputError, match="signal"):
        render(Style(contrast="dark", signal=100.0))
    with pytest.raises(InputError, match="32x32"):
        render(Style(shape=(16, 64)))


@pytest.mark.parametrize("field, value", [("size", (0.5, 3.0)), ("noise", -1.0), ("blur", float("nan")),
                                          ("illumination", 1.5)])
def test_bad_numbers_are_clear_errors(field, value):
    with pytest.raises(InputError, match=f"style.{field}"):
        render(replace(Style(), **{field: value}))
