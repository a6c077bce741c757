"""The typed record of a training run, stored in the model file.

:class:`TrainingRecord` replaces the untyped ``training`` dict of earlier versions. The file
keeps the same flat layout (``iterations``, ``seconds``, ``frames``, ..., ``roc_auc``,
``calibration``), so files written before still load and files written now still read as the
dict older code expects: :meth:`TrainingRecord.to_dict` / :meth:`TrainingRecord.from_dict`
convert, and :meth:`TrainingRecord.from_dict` checks every field (a model file is data from
outside: a wrong type is one :class:`~napari_cellseq.core.errors.ModelFileError` naming the
field, never a ``TypeError`` later).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ModelFileError

__all__ = ["ThresholdChoice", "ValidationRecord", "TrainingRecord"]


@dataclass(frozen=True)
class ThresholdChoice:
    """How the post-processing foreground threshold was chosen after training.

    method : ``"roc"`` (pixel-wise ROC on validation frames, Youden's J; FCN-GoogLeNet blog) or
        ``"calibration"`` (best mean of SEG and AP50 on painted pixels).
    threshold : the chosen threshold (``None``: the argmax won the calibration, or nothing
        could be held out).
    frames : the frames it was chosen on.
    roc_auc : ROC AUC on the validation frames (``"roc"`` only).
    seg, ap50, argmax_seg, argmax_ap50 : calibration scores with the threshold and with the
        argmax (``"calibration"`` only).
    held_out : share of the painted pixels held out of training that the calibration was
        scored on (:mod:`.holdout`); ``None``: scored on the trained pixels (``--holdout 0``,
        or files of earlier versions).
    cells : painted cells the calibration scored; area_ratio : their median predicted / painted
        area at the chosen threshold.
    note : why nothing was chosen (e.g. too little painted to hold any out).
    """

    method: str
    threshold: float | None
    frames: tuple[int, ...]
    roc_auc: float | None = None
    seg: float | None = None
    ap50: float | None = None
    argmax_seg: float | None = None
    argmax_ap50: float | None = None
    held_out: float | None = None
    cells: int | None = None
    area_ratio: float | None = None
    note: str | None = None

    def summary(self) -> str:
        """One line for the end of training, e.g. ``held-out SEG 0.871 / AP50 0.902 on 12 % of
        the painted pixels (31 cells): threshold 0.45 (argmax SEG 0.850)``."""
        if self.method == "roc":
            return f"validation frames {list(self.frames)}: ROC AUC {self.roc_auc:.4f}, threshold {self.threshold:.4f}"
        if self.note:
            return self.note
        chosen = "the argmax" if self.threshold is None else f"threshold {self.threshold:g}"
        where = (f"held-out SEG {self.seg:.3f} / AP50 {self.ap50:.3f} on {100 * self.held_out:.0f} % of the "
                 f"painted pixels" if self.held_out is not None
                 else f"SEG {self.seg:.3f} / AP50 {self.ap50:.3f} on the trained frames {list(self.frames)}")
        cells = f" ({self.cells} cells)" if self.cells is not None else ""
        area = f", cells {self.area_ratio:.2f}x the painted area" if self.area_ratio is not None else ""
        return f"{where}{cells}: {chosen} (argmax SEG {self.argmax_seg:.3f}){area}"


@dataclass(frozen=True)
class ValidationRecord:
    """Scores of the model on held-out validation frames after ``iteration`` steps.

    scores : :func:`~napari_cellseq.core.metrics.evaluate` (instance targets: ``seg``,
        ``ap50``, ``dice``, ...) or :func:`~napari_cellseq.core.metrics.evaluate_classes`
        (target ``classes``: ``mean_dice``, ``dice_per_class``, ...) of those frames.
    """

    iteration: int
    frames: tuple[int, ...]
    scores: Mapping[str, Any]


@dataclass(frozen=True)
class TrainingRecord(Mapping):
    """What a training run did: its budget used, settings, data and the threshold choice.

    iterations, seconds : optimiser steps and seconds, summed over continued runs (``--init``).
    frames : annotated frames trained on; validation_frames : held-out frames.
    value_range : grey values at the normalisation percentiles of the training movie.
    seed, optimizer, lr, batch_size, device, loss : the run's settings (loss: the resolved name).
    precision : the autocast dtype of the training steps (``"bfloat16"``, ``"float16"``;
        ``None``: float32, or a file written before it was recorded).
    unroll : temporal models: the truncated-BPTT chunk the run used (``TrainConfig.unroll``).
    focal_gamma : only with loss ``normalized_focal``; edge_weight : only with ``edge_weighted``.
    threshold : how the post-processing threshold was chosen (``None``: not chosen).
    validation : the last scores on the validation frames (only when they were scored).
    started_from : the built-in model the weights were fine-tuned from (``"builtin-unet"``, ...;
        kept when such a model is continued again); ``None``: random weights.
    origin : what made the training data when the caller said (``plan_run(origin=...)``), e.g.
        the built-in weights' script, seed, cores and generator styles: a mapping of names to
        texts, numbers, booleans or (nested) lists / mappings of them (``None``: not said).

    It also reads as the read-only mapping of its stored layout (``record["iterations"]``,
    ``record.get("roc_auc")``, ``"calibration" in record``), for code written against the dict.
    """

    iterations: int = 0
    seconds: float = 0.0
    frames: tuple[int, ...] = ()
    value_range: tuple[float, float] | None = None
    seed: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    batch_size: int | None = None
    unroll: int | None = None
    device: str | None = None
    precision: str | None = None
    loss: str | None = None
    focal_gamma: float | None = None
    edge_weight: float | None = None
    validation_frames: tuple[int, ...] = ()
    threshold: ThresholdChoice | None = None
    validation: ValidationRecord | None = None
    started_from: str | None = None
    origin: Mapping[str, Any] | None = None

    # -- the stored layout -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The flat, ``torch.load(weights_only=True)``-safe dict stored in the model file."""
        out: dict[str, Any] = {"iterations": self.iterations, "seconds": self.seconds,
                               "frames": list(self.frames)}
        if self.value_range is not None:
            out["value_range"] = list(self.value_range)
        for name in ("seed", "optimizer", "lr", "batch_size", "unroll", "device", "precision", "loss",
                     "focal_gamma", "edge_weight", "started_from"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        choice = self.threshold
        if self.validation_frames:
            out["validation_frames"] = list(self.validation_frames)
        if choice is not None and choice.method == "roc":
            out["roc_auc"] = choice.roc_auc
            out["threshold"] = choice.threshold
        elif choice is not None:
            out["calibration"] = {
                "frames": list(choice.frames), "threshold": choice.threshold, "seg": choice.seg,
                "ap50": choice.ap50, "argmax_seg": choice.argmax_seg, "argmax_ap50": choice.argmax_ap50,
            }
            for name in ("held_out", "cells", "area_ratio", "note"):  # written only when known
                if getattr(choice, name) is not None:
                    out["calibration"][name] = getattr(choice, name)
        if self.validation is not None:
            out["validation"] = {"iteration": self.validation.iteration,
                                 "frames": list(self.validation.frames),
                                 "scores": dict(self.validation.scores)}
        if self.origin is not None:
            out["origin"] = _plain(self.origin)
        return out

    @staticmethod
    def check_origin(origin: Any, where: str = "the model file") -> dict[str, Any]:
        """``origin`` as a plain dict, checked: names are texts, values texts, finite numbers,
        booleans, None, or lists / mappings of them (:class:`ModelFileError` otherwise)."""
        return _Checker(where).plain("training.origin", origin)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TrainingRecord):
            return self.to_dict() == other.to_dict()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, data: Any, where: str = "the model file") -> "TrainingRecord":
        """The record of a stored ``training`` dict (today's layout or an earlier one).

        Every field is checked: a field of the wrong type or an unknown field raises
        :class:`ModelFileError` naming it (``where`` names the file in the message).
        """
        if isinstance(data, TrainingRecord):
            return data
        check = _Checker(where)
        data = check.mapping("training", data)
        unknown = sorted(set(map(str, data)) - _KEYS)
        if unknown:
            raise ModelFileError(
                f"{where}: field training has unknown entries {unknown}: the file was written by a "
                "newer napari-cellseq or edited; upgrade napari-cellseq or save the model again"
            )
        get = data.get
        validation_frames = check.frames("training.validation_frames", get("validation_frames", []))
        calibration = None
        if get("calibration") is not None:
            cal = check.mapping("training.calibration", get("calibration"))
            extra = sorted(set(map(str, cal)) - _CALIBRATION_KEYS)
            if extra:
                raise ModelFileError(f"{where}: field training.calibration has unknown entries {extra}: "
                                     "the file was edited; save the model again")
            calibration = ThresholdChoice(
                method="calibration",
                threshold=check.number("training.calibration.threshold", cal.get("threshold"), optional=True),
                frames=check.frames("training.calibration.frames", cal.get("frames", [])),
                **{k: check.number(f"training.calibration.{k}", cal.get(k), optional=True)
                   for k in ("seg", "ap50", "argmax_seg", "argmax_ap50", "held_out", "area_ratio")},
                cells=check.integer("training.calibration.cells", cal.get("cells"), optional=True),
                note=check.text("training.calibration.note", cal.get("note")),
            )
        choice = calibration
        if "roc_auc" in data or "threshold" in data:
            choice = ThresholdChoice(
                method="roc",
                threshold=check.number("training.threshold", get("threshold"), optional=True),
                frames=validation_frames,
                roc_auc=check.number("training.roc_auc", get("roc_auc"), optional=True),
            )
        validation = None
        if get("validation") is not None:
            val = check.mapping("training.validation", get("validation"))
            validation = ValidationRecord(
                iteration=check.integer("training.validation.iteration", val.get("iteration", 0)),
                frames=check.frames("training.validation.frames", val.get("frames", [])),
                scores=dict(check.mapping("training.validation.scores", val.get("scores", {}))),
            )
        value_range = get("value_range")
        if value_range is not None:
            value_range = check.pair("training.value_range", value_range)
        return cls(
            iterations=check.integer("training.iterations", get("iterations", 0)),
            seconds=check.number("training.seconds", get("seconds", 0.0)),
            frames=check.frames("training.frames", get("frames", [])),
            value_range=value_range,
            seed=check.integer("training.seed", get("seed"), optional=True),
            optimizer=check.text("training.optimizer", get("optimizer")),
            lr=check.number("training.lr", get("lr"), optional=True),
            batch_size=check.integer("training.batch_size", get("batch_size"), optional=True),
            unroll=check.integer("training.unroll", get("unroll"), optional=True),
            device=check.text("training.device", get("device")),
            precision=check.text("training.precision", get("precision")),
            loss=check.text("training.loss", get("loss")),
            focal_gamma=check.number("training.focal_gamma", get("focal_gamma"), optional=True),
            edge_weight=check.number("training.edge_weight", get("edge_weight"), optional=True),
            validation_frames=validation_frames,
            threshold=choice,
            validation=validation,
            started_from=check.text("training.started_from", get("started_from")),
            origin=None if get("origin") is None else check.plain("training.origin", get("origin")),
        )


