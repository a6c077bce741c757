"""Frozen configuration dataclasses, saved inside every checkpoint.

``ModelConfig`` says which network to build, ``DataConfig`` how images and labels become network
inputs and targets, ``TrainConfig`` how to optimise, ``PostprocessConfig`` how class maps become
instance labels. All are plain frozen dataclasses of JSON-able fields; :func:`to_dict` and
:func:`from_dict` round-trip them (unknown keys from newer files are rejected with a clear error).

The choices a user can make (target, sampling, optimiser, loss, output kind, device) are written
once here, as ``Literal`` types and their tuples. Every config checks itself when it is made (also
by ``dataclasses.replace`` and :func:`from_dict`): an unknown choice or a number out of range
raises :class:`~napari_cellseq.core.errors.InputError` naming the field and what it accepts.
Numbers are stored as plain ``int`` / ``float`` (numpy scalars are converted), so a config always
saves into a model file that ``torch.load(weights_only=True)`` reads.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from .errors import CellseqError, InputError

__all__ = [
    "check_device",
    "Target",
    "Sampling",
    "Optimizer",
    "Loss",
    "Output",
    "Device",
    "TARGETS",
    "SAMPLINGS",
    "PRECISIONS",
    "OPTIMIZERS",
    "LOSSES",
    "OUTPUTS",
    "DEVICES",
    "INSTANCE_CLASSES",
    "CROP_BATCH",
    "SEQUENCE_BATCH",
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "PostprocessConfig",
    "to_dict",
    "from_dict",
]

T = TypeVar("T")

# The one vocabulary of choices. The CLI's argparse choices, the GUI's combo boxes and the
# configs' own validation all read these tuples; add a choice here and nowhere else.
Target = Literal["3class", "2class", "classes"]
"""What painted labels mean: instance ids (3-class or 2-class target) or semantic classes."""
Sampling = Literal["uniform", "balanced"]
"""Where training crops are centred (see :class:`DataConfig`)."""
Optimizer = Literal["adam", "rmsprop"]
"""Optimiser of :class:`TrainConfig`."""
Loss = Literal["weighted_ce", "normalized_focal", "edge_weighted"]
"""Training loss (see :mod:`napari_cellseq.core.losses`)."""
Output = Literal["instances", "classes"]
"""What segmentation returns: instance labels or the class map."""
Device = Literal["auto", "cpu", "cuda", "mps"]
"""Where to compute (see :mod:`napari_cellseq.core.device`)."""

TARGETS: tuple[str, ...] = get_args(Target)
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp16", "off")
"""Mixed-precision modes of training (``TrainConfig.amp``; True is ``"auto"``, False ``"off"``)."""
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
LOSSES: tuple[str, ...] = get_args(Loss)
OUTPUTS: tuple[str, ...] = get_args(Output)
DEVICES: tuple[str, ...] = get_args(Device)

#: Default ``TrainConfig.batch_size``: crops per step for frame models, sequences for temporal
#: ones. One sequence per step (the paper: 3): in a CPU budget of minutes, more and smaller steps
#: win. U-LSTM on HeLa, 600 s on 2 cores, frames 0-4 painted, scored on 10-19: 1 sequence 1578
#: steps, SEG 0.913 / AP50 0.862; 2 sequences 892 steps, SEG 0.908 / AP50 0.854.
CROP_BATCH = 4
SEQUENCE_BATCH = 1

#: Default ``TrainConfig.unroll`` (truncated-BPTT chunk, sequences of ``4 * unroll`` frames).
#: The U-LSTM paper uses tau = 5 (20-frame sequences); in a CPU budget of minutes shorter
#: sequences give more optimiser steps, which win. U-LSTM fine-tuned from its built-in weights on
#: HeLa frames 0-4 for 60 s on 2 cores, scored on frames 10-19 (seeds 0, 1, 2): unroll 5: ~110
#: steps, SEG 0.783 / 0.840 / 0.789 (mean 0.804); 3: ~238 steps, 0.769 / 0.836; 2: ~364 steps,
#: 0.872 / 0.838 / 0.811 (mean 0.840); 1: ~676 steps, 0.836 / 0.847, but with one frame per chunk
#: no gradient crosses frames, so the recurrence is not trained. 2 keeps one step of BPTT.
UNROLL = 2

#: Number of network classes of each instance target (``"classes"`` has as many as are painted).
INSTANCE_CLASSES: dict[str, int] = {"2class": 2, "3class": 3}


# -- checks used by the configs' __post_init__ ------------------------------------------------

def _fail(config: Any, name: str, wants: str, value: Any) -> None:
    raise InputError(f"{type(config).__name__}.{name} must be {wants}, got {value!r}")


def _choice(config: Any, name: str, allowed: tuple[str, ...], optional: bool = False) -> None:
    value = getattr(config, name)
    if optional and value is None:
        return
    if value not in allowed:
        raise InputError(
            f"unknown {name} {value!r} ({type(config).__name__}.{name}): choose one of "
            f"{', '.join(allowed)}" + (" or None" if optional else "")
        )


def _set(config: Any, name: str, value: Any) -> None:
    object.__setattr__(config, name, value)  # normalising a frozen dataclass's own field


def _int(config: Any, name: str, low: int, high: int | None = None, optional: bool = False) -> None:
    """Field ``name`` is a whole number ``low <= v`` (and ``v < high``), stored as ``int``."""
    value = getattr(config, name)
    if optional and value is None:
        return
    if high is not None:
        wants = f"a whole number from {low} to {high - 1}"
    else:
        wants = "a whole number " + ("of 0 or more" if low == 0 else f"of at least {low}")
    wants += " (or None)" if optional else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(config, name, wants, value)
    if value < low or (high is not None and value >= high):
        _fail(config, name, wants, value)
    _set(config, name, int(value))


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _float(config: Any, name: str, low: float, high: float | None = None, positive: bool = False,
           optional: bool = False) -> None:
    """Field ``name`` is a finite number ``low <= v`` (``> low`` when ``positive``) and
    ``v <= high``, stored as ``float``."""
    value = getattr(config, name)
    if optional and value is None:
        return
    if positive:
        wants = "a positive number"
    elif high is None:
        wants = "a number of 0 or more" if low == 0 else f"a number of at least {low:g}"
    else:
        wants = f"a number from {low:g} to {high:g}"
    wants += " (or None)" if optional else ""
    if not _real(value) or value < low or (positive and value == low) or (high is not None and value > high):
        _fail(config, name, wants, value)
    _set(config, name, float(value))


def _floats(config: Any, name: str, length: int | None = None) -> tuple[float, ...]:
    """Field ``name`` is a sequence of finite numbers (``length`` of them), stored as a tuple."""
    value = getattr(config, name)
    wants = f"{length} numbers" if length else "a non-empty list of numbers"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        _fail(config, name, wants, value)
    items = tuple(value)
    if (length and len(items) != length) or not items or not all(_real(v) and math.isfinite(v) for v in items):
        _fail(config, name, wants, value)
    items = tuple(float(v) for v in items)
    _set(config, name, items)
    return items


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build (see :func:`napari_cellseq.core.models.build_model`).

    Attributes
    ----------
    name : registry name, ``"unet"`` or ``"ulstm"`` (``napari-cellseq models`` lists all).
    in_channels : input channels (1 for grey-scale microscopy).
    num_classes : output classes; 3 = background / cell interior / cell boundary, 2 = background /
        cell as in the U-LSTM paper.
    base_channels : width of the first level; level ``l`` has ``base_channels * 2**l``.
        The papers use 64 (U-Net) and 128 (U-LSTM); we default to 16 so a model trains in minutes
        and segments a 700x1100 frame in about a second on a 2-core CPU (measured, see README).
    depth : number of resolution levels (the U-LSTM paper uses L=4).
    options : model-specific extras as ``(key, value)`` pairs (kept hashable and JSON-able).
    """

    name: str = "unet"
    in_channels: int = 1
    num_classes: int = 3
    base_channels: int = 16
    depth: int = 4
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            _fail(self, "name", "a network name (see `napari-cellseq models`)", self.name)
        _int(self, "in_channels", 1)
        _int(self, "num_classes", 1)
        _int(self, "base_channels", 1)
        _int(self, "depth", 1)
        try:
            options = tuple((key, value) for key, value in self.options)
        except (TypeError, ValueError):
            options = None
        if options is None or not all(isinstance(key, str) for key, _ in options):
            _fail(self, "options", "(name, value) pairs", self.options)
        _set(self, "options", options)

    def option(self, key: str, default: Any = None) -> Any:
        """The value of model option ``key`` (``default`` when not set)."""
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class DataConfig:
    """How an image and its labels become network inputs, targets and loss weights.

    Attributes
    ----------
    target : what the painted label values mean and what the network learns:

        * ``"3class"`` (default): labels are instance ids; the network learns background /
          interior / boundary (separates touching cells);
        * ``"2class"``: labels are instance ids; background / cell (the U-LSTM paper's labelling);
        * ``"classes"``: semantic segmentation: label value ``v > 0`` is class ``v - 1`` (so a
          biologist paints background 1, nucleus 2, cytoplasm 3, ...), 0 stays unpainted and
          carries no loss in every frame; the number of classes is the largest painted value.
          Class 0 (value 1) is the background class: post-processing makes instances of every
          other class. No separation weights (there are no instances to separate).
    boundary_width : width in pixels of the boundary class drawn inside each cell (3class only).
    w0, sigma0 : separation weight of eq. 8 of the U-LSTM paper, ``w0 * exp(-(d1+d2)^2/sigma0^2)``.
    class_weights : ``w_c`` of eq. 9 per class (the paper uses 1 for every class); for
        ``"classes"`` with more classes than entries, equal weights are repeated for every class.
    percentiles : low/high percentiles of per-movie normalisation to [0, 1] (shared by training
        and inference).
    crop_size : side of the square training crop (the paper uses 160).
    augment_affine, augment_elastic : random affine (rotation, scale, shear) and elastic
        deformation, as listed in section 2.3 of the U-LSTM paper; flips and 90-degree rotations
        are always on; grey values are not augmented (the paper calls them biologically meaningful).
    sampling : where training crops are centred: ``"uniform"`` (anywhere, the U-LSTM paper) or
        ``"balanced"``: a target class is drawn uniformly first, then a painted pixel of that
        class becomes the crop centre, so every class is equally likely at the crop centre (the
        class-balanced patch sampling of paper 004, which draws patches "from each category").
    """

    target: Target = "3class"
    boundary_width: int = 2
    w0: float = 10.0
    sigma0: float = 5.0
    class_weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    percentiles: tuple[float, float] = (1.0, 99.8)
    crop_size: int = 160
    augment_affine: bool = True
    augment_elastic: bool = True
    sampling: Sampling = "uniform"

    def __post_init__(self) -> None:
        _choice(self, "target", TARGETS)
        _choice(self, "sampling", SAMPLINGS)
        _int(self, "boundary_width", 0)
        _float(self, "w0", 0.0)
        _float(self, "sigma0", 0.0, positive=True)
        if any(w < 0 for w in _floats(self, "class_weights")):
            _fail(self, "class_weights", "numbers of 0 or more", self.class_weights)
        low, high = _floats(self, "percentiles", 2)
        if not 0 <= low < high <= 100:
            _fail(self, "percentiles", "(low, high) with 0 <= low < high <= 100", self.percentiles)
        _int(self, "crop_size", 1)


