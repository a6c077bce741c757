"""Many movies on a dask cluster: the label files equal the in-process ones byte for byte, a bad
movie is reported while the others are written, frame ranges (with U-LSTM context) and the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import tifffile

from napari_cellseq.cli import main
from napari_cellseq.core.distributed import INSTALL_HINT, require
from napari_cellseq.core.distributed.batch import (FramesDone, MovieDone, expand_images, plan_ranges,
                                                   segment_movies, segment_movies_events)
from napari_cellseq.core.distributed.cluster import local_cluster, parse_scheduler
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import write_tiff_atomic
from napari_cellseq.core.metrics import seg_score
from napari_cellseq.core.pipeline import segment


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 workers with 1 thread each (in this process: quick to start)."""
    from distributed import Client

    with local_cluster(2, threads_per_worker=1, processes=False) as cluster, Client(cluster) as c:
        yield c


def _reference(tmp_path, movie, model):
    """The file the single-movie path writes: segment() in memory, written at once."""
    ref = tmp_path / "ref" / movie.name
    write_tiff_atomic(ref, segment(tifffile.imread(movie), model, device="cpu"))
    return ref.read_bytes()


@pytest.mark.parametrize("model", ["unet_file", "ulstm_file"])
def test_cluster_writes_the_in_process_files(request, tmp_path, movies, client, model):
    model = request.getfixturevalue(model)
    paths, _ = movies
    results = segment_movies(paths, model, tmp_path / "dask", client, device="cpu")
    assert [r.ok for r in results] == [True] * len(paths)
    assert [r.frames for r in results] == [6] * len(paths)
    here = segment_movies(paths, model, tmp_path / "here", None, device="cpu")
    assert all(r.ok for r in here)
    for path in paths:
        expected = _reference(tmp_path, path, model)
        assert (tmp_path / "dask" / path.name).read_bytes() == expected
        assert (tmp_path / "here" / path.name).read_bytes() == expected
    assert tifffile.imread(tmp_path / "dask" / paths[0].name).max() > 0
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == sorted(p.name for p in paths)  # no temp files


def test_unet_frame_ranges_equal_whole_movie(tmp_path, movies, unet_file, client):
    paths, _ = movies
    results = segment_movies(paths[:2], unet_file, tmp_path, client, device="cpu", frames_per_task=4)
    assert all(r.ok for r in results)
    for path in paths[:2]:
        assert (tmp_path / path.name).read_bytes() == _reference(tmp_path, path, unet_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([paths[0].name, paths[1].name, "ref"])


def test_ulstm_ranges_start_with_context(tmp_path, movies, ulstm_file, client):
    path = movies[0][0]
    whole = segment(tifffile.imread(path), ulstm_file, device="cpu")
    # context reaching back to frame 0: every range replays the whole-movie run up to its end
    segment_movies([path], ulstm_file, tmp_path / "full", client, device="cpu", frames_per_task=2, context=6)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "full" / path.name), whole)
    # one context frame: the memory differs at the range starts; labels stay close
    segment_movies([path], ulstm_file, tmp_path / "short", None, device="cpu", frames_per_task=2, context=1)
    short = tifffile.imread(tmp_path / "short" / path.name)
    assert short.shape == whole.shape and short[0].max() > 0
    np.testing.assert_array_equal(short[:2], whole[:2])  # the first range is the whole-movie run
    assert seg_score(whole, short) > 0.5


def test_plan_ranges():
    assert [(r.first, r.start, r.stop) for r in plan_ranges(10, 4, 2)] == [(0, 0, 4), (2, 4, 8), (6, 8, 10)]
    assert [(r.first, r.start, r.stop) for r in plan_ranges(3)] == [(0, 0, 3)]
    with pytest.raises(InputError, match="at least 1"):
        plan_ranges(5, 0)


def _nan_movie(path):
    image = np.random.default_rng(0).random((6, 64, 64)).astype(np.float32)
    image[3, 5, 5] = np.nan  # found only when frame 3 is read, on the worker
    tifffile.imwrite(path, image)


