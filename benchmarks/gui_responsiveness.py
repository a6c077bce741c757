"""Is napari responsive while napari-cellseq trains, and is training as fast as headless?

Measures, for the same training configuration:

* headless: :func:`napari_cellseq.core.training.train` drained in a plain loop (steps/s);
* in napari, for each place training can compute (:mod:`napari_cellseq.gui._backend`: the
  worker thread, or a child process it drains), with the live preview off and on: the Train
  widget (docked, driven by its values) runs the same configuration while a 10 ms QTimer
  records the gaps between its ticks; the longest gap minus 10 ms is the longest stall of the
  Qt event loop. Steps/s use the training loop's own clock (``Step.elapsed``; with preview on
  it includes the checkpoint previews), so start-up is reported separately as the time from
  clicking Train to the first step.

Targets: longest stall < 100 ms; GUI steps/s >= 90 % of headless.

Run (needs a display; on a headless machine use Xvfb)::

    PYTHONPATH=src xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_responsiveness.py
    # options: --model unet|ulstm --iterations 40 --crop 96 --batch 4 --modes thread process
    #          --preview off on --checkpoint-every 5 --repeats 2

Numbers depend on the machine and on other load: headless and every GUI configuration run
interleaved, each ``--repeats`` times; the median is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def _configs(args):
    from napari_cellseq.core.config import DataConfig, TrainConfig
    from napari_cellseq.core.models import default_model_config

    return (
        default_model_config(args.model),
        DataConfig(crop_size=args.crop),
        TrainConfig(iterations=args.iterations, max_time=None, batch_size=args.batch, device=args.device,
                    checkpoint_every=1e9),
    )


WARMUP_STEPS = 2  # the first steps allocate memory and pick kernels: not counted


def steady_rate(elapsed: list[float]) -> float:
    """Steps/s after the warm-up steps, from the ``Step.elapsed`` clock of the training loop."""
    k = min(WARMUP_STEPS, len(elapsed) - 2)
    return (len(elapsed) - 1 - k) / (elapsed[-1] - elapsed[k])


def headless(image, labels, args, out) -> dict:
    """Steps/s of the plain core loop."""
    from napari_cellseq.core.events import Step
    from napari_cellseq.core.training import train

    model, data, cfg = _configs(args)
    t0 = time.perf_counter()
    elapsed = [e.elapsed for e in train(image, labels, out, model, data, cfg) if isinstance(e, Step)]
    return {"steps_per_s": steady_rate(elapsed), "wall_s": time.perf_counter() - t0}


class StallMeter:
    """A QTimer firing every ``interval_ms``; records the gaps between its ticks."""

    def __init__(self, interval_ms: int = 10):
        from qtpy.QtCore import QTimer

        self.interval = interval_ms / 1000
        self.gaps: list[float] = []
        self.ends: list[float] = []  # perf_counter at the end of each gap
        self._last = None
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
            self.ends.append(now)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self.ends.clear()
        self._last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def longest_stall_ms(self) -> float:
        return 1000 * max(0.0, max(self.gaps, default=0.0) - self.interval)

    def p99_stall_ms(self) -> float:
        if not self.gaps:
            return 0.0
        return 1000 * max(0.0, float(np.percentile(self.gaps, 99)) - self.interval)


def in_napari(viewer, image, labels, args, mode: str, preview: bool, out) -> dict:
    """Train through the docked Train widget computing at ``mode``; measure stalls and speed."""
    from qtpy.QtWidgets import QApplication

    from napari_cellseq.core.events import Step
    from napari_cellseq.gui import _backend, _forms
    from napari_cellseq.gui.train_widget import TrainWidget

    app = QApplication.instance()
    if "bench" not in viewer.layers:  # (removing layers under Xvfb's software GL may crash vispy)
        viewer.add_image(image, name="bench")
        viewer.add_labels(labels, name="bench annotations")
    widget = TrainWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name=f"Train {mode}")
    widget.reset_choices()
    widget.image.value = viewer.layers["bench"]
    widget.annotations.value = viewer.layers["bench annotations"]
    widget.model.value = args.model
    widget.unit.value = "iterations"
    widget.budget.value = args.iterations
    widget.crop.value = args.crop
    widget.batch.value = args.batch
    widget.device.value = args.device
    widget.preview.value = preview
    widget.model_file.value = str(out)
    viewer.dims.set_current_step(0, 1)
    first_step: list[float] = []
    elapsed: list[float] = []
    previews: list[int] = []

    events: list[tuple[float, str]] = []

    def on_event(event):
        events.append((time.perf_counter(), type(event).__name__))
        if isinstance(event, Step):
            if not first_step:
                first_step.append(time.perf_counter())
            elapsed.append(event.elapsed)
        elif type(event).__name__ == "Preview":
            previews.append(event.frame)

    widget.run.event.connect(on_event)
    meter = StallMeter(10)
    old_env = os.environ.get(_backend.ENV)
    old_every = _forms.CHECKPOINT_EVERY_S
    os.environ[_backend.ENV] = mode  # the one setting: where training computes
    _forms.CHECKPOINT_EVERY_S = args.checkpoint_every
    try:
        for _ in range(20):
            app.processEvents()
        if out.exists():
            out.unlink()
        meter.start()  # before the click: the click handler (snapshots, planning) blocks the loop too
        t0 = time.perf_counter()
        widget.train_button.clicked()
        while widget.run.state.busy:
            app.processEvents()
            time.sleep(0.001)
        meter.stop()
    finally:
        _forms.CHECKPOINT_EVERY_S = old_every
        if old_env is None:
            os.environ.pop(_backend.ENV, None)
        else:
            os.environ[_backend.ENV] = old_env
    if widget._done is None:
        raise RuntimeError(f"training in napari ({mode}) failed: {widget.status.value}")
    result = {
        "steps_per_s": steady_rate(elapsed),
        "startup_s": first_step[0] - t0 if first_step else float("nan"),
        "stall_ms": meter.longest_stall_ms(),
        "p99_ms": meter.p99_stall_ms(),
        "ticks": len(meter.gaps),
        "previews": len(previews),
        "worst": _worst_stalls(meter, events, t0),
    }
    viewer.window.remove_dock_widget(dock)
    return result


def _worst_stalls(meter: StallMeter, events: list[tuple[float, str]], t0: float, n: int = 3) -> list[str]:
    """The ``n`` longest stalls: when they ended (s after the click) and the last event before."""
    out = []
    for i in sorted(range(len(meter.gaps)), key=meter.gaps.__getitem__, reverse=True)[:n]:
        end = meter.ends[i]
        before = [name for t, name in events if t <= end]
        out.append(f"{1000 * (meter.gaps[i] - meter.interval):.0f} ms at {end - t0:.1f} s "
                   f"(after {before[-1] if before else 'the click'}, event {len(before)} of {len(events)})")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--modes", nargs="+", default=["thread", "process"])
    parser.add_argument("--preview", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--checkpoint-every", type=float, default=5.0,
                        help="seconds between checkpoints (each one previews) in the GUI runs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--omp-active", action="store_true",
                        help="keep OpenMP's default busy-waiting (by default OMP_WAIT_POLICY=PASSIVE "
                             "is set for every run, headless included, before torch is imported)")
    args = parser.parse_args(argv)
    if not args.omp_active:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import tempfile
    from pathlib import Path

    import napari
    import torch

    from napari_cellseq.core.synthetic import synthetic_timelapse

    image, truth = synthetic_timelapse(n_frames=args.frames, shape=(args.size, args.size))
    labels = np.zeros_like(truth, dtype=np.uint16)
    labels[::2] = truth[::2]
    tmp = Path(tempfile.mkdtemp(prefix="cellseq-bench-"))
    print(f"{args.model}, {args.iterations} iterations, crop {args.crop}, batch {args.batch}, "
          f"device {args.device}, movie {image.shape}, torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}, load {os.getloadavg()[0]:.1f}",
          flush=True)
    viewer = napari.Viewer(show=True)
    warm = argparse.Namespace(**{**vars(args), "iterations": 3})
    headless(image, labels, warm, tmp / "warmup.pt")  # first use of torch in this process
    configs = [(m, p) for m in args.modes for p in args.preview]
    results: dict[str, list[dict]] = {"headless": []}
    results.update({f"{m} preview {p}": [] for m, p in configs})
    for r in range(args.repeats):
        results["headless"].append(headless(image, labels, args, tmp / "headless.pt"))
        print(f"  run {r + 1} headless: {results['headless'][-1]['steps_per_s']:.2f} steps/s", flush=True)
        for mode, preview in configs[r % len(configs):] + configs[:r % len(configs)]:  # rotate the order
            key = f"{mode} preview {preview}"
            res = in_napari(viewer, image, labels, args, mode, preview == "on", tmp / f"{mode}-{preview}.pt")
            results[key].append(res)
            print(f"  run {r + 1} {key}: {res['steps_per_s']:.2f} steps/s, longest stall "
                  f"{res['stall_ms']:.0f} ms, p99 {res['p99_ms']:.0f} ms, start-up {res['startup_s']:.1f} s, "
                  f"{res['previews']} previews; worst: {'; '.join(res['worst'])}", flush=True)
    viewer.close()

    base = statistics.median(r["steps_per_s"] for r in results["headless"])
    print()
    print(f"{'':20s} {'steps/s':>8s} {'vs headless':>12s} {'max stall':>10s} {'p99 stall':>10s} {'start-up':>9s}")
    print(f"{'headless':20s} {base:8.2f} {'100 %':>12s}")
    from napari_cellseq.gui._backend import TRAINING_RUNS_IN

    verdict: dict[str, bool] = {}
    for mode, preview in configs:
        key = f"{mode} preview {preview}"
        rs = results[key]
        sps = statistics.median(r["steps_per_s"] for r in rs)
        stall = max(r["stall_ms"] for r in rs)
        p99 = statistics.median(r["p99_ms"] for r in rs)
        startup = statistics.median(r["startup_s"] for r in rs)
        ratio = 100 * sps / base
        print(f"{key:20s} {sps:8.2f} {ratio:11.0f} % {stall:8.0f} ms {p99:7.0f} ms {startup:7.1f} s")
        verdict[mode] = verdict.get(mode, True) and stall < 100 and ratio >= 90
    for mode, ok in verdict.items():
        which = "the default, TRAINING_RUNS_IN" if mode == TRAINING_RUNS_IN else "not the default"
        print(f"targets (stall < 100 ms, speed >= 90 %) training in a {mode} ({which}):",
              "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
