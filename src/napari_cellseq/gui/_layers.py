"""Layer <-> array adapters and output-layer naming (no widgets here).

Arrays leave layers only as copies (:func:`snapshot`), so a worker never sees a layer and the
user can keep painting while training runs; lazy image data (dask, zarr: movies larger than
memory) go to segmentation and training as they are, read one frame at a time
(:func:`image_snapshot`); of annotations training gets only the painted frames
(:func:`labels_snapshot`).
Output layers get names that never collide with an existing layer (:func:`unique_name`), so the
user's layers are never overwritten.

Annotation layers carry two metadata entries that the Train widget reads:

* ``cellseq_partial_frames``: sorted list of frames that are only partly annotated (their
  unpainted pixels are ignored instead of counted as background);
* ``cellseq_background_label``: the label value that means "background" in those frames
  (default :data:`BACKGROUND_LABEL` = 65535).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.data.dataset import annotated_frames
from ..core.errors import InputError
from ..core.io import PaintedFrames, label_dtype
from ._forms import LayerFacts

if TYPE_CHECKING:
    import napari

__all__ = [
    "BACKGROUND_LABEL",
    "PARTIAL_KEY",
    "BACKGROUND_KEY",
    "unique_name",
    "snapshot",
    "is_lazy",
    "image_snapshot",
    "labels_snapshot",
    "new_labels_layer",
    "partial_frames",
    "set_partial",
    "background_label",
    "set_background_label",
    "frame_summary",
    "current_frame",
    "put_frame",
    "labels_dtype",
    "facts",
    "source_path",
    "show_preview",
    "PREVIEW_SUFFIX",
]

BACKGROUND_LABEL = 65535
PARTIAL_KEY = "cellseq_partial_frames"
BACKGROUND_KEY = "cellseq_background_label"
PREVIEW_SUFFIX = "(preview)"
PREVIEW_KEY = "cellseq_preview"


def unique_name(viewer: napari.viewer.Viewer, base: str) -> str:
    """``base`` if no layer has that name, else ``"base [2]"``, ``"base [3]"``, ..."""
    names = {layer.name for layer in viewer.layers}
    if base not in names:
        return base
    n = 2
    while f"{base} [{n}]" in names:
        n += 1
    return f"{base} [{n}]"


def is_lazy(data: Any) -> bool:
    """True for array-likes that read pixels on demand (dask, zarr, read-only memory maps).

    napari gives such data for movies larger than memory. They are not copied: napari never
    writes into them, so the worker may read them while the user goes on working.
    """
    if isinstance(data, np.ndarray):
        return isinstance(data, np.memmap) and not data.flags.writeable
    return all(hasattr(data, name) for name in ("shape", "dtype", "__getitem__"))


def snapshot(layer: napari.layers.Layer) -> np.ndarray:
    """A private copy of ``layer.data`` (taken on the main thread before a worker starts)."""
    if getattr(layer, "multiscale", False):
        raise InputError(
            f"layer {layer.name!r} is multiscale: open the full-resolution image as a single-scale layer"
        )
    return np.array(layer.data, copy=True)


def image_snapshot(layer: napari.layers.Image, lazy: bool = False) -> Any:
    """The data of an image layer as ``(Y, X)`` or ``(T, Y, X)``; RGB and 4-D data are refused.

    numpy data are copied (the user may edit the layer while a worker runs). With ``lazy=True``
    lazy data (:func:`is_lazy`: dask, zarr, read-only memmap) are returned as they are, without
    reading them, for work that reads one frame at a time (segmentation, training); otherwise
    they are read into a numpy array.
    """
    if getattr(layer, "rgb", False):
        raise InputError(
            f"layer {layer.name!r} is RGB: convert it to a single grey channel "
            "(e.g. Layers > Split RGB) and pick one channel"
        )
    if layer.ndim not in (2, 3):
        raise InputError(
            f"layer {layer.name!r} has {layer.ndim} dimensions {layer.data.shape}: "
            "napari-cellseq needs (Y, X) images or (T, Y, X) movies; split channels/planes first"
        )
    if lazy and not getattr(layer, "multiscale", False) and is_lazy(layer.data):
        return layer.data
    return snapshot(layer)


def labels_snapshot(layer: napari.layers.Labels) -> Any:
    """What training needs of an annotation layer: a copy of its painted frames only.

    A ``(T, Y, X)`` layer gives a :class:`~napari_cellseq.core.io.PaintedFrames` holding the
    frames with any label (the others read as zero; a lazy layer is scanned frame by frame), so 3 painted
    frames of a 1000-frame movie cost 3 frames, not a second copy of the stack, in this process
    and in the training process it is sent to. A ``(Y, X)`` layer is copied.
    """
    if getattr(layer, "multiscale", False):
        raise InputError(
            f"layer {layer.name!r} is multiscale: open the full-resolution labels as a single-scale layer"
        )
    data = layer.data
    if len(data.shape) != 3:
        return snapshot(layer)
    return PaintedFrames.of(data, annotated_frames(data))


def new_labels_layer(
    viewer: napari.viewer.Viewer,
    image: napari.layers.Image,
    suffix: str,
    dtype: type = np.uint16,
    metadata: dict | None = None,
) -> napari.layers.Labels:
    """Add an empty Labels layer matching ``image`` (shape, scale, translate), named uniquely."""
    shape = tuple(image.data.shape[: image.ndim])
    layer = viewer.add_labels(
        np.zeros(shape, dtype=dtype),
        name=unique_name(viewer, f"{image.name} {suffix}"),
        scale=image.scale,
        translate=image.translate,
        metadata=dict(metadata or {}),
    )
    return layer


def partial_frames(layer: napari.layers.Labels) -> tuple[int, ...]:
    """Frames marked partly annotated in ``layer.metadata`` (sorted)."""
    return tuple(sorted(int(t) for t in layer.metadata.get(PARTIAL_KEY, ())))


def set_partial(layer: napari.layers.Labels, frame: int, partial: bool) -> None:
    """Mark or unmark ``frame`` of ``layer`` as partly annotated."""
    frames = set(partial_frames(layer))
    if partial:
        frames.add(int(frame))
    else:
        frames.discard(int(frame))
    layer.metadata[PARTIAL_KEY] = sorted(frames)


def background_label(layer: napari.layers.Labels) -> int:
    """The explicit background label value of ``layer`` (default :data:`BACKGROUND_LABEL`)."""
    return int(layer.metadata.get(BACKGROUND_KEY, BACKGROUND_LABEL))


def set_background_label(layer: napari.layers.Labels, value: int) -> None:
    """Store the explicit background label value of ``layer``."""
    layer.metadata[BACKGROUND_KEY] = int(value)


def frame_summary(data: np.ndarray, background: int | None = None) -> dict[int, int]:
    """``{frame: number of objects}`` for every frame of ``data (T, Y, X)`` or ``(Y, X)`` with labels.

    Pixels equal to ``background`` are not counted as objects (but make a frame annotated).
    """
    movie = np.asarray(data)
    movie = movie[None] if movie.ndim == 2 else movie
    flat = movie.reshape(movie.shape[0], -1)
    out = {}
    for t in np.flatnonzero(flat.any(axis=1)):
        ids = np.unique(flat[t])
        ids = ids[(ids != 0) & (ids != (background if background is not None else 0))]
        out[int(t)] = int(ids.size)
    return out


def current_frame(viewer: napari.viewer.Viewer, layer: napari.layers.Layer) -> int:
    """The frame of ``layer`` shown by the viewer (0 for a single 2-D image)."""
    if layer.ndim < 3:
        return 0
    try:
        position = layer.world_to_data(viewer.dims.point)
        t = int(round(float(position[0])))
    except Exception:  # noqa: BLE001 - older napari / odd transforms: fall back to the slider
        t = int(viewer.dims.current_step[0])
    return int(np.clip(t, 0, layer.data.shape[0] - 1))


def labels_dtype(max_id: int) -> np.dtype:
    """uint16 when every id fits, else uint32 (:func:`~napari_cellseq.core.io.label_dtype`)."""
    return label_dtype(max_id)


def put_frame(layer: napari.layers.Labels, frame: int, labels: np.ndarray) -> None:
    """Write ``labels (Y, X)`` into frame ``frame`` of ``layer`` (upcasting to uint32 if needed)."""
    labels = np.asarray(labels)
    data = layer.data
    top = int(labels.max()) if labels.size else 0
    if top > np.iinfo(data.dtype).max:
        data = data.astype(label_dtype(top))
        if data.ndim == 2:
            data[...] = labels
        else:
            data[frame] = labels
        layer.data = data
        return
    if data.ndim == 2:
        data[...] = labels
    else:
        data[frame] = labels
    layer.refresh()


def source_path(layer: napari.layers.Layer | None) -> str | None:
    """The file ``layer`` was opened from, if any."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return str(path) if path else None


