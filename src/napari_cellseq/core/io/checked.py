"""Lazy movies and label stacks for training, checked frame by frame as they are read.

A movie larger than memory (numpy memory map, dask, zarr, :class:`~.views.TiffFrames`) cannot
be checked whole before training; the checks that need no pixels (shape, dtype) run when the
view is made, and the checks of :func:`~.checks.check_image` / :func:`~.checks.check_labels`
that need values run on each frame when it is read, with the same messages naming the frame.

- :class:`ImageFrames`: ``image[t]`` is the raw frame ``(Y, X)``; NaN or infinite values raise.
- :class:`LabelFrames`: ``labels[t]`` is the frame as :func:`~.checks.check_labels` returns it
  (integer ids; bool and whole-number floats cast; negative ids refused; a warning about the
  stack, e.g. renumbered uint64 ids, is logged once); ``painted`` lists the frames with any
  label, found once, one frame at a time.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import InputError
from .checks import check_finite, check_labels
from .checks import logger as checks_logger
from .views import FrameStack

__all__ = ["ImageFrames", "LabelFrames"]

logger = logging.getLogger(__name__)


class _FirstWarning(logging.Filter):
    """Lets the first warning through and drops the later ones (e.g. the same cast, per frame)."""

    def __init__(self):
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.said:
            return False
        self.said = True
        return True


class ImageFrames(FrameStack):
    """A lazy movie ``(T, Y, X)`` (layout already checked) whose frames are checked when read.

    ``source`` is any array-like with ``shape`` and ``__getitem__``; only ``image[t]`` (one
    frame) is asked of it. ``dtype`` is the source's.
    """

    def __init__(self, source: Any, name: str = "image"):
        self.source, self.name = source, name
        self.shape = tuple(int(s) for s in source.shape)
        self.dtype = np.dtype(getattr(source, "dtype", np.float64))

    def _frame(self, t: int) -> np.ndarray:
        frame = np.asarray(self.source[t])
        check_finite(frame, f"frame {t} of {self.name}")
        return frame


class LabelFrames(FrameStack):
    """A lazy label stack ``(T, Y, X)`` of an image of ``image_shape``, checked frame by frame.

    The shape and dtype are checked at once (as :func:`~.checks.check_labels` does); each frame
    read is checked and cast by :func:`~.checks.check_labels` (``classes``: values are classes,
    never renumbered). Raises :class:`~napari_cellseq.core.errors.InputError`.
    """

    def __init__(self, source: Any, image_shape: tuple[int, ...], name: str = "labels", *,
                 classes: bool = False):
        self.source, self.name, self.classes = source, name, classes
        self.shape = tuple(int(s) for s in source.shape)
        self.dtype = np.dtype(getattr(source, "dtype", np.int64))
        image_shape = tuple(int(s) for s in image_shape)
        if self.shape != image_shape:
            raise InputError(
                f"{name} have shape {self.shape} but the image {image_shape}: paint on a Labels layer "
                "created from this image"
            )
        if self.dtype.kind not in "buif":
            raise InputError(
                f"{name} must be integer instance ids, got dtype {self.dtype}; save them as a 16-bit integer TIFF"
            )
        self._once = _FirstWarning()

    def _frame(self, t: int) -> np.ndarray:
        frame = np.asarray(self.source[t])
        checks_logger.addFilter(self._once)  # a warning about the stack is said once, not per frame
        try:
            return check_labels(frame, frame.shape, f"{self.name} (frame {t})", classes=self.classes)
        finally:
            checks_logger.removeFilter(self._once)

    @cached_property
    def painted(self) -> tuple[int, ...]:
        """The frames with any label: the source's own list when it keeps one
        (:class:`~.views.PaintedFrames`), else found reading one frame at a time."""
        known = getattr(self.source, "painted", None)
        if known is not None:
            return tuple(int(t) for t in known)
        found = tuple(t for t in range(self.shape[0]) if np.asarray(self.source[t]).any())
        logger.info("%s: %d of %d frames painted", self.name, len(found), self.shape[0])
        return found