@dataclass(frozen=True)
class TrainConfig:
    """How to optimise.

    Attributes
    ----------
    iterations : optimiser steps at most (``None``: until ``max_time``).
    max_time : seconds of training at most (``None``: until ``iterations``).
    batch_size : crops (frame models) or sequences of ``4 * unroll`` frames (temporal models)
        per step; ``None``: :data:`CROP_BATCH` crops or :data:`SEQUENCE_BATCH` sequences (the
        U-LSTM paper uses 3 sequences; 1 gives more steps in a CPU budget of minutes).
    optimizer : ``"rmsprop"`` (the U-LSTM paper) or ``"adam"`` (the CS230 report's best).
    lr : learning rate. Both papers use 1e-4 over ~100k iterations; for budgets of minutes
        Adam at 3e-3 with cosine decay reached lower loss and equal or better SEG on HeLa
        (measured: see README), so that is the default.
    unroll : truncated-BPTT unroll length tau for temporal models (the paper uses 5;
        :data:`UNROLL`, 2, gives more steps in minutes of CPU: measured there).
    seed : seeds torch, numpy and the augmentation.
    device : ``"auto"`` (CUDA, then MPS, then CPU), ``"cuda"``, ``"mps"`` or ``"cpu"``.
    checkpoint_every : seconds between checkpoints written during training.
    amp : mixed precision: True / ``"auto"`` is bfloat16 on CUDA (float16 with loss scaling on
        GPUs without bfloat16) and on CPUs with bfloat16 matrix units (Intel AMX: ~1.4x the
        steps per second, measured), float32 on other CPUs; ``"bf16"`` / ``"fp16"`` force a
        dtype, False / ``"off"`` is float32 (see ``device.autocast_dtype``).
    channels_last : channels-last (NHWC) memory format for the network; None means on for CPU
        and CUDA (1.1-1.7x faster training steps on a 2-core CPU, measured with
        ``benchmarks/throughput.py``), off on MPS.
    compile : wrap the network in ``torch.compile`` for training (off: compiling costs tens of
        seconds up front, which only long GPU runs win back).
    calibrate : after training, segment up to 4 completely painted frames and keep the
        foreground threshold (``PostprocessConfig.threshold``) that scores best on them (mean of
        SEG and AP50); skipped when validation frames choose it from a ROC, or for class targets.
    holdout : with ``calibrate``, a band of this fraction of the longer side of each of those
        frames, with the painted cells it touches, is held out of training and the threshold is
        scored there only (:mod:`napari_cellseq.core.training.holdout`): chosen on pixels no
        optimiser step saw. 0: nothing held out, the threshold is scored on the trained pixels
        (the behaviour before issue 13; biased towards low thresholds).
    loss : ``"weighted_ce"`` (eq. 8-9 of the U-LSTM paper), ``"normalized_focal"`` (GRUU-Net,
        paper 001) or ``"edge_weighted"`` (FCN-GoogLeNet blog, paper 003); ``None``: the loss of
        the model's paper (:func:`napari_cellseq.core.losses.default_loss`; continuing from a
        model file keeps that file's loss). An explicit choice always wins. The resolved name is
        stored in the checkpoint's ``training["loss"]``.
    focal_gamma : focusing exponent of the normalized focal loss (2, as Lin et al.).
    edge_weight : weight of edge pixels for ``"edge_weighted"`` (the blog gives no value).
    """

    iterations: int | None = None
    max_time: float | None = 600.0
    batch_size: int | None = None
    optimizer: Optimizer = "adam"
    lr: float = 3e-3
    unroll: int = UNROLL
    seed: int = 0
    device: str = "auto"  # a Device, optionally with an index: "cuda:1"
    checkpoint_every: float = 30.0
    amp: bool | str = True
    calibrate: bool = True
    holdout: float = 0.15
    loss: Loss | None = None
    focal_gamma: float = 2.0
    edge_weight: float = 10.0
    channels_last: bool | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        _int(self, "iterations", 1, optional=True)
        _float(self, "max_time", 0.0, positive=True, optional=True)
        _int(self, "batch_size", 1, optional=True)
        _choice(self, "optimizer", OPTIMIZERS)
        _float(self, "lr", 0.0, positive=True)
        _int(self, "unroll", 1)
        _int(self, "seed", 0, high=1 << 64)  # torch.manual_seed takes 64-bit seeds
        check_device(self.device)
        _float(self, "checkpoint_every", 0.0, positive=True)
        _float(self, "holdout", 0.0, 0.45)
        if not isinstance(self.amp, bool) and self.amp not in PRECISIONS:
            _fail(self, "amp", f"True, False or one of {', '.join(PRECISIONS)}", self.amp)
        _choice(self, "loss", LOSSES, optional=True)
        _float(self, "focal_gamma", 0.0)
        _float(self, "edge_weight", 0.0)


