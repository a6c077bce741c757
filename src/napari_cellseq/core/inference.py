"""Network inference on frames of any size.

Frames are padded with ``normalize.OUTSIDE`` by a margin on every side and to a multiple of
the network's stride, exactly as training fills what lies beyond the frame edge, so the network treats cells cut by the frame edge the way the user painted them. Frames
larger than the tile size are cut into overlapping tiles whose class probabilities are blended
with a linear ramp over the overlap. Temporal models run statefully, frame by frame, with one recurrent
state per tile, so memory does not grow with the movie length. Before the first frame they are
warmed up on the next few frames in reverse order (``warmup``), so the first frames see a
primed memory like every later frame; the result equals a single unrolled pass over
``temporal_order(...)`` (tested).

When the device runs out of memory on a frame, the tile size is halved (down to a floor of
``min_tile`` pixels) and the frame is predicted again; temporal models restart their memory,
with a fresh warm-up, from that frame. Only when even the smallest tiles do not fit is a
:class:`~napari_cellseq.core.errors.CellseqError` raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .data.normalize import OUTSIDE
from .device import autocast, autocast_dtype, use_channels_last
from .errors import CellseqError
from .models import advance_state

logger = logging.getLogger(__name__)

__all__ = ["Tile", "plan_tiles", "temporal_order", "Predictor", "is_out_of_memory", "default_tile",
           "segmentation_predictor"]


def default_tile(device: torch.device) -> int:
    """The default largest tile side for ``device``: 512 pixels on CPU, 1536 on GPUs.

    On a 2-core CPU, 512-pixel tiles segmented a 700x1100 HeLa frame 1.2-1.7x faster than one
    whole-frame tile (activations that fit the caches; SEG 0.872 either way, measured: README,
    Benchmarks); accelerators take big tiles (fewer seams, fuller kernels).
    """
    return 512 if device.type == "cpu" else 1536


def segmentation_predictor(model: torch.nn.Module, device: torch.device, tile: int | None = None) -> "Predictor":
    """The :class:`Predictor` that segmentation uses: ``tile`` (None: :func:`default_tile`) and an
    overlap of ``min(64, tile // 4)``.

    Calibration after training predicts with the same tiling, so the threshold it picks is the
    one for the probabilities ``segment`` will see: normalisation layers computed per tile
    (group norm in the U-LSTM) make the output depend on the tile size. Measured on HeLa (U-LSTM,
    painted frames 0-4): calibrating with whole-frame tiles picked threshold 0.45, with the
    512-pixel tiles of CPU segmentation 0.35; SEG on frames 10-19 0.921 vs 0.928.
    """
    tile = default_tile(device) if tile is None else int(tile)
    return Predictor(model, device, tile=tile, overlap=min(64, tile // 4))

_OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {MemoryError, getattr(torch, "OutOfMemoryError", MemoryError),
     getattr(torch.cuda, "OutOfMemoryError", MemoryError)}
)
_OOM_TEXT = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")


def is_out_of_memory(err: BaseException) -> bool:
    """True for the errors torch / numpy raise when a device (GPU, MPS or CPU) is out of memory."""
    if isinstance(err, _OOM_ERRORS):
        return True
    return isinstance(err, RuntimeError) and any(text in str(err).lower() for text in _OOM_TEXT)


@dataclass(frozen=True)
class Tile:
    """A window ``[y0:y1, x0:x1]`` of the frame and its blending weight ``(y1-y0, x1-x0)``."""

    y0: int
    y1: int
    x0: int
    x1: int
    weight: np.ndarray


def _starts(size: int, tile: int, overlap: int, multiple: int = 1) -> tuple[list[int], int]:
    """Start offsets and side of the tiles along one axis of ``size`` pixels.

    As few tiles as cover the axis with at least ``overlap`` pixels between neighbours, each as
    small as that allows (rounded up to ``multiple``, at most ``tile``), evenly spaced: a 2080-pixel
    axis with ``tile=1536`` becomes two 1072-pixel tiles rather than two 1536-pixel ones.
    """
    if size <= tile:
        return [0], size
    n = -(-(size - overlap) // (tile - overlap))  # ceil
    side = -(-(size + (n - 1) * overlap) // n)
    side = min(tile, size, -(-side // multiple) * multiple)
    n = max(n, -(-(size - overlap) // (side - overlap)))
    starts = sorted({round(i * (size - side) / (n - 1)) for i in range(n)})
    return starts, side


def _ramp(n: int, start: int, stop: int, size: int, overlap: int) -> np.ndarray:
    """1-D blend weight of a tile ``[start, stop)``: linear ramps where it overlaps others."""
    w = np.ones(stop - start, dtype=np.float32)
    if overlap <= 0:
        return w
    ramp = (np.arange(overlap, dtype=np.float32) + 1.0) / (overlap + 1.0)
    if start > 0:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if stop < size:
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def plan_tiles(shape: tuple[int, int], tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """Overlapping tiles of equal size covering a frame of ``shape (Y, X)``; one tile when it fits.

    Tiles are at most ``tile`` pixels on a side and, where the frame is cut, a multiple of
    ``multiple`` (the network's stride, so that no tile is padded inside the frame).
    """
    ny, nx = shape
    tiles = []
    ys, sy = _starts(ny, tile, overlap, multiple)
    xs, sx = _starts(nx, tile, overlap, multiple)
    for y0 in ys:
        y1 = y0 + sy
        wy = _ramp(ny, y0, y1, ny, overlap)
        for x0 in xs:
            x1 = x0 + sx
            wx = _ramp(nx, x0, x1, nx, overlap)
            tiles.append(Tile(y0, y1, x0, x1, np.outer(wy, wx)))
    return tiles


def temporal_order(frames: list[int], warmup: int) -> tuple[list[int], int]:
    """Frame indices a temporal model sees for consecutive ``frames``, and how many lead in.

    The lead-in is the ``warmup`` frames after the first, in reverse order, e.g. frames 0..9 with
    warmup 3 are fed as ``[3, 2, 1, 0, 1, ..., 9]`` and outputs start after the first 3.
    """
    first, last = frames[0], frames[-1]
    lead = list(range(min(first + warmup, last), first, -1))
    return lead + list(range(first, last + 1)), len(lead)


def _pad(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """Pad ``x (N, C, H, W)`` with OUTSIDE at bottom/right to multiples of ``stride``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), value=OUTSIDE)
    return x, h, w