def _plain(value: Any) -> Any:
    """A copy of ``value`` with tuples as lists and mappings as dicts (what the file stores)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)  # a subclass (e.g. torch's version) would not load with weights_only
    return value


_KEYS = frozenset({"iterations", "seconds", "frames", "value_range", "seed", "optimizer", "lr",
                   "batch_size", "unroll", "device", "precision", "loss", "focal_gamma", "edge_weight",
                   "validation_frames", "roc_auc", "threshold", "calibration", "validation", "origin",
                   "started_from"})
_CALIBRATION_KEYS = frozenset({"frames", "threshold", "seg", "ap50", "argmax_seg", "argmax_ap50", "held_out",
                               "cells", "area_ratio", "note"})


class _Checker:
    """Type checks of stored values, each failure one ModelFileError naming the field."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, name: str, value: Any, expected: str) -> ModelFileError:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return ModelFileError(
            f"{self.where}: field {name} is {shown} ({type(value).__name__}), expected {expected}: "
            "the file is damaged or was edited; save or train the model again"
        )

    def mapping(self, name: str, value: Any) -> Mapping:
        if not isinstance(value, Mapping):
            raise self.fail(name, value, "a mapping of names to values")
        return value

    def integer(self, name: str, value: Any, optional: bool = False) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(name, value, "a whole number >= 0")
        return int(value)

    def number(self, name: str, value: Any, optional: bool = False) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(name, value, "a finite number" + (" or none" if optional else ""))
        return float(value)

    def text(self, name: str, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise self.fail(name, value, "a text or none")
        return value

    def frames(self, name: str, value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value):
            raise self.fail(name, value, "a list of frame indices")
        return tuple(int(t) for t in value)

    def plain(self, name: str, value: Any, depth: int = 0) -> Any:
        """A mapping of text names to plain values (texts, finite numbers, booleans, None, and
        lists / mappings of them, nested at most 4 deep), copied as dicts and lists."""
        if depth == 0:
            value = self.mapping(name, value)
        if depth > 4:
            raise self.fail(name, value, "values nested at most 4 deep")
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise self.fail(name, k, "text names")
                out[k] = self.plain(f"{name}.{k}", v, depth + 1)
            return out
        if isinstance(value, (list, tuple)):
            return [self.plain(f"{name}[{i}]", v, depth + 1) for i, v in enumerate(value)]
        if isinstance(value, str):
            return str(value)
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        raise self.fail(name, value, "a text, a finite number, a boolean, none, or a list / mapping of them")

    def pair(self, name: str, value: Any) -> tuple[float, float]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise self.fail(name, value, "two numbers")
        return (self.number(name, value[0]), self.number(name, value[1]))  # type: ignore[return-value]

