"""A frame larger than memory, segmented block by block on dask workers, stitched, into zarr.

:func:`segment_blocks` cuts a 2-D frame ``(Y, X)`` (numpy, dask, zarr array, a zarr store or
an OME-Zarr image, whose full-resolution level is used) into a grid of ``block x block``
cores. Each task reads its core plus ``overlap`` pixels on every side, normalises it with the
frame's percentiles (an even subsample of the whole frame, computed once), predicts it with
the model's tiling (:func:`~napari_cellseq.core.inference.segmentation_predictor`) and turns the
probabilities into instance labels exactly as :func:`~napari_cellseq.core.pipeline.segment`
does, then keeps the labels of its core (renumbered ``1..n``) and writes them to a zarr store
(one chunk per block). Cells cut by a seam are then joined and all ids made unique over the
frame, the steps of ``dask_image.ndmeasure.label``: per-block ids offset by the label counts
of the blocks before, a graph of labels to join across block faces, its connected components
(scipy) and ``dask_image.ndmeasure._utils._label.relabel_blocks`` to apply them block by block
into the output zarr, written to a hidden folder and renamed into place when complete.

Where this departs from dask-image: its face step (``_across_block_label_grouping``) joins any
two labels that touch across a face, right for the binary masks ``ndmeasure.label`` labels but
wrong for instance labels, where two different cells often touch along a seam. Here each block
also labels ``SEAM_BAND`` lines beyond its core (it sees the overlap), and two labels ``a``
(block A) and ``b`` (block B) of the band around the seam are joined where both blocks give
at least half of the smaller one's band pixels to both (:func:`seam_matches`, the overlap rule
of Cellpose's distributed stitching and StarDist's big-image mode, applied to the band): a cell
that crosses the seam is seen whole by both blocks, on both sides of it, and is joined even
where the two blocks, tiled differently, draw its edge a pixel apart; touching neighbours,
one in each core, share only the pixels where the blocks disagree on their common edge and are
kept apart. With an overlap wider than a cell, each block sees every cell of its core whole, so
the labels match the whole-frame segmentation (tested: SEG within 0.01, no cell split or
duplicated at a seam; README, "Beyond one machine").
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import Checkpoint
from ..errors import InputError
from ..events import Done, Event, Started
from ..io import OutputExistsError
from . import require

logger = logging.getLogger(__name__)

__all__ = ["BlockResult", "BlocksDone", "BlocksStitched", "segment_blocks", "segment_blocks_events", "seam_matches", "open_frame",
           "open_plane", "seam_faces_graph"]

# Pixels whose percentiles normalise the frame (an even 2-D subsample of it).
_SAMPLE_PIXELS = 4_000_000


@dataclass(frozen=True)
class BlockResult:
    """The zarr store written (``path``), its number of cells, blocks, and cells joined at seams."""

    path: str
    cells: int
    blocks: int
    joined: int
    seconds: float


@dataclass(frozen=True)
class BlocksDone(Event):
    """``done`` of ``total`` blocks are segmented (pass 1; the stitching pass follows)."""

    done: int
    total: int


@dataclass(frozen=True)
class BlocksStitched(Event):
    """The labels are stitched and in place: ``result`` says where and how many cells."""

    result: BlockResult


def open_frame(image: Any, component: str | None = None) -> Any:
    """A 2-D dask array ``(Y, X)`` of ``image``: numpy / dask / zarr array (or any array-like
    such as :class:`~napari_cellseq.core.io.TiffPlane`), or a path to a zarr store
    (``component`` names an array inside a group), an OME-Zarr image (its first multiscale
    level) or a 2-D TIFF. Leading axes of length 1 (OME ``t, c, z``) are dropped.

    A :class:`numpy.memmap` is copied into memory by ``dask.array.from_array``: for a TIFF larger
    than memory pass its path (or :func:`open_plane`'s view), which is read block by block."""
    require("dask", "zarr")
    import dask.array as da

    if isinstance(image, (str, os.PathLike)):
        import zarr

        path = Path(image).expanduser()
        if path.is_file():  # a TIFF: read block by block from the file (TiffPlane)
            return open_frame(open_plane(path))
        if not path.exists():
            raise InputError(f"no zarr store or TIFF at {path}: check the path")
        try:
            node = zarr.open(str(path), mode="r")
        except Exception as err:  # noqa: BLE001 - many zarr errors for a non-zarr folder
            raise InputError(f"{path} is not a zarr store ({type(err).__name__}): give a .zarr folder or an "
                             "OME-Zarr image") from None
        if component:
            node = node[component]
        if not hasattr(node, "shape"):  # a group: OME-Zarr multiscales, level 0
            multiscales = node.attrs.get("multiscales") or node.attrs.get("ome", {}).get("multiscales")
            if not multiscales:
                raise InputError(f"{path} is a zarr group without OME-Zarr multiscales: name the array "
                                 "(component=...)")
            node = node[multiscales[0]["datasets"][0]["path"]]
        array = da.from_zarr(node)
    elif hasattr(image, "chunks") and hasattr(image, "dask"):
        array = image
    else:
        array = da.from_array(image, chunks=(2048, 2048)) if np.ndim(image) == 2 else da.asarray(image)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise InputError(f"the frame has shape {tuple(array.shape)}: a 2-D (Y, X) frame is needed; pass one "
                         "plane, e.g. image[t] or image[0, 0]")
    if array.dtype.kind not in "uif":
        raise InputError(f"the frame has dtype {array.dtype}: pass grey values (integers or floats)")
    return array


def open_plane(path: str | os.PathLike, frame: int | None = None, channel: int | None = None) -> Any:
    """One 2-D frame ``(Y, X)`` of the image at ``path``, not read yet: what ``segment --blocks``
    hands to :func:`segment_blocks`.

    ``path`` is a TIFF (a :class:`~napari_cellseq.core.io.TiffPlane`, read block by block,
    memory-mapped where tifffile can), an OME-Zarr image (level 0 as ``segment`` reads it, a
    dask array; ``channel`` on its ``c`` axis), a plain zarr array ``(Y, X)`` / ``(T, Y, X)`` (a
    dask array over it) or a Cell Tracking Challenge sequence folder (that frame's file, read
    whole). ``frame`` picks one frame of a movie ``(T, Y, X)``: needed when ``T > 1``;
    ``channel`` one channel of a multichannel image, as for ``segment``.

    Raises :class:`InputError` for a movie without ``frame``, a frame out of range, or an image
    that is not grey values of one 2-D frame (after ``channel``).
    """
    from ..io import TiffPlane, check_image_layout, open_image, select_channel
    from ..io.ome_zarr import is_ome_zarr, open_ome_zarr
    from ..io.sources import open_movie

    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p} does not exist: check the path of the image")
    if p.is_dir() and not is_ome_zarr(p) and _is_zarr(p):  # a plain zarr array
        require("dask", "zarr")
        import dask.array as da
        import zarr

        node = zarr.open(str(p), mode="r")
        if not hasattr(node, "shape"):
            raise InputError(f"{p} is a zarr group, not an array nor an OME-Zarr image: give the array's folder, "
                             f"e.g. {p / next(iter(node.array_keys()), 'NAME')}")
        movie = select_channel(da.from_zarr(node), channel)
    elif is_ome_zarr(p):
        movie = open_ome_zarr(p, channel)
    elif p.is_dir():  # a CTC sequence: one file per frame, that frame's file read whole
        with open_movie(p, channel) as ctc:
            shape = tuple(int(n) for n in ctc.shape)
            check_image_layout(shape, ctc.dtype)
            t = _pick_frame(p, shape, frame)
            return np.asarray(ctc if t is None else ctc[t])
    else:  # a TIFF: probe its shape, then a view that reads block by block
        with open_image(p) as raw:
            probe = select_channel(raw, channel)
            shape, dtype = tuple(int(n) for n in probe.shape), probe.dtype
        check_image_layout(shape, dtype)
        return TiffPlane(p, _pick_frame(p, shape, frame), channel)
    shape = tuple(int(n) for n in movie.shape)
    check_image_layout(shape, movie.dtype)
    t = _pick_frame(p, shape, frame)
    return movie if t is None else movie[t]


