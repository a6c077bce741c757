"""Training and inference throughput of the networks, with peak memory (and TFLOP/s on CUDA).

Training: ``--steps`` optimiser steps after ``--warmup`` steps on random crops of ``--crop``
pixels (the network, the weighted cross-entropy, backward and Adam: no data augmentation, which
``hela_accuracy.py`` includes), as steps/s and pixels/s (for the U-LSTM a step is one truncated-
BPTT chunk of ``--unroll`` frames per sequence). Inference: frames/s of
:class:`~napari_cellseq.core.inference.Predictor` (padding, tiling, blending, softmax) on
700x1100 HeLa frames and on 2048x2048 frames made of tiled HeLa frames, network only and network +
post-processing to instance labels. With ``--checkpoint`` the trained weights are used, so the
post-processing sees real cells; without, random weights (network timings are the same).

Memory: peak resident set size of the process (``resource.getrusage``, it only grows, so it is
the peak up to and including each phase) and, on CUDA, ``torch.cuda.max_memory_allocated`` per
phase. FLOPs: counted with ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass
(training counts 3x forward for forward + backward); achieved TFLOP/s is printed for every
device, and on CUDA as a fraction of the GPU's dense peak for the precision in use (a table of
known GPUs, or ``--peak-tflops``).

    python -m benchmarks.throughput --models unet,ulstm --json out/throughput.json
    python -m benchmarks.throughput --device cuda --amp bf16 --channels-last --compile --batch 16
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.config import CROP_BATCH, PRECISIONS, SEQUENCE_BATCH
from napari_cellseq.core.data.normalize import normalize, percentile_range
from napari_cellseq.core.device import autocast_dtype, resolve_device
from napari_cellseq.core.inference import Predictor, default_tile
from napari_cellseq.core.losses import weighted_cross_entropy
from napari_cellseq.core.models import build_model, default_model_config
from napari_cellseq.core.postprocess import labels_from_probabilities

from ._task import hela_paths

# Dense (no sparsity) peak TFLOP/s from the vendors' data sheets: (bf16/fp16 tensor, tf32, fp32).
PEAK_TFLOPS = {
    "H200": (989.0, 494.0, 67.0),
    "H100 SXM": (989.0, 494.0, 67.0),
    "H100 PCIe": (756.0, 378.0, 51.0),
    "H100 NVL": (835.0, 418.0, 60.0),
    "H100": (989.0, 494.0, 67.0),
    "A100": (312.0, 156.0, 19.5),
    "L40S": (362.0, 183.0, 91.6),
    "L4": (121.0, 60.0, 30.3),
    "A10": (125.0, 62.5, 31.2),
    "RTX 4090": (165.0, 82.6, 82.6),
    "V100": (125.0, 15.7, 15.7),
    "T4": (65.0, 8.1, 8.1),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def reset_cuda_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cuda_peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def gpu_peak_tflops(device: torch.device, amp: torch.dtype | None, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS.items():  # longer keys first where they overlap (H100 SXM before H100)
        if key in name:
            if amp is not None:
                return peaks[0]
            return peaks[1] if torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32 else peaks[2]
    return None


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def model_for(name: str, args, device: torch.device) -> torch.nn.Module:
    if args.checkpoint and name in args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint[name])
        model = build_model(ckpt.model_config)
        model.load_state_dict(ckpt.state_dict)
    else:
        overrides = {"base_channels": args.width} if args.width else {}
        model = build_model(default_model_config(name, num_classes=3, **overrides))
    return model.to(device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


# --------------------------------------------------------------------------- training


def bench_training(name: str, args, device: torch.device, amp: torch.dtype | None, peak: float | None) -> dict:
    torch.manual_seed(0)
    model = model_for(name, args, device).train()
    temporal = bool(getattr(model, "temporal", False))
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if args.compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    b = args.batch or (SEQUENCE_BATCH if temporal else CROP_BATCH)
    s = args.crop
    t = args.unroll if temporal else 1
    x = torch.rand((b, t, 1, s, s) if temporal else (b, 1, s, s), device=device)
    if args.channels_last and not temporal:
        x = x.contiguous(memory_format=torch.channels_last)
    classes = torch.randint(0, 3, (b * t, s, s), device=device)
    weights = torch.ones((b * t, s, s), device=device)
    valid = torch.ones((b * t, s, s), device=device)

    def forward_only(net=forward):
        with autocast(device, amp):
            out = net(x)
        return out[0] if temporal else out

    def step():
        with autocast(device, amp):
            logits = forward_only()
        loss = weighted_cross_entropy(logits.reshape(b * t, *logits.shape[-3:]).float(), classes, weights, valid)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    flops = 3 * count_flops(lambda: forward_only(model))  # backward ~ 2x forward; eager model
    reset_cuda_peak(device)
    for _ in range(args.warmup):
        step()
    sync(device)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync(device)
        times.append((time.perf_counter() - t0) / args.steps)
    sec = float(np.median(times))
    pixels = b * t * s * s
    row = {
        "phase": "train", "model": name, "batch": b, "frames_per_item": t, "crop": s,
        "steps_per_s": round(1 / sec, 3),
        "steps_per_s_range": [round(1 / max(times), 3), round(1 / min(times), 3)],
        "megapixels_per_s": round(pixels / sec / 1e6, 3),
        "gflop_per_step": round(flops / 1e9, 2), "tflops": round(flops / sec / 1e12, 4),
        "peak_rss_mib": round(peak_rss_mib(), 1), "cuda_peak_mib": cuda_peak_mib(device),
    }
    if peak:
        row["fraction_of_peak"] = round(flops / sec / 1e12 / peak, 4)
    return row


# --------------------------------------------------------------------------- inference


def test_frames(size: str, n: int) -> np.ndarray:
    """``n`` normalised frames of ``size`` ('700x1100' or e.g. '2048x2048') built from HeLa frames."""
    import tifffile

    img_path, _ = hela_paths()
    movie = tifffile.imread(img_path)
    lo_hi = percentile_range(movie[::4].reshape(-1), (1.0, 99.8))
    h, w = (int(v) for v in size.lower().split("x"))
    frames = []
    for i in range(n):
        src = normalize(movie[(10 + i) % movie.shape[0]], lo_hi)
        reps = (-(-h // src.shape[0]), -(-w // src.shape[1]))
        frames.append(np.tile(src, reps)[:h, :w])  # whole cells repeated: a realistic load
    return np.ascontiguousarray(np.stack(frames), dtype=np.float32)


def bench_inference(name: str, size: str, args, device: torch.device, amp_mode, peak: float | None) -> dict:
    torch.manual_seed(0)
    model = model_for(name, args, device).eval()
    tile = args.tile or default_tile(device)
    predictor = Predictor(model, device, tile=tile, overlap=min(64, tile // 4), amp=amp_mode,
                          channels_last=args.channels_last if args.channels_last_set else None,
                          tile_batch=args.tile_batch, compile=args.compile)
    movie = test_frames(size, args.frames + 1)
    tiles = predictor._tiles(movie.shape[1:])
    tile_px = sum((t.y1 - t.y0 + (-(t.y1 - t.y0)) % predictor.stride) * (t.x1 - t.x0 + (-(t.x1 - t.x0)) % predictor.stride)
                  for t in tiles)

    def one_tile_forward():
        t0 = tiles[0]
        x = torch.zeros((1, 1, t0.y1 - t0.y0, t0.x1 - t0.x0), device=device)
        x = torch.nn.functional.pad(x, (0, (-x.shape[-1]) % predictor.stride, 0, (-x.shape[-2]) % predictor.stride))
        with torch.inference_mode(), autocast(device, predictor.amp_dtype):  # the eager model
            model(x[:, None]) if predictor.temporal else model(x)

    flops = count_flops(one_tile_forward) * len(tiles)
    reset_cuda_peak(device)
    net_times, post_times = [], []
    stamps = [time.perf_counter()]
    for i, (t, probs) in enumerate(predictor.predict(movie)):
        sync(device)
        now = time.perf_counter()
        net_times.append(now - stamps[-1])
        labels_from_probabilities(probs, "3class", 15)
        post_times.append(time.perf_counter() - now)
        stamps.append(time.perf_counter())
    # first frame is warm-up (and compilation with --compile)
    net = np.array(net_times[1:] or net_times)
    both = np.array(net_times[1:] or net_times) + np.array(post_times[1:] or post_times)
    row = {
        "phase": "infer", "model": name, "size": size, "tile": predictor.tile, "tiles": len(tiles),
        "tile_pixels_over_frame_pixels": round(tile_px / float(np.prod(movie.shape[1:])), 3),
        "frames": len(net), "channels_last": predictor.channels_last, "tile_batch": predictor.tile_batch,
        "frames_per_s_network": round(1 / float(np.median(net)), 3),
        "frames_per_s_network_range": [round(1 / float(net.max()), 3), round(1 / float(net.min()), 3)],
        "frames_per_s_with_postprocess": round(1 / float(np.median(both)), 3),
        "postprocess_s": round(float(np.median(post_times)), 3),
        "gflop_per_frame": round(flops / 1e9, 2), "tflops": round(flops * float(np.median(1 / net)) / 1e12, 4),
        "peak_rss_mib": round(peak_rss_mib(), 1), "cuda_peak_mib": cuda_peak_mib(device),
    }
    if peak:
        row["fraction_of_peak"] = round(row["tflops"] / peak, 4)
    return row


def print_table(rows: list[dict]) -> None:
    print("| phase | model | shape | rate | Mpx/s | TFLOP/s | peak RSS MiB | CUDA peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["phase"] == "train":
            shape = f"{r['batch']}x{r['frames_per_item']}x{r['crop']}²"
            rate = f"{r['steps_per_s']} steps/s ({r['steps_per_s_range'][0]}-{r['steps_per_s_range'][1]})"
            mpx = r["megapixels_per_s"]
        else:
            shape = f"{r['size']} ({r['tiles']} tiles)"
            rate = (f"{r['frames_per_s_network']} frames/s net ({r['frames_per_s_network_range'][0]}-"
                    f"{r['frames_per_s_network_range'][1]}), {r['frames_per_s_with_postprocess']} with post")
            h, w = (int(v) for v in r["size"].split("x"))
            mpx = round(r["frames_per_s_network"] * h * w / 1e6, 3)
        cuda = "" if r["cuda_peak_mib"] is None else f"{r['cuda_peak_mib']:.0f}"
        frac = f" ({100 * r['fraction_of_peak']:.1f}% of peak)" if "fraction_of_peak" in r else ""
        print(f"| {r['phase']} | {r['model']} | {shape} | {rate} | {mpx} | {r['tflops']}{frac} | "
              f"{r['peak_rss_mib']:.0f} | {cuda} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="unet,ulstm")
    p.add_argument("--device", default="auto")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format (default: on for CPU and CUDA, as training and the Predictor)")
    p.add_argument("--amp", default="auto", choices=PRECISIONS,
                   help="auto, as training and segment choose it: bf16 on CUDA (fp16 where bf16 is missing); "
                        "on CPUs bf16 for training where the CPU has AMX, float32 for inference")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--tile", type=int, help="inference tile side (default: 512 on CPU, 1536 on GPUs)")
    p.add_argument("--tile-batch", type=int, default=1, help="tiles per inference forward pass")
    p.add_argument("--batch", type=int, help="training crops (U-Net) or sequences (U-LSTM); default the training defaults")
    p.add_argument("--crop", type=int, default=160)
    p.add_argument("--unroll", type=int, default=5)
    p.add_argument("--width", type=int, help="base channels")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--frames", type=int, default=3, help="timed inference frames (after one warm-up frame)")
    p.add_argument("--sizes", default="700x1100,2048x2048")
    p.add_argument("--phases", default="train,infer")
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=FILE",
                   help="trained weights for a model, e.g. unet=out/peer/peer_unet.pt")
    p.add_argument("--peak-tflops", type=float, help="peak of the device for the fraction-of-peak column")
    p.add_argument("--json", default="out/throughput.json")
    args = p.parse_args()
    args.checkpoint = dict(c.split("=", 1) for c in args.checkpoint)
    args.channels_last_set = args.channels_last is not None
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = autocast_dtype(device, args.amp, training=True)  # as train() chooses it
    amp_mode = args.amp  # inference: the Predictor chooses (float32 on CPUs under auto)
    peak = gpu_peak_tflops(device, amp, args.peak_tflops)
    phases = args.phases.split(",")
    rows = []
    for name in args.models.split(","):
        if "train" in phases:
            train_args = argparse.Namespace(**vars(args))
            # default as in training: channels-last on CPU and CUDA
            train_args.channels_last = args.channels_last if args.channels_last_set else device.type in ("cpu", "cuda")
            rows.append(bench_training(name, train_args, device, amp, peak))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if "infer" in phases:
            for size in args.sizes.split(","):
                rows.append(bench_inference(name, size, args, device, amp_mode, peak))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print_table(rows)
    meta = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "amp": str(amp).replace("torch.", "") if amp is not None else "off",  # of the training rows
        "peak_tflops": peak,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "meta": meta, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
