"""A frame segmented block by block and stitched equals the whole-frame segmentation: cells on the
block seams get one id, ids are unique, output in zarr (zarr / OME-Zarr input, on a dask cluster)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

zarr = pytest.importorskip("zarr")

from napari_cellseq.core.config import DataConfig, TrainConfig  # noqa: E402
from napari_cellseq.core.distributed.blocks import segment_blocks  # noqa: E402
from napari_cellseq.core.errors import InputError  # noqa: E402
from napari_cellseq.core.io import OutputExistsError  # noqa: E402
from napari_cellseq.core.metrics import seg_score  # noqa: E402
from napari_cellseq.core.models import default_model_config  # noqa: E402
from napari_cellseq.core.pipeline import segment  # noqa: E402
from napari_cellseq.core.synthetic import synthetic_timelapse  # noqa: E402
from napari_cellseq.core.training import fit  # noqa: E402

SIDE, BLOCK = 1024, 256  # 16 blocks, 3 seams each way (benchmarks/beyond_one_machine.py runs 4096 x 4096)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    image, labels = synthetic_timelapse(n_frames=4, shape=(128, 128), n_cells=12, seed=4, radius_range=(5.0, 10.0))
    path = tmp_path_factory.mktemp("blocks") / "unet.pt"
    fit(np.asarray(image), np.asarray(labels), path, model_config=default_model_config("unet", base_channels=8, depth=3),
        data_config=DataConfig(crop_size=96, augment_elastic=False),
        train_config=TrainConfig(iterations=60, max_time=None, batch_size=4, device="cpu", calibrate=False))
    return path


@pytest.fixture(scope="module")
def frame():
    image, truth = synthetic_timelapse(n_frames=1, shape=(SIDE, SIDE), n_cells=SIDE * SIDE // 1500, seed=7,
                                       radius_range=(5.0, 10.0))
    return np.asarray(image)[0], np.asarray(truth)[0]


def _read(path):
    return zarr.open_array(str(path), mode="r")[:]


def _seam_cells(labels):
    """Ids of the cells that cross a block seam."""
    seams = np.arange(BLOCK, SIDE, BLOCK)
    ids = set()
    for s in seams:
        a, b = labels[s - 1], labels[s]
        ids |= set(a[(a == b) & (a > 0)].tolist())
        a, b = labels[:, s - 1], labels[:, s]
        ids |= set(a[(a == b) & (a > 0)].tolist())
    return ids


def test_one_tile_per_block_equals_whole_frame_exactly(tmp_path, frame, model):
    """With the network run on each block (and the whole frame) in one tile, only the stitching can
    differ: the labels are the whole frame's, renumbered."""
    image, _ = frame
    whole = segment(image, model, device="cpu", tile=2048)
    result = segment_blocks(image, model, tmp_path / "labels.zarr", block=BLOCK, overlap=64, tile=2048)
    labels = _read(tmp_path / "labels.zarr")
    assert labels.dtype == np.uint32 and labels.shape == image.shape
    assert result.blocks == 16 and result.joined > 20 and result.cells == whole.max()
    crossing = _seam_cells(whole)
    assert len(crossing) > 20  # many cells lie on the seams
    np.testing.assert_array_equal(labels > 0, whole > 0)
    pairs = np.unique(np.stack([whole[whole > 0], labels[whole > 0]]), axis=1)
    assert pairs.shape[1] == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))  # one-to-one ids
    assert sorted(np.unique(labels[labels > 0])) == list(range(1, result.cells + 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.zarr"]  # no temporary folder left


def test_default_tiling_matches_whole_frame(tmp_path, frame, model):
    image, truth = frame
    whole = segment(image, model, device="cpu")
    segment_blocks(image, model, tmp_path / "labels.zarr", block=BLOCK)
    labels = _read(tmp_path / "labels.zarr")
    assert abs(seg_score(truth, labels) - seg_score(truth, whole)) <= 0.01
    assert seg_score(whole, labels) >= 0.98 and seg_score(labels, whole) >= 0.98
    # cells on a seam: one block id covers each (not split), and that id is this cell alone (not
    # merged). Blocks are tiled differently from the whole frame, so their probabilities differ
    # a little and now and then two touching cells come out as one in a block (test above: with
    # the same tiling there is no difference at all); measured up to 5 of 62 seam cells (8%) with
    # some trained models: allow 1 in 8.
    crossing = _seam_cells(whole)
    bad = []
    for cell in crossing:
        inside = labels[whole == cell]
        ids, counts = np.unique(inside[inside > 0], return_counts=True)
        main = ids[np.argmax(counts)]
        if counts.max() < 0.9 * inside.size or np.mean(whole[labels == main] == cell) < 0.9:
            bad.append(cell)
    assert len(crossing) > 20 and len(bad) <= max(1, len(crossing) // 8), bad
    # ids are unique over the frame: each id is one connected region
    for cell in np.unique(labels)[1:50]:
        assert ndi.label(labels == cell)[1] == 1


def test_zarr_and_ome_zarr_inputs_on_a_cluster(tmp_path, frame, model):
    from distributed import Client

    from napari_cellseq.core.distributed.cluster import local_cluster

    image, _ = frame
    crop = image[:512, :640]
    expected_path = tmp_path / "here.zarr"
    segment_blocks(crop, model, expected_path, block=BLOCK)
    expected = _read(expected_path)
    plain = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=crop.shape, chunks=(200, 200), dtype=crop.dtype)
    plain[:] = crop
    ome = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w")
    ome.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a} for a in "tcyx"],
                                 "datasets": [{"path": "0"}, {"path": "1"}]}]
    ome.create_array("0", shape=(1, 1) + crop.shape, chunks=(1, 1, 256, 256), dtype=crop.dtype)[:] = crop[None, None]
    ome.create_array("1", shape=(1, 1, 256, 320), dtype=crop.dtype)[:] = crop[None, None, ::2, ::2]
    with local_cluster(2, threads_per_worker=1, processes=False) as cluster, Client(cluster) as client:
        for name, source in (("plain", tmp_path / "in.zarr"), ("ome", tmp_path / "in.ome.zarr")):
            segment_blocks(source, model, tmp_path / f"{name}.zarr", client, block=BLOCK)
            np.testing.assert_array_equal(_read(tmp_path / f"{name}.zarr"), expected)