def facts(layer: napari.layers.Layer | None, labels: bool = False) -> LayerFacts | None:
    """The :class:`~._forms.LayerFacts` of ``layer`` (None for None).

    With ``labels=True`` the annotated frames are read (one pass over the data: call it
    debounced while the user paints), with the partly annotated frames and background label.
    """
    if layer is None:
        return None
    shape = tuple(int(s) for s in layer.data.shape) if not getattr(layer, "multiscale", False) \
        else tuple(int(s) for s in layer.data[0].shape)
    extra: dict[str, Any] = {}
    if labels:
        data = layer.data
        extra = dict(
            annotated=tuple(annotated_frames(np.asarray(data))) if len(shape) in (2, 3) else (),
            partial=partial_frames(layer),
            background=background_label(layer),
        )
    return LayerFacts(name=layer.name, shape=shape, rgb=bool(getattr(layer, "rgb", False)),
                      multiscale=bool(getattr(layer, "multiscale", False)),
                      source=source_path(layer), **extra)


def show_preview(viewer: napari.viewer.Viewer, image: napari.layers.Image, frame: int,
                 labels: np.ndarray, layer: napari.layers.Labels | None) -> napari.layers.Labels:
    """Show ``labels (Y, X)`` of ``frame`` in the ONE preview layer of ``image``, in place.

    The preview layer holds one frame, ``(1, Y, X)`` placed at ``frame`` on the time axis
    (2-D images: ``(Y, X)``), so it is drawn on that frame only; it is created on first use
    (``"<image> (preview)"``), never one of the user's layers, and updated in place after.
    """
    labels = np.asarray(labels)
    data = labels[None] if image.ndim == 3 else labels
    translate = np.array(image.translate, dtype=float)
    if image.ndim == 3:
        translate[0] += frame * float(image.scale[0])
    if layer is None or layer not in viewer.layers or layer.data.shape != data.shape:
        active = viewer.layers.selection.active  # adding a layer selects it: give the user theirs back
        layer = viewer.add_labels(
            data.astype(labels_dtype(int(data.max()) if data.size else 0)),
            name=unique_name(viewer, f"{image.name} {PREVIEW_SUFFIX}"),
            scale=image.scale, translate=translate, opacity=0.5,
            metadata={PREVIEW_KEY: True},
        )
        if active is not None and active in viewer.layers:
            viewer.layers.selection.active = active
        return layer
    if data.size and int(data.max()) > np.iinfo(layer.data.dtype).max:
        layer.data = data.astype(label_dtype(int(data.max())))
    else:
        layer.data[...] = data
    if not np.allclose(layer.translate, translate):
        layer.translate = translate
    layer.refresh()
    return layer