def test_bad_movies_reported_others_written(tmp_path, movies, unet_file, client):
    paths, _ = movies
    not_tiff = tmp_path / "notes.tif"
    not_tiff.write_text("not an image")
    nan = tmp_path / "nan.tif"
    _nan_movie(nan)
    events = list(segment_movies_events([paths[0], not_tiff, nan, paths[1]], unet_file, tmp_path / "out", client,
                                        device="cpu", frames_per_task=2))
    done = {e.result.image: e.result for e in events if isinstance(e, MovieDone)}
    assert len(done) == 4
    assert "not a TIFF" in done[str(not_tiff)].error
    assert "NaN" in done[str(nan)].error and "frame 3" in done[str(nan)].error
    assert done[str(paths[0])].ok and done[str(paths[1])].ok
    progress = [e for e in events if isinstance(e, FramesDone)]
    assert progress[-1].done == progress[-1].total == 18  # 3 readable movies of 6 frames, failed ones counted
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([paths[0].name, paths[1].name])


def test_cli_many_movies_local_cluster(tmp_path, movies, unet_file, capsys):
    """The real path: `--scheduler local:2` starts worker processes; a glob and a bad movie."""
    paths, _ = movies
    folder = tmp_path / "in"
    folder.mkdir()
    for p in paths:
        (folder / p.name).write_bytes(p.read_bytes())
    _nan_movie(folder / "zz_bad.tif")
    out = tmp_path / "out"
    code = main(["segment", "--model", str(unet_file), "--image", str(folder / "*.tif"), "--out", str(out),
                 "--device", "cpu", "--scheduler", "local:2"])
    captured = capsys.readouterr()
    assert code == 1
    assert "zz_bad.tif failed" in captured.err and "NaN" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["written"] == 3 and summary["failed"] == 1 and summary["frames"] == 18
    for p in paths:
        assert (out / p.name).read_bytes() == _reference(tmp_path, p, unet_file)
    assert not (out / "zz_bad.tif").exists()


def test_cli_in_process_and_refusals(tmp_path, movies, unet_file, capsys):
    paths, _ = movies
    out = tmp_path / "out"
    argv = ["segment", "--model", str(unet_file), "--image", str(paths[0]), "--image", str(paths[1]),
            "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    assert (out / paths[0].name).read_bytes() == _reference(tmp_path, paths[0], unet_file)
    capsys.readouterr()
    assert main(argv) == 2  # existing outputs: refused before any work
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    capsys.readouterr()
    assert main(argv[:-2] + ["--image", str(tmp_path / "nothing*.tif"), "--out", str(out)]) == 2
    assert "no file matches" in capsys.readouterr().err
    assert main(argv + ["--scheduler", "slurm"]) == 2
    assert "--scheduler 'slurm' is not understood" in capsys.readouterr().err


def test_same_file_names_refused(tmp_path, movies, unet_file):
    a, b = tmp_path / "a" / "m.tif", tmp_path / "b" / "m.tif"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(movies[0][0].read_bytes())
    with pytest.raises(InputError, match="would both be written"):
        segment_movies([a, b], unet_file, tmp_path / "out")
    assert expand_images([tmp_path / "*" / "m.tif"]) == [a.resolve(), b.resolve()]


def test_scheduler_forms():
    assert parse_scheduler("none") == ("none", None)
    assert parse_scheduler("local") == ("local", None)
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.1.2.3:8786") == ("address", "tcp://10.1.2.3:8786")
    with pytest.raises(InputError, match="at least 1 worker"):
        parse_scheduler("local:0")


def test_missing_extra_is_one_clear_line(tmp_path, movies, unet_file, monkeypatch, capsys):
    with pytest.raises(InputError, match=r"pip install \"napari-cellseq\[distributed\]\""):
        require("no_such_module_for_cellseq")
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code = main(["segment", "--model", str(unet_file), "--image", str(movies[0][0]), "--out", str(tmp_path),
                 "--scheduler", "local:2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and INSTALL_HINT in err[0] and "distributed is not installed" in err[0]


def test_local_cluster_workers_keep_glibc_adaptive_malloc():
    """Worker processes start with dask's pre-spawn variables but without
    MALLOC_TRIM_THRESHOLD_ (it makes every torch tensor a fresh mmap: 1.6x slower on CPU), and
    with one OpenMP thread per core share."""
    import os

    from distributed import Client

    with local_cluster(2, threads_per_worker=1) as cluster, Client(cluster) as client:
        env = client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS",
                                                                "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    cores = os.cpu_count() or 1
    expected = str(max(1, cores // 2))
    assert len(env) == 2
    for worker_env in env.values():
        assert worker_env == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": expected,
                              "MKL_NUM_THREADS": expected, "OPENBLAS_NUM_THREADS": expected}
