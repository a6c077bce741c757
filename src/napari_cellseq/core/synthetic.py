"""Synthetic fluorescence time-lapse of nuclei with exact instance labels.

Used for fast tests, the README demo (train on a few frames, segment all, score) and as the
napari plugin's built-in sample data (:func:`sample_data`). Nothing here imports napari.

The simulation
--------------
* Nuclei are filled ellipses (mean radius ``radius_range`` px, aspect ratio 1-1.5, random and
  slowly turning orientation). Where two ellipses overlap, each pixel goes to the nucleus whose
  centre is nearest in that nucleus' own elliptic metric (smallest ``(u/a)^2 + (v/b)^2``), so
  labels never overlap and touching nuclei share an edge.
* Nuclei move as a random walk with inertia, are reflected at the borders (or may leave the
  field, ``border="leave"``) and push each other apart when they overlap by more than 10 %.
* ``n_touching_pairs`` pairs of nuclei are bound together (they overlap by about 15 % along the
  line joining their centres), so every frame has touching nuclei, the hard case of
  instance segmentation.
* ``n_divisions`` nuclei divide: the mother id ends, two daughters with new ids appear at its
  place, touching, and move apart over the next few frames.
* Image formation: per-nucleus brightness, a mild dome profile (slightly dimmer towards the edge,
  but no guaranteed dark gap between touching nuclei), smooth internal texture, Gaussian PSF blur,
  background offset, exponential photobleaching, Poisson shot noise plus Gaussian read noise.

Everything is drawn from ``numpy.random.default_rng(seed)``: equal arguments give equal arrays.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError

__all__ = ["SyntheticMovie", "synthetic_timelapse", "sample_data"]

logger = logging.getLogger(__name__)

# Separation of bound (touching) pairs, as a fraction of the sum of the two radii along the line
# joining their centres: < 1 means the ellipses overlap and therefore share an edge.
_PAIR_SEPARATION = 0.85
# Nuclei of different bodies are pushed apart when closer than this fraction of their radii sum.
_MIN_SEPARATION = 0.9
# Daughters start at this separation and move apart by _DIVISION_RATE per frame until _DIVISION_END.
_DIVISION_START = 0.8
_DIVISION_RATE = 0.15
_DIVISION_END = 1.3
_INERTIA = 0.8  # fraction of last frame's velocity kept
_ANGLE_STEP = 0.04  # std of the per-frame change of orientation (rad)
_MAX_DENSITY = 0.35  # max. fraction of the field covered by nuclei (on average)


class SyntheticMovie(NamedTuple):
    """A synthetic movie; unpacks as ``image, labels = synthetic_timelapse()``.

    Attributes
    ----------
    image : (T, Y, X) uint16 fluorescence counts.
    labels : (T, Y, X) uint16 instance ids, 0 = background; an id is one nucleus over time
        (a track), daughters of a division get new ids.
    """

    image: np.ndarray
    labels: np.ndarray


@dataclass
class _Cell:
    id: int
    a: float  # semi-major axis (px)
    b: float  # semi-minor axis (px)
    theta: float  # direction of the major axis, angle of (y, x) = (sin, cos)
    brightness: float


@dataclass
class _Body:
    """One nucleus, or two that move together (a bound pair or two daughters moving apart)."""

    cells: list[_Cell]
    c: np.ndarray  # centre (y, x), float
    v: np.ndarray  # velocity (y, x) px/frame
    psi: float = 0.0  # pair axis angle
    sep: float = _PAIR_SEPARATION  # pair separation factor
    dividing: bool = False

    def distance(self) -> float:
        """Centre-to-centre distance of the two nuclei of a pair (0 for a single nucleus)."""
        if len(self.cells) == 1:
            return 0.0
        c1, c2 = self.cells
        return self.sep * (_radius_along(c1, self.psi) + _radius_along(c2, self.psi))

    def positions(self) -> list[np.ndarray]:
        """Centre (y, x) of each nucleus of the body."""
        if len(self.cells) == 1:
            return [self.c.copy()]
        half = 0.5 * self.distance() * np.array([math.sin(self.psi), math.cos(self.psi)])
        return [self.c - half, self.c + half]

    def extent(self) -> float:
        """Radius of a circle around ``c`` that holds the whole body (px)."""
        return 0.5 * self.distance() + max(cell.a for cell in self.cells) + 1.0


def _radius_along(cell: _Cell, phi: float | np.ndarray) -> Any:
    """Distance from the centre to the edge of ``cell``'s ellipse in direction ``phi`` (rad)."""
    d = phi - cell.theta
    return cell.a * cell.b / np.sqrt((cell.b * np.cos(d)) ** 2 + (cell.a * np.sin(d)) ** 2)


