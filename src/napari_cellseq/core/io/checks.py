"""Checks of user input: the usual mistakes turned into one message that says the fix.

An image for segmentation or training is grey-scale ``(Y, X)`` or ``(T, Y, X)``
(:func:`check_image`, :func:`check_image_layout` for lazy movies checked without reading
them); labels are non-negative integer ids of the image's shape (:func:`check_labels`); a
multichannel image ``(Y, X, C)``, ``(T, Y, X, C)`` or ``(T, C, Y, X)`` is reduced to one
channel by :func:`select_channel` (``--channel``). Every refusal is an
:class:`~napari_cellseq.core.errors.InputError`. The arrays can come from files, napari layers
or Python; these checks are part of the io package because the writers check labels with them
and channel selection keeps the lazy views of :mod:`.views` lazy.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError
from .views import ChannelView, LazyArray
from .writers import label_dtype

__all__ = [
    "MIN_FRAME_SIDE",
    "check_image",
    "check_image_layout",
    "check_finite",
    "check_not_constant",
    "check_labels",
    "select_channel",
]

logger = logging.getLogger(__name__)

MIN_FRAME_SIDE = 8  # smaller frames are almost always a mix-up of axes


def check_image(array: Any, name: str = "image") -> np.ndarray:
    """Check that ``array`` is a grey-scale image (Y, X) or movie (T, Y, X) worth segmenting.

    Parameters
    ----------
    array : the image; any real numeric dtype (uint8/uint16/float32, ...).
    name : what to call it in messages (e.g. the napari layer name).

    Returns
    -------
    np.ndarray
        ``np.asarray(array)``, unchanged (same object for an ndarray).

    Raises
    ------
    InputError
        bool / complex / non-numeric dtype; RGB(A) (last axis of size 3 or 4); not 2-D or 3-D;
        frames smaller than 8x8 pixels (usually a mix-up of axes); empty; NaN or infinite values;
        constant (nothing to segment).
    """
    arr = np.asarray(array)
    check_image_layout(arr.shape, arr.dtype, name)
    check_finite(arr, name)
    check_not_constant(arr.min(), arr.max(), name)
    return arr


def check_finite(values: np.ndarray, name: str = "image") -> None:
    """Raise :class:`InputError` when float ``values`` (any shape) hold NaN or infinite values.

    ``name`` says where in messages, e.g. ``"image"`` or ``"frame 3 of image"``.
    """
    if values.dtype.kind != "f":
        return
    finite = np.isfinite(values)
    if finite.all():
        return
    n_nan = int(np.isnan(values).sum())
    n_inf = int(values.size - finite.sum()) - n_nan
    fix = f"np.nan_to_num({name})" if name.isidentifier() else "np.nan_to_num"
    raise InputError(
        f"{name} contains NaN or infinite values ({n_nan} NaN, {n_inf} infinite); replace them "
        f"(e.g. {fix}) or export the image again"
    )


def check_not_constant(lo: Any, hi: Any, name: str = "image", looked_at: str = "") -> None:
    """Raise :class:`InputError` when an image's lowest value ``lo`` equals its highest ``hi``.

    ``looked_at``: how much of it the values come from, e.g. ``" in every frame looked at"``.
    """
    if lo == hi:
        value = lo.item() if hasattr(lo, "item") else lo
        raise InputError(
            f"{name} is constant (all values = {value!r}{looked_at}): nothing to segment; check that the "
            "right file or channel was loaded"
        )


def _channel_axis(shape: tuple[int, ...]) -> int | None:
    """The axis of ``shape`` that holds channels, or None if there is no (unambiguous) one.

    ``(Y, X, C)`` and ``(T, Y, X, C)``: the last axis when it has fewer than 8 entries
    (frames are at least 8x8 pixels); ``(T, C, Y, X)``: axis 1 when it has fewer than 8.
    """
    if len(shape) == 3 and shape[-1] < MIN_FRAME_SIDE:
        return 2
    if len(shape) == 4:
        if shape[-1] < MIN_FRAME_SIDE:
            return 3
        if shape[1] < MIN_FRAME_SIDE:
            return 1
    return None


def _channel_hint(shape: tuple[int, ...], name: str) -> str:
    axis = _channel_axis(shape)
    if axis is None:
        return ""
    n = shape[axis]
    index = ("...", "N") if axis == len(shape) - 1 else (":", "N")
    return (f"; to use one of its {n} channels pass --channel N (N in 0..{n - 1}) on the command line, "
            f"or {name}[{', '.join(index)}] in Python")


def select_channel(array: Any, channel: int | None, name: str = "image") -> Any:
    """Pick channel ``channel`` of a multichannel image; ``None`` returns ``array`` unchanged.

    Parameters
    ----------
    array : ``(Y, X, C)``, ``(T, Y, X, C)`` or ``(T, C, Y, X)`` with fewer than 8 channels
        (an RGB image is ``(Y, X, 3)``); any array-like with ``shape`` and ``__getitem__``
        (numpy, memmap, dask), which is indexed, not loaded.
    channel : 0-based channel index.

    Returns
    -------
    ``(Y, X)`` or ``(T, Y, X)``: the selected channel.

    Raises
    ------
    InputError
        The image has no channel axis (``(Y, X)``, ``(T, Y, X)`` with frames >= 8x8 pixels), or
        ``channel`` is out of range.
    """
    if channel is None:
        return array
    shape = tuple(int(s) for s in np.shape(array))
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or channel < 0:
        raise InputError(f"channel must be a number 0, 1, 2, ..., got {channel!r}")
    axis = _channel_axis(shape)
    if axis is None:
        raise InputError(
            f"{name} has shape {shape}, which has no channel axis (napari-cellseq reads channels from "
            "(Y, X, C), (T, Y, X, C) or (T, C, Y, X) with fewer than 8 channels); drop --channel"
        )
    n = shape[axis]
    if channel >= n:
        raise InputError(
            f"channel {channel} does not exist: {name} of shape {shape} has {n} channels (axis {axis}); "
            f"pass --channel 0..{n - 1}"
        )
    if isinstance(array, LazyArray):  # indexing it reads pixels: pick the channel lazily
        return ChannelView(array, axis, int(channel))
    index = [slice(None)] * len(shape)
    index[axis] = int(channel)
    return array[tuple(index)]


def check_image_layout(shape: tuple[int, ...], dtype: Any, name: str = "image") -> None:
    """The checks of :func:`check_image` that need no pixel values: dtype, dimensions, size.

    Used for movies too large to read at once (dask arrays, memory maps), whose values are then
    checked frame by frame. Raises :class:`InputError` as :func:`check_image`.
    """
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    kind = dtype.kind
    ndim = len(shape)
    if kind == "b":
        raise InputError(
            f"{name} is a boolean mask, not an intensity image; choose the microscopy image "
            "(masks and labels go into the labels layer)"
        )
    if kind == "c":
        raise InputError(f"{name} has complex values ({dtype}); segment a real image, e.g. np.abs({name})")
    if kind not in "uif":
        raise InputError(f"{name} has unsupported dtype {dtype}; convert it to a numeric array (e.g. uint16 or float32)")
    if ndim in (3, 4) and shape[-1] in (3, 4):
        rgb = "RGBA" if shape[-1] == 4 else "RGB"
        movie = " movie" if ndim == 4 else ""
        raise InputError(
            f"{name} has shape {shape}, which looks like an {rgb}{movie} image (last axis of size {shape[-1]}); "
            "napari-cellseq needs grey-scale: convert it (Fiji: Image > Type > 8-bit or 16-bit; "
            "Python: skimage.color.rgb2gray) or split the channels and pick one"
            + _channel_hint(shape, name)
        )
    if ndim >= 4:
        hint = _channel_hint(shape, name)
        if ndim == 5:
            hint = hint or (f"; a (T, Z, C, Y, X) hyperstack needs one z-slice and one channel, "
                            f"e.g. {name}[:, 0, 0]")
        raise InputError(
            f"{name} has shape {shape} ({ndim} dimensions), but napari-cellseq takes (Y, X) or (T, Y, X); "
            f"pick one channel or z-slice, e.g. {name}[:, 0]{hint}"
        )
    if ndim < 2:
        raise InputError(
            f"{name} has shape {shape} ({ndim} dimension{'s' if ndim != 1 else ''}), "
            "but napari-cellseq takes a 2-D image (Y, X) or a movie (T, Y, X); load an image file"
        )
    if 0 in shape:
        raise InputError(f"{name} is empty (shape {shape}); load an image that contains pixels")
    if min(shape[-2:]) < MIN_FRAME_SIDE:
        raise InputError(
            f"{name} has shape {shape}: frames of {shape[-2]}x{shape[-1]} pixels are too small to segment; "
            f"napari-cellseq takes (Y, X) or (T, Y, X) with frames of at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE} pixels "
            f"(if the last axis is time or channels, move it first: np.moveaxis({name}, -1, 0))"
            + _channel_hint(shape, name)
        )


def check_labels(labels: Any, image_shape: tuple[int, ...], name: str = "labels", *,
                 classes: bool = False) -> np.ndarray:
    """Check labels against their image and return them as an integer array.

    Parameters
    ----------
    labels : (Y, X) or (T, Y, X) instance ids (or, with ``classes``, class values), 0 =
        background / unpainted, same shape as the image.
    image_shape : shape of the image the labels belong to.
    name : what to call them in messages.
    classes : the values are classes (target ``"classes"``), not instance ids: they are never
        renumbered.

    Returns
    -------
    np.ndarray
        Integer labels of shape ``image_shape``: unchanged for integer dtypes whose values fit
        int64; bool is cast to uint8 (True -> 1); floats whose values are all whole numbers are
        cast to int32 (with a logged warning). Instance ids stored as uint64 above ``2**63 - 1``
        (which every int64 computation would turn negative) are renumbered ``1..n`` in their
        order, 0 kept, as :func:`~napari_cellseq.core.io.writers.label_dtype` (with a logged
        warning): instance ids are arbitrary numbers, only which pixels share one matters.

    Raises
    ------
    InputError
        Other shape than the image, non-integral floats, NaN/Inf, complex / non-numeric dtype,
        negative ids, or (with ``classes``) class values above ``2**63 - 1``.
    """
    arr = np.asarray(labels)
    image_shape = tuple(int(s) for s in image_shape)
    if arr.shape != image_shape:
        raise InputError(
            f"{name} have shape {arr.shape} but the image {image_shape}: paint on a Labels layer created from this image"
        )
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contain NaN or infinite values; save them as a 16-bit integer TIFF with ids 0, 1, 2, ...")
        if arr.size and not np.array_equal(arr, np.round(arr)):
            raise InputError(
                f"{name} must be integer instance ids, got {arr.dtype} with fractional values; "
                "save them as a 16-bit integer TIFF (Fiji: Image > Type > 16-bit)"
            )
        if arr.size and (arr.min() < 0):
            raise InputError(_negative_message(name, arr.min()))
        if arr.size and arr.max() > np.iinfo(np.int32).max:
            raise InputError(f"{name} contain ids up to {arr.max():.0f}, too large for instance ids; renumber them from 1")
        logger.warning("%s are %s; using them as integer ids (int32)", name, arr.dtype)
        return arr.astype(np.int32)
    if kind not in "ui":
        raise InputError(
            f"{name} must be integer instance ids, got dtype {arr.dtype}; save them as a 16-bit integer TIFF"
        )
    if kind == "i" and arr.size and arr.min() < 0:
        raise InputError(_negative_message(name, arr.min()))
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        return _compact_huge_ids(arr, name, classes)
    return arr


def _compact_huge_ids(arr: np.ndarray, name: str, classes: bool) -> np.ndarray:
    """uint64 ``arr`` with ids above ``2**63 - 1`` renumbered ``1..n`` in order (0 stays 0)."""
    top = int(arr.max())
    if classes:
        raise InputError(
            f"{name} hold value {top}, but with target 'classes' each label value is a class: paint class "
            "values 1, 2, 3, ... (1 = background), or use target 3class for instance labels"
        )
    # Sorted uint64 ids, never cast to a signed type; an id's rank is its new id. (searchsorted
    # over the few ids is ~15x faster than np.unique's return_inverse on a HeLa movie.)
    ids = np.unique(arr)
    first = 0 if ids[0] == 0 else 1  # background stays 0; ids become 1..n
    n = len(ids) - 1 + first
    out = (np.searchsorted(ids, arr) + first).astype(label_dtype(n))
    logger.warning("%s hold instance ids up to %d (above 2**63-1); renumbered their %d ids as 1..%d in order",
                   name, top, len(ids) - (1 - first), n)
    return out


def _negative_message(name: str, lowest: Any) -> str:
    return (
        f"{name} contain negative values (minimum {lowest.item()!r}); instance ids must be 0 (background) "
        "or positive: renumber them, e.g. with skimage.segmentation.relabel_sequential"
    )