@dataclass(frozen=True)
class PostprocessConfig:
    """How a class map becomes instance labels.

    Attributes
    ----------
    min_size : objects smaller than this many pixels are removed (no upper limit).
    threshold : ``None``: each pixel takes its most probable class (argmax). A number: a pixel
        is foreground when ``1 - p(background) >= threshold`` (then its foreground class is the
        most probable one); chosen by training from a pixel-wise ROC on validation frames
        (Youden's J), as the FCN-GoogLeNet blog (paper 003) thresholds its cell probability.
    """

    min_size: int = 15
    threshold: float | None = None

    def __post_init__(self) -> None:
        _int(self, "min_size", 0)
        # closed interval: a ROC threshold can be exactly 0 or 1, and model files hold such values
        _float(self, "threshold", 0.0, 1.0, optional=True)


def check_device(name: Any) -> str:
    """``name`` if it is one of :data:`DEVICES`, optionally with a device index (``"cuda:1"``);
    else InputError naming the choices. (Whether the device exists here is checked when it is
    used, by :func:`napari_cellseq.core.device.resolve_device`.)"""
    kind, colon, index = name.partition(":") if isinstance(name, str) else (None, "", "")
    if kind not in DEVICES or (colon and (not index.isdigit() or kind in ("auto", "cpu"))):
        raise InputError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)} (or cuda:N for GPU N)")
    return name


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-able dict of a config dataclass (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild config ``cls`` from :func:`to_dict` output.

    Data that is not a mapping or has unknown keys raises CellseqError; values the config
    rejects raise InputError (see the module docstring).
    """
    if not isinstance(data, Mapping):
        raise CellseqError(f"{cls.__name__} must be a mapping of field names to values, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(repr(k) if not isinstance(k, str) else k for k in set(data) - names)
    if unknown:
        raise CellseqError(
            f"{cls.__name__} has no field(s) {unknown}: the file was written by a newer "
            "napari-cellseq; upgrade napari-cellseq to read it"
        )
    return cls(**{k: _to_tuple(v) for k, v in data.items()})  # type: ignore[call-arg]