def _new_cell(rng: np.random.Generator, cell_id: int, radius: float, brightness: float) -> _Cell:
    aspect = rng.uniform(1.0, 1.5)
    return _Cell(
        id=cell_id,
        a=radius * math.sqrt(aspect),
        b=radius / math.sqrt(aspect),
        theta=rng.uniform(0.0, math.pi),
        brightness=brightness,
    )


def _validate(
    n_frames: int,
    shape: tuple[int, int],
    n_cells: int,
    radius_range: tuple[float, float],
    n_divisions: int | None,
    n_touching_pairs: int | None,
    noise: float,
    background: float,
    signal: float,
    psf_sigma: float,
    bleaching: float,
    max_speed: float,
    border: str,
) -> tuple[tuple[int, int], int, int]:
    """Check the arguments; return ``(shape, n_divisions, n_touching_pairs)`` with defaults set."""
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise InputError(f"n_frames must be a whole number >= 1, got {n_frames!r}; pass e.g. n_frames=20")
    try:
        shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    except (TypeError, ValueError):
        raise InputError(f"shape must be (Y, X), got {shape!r}; pass e.g. shape=(256, 256)") from None
    if len(shape) != 2 or min(shape) < 16:
        raise InputError(f"shape must be (Y, X) with both sides >= 16 px, got {shape!r}; pass e.g. shape=(256, 256)")
    if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)) or n_cells < 0:
        raise InputError(f"n_cells must be a whole number >= 0, got {n_cells!r}; pass e.g. n_cells=14")
    lo, hi = radius_range
    if not 1.0 <= lo <= hi:
        raise InputError(f"radius_range must be (low, high) with 1 <= low <= high, got {radius_range!r}; pass e.g. (6, 14)")
    if n_cells > 0 and 2 * hi * 1.25 + 4 > min(shape):
        raise InputError(
            f"nuclei of radius up to {hi} px do not fit in a {shape[0]}x{shape[1]} field; "
            "increase shape or lower radius_range"
        )
    for name, value in (("noise", noise), ("background", background), ("psf_sigma", psf_sigma), ("bleaching", bleaching)):
        if not (np.isfinite(value) and value >= 0):
            raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    if not (np.isfinite(signal) and signal > 0):
        raise InputError(f"signal must be a finite number > 0, got {signal!r}")
    if not (np.isfinite(max_speed) and max_speed > 0):
        raise InputError(f"max_speed must be a finite number > 0 (px/frame), got {max_speed!r}")
    if border not in ("reflect", "leave"):
        raise InputError(f"border must be 'reflect' or 'leave', got {border!r}")

    max_pairs = n_cells // 2
    if n_touching_pairs is None:
        n_touching_pairs = min(max(1, n_cells // 5), max_pairs)
    elif not 0 <= n_touching_pairs <= max_pairs:
        raise InputError(
            f"n_touching_pairs={n_touching_pairs} but {n_cells} nuclei make at most {max_pairs} pairs; "
            f"pass a value between 0 and {max_pairs}"
        )
    n_singles = n_cells - 2 * n_touching_pairs
    if n_divisions is None:
        n_divisions = min(max(1, n_cells // 7), n_singles) if n_frames >= 5 else 0
    elif n_divisions < 0 or n_divisions > n_singles:
        raise InputError(
            f"n_divisions={n_divisions} but only {n_singles} nuclei are not in touching pairs; "
            f"pass n_divisions between 0 and {n_singles} (or fewer n_touching_pairs)"
        )
    elif n_divisions > 0 and n_frames < 5:
        raise InputError(f"divisions need n_frames >= 5, got n_frames={n_frames}; pass n_divisions=0 or more frames")

    mean_area = math.pi * ((lo + hi) / 2) ** 2
    covered = mean_area * (n_cells + 0.3 * n_divisions)
    if covered > _MAX_DENSITY * shape[0] * shape[1]:
        raise InputError(
            f"{n_cells} nuclei of radius {lo}-{hi} px would cover more than {_MAX_DENSITY:.0%} of a "
            f"{shape[0]}x{shape[1]} field; lower n_cells or radius_range, or increase shape"
        )
    return shape, int(n_divisions), int(n_touching_pairs)  # type: ignore[return-value]


def _place(rng: np.random.Generator, bodies: list[_Body], shape: tuple[int, int]) -> None:
    """Give every body a start position inside the field, clear of all others (in place).

    Rejection sampling: nuclei of different bodies keep their major-axis circles 2 px apart.
    Raises :class:`InputError` when the field is too crowded.
    """
    placed: list[tuple[np.ndarray, float]] = []  # centre and semi-major axis of placed nuclei
    for body in bodies:
        if not _try_place(rng, body, shape, placed):
            raise InputError(
                f"could not place {sum(len(b.cells) for b in bodies)} nuclei without overlap in a {shape[0]}x{shape[1]} field; "
                "lower n_cells or radius_range, or increase shape"
            )


def _try_place(
    rng: np.random.Generator, body: _Body, shape: tuple[int, int], placed: list[tuple[np.ndarray, float]]
) -> bool:
    r = body.extent()
    if any(2 * r >= side - 1 for side in shape):
        return False
    for _ in range(500):
        body.c = np.array([rng.uniform(r, shape[0] - 1 - r), rng.uniform(r, shape[1] - 1 - r)])
        mine = [(p, cell.a) for p, cell in zip(body.positions(), body.cells)]
        if all(np.hypot(*(p - q)) > a + b + 2 for p, a in mine for q, b in placed):
            placed.extend(mine)
            return True
    return False


def _repel(bodies: list[_Body]) -> None:
    """Push bodies apart where nuclei of different bodies overlap by more than 10 % (in place)."""
    cells = [cell for body in bodies for cell in body.cells]
    if len(bodies) < 2:
        return
    owner = np.array([i for i, body in enumerate(bodies) for _ in body.cells])
    a = np.array([cell.a for cell in cells])[:, None]
    b = np.array([cell.b for cell in cells])[:, None]
    theta = np.array([cell.theta for cell in cells])[:, None]
    for _ in range(2):
        pos = np.array([p for body in bodies for p in body.positions()])
        diff = pos[None, :, :] - pos[:, None, :]  # [i, j] = pos_j - pos_i
        dist = np.hypot(diff[..., 0], diff[..., 1])
        phi = np.arctan2(diff[..., 0], diff[..., 1])
        r_i = a * b / np.sqrt((b * np.cos(phi - theta)) ** 2 + (a * np.sin(phi - theta)) ** 2)
        r_j = r_i.T  # r_j[i, j] = radius of j along phi[j, i] = phi[i, j] + pi (same ellipse radius)
        min_d = _MIN_SEPARATION * (r_i + r_j)
        close = (dist < min_d) & (owner[:, None] != owner[None, :])
        ii, jj = np.nonzero(np.triu(close, 1))
        if ii.size == 0:
            return
        shift = np.zeros((len(bodies), 2))
        for i, j in zip(ii, jj):
            d = dist[i, j]
            u = diff[i, j] / d if d > 1e-9 else np.array([1.0, 0.0])
            push = 0.5 * (min_d[i, j] - d) * u
            shift[owner[i]] -= push
            shift[owner[j]] += push
        for body, s in zip(bodies, shift):
            body.c = body.c + s


def _keep_inside(body: _Body, shape: tuple[int, int]) -> None:
    """Move ``body`` back inside the field if it sticks out, and turn its velocity inwards."""
    r = body.extent()
    for ax in range(2):
        low, high = r, shape[ax] - 1 - r
        if low > high:
            body.c[ax] = (shape[ax] - 1) / 2
        elif body.c[ax] < low:
            body.c[ax] = low
            body.v[ax] = abs(body.v[ax])
        elif body.c[ax] > high:
            body.c[ax] = high
            body.v[ax] = -abs(body.v[ax])


def _paint(
    bodies: list[_Body], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise one frame.

    Returns ``labels`` (Y, X) uint16, ``rho2`` (Y, X) float32 squared elliptic radius of each
    labelled pixel in its own nucleus (inf on background) and ``bright`` (Y, X) float32 nucleus
    brightness per pixel.
    """
    labels = np.zeros(shape, np.uint16)
    rho2 = np.full(shape, np.inf, np.float32)
    bright = np.zeros(shape, np.float32)
    for body in bodies:
        for cell, (cy, cx) in zip(body.cells, body.positions()):
            r = cell.a + 1.0
            y0, y1 = max(int(math.floor(cy - r)), 0), min(int(math.ceil(cy + r)) + 1, shape[0])
            x0, x1 = max(int(math.floor(cx - r)), 0), min(int(math.ceil(cx + r)) + 1, shape[1])
            if y0 >= y1 or x0 >= x1:
                continue
            dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
            dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
            s, c = math.sin(cell.theta), math.cos(cell.theta)
            u = dy * s + dx * c  # along the major axis
            v = dy * c - dx * s
            q = (u / cell.a) ** 2 + (v / cell.b) ** 2
            window = (slice(y0, y1), slice(x0, x1))
            win = (q <= 1.0) & (q < rho2[window])
            labels[window][win] = cell.id
            rho2[window][win] = q[win]
            bright[window][win] = cell.brightness
    return labels, rho2, bright


def synthetic_timelapse(
    n_frames: int = 20,
    shape: tuple[int, int] = (256, 256),
    n_cells: int = 14,
    seed: int | None = 0,
    *,
    noise: float = 6.0,
    background: float = 100.0,
    signal: float = 300.0,
    radius_range: tuple[float, float] = (6.0, 14.0),
    n_divisions: int | None = None,
    n_touching_pairs: int | None = None,
    psf_sigma: float = 1.5,
    texture: float = 0.15,
    bleaching: float = 0.01,
    max_speed: float = 2.0,
    border: str = "reflect",
) -> SyntheticMovie:
    """Simulate a fluorescence time-lapse of moving, touching and dividing nuclei.

    Parameters
    ----------
    n_frames : number of frames T (>= 1).
    shape : frame size (Y, X) in pixels (both >= 16).
    n_cells : number of nuclei at the first frame (each division adds one).
    seed : seed of ``numpy.random.default_rng``; equal arguments give identical arrays.
    noise : standard deviation of the Gaussian read noise (counts), added to Poisson shot noise.
    background : background offset (counts).
    signal : peak brightness of an average nucleus above background at frame 0 (counts).
    radius_range : (low, high) range of the mean nucleus radius sqrt(a*b) in pixels; the
        default (6, 14) gives nuclei of about 100-600 px.
    n_divisions : nuclei that divide, at random frames in 2..T-3; default ``max(1, n_cells // 7)``
        (0 when T < 5). A mother that has left the field (``border="leave"``) does not divide.
    n_touching_pairs : pairs of nuclei that stay in contact the whole movie; default
        ``max(1, n_cells // 5)`` (0 for fewer than 2 nuclei).
    psf_sigma : standard deviation (px) of the Gaussian point-spread function.
    texture : relative amplitude of the smooth intensity texture inside nuclei.
    bleaching : photobleaching rate per frame; frame ``t`` is dimmed by ``exp(-bleaching * t)``.
    max_speed : largest speed of a nucleus (px/frame).
    border : ``"reflect"`` (nuclei bounce off the border and stay entirely inside) or ``"leave"``
        (nuclei may drift out of the field; their id then ends).

    Returns
    -------
    SyntheticMovie
        ``(image, labels)``: image (T, Y, X) uint16 counts; labels (T, Y, X) uint16 instance ids
        (0 = background). Initial nuclei have ids ``1..n_cells``; daughters get the next free ids
        in order of division. An id is one nucleus in consecutive frames: it never reappears after
        it ends.

    Raises
    ------
    InputError
        For invalid arguments or too many / too large nuclei for the field.
    """
    shape, n_divisions, n_pairs = _validate(
        n_frames, shape, n_cells, radius_range, n_divisions, n_touching_pairs,
        noise, background, signal, psf_sigma, bleaching, max_speed, border,
    )
    rng = np.random.default_rng(seed)
    lo, hi = (float(r) for r in radius_range)

    # --- nuclei and bodies -------------------------------------------------------------------
    cells = [_new_cell(rng, i + 1, rng.uniform(lo, hi), rng.uniform(0.6, 1.4)) for i in range(n_cells)]
    bodies: list[_Body] = []
    for k in range(n_pairs):
        bodies.append(
            _Body(cells=[cells[2 * k], cells[2 * k + 1]], c=np.zeros(2), v=np.zeros(2),
                  psi=rng.uniform(0.0, 2 * math.pi))
        )
    singles = cells[2 * n_pairs:]
    bodies.extend(_Body(cells=[cell], c=np.zeros(2), v=np.zeros(2)) for cell in singles)
    _place(rng, bodies, shape)
    for body in bodies:
        body.v = rng.normal(0.0, 0.7, 2)

    mothers = rng.choice(np.array([cell.id for cell in singles], dtype=np.int64), size=n_divisions, replace=False)
    times = rng.integers(2, n_frames - 2, size=n_divisions) if n_divisions else np.zeros(0, np.int64)
    schedule: dict[int, list[int]] = {}
    for mother, t in zip(mothers.tolist(), times.tolist()):
        schedule.setdefault(t, []).append(mother)
    next_id = n_cells + 1

    labels = np.zeros((n_frames, *shape), np.uint16)
    rho2 = np.empty((n_frames, *shape), np.float32)
    bright = np.empty((n_frames, *shape), np.float32)
    step_sigma = 0.35 * max_speed
    size = np.array(shape, dtype=float)

    for t in range(n_frames):
        if t > 0:
            # --- motion ----------------------------------------------------------------------
            old = [body.c.copy() for body in bodies]
            for body in bodies:
                body.v = _INERTIA * body.v + rng.normal(0.0, step_sigma, 2)
                speed = float(np.hypot(*body.v))
                if speed > max_speed:
                    body.v *= max_speed / speed
                body.c = body.c + body.v
                for cell in body.cells:
                    cell.theta += rng.normal(0.0, _ANGLE_STEP)
                if len(body.cells) == 2:
                    body.psi += rng.normal(0.0, _ANGLE_STEP)
                    if body.dividing:
                        body.sep += _DIVISION_RATE
            _repel(bodies)
            kept = []
            for body, c0 in zip(bodies, old):
                move = body.c - c0
                dist = float(np.hypot(*move))
                if dist > max_speed + 1.5:  # collisions must not make a nucleus jump
                    body.c = c0 + move * ((max_speed + 1.5) / dist)
                r = body.extent()
                if border == "reflect":
                    _keep_inside(body, shape)
                    kept.append(body)
                elif np.all(body.c > -r) and np.all(body.c < size - 1 + r):
                    kept.append(body)
                else:
                    logger.debug("nuclei %s left the field at frame %d", [c.id for c in body.cells], t)
            bodies = kept
            # --- daughters that have moved far enough apart become independent nuclei ----------
            split: list[_Body] = []
            for body in bodies:
                if body.dividing and body.sep >= _DIVISION_END:
                    u = np.array([math.sin(body.psi), math.cos(body.psi)])
                    for cell, p, sign in zip(body.cells, body.positions(), (-1.0, 1.0)):
                        split.append(_Body(cells=[cell], c=p, v=body.v + sign * 0.5 * u))
                else:
                    split.append(body)
            bodies = split

        # --- divisions at this frame: mother ends, two daughters begin ------------------------
        for mother_id in schedule.get(t, []):
            idx = next((i for i, b in enumerate(bodies) if len(b.cells) == 1 and b.cells[0].id == mother_id), None)
            if idx is None:
                logger.debug("nucleus %d left the field before its division at frame %d", mother_id, t)
                continue
            mother_body = bodies[idx]
            mother = mother_body.cells[0]
            r_mother = math.sqrt(mother.a * mother.b)
            daughters = [
                _new_cell(rng, next_id + k, 0.78 * r_mother * rng.uniform(0.95, 1.05),
                          mother.brightness * rng.uniform(0.9, 1.1))
                for k in range(2)
            ]
            next_id += 2
            bodies[idx] = _Body(cells=daughters, c=mother_body.c.copy(), v=mother_body.v.copy(),
                                psi=mother.theta, sep=_DIVISION_START, dividing=True)
            if border == "reflect":
                _keep_inside(bodies[idx], shape)

        labels[t], rho2[t], bright[t] = _paint(bodies, shape)

    # --- image formation ------------------------------------------------------------------------
    inside = labels > 0
    obj = np.zeros((n_frames, *shape), np.float32)
    texture_field = rng.standard_normal((n_frames, *shape), dtype=np.float32)
    if texture > 0:
        texture_field = ndi.gaussian_filter(texture_field, sigma=(0, 1.5, 1.5))
        texture_field /= max(float(texture_field.std()), 1e-6)
    obj[inside] = bright[inside] * (1.0 - 0.3 * rho2[inside]) * (1.0 + texture * texture_field[inside])
    np.clip(obj, 0.0, None, out=obj)
    if psf_sigma > 0:
        obj = ndi.gaussian_filter(obj, sigma=(0, psf_sigma, psf_sigma))
    bleach = np.exp(-bleaching * np.arange(n_frames, dtype=np.float32))[:, None, None]
    expected = background + signal * bleach * obj
    counts = rng.poisson(expected).astype(np.float32)
    if noise > 0:
        counts += np.float32(noise) * rng.standard_normal(counts.shape, dtype=np.float32)
    image = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    return SyntheticMovie(image, labels)


def sample_data() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """napari sample data: the default :func:`synthetic_timelapse` movie and its exact labels.

    Returns
    -------
    list of (data, kwargs, layer_type) tuples (napari's LayerDataTuple form):
    ``[(image, {"name": "synthetic nuclei"}, "image"),
    (labels, {"name": "synthetic nuclei labels"}, "labels")]`` with image (T, Y, X) uint16 and
    labels (T, Y, X) uint16, T=20, Y=X=256.
    """
    image, labels = synthetic_timelapse()
    return [
        (image, {"name": "synthetic nuclei"}, "image"),
        (labels, {"name": "synthetic nuclei labels"}, "labels"),
    ]
