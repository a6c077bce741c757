"""Atomic files: no half-written file, no silent overwrite, no temporary file left (napari_cellseq.core.io.atomic)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseq.core.errors import CellseqError, InputError
from napari_cellseq.core.io import (
    OutputExistsError,
    atomic_path,
    atomic_write_bytes,
    exists_message,
    read_image,
    refuse_existing,
    write_tiff_atomic,
)


def test_overwrite_refused_then_allowed(tmp_path, movie, listing):
    p = tmp_path / "x.tif"
    write_tiff_atomic(p, movie())
    before = p.read_bytes()
    with pytest.raises(OutputExistsError) as err:
        write_tiff_atomic(p, movie() + 1)
    assert isinstance(err.value, InputError) and isinstance(err.value, FileExistsError)
    assert isinstance(err.value, CellseqError)
    assert "already exists; pass --overwrite" in str(err.value) and "choose another name" in str(err.value)
    assert p.read_bytes() == before
    write_tiff_atomic(p, movie() + 1, overwrite=True)
    np.testing.assert_array_equal(read_image(p), movie() + 1)
    assert listing(tmp_path) == ["x.tif"]


def test_failure_mid_write_keeps_original_and_removes_temp(tmp_path, monkeypatch, movie, listing):
    p = tmp_path / "x.tif"
    write_tiff_atomic(p, movie())
    before = p.read_bytes()
    seen = []

    def broken_imwrite(path, *args, **kwargs):
        seen.append(Path(path))
        Path(path).write_bytes(b"II*\x00 half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tifffile, "imwrite", broken_imwrite)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_tiff_atomic(p, movie() + 7, overwrite=True)
    # the writer got a hidden temporary file in the same folder, which is gone now
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".tmp-") and seen[0].name.endswith("x.tif")
    assert p.read_bytes() == before
    assert listing(tmp_path) == ["x.tif"]


def test_disk_full_becomes_input_error(tmp_path, monkeypatch, movie, listing):
    def full(path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full)
    with pytest.raises(InputError, match="could not write .*No space left on device; free disk space"):
        write_tiff_atomic(tmp_path / "x.tif", movie())
    assert listing(tmp_path) == []


def test_atomic_path_cleans_up_on_interrupt(tmp_path, listing):
    p = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert listing(tmp_path) == []


def test_atomic_path_refuses_if_target_appears_meanwhile(tmp_path, listing):
    p = tmp_path / "model.pt"
    with pytest.raises(OutputExistsError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"new")
            p.write_bytes(b"someone else")
    assert p.read_bytes() == b"someone else"
    assert listing(tmp_path) == ["model.pt"]


def test_atomic_write_bytes(tmp_path, listing):
    p = tmp_path / "sub" / "model.pt"
    assert atomic_write_bytes(p, b"\x00\x01weights") == p
    assert p.read_bytes() == b"\x00\x01weights"
    with pytest.raises(OutputExistsError, match="already exists"):
        atomic_write_bytes(p, b"other")
    atomic_write_bytes(p, b"other", overwrite=True)
    assert p.read_bytes() == b"other"
    assert listing(p.parent) == ["model.pt"]


def test_temporary_files_of_killed_writers_are_removed_next_time(tmp_path, listing):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".tmp-{dead_pid}-0123abcd-model.pt"
    other_file = tmp_path / f".tmp-{dead_pid}-0123abcd-other.pt"
    running = tmp_path / f".tmp-{os.getppid()}-0123abcd-model.pt"  # a live process is writing it
    old_style = tmp_path / ".tmp-0123abcd-model.pt"
    for p in (stale, other_file, running, old_style):
        p.write_bytes(b"partial")
    atomic_write_bytes(tmp_path / "model.pt", b"complete")
    assert (tmp_path / "model.pt").read_bytes() == b"complete"
    assert listing(tmp_path) == sorted(p.name for p in (other_file, running, old_style, tmp_path / "model.pt"))



def test_one_exists_message_for_one_or_many_files(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.tif", "b.tif", "c.tif"))
    assert exists_message([a]) == f"{a} already exists; pass --overwrite (overwrite=True) to replace it, or choose another name"
    assert exists_message([a, b, c], instead="another --out folder") == (
        f"{a} and 2 more already exist; pass --overwrite (overwrite=True) to replace them, or choose another --out folder"
    )
    assert exists_message([a], how="tick 'overwrite existing files'").startswith(
        f"{a} already exists; tick 'overwrite existing files' to replace it")
    refuse_existing([a, b], overwrite=False)  # none exists: nothing to refuse
    a.write_bytes(b"x")
    c.write_bytes(b"x")
    refuse_existing([a, b, c], overwrite=True)
    with pytest.raises(OutputExistsError) as err:
        refuse_existing([a, b, c], overwrite=False, instead="another folder")
    assert err.value.paths == [a, c]
    assert err.value.reworded("tick 'overwrite'") == exists_message([a, c], "another folder", "tick 'overwrite'")
    assert str(err.value) == exists_message([a, c], "another folder")
    copy = pickle.loads(pickle.dumps(err.value))  # crosses process boundaries intact
    assert type(copy) is OutputExistsError and str(copy) == str(err.value) and copy.paths == [a, c]
    assert copy.reworded("tick 'overwrite'") == err.value.reworded("tick 'overwrite'")


def test_output_exists_error_survives_tblib(tmp_path):
    """The GUI's worker process sends its errors, tracebacks included, with tblib."""
    pickling_support = pytest.importorskip("tblib.pickling_support")
    (tmp_path / "a.tif").write_bytes(b"x")
    try:
        refuse_existing([tmp_path / "a.tif"], overwrite=False)
    except OutputExistsError as exc:
        err = exc
    pickling_support.install(err)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is OutputExistsError and str(copy) == str(err) and copy.paths == err.paths
    assert copy.__traceback__ is not None
