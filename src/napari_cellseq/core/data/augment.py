"""Random spatial augmentation from section 2.3 of the U-LSTM paper.

Flips, 90-degree rotations, random crops, random affine (rotation, scale, shear) and elastic
deformation, all folded into one sampling grid per crop so that image, targets, weights and the
valid-pixel mask are resampled together (bilinear for grey values and weights, nearest for
classes and mask). Grey values themselves are not changed: the paper calls them biologically
meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["SpatialTransform", "random_transform", "crop_grid", "sample"]


@dataclass(frozen=True)
class SpatialTransform:
    """Maps crop coordinates ``u`` (pixels, centred on the crop) to frame coordinates.

    ``frame_yx = center + matrix @ u + elastic(u)``; ``elastic`` is ``None`` or an array
    ``(2, S, S)`` of displacements in pixels.
    """

    center: tuple[float, float]
    matrix: np.ndarray
    elastic: np.ndarray | None


_RIGHT_ANGLES = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, -1.0], [1.0, 0.0]])]


def random_transform(
    rng: np.random.Generator,
    frame_shape: tuple[int, int],
    crop: int,
    affine: bool,
    elastic: bool,
    affine_probability: float = 0.5,
    elastic_probability: float = 0.5,
    edge_probability: float = 0.4,
    center: tuple[float, float] | None = None,
) -> SpatialTransform:
    """Draw one random transform for a ``crop x crop`` window of a ``frame_shape`` frame.

    ``center``: the frame pixel ``(y, x)`` the crop is centred on (class-balanced sampling);
    ``None`` draws it at random.
    """
    m = np.eye(2)
    if rng.random() < 0.5:
        m = m @ np.diag([-1.0, 1.0])  # vertical flip
    if rng.random() < 0.5:
        m = m @ np.diag([1.0, -1.0])  # horizontal flip
    m = m @ np.linalg.matrix_power(_RIGHT_ANGLES[1], int(rng.integers(4)))
    if affine and rng.random() < affine_probability:
        angle = rng.uniform(-np.pi, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        scale = np.exp(rng.uniform(np.log(0.85), np.log(1.15)))
        shear = rng.uniform(-0.1, 0.1)
        m = m @ np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    field = None
    if elastic and rng.random() < elastic_probability:
        # Coarse random displacements (4x4 control points, 3 px standard deviation) smoothly
        # up-sampled: a cheap stand-in for the B-spline deformation of the papers.
        coarse = torch.from_numpy(rng.normal(0.0, 3.0, size=(1, 2, 4, 4)).astype(np.float32))
        field = F.interpolate(coarse, size=(crop, crop), mode="bicubic", align_corners=True)[0].numpy()
    if center is not None:
        return SpatialTransform(center=(float(center[0]), float(center[1])), matrix=m, elastic=field)
    half_extent = crop / 2 * np.abs(m).sum(axis=1).max()
    edge_axis = int(rng.integers(2)) if rng.random() < edge_probability else -1
    center = tuple(
        _random_center(rng, n, half_extent, axis == edge_axis) for axis, n in enumerate(frame_shape)
    )
    return SpatialTransform(center=center, matrix=m, elastic=field)


def _random_center(rng: np.random.Generator, n: int, half_extent: float, at_edge: bool) -> float:
    """A crop centre along an axis of length ``n``.

    Normally the crop stays inside the frame when it fits. With ``at_edge`` the crop reaches
    past one end of the axis by up to half its size. Outside the frame the image reads
    ``normalize.OUTSIDE`` (as inference pads frames) and no loss is counted, so the network
    learns how the user treats cells cut by the frame edge.
    """
    lo, hi = half_extent - 0.5, n - half_extent - 0.5
    if hi <= lo:
        return (n - 1) / 2
    if at_edge:
        offset = float(rng.uniform(0.0, half_extent))
        return offset if rng.random() < 0.5 else n - 1 - offset
    return float(rng.uniform(lo, hi))


def crop_grid(transform: SpatialTransform, crop: int, frame_shape: tuple[int, int]) -> torch.Tensor:
    """Normalised sampling grid ``(1, S, S, 2)`` (x, y order, ``align_corners=True``)."""
    u = np.arange(crop, dtype=np.float64) - (crop - 1) / 2
    uy, ux = np.meshgrid(u, u, indexing="ij")
    coords = np.einsum("ij,jyx->iyx", transform.matrix, np.stack([uy, ux]))
    if transform.elastic is not None:
        coords = coords + transform.elastic
    y = coords[0] + transform.center[0]
    x = coords[1] + transform.center[1]
    ny, nx = frame_shape
    gx = 2.0 * x / max(nx - 1, 1) - 1.0
    gy = 2.0 * y / max(ny - 1, 1) - 1.0
    grid = np.stack([gx, gy], axis=-1).astype(np.float32)
    return torch.from_numpy(grid)[None]


def sample(tensor: torch.Tensor, grid: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """Resample ``tensor (N, C, Y, X)`` on ``grid (1, S, S, 2)`` -> ``(N, C, S, S)``."""
    if tensor.shape[0] != grid.shape[0]:
        grid = grid.expand(tensor.shape[0], -1, -1, -1)
    return F.grid_sample(tensor, grid, mode=mode, padding_mode=padding, align_corners=True)
