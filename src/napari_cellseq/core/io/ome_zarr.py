"""OME-Zarr (NGFF) images in, labels out: read the full-resolution level of an image, write cell
labels into the image's ``labels/`` group as the OME-Zarr specification lays it out.

Reading (:func:`is_ome_zarr`, :func:`open_ome_zarr`): the image at the root of a ``.zarr`` folder
(format 0.4 on Zarr v2 or 0.5 on Zarr v3), read with ome-zarr-py's ``Reader``; level 0 of its
multiscale pyramid comes back as a lazy dask array ``(T, Y, X)`` or ``(Y, X)`` (a ``c`` axis
gives one channel, ``channel=``; a ``z`` axis must have size 1), so a movie larger than memory
is read one frame at a time.

Writing (:func:`ome_zarr_labels_writer`, :func:`write_ome_zarr_labels`): ``labels/NAME`` with
``multiscales`` and ``image-label`` metadata, made by ome-zarr-py's ``write_multiscale_labels``
with the image's own axes, pyramid shapes and level-0 pixel size (a ``c`` axis of size 1 in the
labels); then filled frame by frame (every level, nearest-neighbour down-sampling, one frame
in memory). ``NAME`` is added to ``labels/``'s list. An existing ``labels/NAME`` is kept unless
``overwrite``; a failed or stopped write removes what it wrote and puts a replaced one back.

Needs the ``ome-zarr`` extra (``pip install 'napari-cellseq[ome-zarr]'``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .atomic import refuse_existing

__all__ = ["is_ome_zarr", "open_ome_zarr", "OmeZarrImage", "ome_zarr_labels_writer", "OmeZarrLabelsWriter",
           "write_ome_zarr_labels", "DEFAULT_LABELS_NAME"]

logger = logging.getLogger(__name__)

DEFAULT_LABELS_NAME = "cellseq"
_INSTALL_HINT = "pip install 'napari-cellseq[ome-zarr]'"


def _attrs(folder: Path) -> dict[str, Any]:
    """The attributes of the Zarr group ``folder`` (v3 ``zarr.json`` or v2 ``.zattrs``), {} if none."""
    try:
        if (folder / "zarr.json").is_file():
            meta = json.loads((folder / "zarr.json").read_text(encoding="utf-8"))
            return dict(meta.get("attributes") or {})
        if (folder / ".zattrs").is_file():
            return dict(json.loads((folder / ".zattrs").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}
    return {}


def is_ome_zarr(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding an OME-Zarr multiscale image at its root."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return False
    attrs = _attrs(folder)
    return "multiscales" in attrs or "multiscales" in (attrs.get("ome") or {})


def _require() -> None:
    try:
        import ome_zarr  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as err:
        raise InputError(f"OME-Zarr needs the ome-zarr and zarr packages ({err.name} is missing): {_INSTALL_HINT}") from None


class OmeZarrImage:
    """The multiscale image of an OME-Zarr folder, as ome-zarr-py reads it.

    Attributes: ``path``, ``axes`` (names, e.g. ``["t", "c", "y", "x"]``), ``levels`` (lazy dask
    arrays, level 0 first), ``scale`` (level-0 pixel size per axis), ``version`` (``"0.4"``,
    ``"0.5"``).
    """

    def __init__(self, path: str | os.PathLike):
        _require()
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Multiscales, Reader

        self.path = Path(path).expanduser()
        if not is_ome_zarr(self.path):
            raise InputError(f"{self.path} is not an OME-Zarr image (no multiscales metadata at its root); "
                             "give the .zarr folder of an image")
        from ome_zarr.format import format_from_version

        attrs = _attrs(self.path)
        self.version = str((attrs.get("ome") or {}).get("version")
                           or (attrs.get("multiscales") or [{}])[0].get("version") or "0.4")
        try:
            location = parse_url(str(self.path), mode="r", fmt=format_from_version(self.version))
            node = next(n for n in Reader(location)() if any(isinstance(s, Multiscales) for s in n.specs))
        except StopIteration:
            raise InputError(f"{self.path} holds no multiscale image that ome-zarr can read") from None
        except Exception as err:  # damaged metadata or arrays
            raise InputError(f"{self.path} cannot be read as OME-Zarr ({type(err).__name__}: {err}); "
                             "check the folder or write it again") from None
        self.levels = list(node.data)
        axes = node.metadata.get("axes") or ["t", "c", "z", "y", "x"][-self.levels[0].ndim:]
        self.axes = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
        transforms = (node.metadata.get("coordinateTransformations") or [[]])[0]
        scale = next((t["scale"] for t in transforms if t.get("type") == "scale"), [1.0] * len(self.axes))
        self.scale = {a: float(s) for a, s in zip(self.axes, scale)}

    def frames(self, channel: int | None = None) -> Any:
        """Level 0 as a lazy ``(T, Y, X)`` or ``(Y, X)`` dask array (see module docstring)."""
        data = self.levels[0]
        index: list[Any] = []
        for axis, size in zip(self.axes, data.shape):
            if axis == "c":
                if channel is None and size > 1:
                    raise InputError(f"{self.path} has {size} channels: choose one with --channel "
                                     f"(0..{size - 1}) / channel=")
                c = 0 if channel is None else int(channel)
                if not 0 <= c < size:
                    raise InputError(f"{self.path} has channels 0..{size - 1}, not {c}")
                index.append(c)
            elif axis == "z":
                if size > 1:
                    raise InputError(f"{self.path} is a 3D image ({size} z planes): napari-cellseq segments 2D "
                                     "frames; export one plane or a projection")
                index.append(0)
            elif axis in ("t", "y", "x"):
                index.append(slice(None))
            else:
                raise InputError(f"{self.path} has an axis {axis!r} napari-cellseq does not know (t, c, z, y, x)")
        if "c" not in self.axes and channel not in (None, 0):
            raise InputError(f"{self.path} has one channel; --channel {channel} does not exist")
        return data[tuple(index)]


def open_ome_zarr(path: str | os.PathLike, channel: int | None = None) -> Any:
    """Level 0 of the OME-Zarr image at ``path`` as a lazy ``(T, Y, X)`` / ``(Y, X)`` dask array."""
    return OmeZarrImage(path).frames(channel)


def _label_group_names(labels_dir: Path) -> list[str]:
    attrs = _attrs(labels_dir)
    names = (attrs.get("ome") or attrs).get("labels") or []
    return [str(n) for n in names]


def _set_label_group_names(labels_dir: Path, names: list[str]) -> None:
    import zarr

    group = zarr.open_group(str(labels_dir), mode="r+")
    if "ome" in group.attrs:
        ome = dict(group.attrs["ome"])
        ome["labels"] = names
        group.attrs["ome"] = ome
    else:
        group.attrs["labels"] = names


class OmeZarrLabelsWriter:
    """Writes one labels frame ``(Y, X)`` at a time into every level of ``labels/NAME``."""

    def __init__(self, image: OmeZarrImage, arrays: list[Any], shapes: list[tuple[int, ...]]):
        self._image, self._arrays, self._shapes = image, arrays, shapes
        self._axes = image.axes
        self.n_frames = shapes[0][self._axes.index("t")] if "t" in self._axes else 1
        self.frame_shape = (shapes[0][self._axes.index("y")], shapes[0][self._axes.index("x")])

    def write(self, t: int, labels: np.ndarray) -> None:
        """Store ``labels (Y, X)`` (non-negative integers) as frame ``t`` (0 without a time axis)."""
        labels = np.asarray(labels)
        if labels.shape != self.frame_shape or not 0 <= int(t) < self.n_frames:
            raise InputError(f"frame {t} of shape {labels.shape} does not fit the image's frames "
                             f"{self.frame_shape} x {self.n_frames}")
        h0, w0 = self.frame_shape
        for array, shape in zip(self._arrays, self._shapes):
            h, w = shape[self._axes.index("y")], shape[self._axes.index("x")]
            rows, cols = (np.arange(h) * h0) // h, (np.arange(w) * w0) // w  # nearest neighbour
            level = labels[np.ix_(rows, cols)].astype(array.dtype, copy=False)
            index = tuple(int(t) if a == "t" else 0 if a in ("c", "z") else slice(None) for a in self._axes)
            array[index] = level


@contextmanager
def ome_zarr_labels_writer(path: str | os.PathLike, name: str = DEFAULT_LABELS_NAME,
                           overwrite: bool = False) -> Iterator[OmeZarrLabelsWriter]:
    """Context manager writing labels into ``path/labels/name`` frame by frame (see module docstring).

    Raises :class:`InputError` when ``path`` is not an OME-Zarr image, ``name`` is not a plain
    name, or ``labels/name`` exists and ``overwrite`` is False.
    """
    import dask.array as da
    import zarr
    from ome_zarr.format import format_from_version
    from ome_zarr.writer import write_multiscale_labels

    image = OmeZarrImage(path)
    if not name or "/" in name or name.startswith((".", "__")):
        raise InputError(f"labels name {name!r} must be a plain folder name, e.g. {DEFAULT_LABELS_NAME}")
    labels_dir = image.path / "labels"
    target = labels_dir / name
    refuse_existing([target], overwrite, instead="another labels name")
    shapes = [tuple(1 if a == "c" else int(n) for a, n in zip(image.axes, level.shape)) for level in image.levels]
    chunks = [tuple(1 if a in ("t", "c", "z") else min(int(n), 1024) for a, n in zip(image.axes, shape))
              for shape in shapes]
    aside = None
    if target.exists():  # replaced only when the new labels are complete
        aside = labels_dir / f".replaced-{secrets.token_hex(4)}-{name}"
        os.replace(target, aside)
    names_before = _label_group_names(labels_dir) if labels_dir.exists() else []
    ok = False
    try:
        root = zarr.open_group(str(image.path), mode="r+")
        pyramid = [da.zeros(shape, dtype=np.uint32, chunks=c) for shape, c in zip(shapes, chunks)]
        write_multiscale_labels(pyramid, root, name, fmt=format_from_version(image.version),
                                axes=image.axes, scale=image.scale,
                                storage_options=[{"chunks": c} for c in chunks],
                                label_metadata={"source": {"image": "../../"}})
        label_group = zarr.open_group(str(target), mode="r+")
        arrays = [label_group[d["path"]] for d in _multiscale_datasets(target)]
        yield OmeZarrLabelsWriter(image, arrays, shapes)
        ok = True
    finally:
        if not ok:
            shutil.rmtree(target, ignore_errors=True)
            if aside is not None:
                os.replace(aside, target)
            if labels_dir.exists():
                _set_label_group_names(labels_dir, names_before)
        elif aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    logger.info("wrote labels %s into %s", name, image.path)


def _multiscale_datasets(group_dir: Path) -> list[dict[str, Any]]:
    attrs = _attrs(group_dir)
    multiscales = (attrs.get("ome") or attrs).get("multiscales") or [{}]
    return list(multiscales[0].get("datasets") or [])


def write_ome_zarr_labels(path: str | os.PathLike, labels: Any, name: str = DEFAULT_LABELS_NAME,
                          overwrite: bool = False) -> Path:
    """Write ``labels`` ``(T, Y, X)`` or ``(Y, X)`` into the OME-Zarr image ``path`` as ``labels/name``."""
    labels = np.asarray(labels)
    movie = labels[None] if labels.ndim == 2 else labels
    with ome_zarr_labels_writer(path, name, overwrite=overwrite) as writer:
        if movie.shape[0] != writer.n_frames or movie.shape[1:] != writer.frame_shape:
            raise InputError(f"labels of shape {labels.shape} do not fit the image's {writer.n_frames} frames "
                             f"of {writer.frame_shape}")
        for t, frame in enumerate(movie):
            writer.write(t, frame)
    return Path(path).expanduser() / "labels" / name