def test_refusals(tmp_path, frame, model):
    image, _ = frame
    (tmp_path / "out.zarr").mkdir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        segment_blocks(image[:128, :128], model, tmp_path / "out.zarr")
    with pytest.raises(InputError, match="2-D"):
        segment_blocks(np.stack([image[:128, :128]] * 2), model, tmp_path / "new.zarr")
    with pytest.raises(InputError, match="constant"):
        segment_blocks(np.zeros((128, 128), np.uint16), model, tmp_path / "new.zarr")
    with pytest.raises(InputError, match="overlap"):
        segment_blocks(image[:128, :128], model, tmp_path / "new.zarr", block=64, overlap=100)
    segment_blocks(image[:128, :128], model, tmp_path / "out.zarr", block=64, overwrite=True)
    assert _read(tmp_path / "out.zarr").shape == (128, 128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]



def _mosaic_frame(side: int, tile: int, seed: int):
    """A ``side x side`` frame tiled with synthetic ``tile x tile`` frames (tile edges do not
    fall on the block seams, so cells lie across them) and its exact labels, ids unique."""
    n = -(-side // tile)
    movie, truth = synthetic_timelapse(n_frames=n * n, shape=(tile, tile), n_cells=tile * tile // 1500, seed=seed,
                                       radius_range=(5.0, 10.0))
    movie, truth = np.asarray(movie), np.asarray(truth).astype(np.int64)
    image = np.zeros((n * tile, n * tile), movie.dtype)
    labels = np.zeros((n * tile, n * tile), np.int64)
    for k in range(n * n):
        r, c = divmod(k, n)
        image[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = movie[k]
        labels[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = np.where(truth[k] > 0, truth[k] + k * 100_000, 0)
    return image[:side, :side], labels[:side, :side]


def _seam_errors(truth, labels, cells):
    """``(split, merged)``: true ``cells`` of which two ids of ``labels`` each hold a quarter or
    more, and true cells sharing such an id with another true cell."""
    fg = (truth > 0) & (labels > 0)
    t, l = truth[fg].astype(np.int64), labels[fg].astype(np.int64)
    base = int(l.max()) + 1
    pairs, overlap = np.unique(t * base + l, return_counts=True)
    pt, pl = pairs // base, pairs % base
    size_t = dict(zip(*np.unique(truth[truth > 0], return_counts=True)))
    held = overlap >= 0.25 * np.array([size_t[c] for c in pt])
    split = {int(c) for c in cells if np.count_nonzero(held & (pt == c)) >= 2}
    merged = set()
    for label in np.unique(pl[held]):
        owners = pt[held & (pl == label)]
        if owners.size >= 2:
            merged |= {int(c) for c in owners if c in cells}
    return split, merged


def test_4096_frame_blockwise_matches_whole_frame(tmp_path, model):
    """The issue's check: a synthetic 4096 x 4096 frame with cells on the block seams, segmented
    in 1024-pixel blocks, matches the whole-frame segmentation: SEG against the truth within
    0.01, and no cell on a seam split into two ids or merged with another (duplicated)."""
    side, block = 4096, 1024
    image, truth = _mosaic_frame(side, 585, seed=21)
    whole = segment(image, model, device="cpu")
    result = segment_blocks(image, model, tmp_path / "labels.zarr", block=block, overlap=64)
    labels = _read(tmp_path / "labels.zarr")
    assert result.blocks == 16 and labels.shape == (side, side) and labels.dtype == np.uint32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.zarr"]
    seg_whole, seg_blocks = seg_score(truth, whole), seg_score(truth, labels)
    assert seg_whole > 0.7 and abs(seg_blocks - seg_whole) <= 0.01, (seg_whole, seg_blocks)
    # cells of the whole-frame segmentation that cross a seam, and their overlaps with block ids
    seams = np.arange(block, side, block)
    crossing = set()
    for s in seams:
        for a, b in ((whole[s - 1], whole[s]), (whole[:, s - 1], whole[:, s])):
            crossing |= set(a[(a == b) & (a > 0)].tolist())
    assert len(crossing) > 200  # ~6 seams x 4096 pixels / ~25-pixel cells
    fg = (whole > 0) | (labels > 0)
    w, b = whole[fg].astype(np.int64), labels[fg].astype(np.int64)
    pairs, overlap = np.unique(w * (int(b.max()) + 1) + b, return_counts=True)
    pw, pb = pairs // (int(b.max()) + 1), pairs % (int(b.max()) + 1)
    size_w = np.bincount(whole.ravel(), minlength=int(whole.max()) + 1)
    size_b = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
    bad = []
    for cell in crossing:
        mine = (pw == cell) & (pb > 0)
        if not mine.any():
            bad.append(cell)
            continue
        k = np.flatnonzero(mine)[np.argmax(overlap[mine])]
        # split: no block id covers 90% of the cell; merged: that id is not 90% this cell
        if overlap[k] < 0.9 * size_w[cell] or overlap[k] < 0.9 * size_b[pb[k]]:
            bad.append(cell)
    # split or duplicated at a seam, judged on the true cells that cross a seam: a true cell of
    # which two ids each hold a quarter or more (split), or an id holding a quarter or more of
    # two true cells (merged). The block-wise result may do neither where the whole frame does
    # not (where the whole frame merges two touching cells the blocks may well not).
    true_crossing = set()
    for s in seams:
        for a, b in ((truth[s - 1], truth[s]), (truth[:, s - 1], truth[:, s])):
            true_crossing |= set(a[(a == b) & (a > 0)].tolist())
    split_blocks, merged_blocks = _seam_errors(truth, labels, true_crossing)
    split_whole, merged_whole = _seam_errors(truth, whole, true_crossing)
    assert not split_blocks - split_whole, sorted(split_blocks - split_whole)  # no cell split (or duplicated) by a seam
    # Touching cells that the network merges depend on where its tiles fall, and blocks are tiled
    # differently from the whole frame: measured here, 36 merged seam cells block-wise and 34 in
    # the whole frame (3 only block-wise, 1 only whole) of 238 with this weak 60-step model.
    assert len(merged_blocks - merged_whole) <= len(true_crossing) // 50, (merged_blocks - merged_whole,
                                                                         len(true_crossing))
    # The blocks are tiled differently from the whole frame (their 512-pixel tiles fall
    # elsewhere), so their probabilities differ a little and a cell near a seam may be drawn a
    # few pixels differently (counted in ``bad``): the band rule of seam_matches joins a
    # crossing cell even where the two blocks draw its edge apart.
    assert len(bad) <= len(crossing) // 25, (len(bad), len(crossing))
    # ids are unique over the frame: every block id on a seam is one connected region
    objects = ndi.find_objects(labels)
    ids = set(labels[seams - 1, :][labels[seams - 1, :] == labels[seams, :]].tolist()) - {0}
    for cell in ids:
        region = labels[objects[cell - 1]] == cell
        assert ndi.label(region)[1] == 1, cell


def test_seam_matches_joins_one_cell_and_keeps_touching_cells_apart():
    """The band rule on hand-made bands (``2 k = 16`` lines, the seam between lines 7 and 8)."""
    from napari_cellseq.core.distributed.blocks import seam_matches

    a = np.zeros((16, 20), np.int64)  # block A (above the seam): its core is lines 0-7
    b = np.zeros((16, 20), np.int64)  # block B (below): its core is lines 8-15
    # cell 1 of A crosses the seam (columns 0-3); B sees it as its cell 7, one column narrower
    a[:, 0:4] = 1
    b[:, 0:3] = 7
    # A's cell 2 ends at the seam (columns 5-8), touching B's cell 8 below it; each block sees
    # the other's cell as 0 (not in its core), and A draws its cell one line into B's side
    a[0:9, 5:9] = 2
    b[8:16, 5:9] = 8
    # one cell that A cuts at the seam (its part beyond the core is another id, hence 0) and B
    # sees whole: joined
    a[0:8, 10:14] = 3
    b[:, 10:14] = 9
    # cell 10 of B only (columns 16-19), nothing in A
    b[8:16, 16:20] = 10
    ids_a, ids_b = seam_matches(a, b)
    assert list(zip(ids_a.tolist(), ids_b.tolist())) == [(1, 7), (3, 9)]
    # bands of unequal width (a frame edge near one block): the common middle lines are used
    ids_a, ids_b = seam_matches(a, b[4:12])
    assert list(zip(ids_a.tolist(), ids_b.tolist())) == [(1, 7), (3, 9)]
