"""Synthetic movies in many imaging *styles*, with exact instance labels, for built-in weights.

:mod:`.synthetic` simulates one kind of movie (fluorescent nuclei). A model that should work
before any training (the built-in weights, ``scripts/train_builtin.py``) must have seen what
biologists image, so this module draws a random :class:`Style` from a seeded generator and
renders a movie in it:

* **cells**: ``"nuclei"`` (ellipses of :func:`~.synthetic.synthetic_timelapse`: moving,
  touching, dividing; of varied size and density, optionally deformed into irregular blobs by a
  smooth displacement field) or ``"rods"`` (capsules like bacteria, aspect ratio 3.5-8, packed
  side by side in rows of one orientation per colony domain, drifting as a colony);
* **contrast**: ``"bright"`` (fluorescence: cells brighter than the background, photobleaching),
  ``"dark"`` (bright field: cells darker than the background) or ``"halo"`` (phase contrast:
  dark cells with a bright halo around them);
* per-cell brightness spread with a share of **dim cells**, a dome profile and internal
  **texture** of random grain;
* **uneven illumination** (a smooth multiplicative field), Gaussian **blur** and shot + read
  **noise** at several levels;
* **8-bit** (``uint8``) or **16-bit** (``uint16``, with offsets up to half the range, as
  sCMOS cameras write them) values; frames of any size.

Labels are exact: ``uint16`` ids, 0 = background, no overlap (every pixel belongs to at most one
cell), every id one 4-connected region in every frame where it occurs, and an id is one cell
through time (it never reappears after it ends; daughters of a division get new ids).

Everything is drawn from ``numpy.random.default_rng``: equal seeds give equal arrays.
:func:`random_movie` is what training calls (a new mix every call)::

    rng = np.random.default_rng(0)
    movie = random_movie(rng, n_frames=12, shape=(256, 256))   # StyledMovie(image, labels, style)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as connected_components

from .errors import InputError
from .synthetic import synthetic_timelapse

__all__ = ["FAMILIES", "Style", "StyledMovie", "random_style", "render", "random_movie", "exact_labels"]

#: Named families of styles: (cells, contrast). :func:`random_style` draws one (weights
#: :data:`FAMILY_WEIGHTS`) unless asked for a family; the per-style table of the built-in
#: weights' README is one row per family.
FAMILIES: dict[str, tuple[str, str]] = {
    "fluorescent nuclei": ("nuclei", "bright"),
    "bright-field cells": ("nuclei", "dark"),
    "phase-contrast cells": ("nuclei", "halo"),
    "fluorescent rods": ("rods", "bright"),
    "phase-contrast rods": ("rods", "halo"),
    "bright-field rods": ("rods", "dark"),
}
FAMILY_WEIGHTS: dict[str, float] = {
    "fluorescent nuclei": 0.50,
    "bright-field cells": 0.08,
    "phase-contrast cells": 0.10,
    "fluorescent rods": 0.10,
    "phase-contrast rods": 0.14,
    "bright-field rods": 0.08,
}
_CELLS = ("nuclei", "rods")
# Share of a fluorescence background that is light (autofluorescence, out-of-focus glow), which
# uneven illumination scales; the rest is the camera's offset.
_LIT_BACKGROUND = 0.1
_LIT_SIGNAL = 0.25  # ... and at most this share of the cells' signal
_CONTRASTS = ("bright", "dark", "halo")


@dataclass(frozen=True)
class Style:
    """How a synthetic movie looks. All fields are plain numbers / texts (``asdict`` is JSON).

    family : name in :data:`FAMILIES` (informative); cells : ``"nuclei"`` or ``"rods"``;
    contrast : ``"bright"``, ``"dark"`` or ``"halo"``.
    n_frames, shape : movie size ``(T, Y, X)``.
    size : nuclei: mean radius range ``(low, high)`` px; rods: width range ``(low, high)`` px.
    density : wanted fraction of the field covered by cells (nuclei are capped at 0.35).
    deform : nuclei only: amplitude of the smooth displacement field, as a fraction of the
        smallest radius (0: ellipses).
    elongation : rods only: capsule length / width range ``(low, high)`` (low >= 3.5).
    gap : rods only: largest gap between neighbouring rods in px (0: always touching).
    spread : standard deviation of the log per-cell brightness; dim : share of dim cells
        (brightness x 0.2-0.45); glowing : share of very bright cells (x 2-4, like mitotic
        nuclei with condensed chromatin: they set the top percentile that normalisation maps
        to 1, so the other cells look dim to the network, as in real movies).
    dome : how much dimmer a cell is at its edge than at its centre (0-1).
    texture : relative amplitude of the internal grain; grain : its size (px).
    halo : brightness of the phase-contrast halo relative to the cell contrast.
    illumination : amplitude of the smooth uneven illumination (0: flat); its scale is the
        field size. In fluorescence it scales the cells and a little of the background
        (a tenth, at most a quarter of the cell signal; the rest is the camera's offset); in transmitted light (dark, halo) everything.
    blur : Gaussian PSF sigma (px).
    bit_depth : 8 or 16; background, signal : background level and cell contrast in counts
        (``signal < 0`` for dark cells); noise : read-noise sigma in counts; gain : counts per
        photo-electron of the shot noise (0: none).
    bleaching : per-frame photobleaching rate of the signal (fluorescence).
    speed : largest speed of a cell (px/frame).
    """

    family: str = "fluorescent nuclei"
    cells: str = "nuclei"
    contrast: str = "bright"
    n_frames: int = 12
    shape: tuple[int, int] = (256, 256)
    size: tuple[float, float] = (6.0, 14.0)
    density: float = 0.2
    deform: float = 0.0
    elongation: tuple[float, float] = (3.5, 6.0)
    gap: float = 1.0
    spread: float = 0.25
    dim: float = 0.0
    glowing: float = 0.0
    dome: float = 0.3
    texture: float = 0.15
    grain: float = 1.5
    halo: float = 0.0
    illumination: float = 0.0
    blur: float = 1.5
    bit_depth: int = 16
    background: float = 100.0
    signal: float = 300.0
    noise: float = 6.0
    gain: float = 1.0
    bleaching: float = 0.0
    speed: float = 2.0

    def as_dict(self) -> dict[str, Any]:
        """The style as a JSON-able dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class StyledMovie(NamedTuple):
    """A rendered movie: image ``(T, Y, X)`` uint8 or uint16, labels ``(T, Y, X)`` uint16
    instance ids (0 = background), and the :class:`Style` it was drawn in."""

    image: np.ndarray
    labels: np.ndarray
    style: Style


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def random_style(
    rng: np.random.Generator,
    n_frames: int = 12,
    shape: tuple[int, int] | None = None,
    family: str | None = None,
) -> Style:
    """A random :class:`Style` drawn from ``rng``.

    n_frames : frames of the movie; shape : frame size ``(Y, X)`` (default: random sides of
    128-384 px); family : a name of :data:`FAMILIES` (default: drawn with
    :data:`FAMILY_WEIGHTS`).
    """
    names = list(FAMILIES)
    if family is None:
        p = np.array([FAMILY_WEIGHTS[n] for n in names])
        family = names[int(rng.choice(len(names), p=p / p.sum()))]
    elif family not in FAMILIES:
        raise InputError(f"unknown style family {family!r}: choose one of {', '.join(names)}")
    cells, contrast = FAMILIES[family]
    if shape is None:
        shape = (int(rng.integers(128, 385)), int(rng.integers(128, 385)))
    side = min(shape)
    bit_depth = 8 if rng.random() < 0.3 else 16
    full = 255.0 if bit_depth == 8 else float(rng.choice([4095.0, 65535.0]))

    if cells == "nuclei":
        r_lo = _loguniform(rng, 3.0, 22.0)
        r_lo = min(r_lo, (side - 8) / 2.5 / 1.6)  # fits the field (see synthetic._validate)
        size = (r_lo, r_lo * rng.uniform(1.15, 1.8))
        size = (size[0], min(size[1], (side - 8) / 2.5))
        density = float(rng.uniform(0.04, 0.34))
        deform = float(rng.uniform(0.0, 0.35)) if rng.random() < 0.5 else 0.0
        speed = float(rng.uniform(0.3, 0.25 * size[0] + 1.0))
        elongation, gap = (3.5, 6.0), 1.0
    else:
        w_lo = rng.uniform(3.0, 9.0)
        size = (w_lo, w_lo * rng.uniform(1.0, 1.3))
        lo_e = rng.uniform(3.5, 5.0)
        elongation = (lo_e, lo_e + rng.uniform(0.5, 3.0))
        density = float(rng.uniform(0.15, 0.75))
        gap = float(rng.choice([0.0, rng.uniform(0.5, 3.0)]))
        deform = 0.0
        speed = float(rng.uniform(0.2, 1.5))

    # Brightness, in counts: fluorescence over a dark offset, transmitted light as a bright
    # background that cells darken.
    if contrast == "bright":
        background = full * (_loguniform(rng, 0.002, 0.3) if rng.random() < 0.7 else rng.uniform(0.3, 0.55))
        room = 0.97 * full - background
        signal = float(min(room, full * _loguniform(rng, 0.02, 0.6)))
        if bit_depth == 8:
            signal = max(signal, 25.0)
        bleaching = float(rng.uniform(0.0, 0.04))
        halo = 0.0
    else:
        background = full * rng.uniform(0.25, 0.7)
        signal = -float(background * rng.uniform(0.12, 0.6))
        bleaching = 0.0
        halo = float(rng.uniform(0.4, 1.2)) if contrast == "halo" else 0.0
    # Noise relative to the cell contrast, from nearly clean to hard.
    rel = _loguniform(rng, 0.02, 0.35)
    gain = float(rng.uniform(0.2, 2.0)) if rng.random() < 0.7 else 0.0
    shot = math.sqrt(gain * max(background, 1.0)) if gain else 0.0
    noise = float(max(rel * abs(signal) - shot, 0.3 * rel * abs(signal), 0.5))

    return Style(
        family=family, cells=cells, contrast=contrast, n_frames=int(n_frames),
        shape=(int(shape[0]), int(shape[1])), size=(float(size[0]), float(size[1])),
        density=density, deform=deform, elongation=(float(elongation[0]), float(elongation[1])),
        gap=gap, spread=float(rng.uniform(0.05, 0.45)),
        dim=float(rng.uniform(0.05, 0.3)) if rng.random() < 0.4 else 0.0,
        glowing=float(rng.uniform(0.01, 0.08)) if contrast == "bright" and rng.random() < 0.6 else 0.0,
        dome=float(rng.uniform(0.0, 0.6)), texture=float(rng.uniform(0.0, 0.4)),
        grain=float(rng.uniform(0.8, 3.0)), halo=halo,
        illumination=float(rng.uniform(0.05, 0.5)) if rng.random() < 0.6 else 0.0,
        blur=float(rng.uniform(0.3, 2.5)) * (1.0 if cells == "nuclei" else 0.6),
        bit_depth=bit_depth, background=float(background), signal=float(signal), noise=noise,
        gain=gain, bleaching=bleaching, speed=speed,
    )


def _check(style: Style) -> None:
    if style.cells not in _CELLS:
        raise InputError(f"style.cells must be one of {_CELLS}, got {style.cells!r}")
    if style.contrast not in _CONTRASTS:
        raise InputError(f"style.contrast must be one of {_CONTRASTS}, got {style.contrast!r}")
    if style.bit_depth not in (8, 16):
        raise InputError(f"style.bit_depth must be 8 or 16, got {style.bit_depth!r}")
    if style.n_frames < 1 or min(style.shape) < 32:
        raise InputError(f"a styled movie needs n_frames >= 1 and frames of at least 32x32 px, got "
                         f"{style.n_frames} frames of {style.shape}")
    if (style.contrast == "bright") != (style.signal > 0):
        raise InputError("style.signal must be > 0 for bright cells and < 0 for dark cells "
                         f"(contrast {style.contrast!r}, signal {style.signal})")
    if style.cells == "rods" and style.elongation[0] < 3.5:
        raise InputError(f"rods need elongation >= 3.5, got {style.elongation}")
    if not 1.0 <= style.size[0] <= style.size[1]:
        raise InputError(f"style.size must be (low, high) with 1 <= low <= high px, got {style.size}")
    for name in ("density", "deform", "gap", "spread", "dim", "glowing", "dome", "texture", "halo", "illumination",
                 "blur", "background", "noise", "gain", "bleaching", "speed"):
        value = getattr(style, name)
        if not (math.isfinite(value) and value >= 0):
            raise InputError(f"style.{name} must be a finite number >= 0, got {value!r}")
    if style.illumination >= 1 or max(style.dim, style.glowing, style.dome) > 1:
        raise InputError("style.illumination must be < 1 and style.dim, style.glowing, style.dome at "
                         f"most 1 (got {style.illumination}, {style.dim}, {style.glowing}, {style.dome})")


def render(style: Style, seed: int | None = 0) -> StyledMovie:
    """Render a movie in ``style``; equal ``(style, seed)`` give equal arrays."""
    _check(style)
    rng = np.random.default_rng(seed)
    if style.cells == "nuclei":
        labels = _nuclei_labels(style, rng)
    else:
        labels = _rod_labels(style, rng)
    labels = exact_labels(labels)
    image = _form_image(labels, style, rng)
    return StyledMovie(image, labels, style)


def random_movie(
    rng: np.random.Generator,
    n_frames: int = 12,
    shape: tuple[int, int] | None = None,
    family: str | None = None,
) -> StyledMovie:
    """A movie in a :func:`random_style` drawn from ``rng`` (rendered with a seed from ``rng``)."""
    style = random_style(rng, n_frames, shape, family)
    return render(style, int(rng.integers(1 << 31)))


# --- geometry: nuclei ---------------------------------------------------------------------------


def _nuclei_labels(style: Style, rng: np.random.Generator) -> np.ndarray:
    """Labels (T, Y, X) of moving, touching, dividing nuclei (:func:`synthetic_timelapse`),
    optionally deformed by a smooth displacement field that is the same in every frame."""
    lo, hi = style.size
    area = style.shape[0] * style.shape[1]
    mean_area = math.pi * ((lo + hi) / 2) ** 2
    n = max(1, int(min(style.density, 0.33) * area / mean_area))
    seed = int(rng.integers(1 << 31))
    labels = None
    for _ in range(8):  # crowded fields may not place: fewer nuclei
        try:
            labels = synthetic_timelapse(
                style.n_frames, style.shape, n, seed, radius_range=(lo, hi),
                n_touching_pairs=min(n // 2, max(1, n // 4)), max_speed=max(style.speed, 0.1),
                border="leave" if rng.random() < 0.5 else "reflect",
                psf_sigma=0.0, texture=0.0, noise=0.0, bleaching=0.0,
            ).labels
            break
        except InputError:
            n = max(1, int(n * 0.8))
    if labels is None:
        raise InputError(f"could not place nuclei of radius {lo:.1f}-{hi:.1f} px in {style.shape}")
    if style.deform > 0:
        labels = _deform(labels, style.deform * lo, 1.5 * (lo + hi) / 2, rng)
    return labels


def _deform(labels: np.ndarray, amplitude: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Labels (T, Y, X) resampled (nearest) through one smooth random displacement field of
    about ``amplitude`` px varying over ``scale`` px: ellipses become irregular blobs."""
    shape = labels.shape[1:]
    field = []
    for _ in range(2):
        f = ndi.gaussian_filter(rng.standard_normal(shape), scale, mode="wrap")
        f *= amplitude / max(float(np.abs(f).max()), 1e-9)
        field.append(f)
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    coords = np.stack([yy + field[0], xx + field[1]])
    out = np.empty_like(labels)
    for t in range(labels.shape[0]):
        out[t] = ndi.map_coordinates(labels[t], coords, order=0, mode="constant", cval=0)
    return out


# --- geometry: rods -----------------------------------------------------------------------------


@dataclass
class _Rod:
    id: int
    c: np.ndarray  # centre (y, x)
    theta: float  # axis direction of (y, x) = (sin, cos)
    length: float  # capsule length, end to end (px)
    width: float


def _rod_labels(style: Style, rng: np.random.Generator) -> np.ndarray:
    """Labels (T, Y, X) of capsule-shaped rods packed side by side in rows.

    The field is split into 1-3 domains (nearest of random seeds), each with one orientation;
    rods are laid in rows across their domain (row spacing = width + gap, rods end to end along a
    row), dropped at random to reach ``density``, and a rod is kept only where its capsule
    overlaps no rod already laid. Over time the colony drifts and turns slowly, each rod
    jiggles a little; a pixel belongs to the rod whose axis is nearest relative to its width.
    """
    ny, nx = style.shape
    n_dom = int(rng.integers(1, 4))
    seeds = np.stack([rng.uniform(0, ny, n_dom), rng.uniform(0, nx, n_dom)], axis=1)
    angles = rng.uniform(0, math.pi, n_dom)
    w_lo, w_hi = style.size
    e_lo, e_hi = style.elongation
    occupied = np.zeros(style.shape, bool)
    rods: list[_Rod] = []
    keep = min(1.0, style.density / 0.75)
    diag = math.hypot(ny, nx)
    for d in range(n_dom):
        th = angles[d]
        u = np.array([math.sin(th), math.cos(th)])  # along the rows
        n = np.array([math.cos(th), -math.sin(th)])  # across the rows
        width = rng.uniform(w_lo, w_hi)
        offset = -diag / 2
        while offset < diag / 2:
            along = -diag / 2 + rng.uniform(0, width * e_hi)
            row_w = width * rng.uniform(0.9, 1.1)
            while along < diag / 2:
                w = row_w * rng.uniform(0.92, 1.08)
                length = w * rng.uniform(e_lo, e_hi)
                c = np.array([ny / 2, nx / 2]) + offset * n + (along + length / 2) * u
                along += length + rng.uniform(0.0, max(style.gap, 0.5)) + 1.0
                if not (-length < c[0] < ny + length and -length < c[1] < nx + length):
                    continue
                if np.argmin(np.hypot(*(seeds - c).T)) != d or rng.random() > keep:
                    continue
                rod = _Rod(len(rods) + 1, c, th + rng.normal(0, 0.04), length, w)
                mask, window = _capsule(rod, style.shape)
                if mask is None or occupied[window][mask].any():
                    continue
                occupied[window][mask] = True
                rods.append(rod)
            offset += row_w + rng.uniform(0.0, style.gap) + 0.5
    n_frames = style.n_frames
    labels = np.zeros((n_frames, *style.shape), np.uint16)
    drift = rng.normal(0, 1, 2)
    drift *= rng.uniform(0, style.speed) / max(float(np.hypot(*drift)), 1e-9)
    spin = rng.normal(0, 0.004)
    centre = np.array([ny / 2, nx / 2])
    for t in range(n_frames):
        if t > 0:
            rot = np.array([[math.cos(spin), -math.sin(spin)], [math.sin(spin), math.cos(spin)]])
            for rod in rods:
                rod.c = centre + rot @ (rod.c - centre) + drift + rng.normal(0, 0.15 * style.speed, 2)
                rod.theta += spin + rng.normal(0, 0.01)
        labels[t] = _paint_rods(rods, style.shape)
    return labels


def _capsule(rod: _Rod, shape: tuple[int, int], pad: float = 1.0):
    """``(mask, window)``: the rod's capsule (distance to its axis segment <= width/2) in its
    bounding window of the frame, or ``(None, None)`` when the window is outside the frame."""
    q, window = _capsule_distance(rod, shape, pad)
    if q is None:
        return None, None
    return q <= 1.0, window


def _capsule_distance(rod: _Rod, shape: tuple[int, int], pad: float = 1.0):
    """Distance to the rod's axis segment over half its width, in its bounding window."""
    r = rod.length / 2 + pad
    cy, cx = rod.c
    y0, y1 = max(int(math.floor(cy - r)), 0), min(int(math.ceil(cy + r)) + 1, shape[0])
    x0, x1 = max(int(math.floor(cx - r)), 0), min(int(math.ceil(cx + r)) + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None, None
    dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
    s, c = math.sin(rod.theta), math.cos(rod.theta)
    half = max(rod.length - rod.width, 0.0) / 2
    along = np.clip(dy * s + dx * c, -half, half)
    across = dy * c - dx * s
    dist = np.sqrt((dy * s + dx * c - along) ** 2 + across ** 2)
    return dist / np.float32(rod.width / 2), (slice(y0, y1), slice(x0, x1))


def _paint_rods(rods: list[_Rod], shape: tuple[int, int]) -> np.ndarray:
    """One frame of rod labels: each pixel to the rod of smallest normalised axis distance <= 1."""
    labels = np.zeros(shape, np.uint16)
    best = np.full(shape, np.inf, np.float32)
    for rod in rods:
        q, window = _capsule_distance(rod, shape)
        if q is None:
            continue
        win = (q <= 1.0) & (q < best[window])
        labels[window][win] = rod.id
        best[window][win] = q[win]
    return labels


# --- exact labels ----------------------------------------------------------------------------


def exact_labels(labels: np.ndarray) -> np.ndarray:
    """Labels (T, Y, X) where every id is one 4-connected region in every frame.

    An id split into pieces (by the border, a neighbour or resampling) keeps its largest piece;
    the others become background. Ids never appear anew, so ids stay consistent through time as
    long as no id vanishes from a frame and comes back (the largest piece always stays).
    """
    out = labels.copy()
    for t in range(out.shape[0]):
        frame = out[t]
        comps = connected_components(frame, background=0, connectivity=1)
        n = int(comps.max())
        if n == 0:
            continue
        sizes = np.bincount(comps.ravel(), minlength=n + 1)
        ids = np.zeros(n + 1, np.int64)
        ids[comps.ravel()] = frame.ravel()
        order = np.lexsort((-sizes[1:], ids[1:]))  # by id, largest piece first
        first = np.ones(n, bool)
        first[1:] = ids[1:][order][1:] != ids[1:][order][:-1]
        keep = np.zeros(n + 1, bool)
        keep[1:][order[first]] = True
        if not keep[1:].all():
            frame[~keep[comps]] = 0
    return out


# --- image formation ----------------------------------------------------------------------------


def _form_image(labels: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Grey values (T, Y, X) of ``labels`` in ``style`` (uint8 for 8 bits, else uint16)."""
    n_frames, ny, nx = labels.shape
    top = int(labels.max())
    bright = np.exp(rng.normal(0.0, style.spread, top + 1)).astype(np.float32)
    if style.dim > 0:
        dim = rng.random(top + 1) < style.dim
        bright[dim] *= rng.uniform(0.2, 0.45, int(dim.sum())).astype(np.float32)
    if style.glowing > 0:
        glow = rng.random(top + 1) < style.glowing
        bright[glow] *= rng.uniform(2.0, 4.0, int(glow.sum())).astype(np.float32)
    bright[0] = 0.0
    grain = rng.standard_normal((ny, nx)).astype(np.float32)
    grain = ndi.gaussian_filter(grain, style.grain)
    grain /= max(float(grain.std()), 1e-6)
    illum = np.ones((ny, nx), np.float32)
    if style.illumination > 0:
        f = ndi.gaussian_filter(rng.standard_normal((ny // 8 + 2, nx // 8 + 2)), 2.0)
        f = ndi.zoom(f, (ny / f.shape[0], nx / f.shape[1]), order=1)[:ny, :nx]
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-9) * 2 - 1  # [-1, 1]
        yy, xx = np.mgrid[0:ny, 0:nx]
        g = rng.normal(0, 1, 2)
        ramp = (g[0] * (yy / ny - 0.5) + g[1] * (xx / nx - 0.5))
        illum = (1.0 + style.illumination * np.clip(0.6 * f + 0.4 * ramp, -1, 1)).astype(np.float32)
    full = 255.0 if style.bit_depth == 8 else 65535.0
    image = np.empty(labels.shape, np.uint8 if style.bit_depth == 8 else np.uint16)
    shift = rng.standard_normal(2) * 3.0  # the grain drifts a little with time
    for t in range(n_frames):
        frame = labels[t]
        inside = frame > 0
        edges = inside & ~ndi.binary_erosion(inside, border_value=1) | _inner_edges(frame)
        depth = ndi.distance_transform_edt(inside & ~edges).astype(np.float32)
        if top:
            deepest = ndi.maximum(depth, frame, np.arange(top + 1)).astype(np.float32)
            deepest[deepest == 0] = 1.0
            rel = depth / deepest[frame]
        else:
            rel = depth
        g = ndi.shift(grain, shift * t / max(n_frames, 1), order=1, mode="wrap")
        obj = bright[frame] * (1.0 - style.dome * (1.0 - rel) ** 2) * (1.0 + style.texture * g)
        obj = np.clip(obj, 0.0, None) * inside
        if style.contrast == "halo":
            mask = inside.astype(np.float32)
            spread = ndi.gaussian_filter(mask, 1.0 + 0.5 * style.size[0])
            obj = obj - style.halo * np.clip(spread - mask, 0, None) * 2.0
        if style.blur > 0:
            obj = ndi.gaussian_filter(obj, style.blur)
        signal = style.signal * math.exp(-style.bleaching * t)
        if style.contrast == "bright":
            # Fluorescence: most of the background is the camera's offset, which the uneven
            # excitation does not change; it scales the cells and a little autofluorescence.
            lit = min(_LIT_BACKGROUND * style.background, _LIT_SIGNAL * style.signal)
            expected = (style.background - lit) + illum * (lit + signal * obj)
        else:  # transmitted light: the illumination scales everything
            expected = illum * (style.background + signal * obj)
        np.clip(expected, 0.0, None, out=expected)
        counts = expected
        if style.gain > 0:
            counts = expected + rng.standard_normal(expected.shape).astype(np.float32) * np.sqrt(
                style.gain * expected)
        counts = counts + np.float32(style.noise) * rng.standard_normal(expected.shape).astype(np.float32)
        image[t] = np.clip(np.rint(counts), 0, full)
    return image


def _inner_edges(frame: np.ndarray) -> np.ndarray:
    """Pixels of ``frame`` 4-adjacent to a pixel of another non-zero id (edges between touching cells)."""
    edge = np.zeros(frame.shape, bool)
    for a, b, sa, sb in ((frame[:, :-1], frame[:, 1:], (slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                         (frame[:-1], frame[1:], (slice(None, -1), slice(None)), (slice(1, None), slice(None)))):
        diff = (a != b) & (a > 0) & (b > 0)
        edge[sa] |= diff
        edge[sb] |= diff
    return edge