class Predictor:
    """Class probabilities of a network for the frames of a normalised movie.

    Parameters
    ----------
    model : a registered network in eval mode (frame or temporal contract).
    device : where it runs.
    tile : largest tile side in pixels (frames up to ``tile x tile`` go in one piece).
    overlap : tile overlap in pixels.
    warmup : lead-in frames for temporal models.
    margin : pixels of OUTSIDE added around each frame.
    amp : mixed precision: True / ``"auto"`` is bfloat16 on CUDA (float16 on GPUs without
        bfloat16) and float32 elsewhere; ``"bf16"``, ``"fp16"``, False / ``"off"`` force it
        (see :func:`~napari_cellseq.core.device.autocast_dtype`).
    min_tile : smallest tile side the out-of-memory fallback goes down to (at least
        ``2 * overlap``); ``self.tile`` holds the tile size in use after a fallback.
    channels_last : run the network in channels-last (NHWC) memory format; None (default) means
        on for CPU and CUDA, off on MPS: on a 2-core CPU it made one 700x1100 frame 1.7-2.4x
        faster for the U-Net and 1.2-1.5x for the U-LSTM (measured, see README, Benchmarks).
    tile_batch : tiles of a frame sent through a frame model together (default 1; larger
        batches help GPUs on frames cut into many tiles; the out-of-memory fallback halves it
        before it halves the tile).
    compile : wrap the network in ``torch.compile`` (off by default: the first frames then pay
        for compilation, which only long movies on a GPU win back).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, tile: int = 1536,
                 overlap: int = 64, warmup: int = 3, margin: int = 16, amp: bool | str = True,
                 min_tile: int = 128, channels_last: bool | None = None, tile_batch: int = 1,
                 compile: bool = False):
        self.model, self.device = model, device
        self.tile, self.overlap, self.warmup, self.margin = tile, overlap, warmup, margin
        self.min_tile = max(int(min_tile), 2 * overlap)
        self.temporal = bool(getattr(model, "temporal", False))
        self.stride = int(getattr(model, "stride", 1))
        self.amp_dtype = autocast_dtype(device, amp)
        self.channels_last = use_channels_last(device, channels_last)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.tile_batch = max(1, int(tile_batch))
        self.forward = torch.compile(model) if compile else model

    def predict(self, movie: np.ndarray, frames: list[int] | None = None,
                stop: Callable[[], bool] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t, probabilities (K, Y, X) float32)`` for each requested frame, in order.

        movie : ``(T, Y, X)`` float32, already normalised.
        frames : frames to predict (default all); temporal models run through every frame
            between the first and the last requested one.
        """
        n = movie.shape[0]
        frames = sorted(set(range(n) if frames is None else frames))
        if not frames:
            return
        with torch.inference_mode():
            if not self.temporal:
                for t in frames:
                    if stop is not None and stop():
                        return
                    frame = movie[t]
                    while True:
                        try:
                            probs, _ = self._frame(frame, self._tiles(frame.shape), None)
                            break
                        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                            self._shrink_or_raise(err, frame.shape)
                    yield t, probs
                return
            remaining = frames
            while remaining:
                remaining = yield from self._temporal(movie, remaining, stop)

    def _temporal(self, movie, frames: list[int], stop) -> Iterator[tuple[int, np.ndarray]]:
        """Stateful pass over ``frames``; returns the frames still to do after an OOM fallback."""
        order, lead = temporal_order(frames, self.warmup)
        wanted = set(frames)
        tiles = None
        states: list = []
        for i, t in enumerate(order):
            if stop is not None and stop():
                return []
            frame = movie[t]
            if tiles is None:
                tiles = self._tiles(frame.shape)
                states = [None] * len(tiles)
            output = i >= lead and t in wanted  # warm-up frames: only the recurrent state
            try:
                probs, states = self._frame(frame, tiles, states, output)
            except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                self._shrink_or_raise(err, frame.shape)
                logger.warning("restarting the temporal memory at frame %d with %d-pixel tiles", t, self.tile)
                return [f for f in frames if f >= t] if i >= lead else frames
            if output:
                yield t, probs
        return []

    def _tiles(self, frame_shape: tuple[int, ...]) -> list[Tile]:
        m = self.margin
        key = (frame_shape[-2] + 2 * m, frame_shape[-1] + 2 * m, self.tile, self.overlap)
        if getattr(self, "_plan", (None,))[0] != key:
            self._plan = (key, plan_tiles(key[:2], self.tile, self.overlap, self.stride))
        return self._plan[1]

    def _shrink_or_raise(self, err: BaseException, frame_shape: tuple[int, ...]) -> None:
        """After ``err``: halve the tile size if it was out of memory, else re-raise ``err``."""
        if not is_out_of_memory(err):
            raise err
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.tile_batch > 1 and not self.temporal:
            self.tile_batch //= 2
            logger.warning("out of memory on %s; retrying the frame with %d tiles at a time",
                           self.device, self.tile_batch)
            return
        side = max(frame_shape[-2:]) + 2 * self.margin
        smaller = min(self.tile, side) // 2
        if smaller < self.min_tile:
            raise CellseqError(
                f"out of memory on {self.device} even with tiles of {min(self.tile, side)} pixels: free memory "
                "(close other programs or GPU jobs), use a smaller model, or run on another device (--device cpu)"
            ) from err
        logger.warning("out of memory on %s with %d-pixel tiles; retrying the frame with %d-pixel tiles",
                       self.device, min(self.tile, side), smaller)
        self.tile = smaller

    def _frame(self, frame: np.ndarray, tiles: list[Tile], states, outputs: bool = True):
        """Blend tile probabilities of one frame ``(Y, X)``; returns ``((K, Y, X), states)``.

        ``outputs=False`` (temporal warm-up): only the tiles' states, ``(None, states)``.
        """
        probs, states = self._padded_frame(np.pad(frame, self.margin, constant_values=OUTSIDE), tiles,
                                           states, outputs)
        if probs is None:
            return None, states
        m = self.margin
        return probs[:, m:probs.shape[1] - m, m:probs.shape[2] - m], states

    def _run(self, x: torch.Tensor, state=None, outputs: bool = True):
        """The network on one input batch, in the configured precision and memory format.

        ``outputs=False`` (temporal models): ``(None, state)`` from the model's output-free
        advance (:func:`~napari_cellseq.core.models.advance_state`).
        """
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp_dtype):
            if state is None and not self.temporal:
                return self.forward(x), None
            if not outputs:
                return None, advance_state(self.model, x[:, None], state, self.forward)
            logits, state = self.forward(x[:, None], state)
            return logits[:, 0], state

    def _probabilities(self, logits: torch.Tensor, h: int, w: int) -> np.ndarray:
        return torch.softmax(logits.float(), dim=1)[:, :, :h, :w].cpu().numpy()

    def _padded_frame(self, frame: np.ndarray, tiles: list[Tile], states, outputs: bool = True):
        if states is None and self.tile_batch > 1 and len(tiles) > 1:
            return self._batched_tiles(frame, tiles), None
        acc = norm = None
        new_states = [] if states is not None else None
        for i, tile in enumerate(tiles):
            patch = torch.from_numpy(np.ascontiguousarray(frame[tile.y0:tile.y1, tile.x0:tile.x1]))
            x, h, w = _pad(patch[None, None].to(self.device), self.stride)
            logits, state = self._run(x, None if states is None else states[i], outputs)
            if states is not None:
                new_states.append(state)
            if logits is None:  # states only
                continue
            probs = self._probabilities(logits, h, w)[0]
            if len(tiles) == 1:
                return probs, new_states
            if acc is None:
                acc = np.zeros((probs.shape[0],) + frame.shape, dtype=np.float32)
                norm = np.zeros(frame.shape, dtype=np.float32)
            acc[:, tile.y0:tile.y1, tile.x0:tile.x1] += probs * tile.weight
            norm[tile.y0:tile.y1, tile.x0:tile.x1] += tile.weight
        return (None if acc is None else acc / norm), new_states

    def _batched_tiles(self, frame: np.ndarray, tiles: list[Tile]) -> np.ndarray:
        """Frame models: ``tile_batch`` equal-sized tiles per forward pass, blended as one by one."""
        acc = None
        norm = np.zeros(frame.shape, dtype=np.float32)
        for i in range(0, len(tiles), self.tile_batch):
            group = tiles[i:i + self.tile_batch]
            patches = np.stack([frame[t.y0:t.y1, t.x0:t.x1] for t in group])  # plan_tiles: equal sizes
            x, h, w = _pad(torch.from_numpy(patches)[:, None].to(self.device), self.stride)
            logits, _ = self._run(x)
            probs = self._probabilities(logits, h, w)
            if acc is None:
                acc = np.zeros((probs.shape[1],) + frame.shape, dtype=np.float32)
            for tile, p in zip(group, probs):
                acc[:, tile.y0:tile.y1, tile.x0:tile.x1] += p * tile.weight
                norm[tile.y0:tile.y1, tile.x0:tile.x1] += tile.weight
        return acc / norm
