"""Nothing is lost: refused overwrites, Ctrl-C / SIGTERM / SIGKILL during `napari-cellseq train`,
SIGTERM during `napari-cellseq segment`.

The signal tests run the real command in a child process (bounded timeouts; the child is always
killed in ``finally``) and check that the model file left behind loads and can be continued
with ``--init``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseq.cli import main
from napari_cellseq.core.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TINY = ["--width", "4", "--crop", "32", "--batch-size", "1", "--device", "cpu"]


@pytest.fixture()
def files(tmp_path, monkeypatch, tiny_movie):
    image, painted = tiny_movie
    tifffile.imwrite(tmp_path / "img.tif", image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "lab.tif", painted, photometric="minisblack")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _train_args(out: str, *extra: str) -> list[str]:
    return ["train", "--image", "img.tif", "--labels", "lab.tif", "--out", out, *TINY, *extra]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "napari_cellseq.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training ended early ({proc.returncode}): {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no checkpoint {path} after {timeout} s")
        time.sleep(0.05)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


# ------------------------------------------------------------------------- never overwritten


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_existing_outputs_are_refused_before_any_work(files, capsys):
    (files / "m.pt").write_bytes(b"precious model")
    (files / "p.tif").write_bytes(b"precious labels")
    (files / "res").mkdir()
    (files / "res" / "mask002.tif").write_bytes(b"precious mask")
    (files / "demo").mkdir()
    (files / "demo" / "labels.tif").write_bytes(b"precious demo")
    before = _snapshot(files), _snapshot(files / "res"), _snapshot(files / "demo")
    runs = [
        _train_args("m.pt", "--iterations", "1"),
        ["segment", "--model", "m.pt", "--image", "img.tif", "--out", "p.tif"],
        ["segment", "--model", "m.pt", "--image", "img.tif", "--out", "res", "--ctc"],
        ["demo", "--out", "demo", "--frames", "3", "--annotated", "1", "--iterations", "1", "--device", "cpu"],
    ]
    for argv in runs:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "--overwrite" in err and "Traceback" not in err, err
    assert (_snapshot(files), _snapshot(files / "res"), _snapshot(files / "demo")) == before


def test_overwrite_replaces_atomically_and_demo_runs(files):
    assert main(_train_args("m.pt", "--iterations", "1")) == 0
    first = (files / "m.pt").read_bytes()
    assert main(_train_args("m.pt", "--iterations", "1", "--seed", "3", "--overwrite")) == 0
    assert (files / "m.pt").read_bytes() != first
    for _ in range(2):
        assert main(["segment", "--model", "m.pt", "--image", "img.tif", "--out", "res", "--ctc", "--overwrite"]) == 0
    assert sorted(p.name for p in (files / "res").iterdir()) == [f"mask{t:03d}.tif" for t in range(4)]
    demo = ["demo", "--out", "demo", "--frames", "3", "--annotated", "1", "--iterations", "1", "--device", "cpu"]
    assert main(demo) == 0
    assert main([*demo, "--overwrite"]) == 0
    assert sorted(p.name for p in (files / "demo").iterdir()) == ["image.tif", "labels.tif", "painted.tif", "unet.pt"]
    assert not [p for p in files.rglob(".tmp-*")]


def test_output_in_a_file_instead_of_a_folder(files, capsys):
    (files / "plain").write_text("x")
    assert main(_train_args("plain/m.pt", "--iterations", "1")) == 2
    assert "plain is a file, not a folder" in capsys.readouterr().err
    assert main(["demo", "--out", "plain", "--frames", "3", "--annotated", "1"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------- signals


@pytest.mark.parametrize("signum, code, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_stop_signal_saves_a_model_that_training_continues(files, signum, code, name):
    proc = _start(_train_args("m.pt", "--max-time", "300", "--checkpoint-every", "0.2"), files)
    try:
        _wait_for(files / "m.pt", proc)
        time.sleep(0.3)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        _kill(proc)
    assert proc.returncode == code, err
    assert f"stopped by {name}" in err and "Traceback" not in err
    ckpt = load_checkpoint(files / "m.pt")
    done = ckpt.training["iterations"]
    assert done >= 1
    assert main(_train_args("more.pt", "--iterations", "1", "--init", "m.pt")) == 0
    assert load_checkpoint(files / "more.pt").training["iterations"] == done + 1
    assert not list(files.glob(".tmp-*"))


def test_sigkill_leaves_no_file_or_a_loadable_one(files):
    """SIGKILL at random moments (set CELLSEQ_KILL_SEED to replay): the model file is absent or
    complete, ``--init`` continues from it, and the next write of it removes the hidden
    temporary files that the killed runs left behind."""
    rng = random.Random(int(os.environ.get("CELLSEQ_KILL_SEED", "0")) or None)
    # seconds from the start (maybe before the first save), then after the first save
    delays = [rng.uniform(0.0, 4.0), rng.uniform(0.0, 0.3), rng.uniform(0.3, 1.5)]
    outs = [files / f"k{i}.pt" for i in range(len(delays))]
    for i, (out, delay) in enumerate(zip(outs, delays)):
        proc = _start(_train_args(out.name, "--max-time", "300", "--checkpoint-every", "0.01"), files)
        try:
            if i >= 1:
                _wait_for(out, proc)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            _kill(proc)
        assert proc.returncode == -signal.SIGKILL
        if out.exists():
            assert load_checkpoint(out).training["iterations"] >= 0, f"delay {delay:.2f}s"
        else:
            assert i == 0, "a model file existed before the kill"
        # a kill can leave a hidden temporary file, never a half-written model file
        assert all(p.name.startswith(".tmp-") for p in files.iterdir() if p.name not in
                   {"img.tif", "lab.tif", *(o.name for o in outs)})
    for out in outs:
        if out.exists():  # continue from what survived, into the same file
            done = load_checkpoint(out).training["iterations"]
            assert main(_train_args(out.name, "--iterations", "1", "--init", out.name, "--overwrite")) == 0
            assert load_checkpoint(out).training["iterations"] == done + 1
        else:
            assert main(_train_args(out.name, "--iterations", "1")) == 0
    assert not list(files.glob(".tmp-*")), "temporary files of the killed runs were not removed"


def test_second_ctrl_c_aborts_but_keeps_the_last_model(files):
    proc = _start(_train_args("m.pt", "--max-time", "300", "--checkpoint-every", "0.2"), files)
    try:
        _wait_for(files / "m.pt", proc)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        _kill(proc)
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err
    assert load_checkpoint(files / "m.pt").training["iterations"] >= 0


def _wait_for_temp(folder: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Until a hidden temporary output file appears under ``folder`` (segmentation is writing)."""
    deadline = time.monotonic() + timeout
    while not list(folder.rglob(".tmp-*")):
        if proc.poll() is not None:
            raise AssertionError(f"segment ended early ({proc.returncode}): {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no temporary output file after {timeout} s")
        time.sleep(0.01)


@pytest.mark.parametrize("ctc", [False, True], ids=["tiff", "ctc"])
def test_sigterm_during_segment_leaves_nothing_behind(files, tiny_movie, ctc):
    """SIGTERM mid-run stops ``segment`` as Ctrl-C does: exit 143, one line, its hidden temporary
    file(s) removed, no output (and no output folder it made)."""
    assert main(_train_args("m.pt", "--iterations", "1")) == 0
    long = tiny_movie[0][np.arange(1500) % len(tiny_movie[0])]  # long enough to be stopped midway
    tifffile.imwrite(files / "long.tif", long, photometric="minisblack")
    before = sorted(p.relative_to(files) for p in files.rglob("*"))
    out = "res" if ctc else "sub/labels.tif"  # folders the command has to make
    proc = _start(["segment", "--model", "m.pt", "--image", "long.tif", "--out", out, "--device", "cpu",
                   *(["--ctc"] if ctc else [])], files)
    try:
        _wait_for_temp(files, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        _kill(proc)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == ("napari-cellseq segment: stopped by SIGTERM; unfinished output files "
                                            "were removed") and "Traceback" not in err
    assert sorted(p.relative_to(files) for p in files.rglob("*")) == before