def _is_zarr(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def _pick_frame(path: Path, shape: tuple[int, ...], frame: int | None) -> int | None:
    """The frame index into ``shape`` (None for a 2-D image), or one clear error."""
    if len(shape) == 2:
        if frame not in (None, 0):
            raise InputError(f"{path} is one 2-D frame {shape}: there is no frame {frame}")
        return None
    if len(shape) != 3:
        raise InputError(f"{path} has shape {shape}: block-wise segmentation takes one 2-D frame (Y, X) or a "
                         "frame of a (T, Y, X) movie")
    n = shape[0]
    if frame is None:
        if n == 1:
            return 0
        raise InputError(f"{path} is a movie of {n} frames, but block-wise segmentation takes one 2-D frame: "
                         f"pick one with --frames N (frame=N in Python), e.g. --frames 0 (frames 0..{n - 1})")
    if not 0 <= int(frame) < n:
        raise InputError(f"{path} has frames 0..{n - 1}, not {frame}")
    return int(frame)


def _value_range(frame: Any, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Percentiles of an even ``s x s``-strided subsample of ``frame`` (at most ~4 M pixels)."""
    from ..data.normalize import percentile_range

    h, w = frame.shape
    s = max(1, int(np.ceil(np.sqrt(h * w / _SAMPLE_PIXELS))))
    sample = np.asarray(frame[::s, ::s].compute())
    if sample.dtype.kind == "f" and not np.isfinite(sample).all():
        raise InputError("the frame contains NaN or infinite values; replace them (e.g. np.nan_to_num)")
    if sample.min() == sample.max():
        raise InputError(f"the frame is constant (all values = {sample.min().item()!r} in a subsample): "
                         "nothing to segment")
    return percentile_range(sample, percentiles)


def _windows(size: int, block: int) -> list[tuple[int, int]]:
    return [(s, min(s + block, size)) for s in range(0, size, block)]


#: Half-width (pixels) of the band around a seam in which two blocks' labels are compared; at
#: most the overlap (a block sees no further beyond its core).
SEAM_BAND = 8
#: Two labels facing each other across a seam are one cell when, inside the band, they share at
#: least this fraction of the smaller one's pixels there.
SEAM_SHARE = 0.5


@dataclass(frozen=True)
class _Faces:
    """What block pass 1 returns: ``n`` labels ``1..n`` in its core, and per side (top, bottom,
    left, right) the block's labels of the band of ``2 k`` lines around that side (``k`` inside the
    core, ``k`` beyond it, as this block sees them; ids of cells absent from the core are 0), as
    ``(2 k, L)`` arrays across the seam (rows for top/bottom, transposed for left/right); None at
    the frame edge."""

    n: int
    band: dict


def _label_block(pixels: np.ndarray, ckpt: Checkpoint, value_range: tuple[float, float], core: tuple,
                 store: str, window: tuple, options: dict) -> _Faces:
    """Pass 1 on one block: ``pixels`` (core + overlap) -> core labels in ``store`` at ``window``."""
    import torch
    import zarr

    from ..data.normalize import normalize
    from ..device import resolve_device
    from ..inference import segmentation_predictor
    from ..postprocess import labels_from_probabilities

    if options.get("torch_threads"):
        torch.set_num_threads(int(options["torch_threads"]))
    frame = np.asarray(pixels)
    if frame.dtype.kind == "f" and not np.isfinite(frame).all():
        raise InputError(f"the frame contains NaN or infinite values near rows {window[0]}, columns {window[2]}; "
                         "replace them (e.g. np.nan_to_num)")
    dev = resolve_device(options.get("device", "cpu"))
    predictor = segmentation_predictor(ckpt.build(dev), dev, options.get("tile"))
    movie = normalize(frame, value_range)[None]
    (_, probs), = list(predictor.predict(movie, [0]))
    post = ckpt.postprocess_config
    labels = labels_from_probabilities(probs, ckpt.data_config.target, post.min_size, threshold=post.threshold)
    (y0, y1), (x0, x1) = core  # the core inside ``pixels``
    present = np.unique(labels[y0:y1, x0:x1])
    present = present[present > 0]
    n = int(present.size)
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)  # block ids -> core ids 1..n, others 0
    lut[present] = np.arange(1, n + 1)
    inner = lut[labels[y0:y1, x0:x1]]
    h, w = labels.shape
    ch, cw = y1 - y0, x1 - x0
    kt, kb, kl, kr = (min(SEAM_BAND, y0, ch), min(SEAM_BAND, h - y1, ch),  # lines seen on each side
                      min(SEAM_BAND, x0, cw), min(SEAM_BAND, w - x1, cw))
    band = {
        "top": lut[labels[y0 - kt:y0 + kt, x0:x1]] if kt else None,
        "bottom": lut[labels[y1 - kb:y1 + kb, x0:x1]] if kb else None,
        "left": lut[labels[y0:y1, x0 - kl:x0 + kl]].T if kl else None,
        "right": lut[labels[y0:y1, x1 - kr:x1 + kr]].T if kr else None,
    }
    out = zarr.open_array(store, mode="r+")
    out[window[0]:window[1], window[2]:window[3]] = inner.astype(np.uint32)
    return _Faces(n, {side: None if b is None else np.ascontiguousarray(b, dtype=np.int64) for side, b in band.items()})


def seam_faces_graph(faces: dict, offsets: dict) -> np.ndarray:
    """Edges ``(2, M)`` between global ids of labels that are one cell cut by a block seam (see
    the module docstring); ``faces[(i, j)]`` are the blocks' :class:`_Faces`, ``offsets[(i, j)]``
    the id offset of each block."""
    pairs = []
    for (i, j), f in faces.items():
        for side, (di, dj), other in (("bottom", (1, 0), "top"), ("right", (0, 1), "left")):
            g = faces.get((i + di, j + dj))
            if g is None or f.band[side] is None or g.band[other] is None:
                continue
            a, b = seam_matches(f.band[side], g.band[other])
            if a.size:
                pairs.append(np.stack([a + offsets[(i, j)], b + offsets[(i + di, j + dj)]]))
    if not pairs:
        return np.zeros((2, 0), dtype=np.int64)
    return np.unique(np.concatenate(pairs, axis=1), axis=1)


def seam_matches(a_band: np.ndarray, b_band: np.ndarray, share: float = SEAM_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(a ids, b ids)`` of one cell seen by two neighbouring blocks.

    ``a_band``, ``b_band``: the same band of pixels around a seam, ``(2 k, L)``, as block A and
    block B label it (0: background or a cell outside that block's core; the two bands may
    differ in width when ``k`` differs, then the common middle lines are used). A label ``a``
    and a label ``b`` are joined when the pixels both blocks give to them are at least ``share``
    of the smaller of the two there: a cell that crosses the seam is seen by both blocks on both
    sides of it (or, where one block cuts it at the seam, that block's part lies inside the
    other block's cell), while two touching cells, one in each core, share only the line or two
    where the blocks disagree on their common edge, a small part of the ``k`` lines each has on
    its side.
    """
    ka, kb = a_band.shape[0] // 2, b_band.shape[0] // 2
    k = min(ka, kb)
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = a_band[ka - k:ka + k], b_band[kb - k:kb + k]
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pair_ids, shared = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    ids_a, area_a = np.unique(a[a > 0], return_counts=True)
    ids_b, area_b = np.unique(b[b > 0], return_counts=True)
    smaller = np.minimum(area_a[np.searchsorted(ids_a, pair_ids[0])], area_b[np.searchsorted(ids_b, pair_ids[1])])
    keep = shared >= share * smaller
    return pair_ids[0][keep], pair_ids[1][keep]


def _add_offsets(block: np.ndarray, offsets: np.ndarray, block_info=None) -> np.ndarray:
    i, j = block_info[0]["chunk-location"]
    out = block.astype(np.int64)
    out[block > 0] += int(offsets[i, j])
    return out


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it, or "
                                "choose another name")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file: give a .zarr folder name for the labels")


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move the finished store ``tmp`` to ``out`` (an old ``out`` is removed only after)."""
    old = None
    if out.exists():
        old = out.parent / f".old-{os.getpid()}-{secrets.token_hex(4)}-{out.name}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def segment_blocks_events(
    image: Any,
    model: Checkpoint | str | os.PathLike,
    out: str | os.PathLike,
    client: Any = None,
    *,
    block: int = 2048,
    overlap: int = 64,
    component: str | None = None,
    device: str = "cpu",
    tile: int | None = None,
    value_range: tuple[float, float] | None = None,
    overwrite: bool = False,
    torch_threads: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[Event]:
    """Instance labels of a 2-D frame, segmented block by block and stitched, written to zarr,
    as a generator of events (the CLI's progress bar; :func:`segment_blocks` drains it).

    Parameters
    ----------
    image : ``(Y, X)`` grey values: numpy / dask / zarr array, a
        :class:`~napari_cellseq.core.io.TiffPlane`, or a path to a zarr store, an OME-Zarr image
        or a 2-D TIFF (see :func:`open_frame`; :func:`open_plane` picks a frame of a movie).
    model : a model file or checkpoint.
    out : the zarr store to write (a folder, e.g. ``labels.zarr``): ``(Y, X) uint32`` instance
        ids ``1..n`` unique over the frame, 0 background, chunks ``block x block``.
    client : a ``distributed.Client`` (blocks run on its workers, which must see ``out``'s
        folder and a file input), or None: the blocks run here, one after another.
    block : core side of a block in pixels; overlap : pixels each block sees beyond its core
        (wider than a cell, so that every cell of the core is seen whole).
    device, tile : as ``segment``; value_range : normalisation (default: the model's
        percentiles of the frame, on an even subsample).
    overwrite : replace ``out``; otherwise an existing ``out`` is refused before any work.
    stop : checked after each block; True cancels the rest (``Done`` reason ``stopped``,
        nothing written).

    Yields ``Started`` (total = blocks), :class:`BlocksDone` after each block, then
    :class:`BlocksStitched` and ``Done`` (``iteration`` = blocks). Nothing is in ``out`` until
    the stitched labels are complete: they are written to a hidden folder beside it and
    renamed into place (removed on error or stop).

    Raises :class:`InputError` before any work for a frame that is not 2-D, constant or has
    NaN, a bad ``block`` / ``overlap``, or an existing ``out``.
    """
    require("dask", "zarr", "dask_image")
    import dask
    import dask.array as da
    import scipy.sparse
    import scipy.sparse.csgraph
    import zarr
    from dask_image.ndmeasure._utils._label import relabel_blocks

    from ..pipeline import load_model

    t0 = time.perf_counter()
    if isinstance(block, bool) or int(block) < 64:
        raise InputError(f"block side must be at least 64 pixels, got {block!r}")
    if isinstance(overlap, bool) or not 1 <= int(overlap) <= int(block):
        raise InputError(f"overlap must be 1..block ({block}) pixels, got {overlap!r}")
    block, overlap = int(block), int(overlap)
    out = Path(out).expanduser()
    _check_out(out, overwrite)
    ckpt = load_model(model)
    frame = open_frame(image, component)
    h, w = (int(v) for v in frame.shape)
    if value_range is None:
        value_range = _value_range(frame, ckpt.data_config.percentiles)
    ys, xs = _windows(h, block), _windows(w, block)
    n_blocks = len(ys) * len(xs)
    yield Started(total=n_blocks, max_time=None, device=device if client is None else "dask")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{out.name}"
    local_store, final_store = str(work / "local"), str(work / "labels")
    futures: list = []
    try:
        zarr.open_array(local_store, mode="w", shape=(h, w), chunks=(block, block), dtype=np.uint32,
                        fill_value=0)
        options = {"device": device, "tile": tile, "torch_threads": torch_threads}
        model_ref = client.scatter(ckpt, broadcast=True, hash=False) if client is not None else ckpt
        tasks = {}
        label_block = dask.delayed(_label_block, pure=False)
        for i, (y0, y1) in enumerate(ys):
            for j, (x0, x1) in enumerate(xs):
                ey0, ey1, ex0, ex1 = max(0, y0 - overlap), min(h, y1 + overlap), max(0, x0 - overlap), min(w, x1 + overlap)
                core = ((y0 - ey0, y1 - ey0), (x0 - ex0, x1 - ex0))
                tasks[(i, j)] = label_block(frame[ey0:ey1, ex0:ex1], model_ref, value_range, core, local_store,
                                            (y0, y1, x0, x1), options)
        keys = list(tasks)
        faces: dict = {}
        if client is None:
            for done, key in enumerate(keys, 1):
                (faces[key],) = dask.compute(tasks[key], scheduler="synchronous")
                yield BlocksDone(done, n_blocks)
                if stop is not None and stop():
                    break
        else:
            from distributed import as_completed

            futures = client.compute([tasks[k] for k in keys])
            key_of = dict(zip(futures, keys))
            for done, fut in enumerate(as_completed(futures), 1):
                faces[key_of[fut]] = fut.result()  # a failed block raises its error here
                yield BlocksDone(done, n_blocks)
                if stop is not None and stop():
                    break
        if len(faces) < n_blocks:  # stopped
            yield Done(reason="stopped", iteration=len(faces), elapsed=time.perf_counter() - t0)
            return
        counts = np.array([[faces[(i, j)].n for j in range(len(xs))] for i in range(len(ys))], dtype=np.int64)
        offsets = (np.cumsum(counts.ravel()) - counts.ravel()).reshape(counts.shape)
        total = int(counts.sum())
        edges = seam_faces_graph(faces, {(i, j): int(offsets[i, j]) for (i, j) in faces})
        graph = scipy.sparse.coo_matrix((np.ones(edges.shape[1]), (edges[0], edges[1])), shape=(total + 1,) * 2)
        n_comp, new_labeling = scipy.sparse.csgraph.connected_components(graph.tocsr(), directed=False)
        # node 0 (background) is component 0, the others numbered in order: ids 1..n_comp-1
        local = da.from_zarr(local_store)
        offsetted = local.map_blocks(_add_offsets, offsets, dtype=np.int64)
        labels = relabel_blocks(offsetted, new_labeling).astype(np.uint32)
        stored = da.to_zarr(labels, final_store, compute=False)
        if client is not None:
            client.compute(stored, sync=True)
        else:
            dask.compute(stored, scheduler="synchronous")
        shutil.rmtree(local_store, ignore_errors=True)
        _replace_folder(Path(final_store), out)
    finally:
        if futures:
            client.cancel(futures)  # a failed or stopped run: the blocks not finished yet
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t0
    result = BlockResult(str(out), int(n_comp - 1), n_blocks, total - int(n_comp - 1), seconds)
    logger.info("%d x %d frame in %d blocks: %d cells (%d joined at seams), %.1f s -> %s", h, w, n_blocks,
                result.cells, result.joined, seconds, out)
    yield BlocksStitched(result)
    yield Done(reason="finished", iteration=n_blocks, elapsed=seconds)


def segment_blocks(image: Any, model: Checkpoint | str | os.PathLike, out: str | os.PathLike, client: Any = None,
                   on_event: Callable[[Event], None] | None = None, **kwargs) -> BlockResult | None:
    """Instance labels of a 2-D frame, segmented block by block and stitched, written to zarr
    (see :func:`segment_blocks_events` for the arguments, e.g. ``block=2048, overlap=64``).

    Returns a :class:`BlockResult` (None when ``stop`` cancelled the run). Raises
    :class:`InputError` for a frame that is not 2-D, constant or has NaN, a bad ``block`` /
    ``overlap``, or an existing ``out``.
    """
    result = None
    for event in segment_blocks_events(image, model, out, client, **kwargs):
        if on_event is not None:
            on_event(event)
        if isinstance(event, BlocksStitched):
            result = event.result
    return result
