"""The widgets' forms: plain dataclasses built from widget values, checked without Qt.

Each dock widget builds its form (:class:`TrainForm`, :class:`SegmentForm`, :class:`ExportForm`,
:class:`AnnotateForm`) from its values whenever one changes; the form's ``problem()`` is the
reason its main button is off (``None``: go), shown in the widget. Layers enter a form only as
:class:`LayerFacts` (name, shape, annotated frames...), so this module imports neither napari
nor Qt and its tests need no display. :func:`train_request` turns a valid Train form and the
layer snapshots into the job's arguments (the one place widget values become configs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.builtin import DEFAULT_INIT, BUILTINS, builtin_for
from ..core.config import DataConfig, TrainConfig
from ..core.errors import CellseqError
from ..core.io import parse_frames
from ..core.models import default_model_config

__all__ = [
    "LayerFacts",
    "TrainForm",
    "SegmentForm",
    "ExportForm",
    "AnnotateForm",
    "train_request",
    "start_choices",
    "CHECKPOINT_EVERY_S",
]

#: Seconds between checkpoints of GUI training (each one also updates the live preview).
CHECKPOINT_EVERY_S = 10.0


@dataclass(frozen=True)
class LayerFacts:
    """What a form needs to know about a layer.

    shape : the data shape, ``(Y, X)`` or ``(T, Y, X)`` for a usable layer.
    annotated : frames with any label (Labels layers).
    partial, background : frames marked partly annotated and the explicit background label.
    source : the file the layer was opened from, if any.
    """

    name: str
    shape: tuple[int, ...]
    rgb: bool = False
    multiscale: bool = False
    source: str | None = None
    annotated: tuple[int, ...] = ()
    partial: tuple[int, ...] = ()
    background: int | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def frames(self) -> int:
        return self.shape[0] if self.ndim == 3 else 1


def image_problem(image: LayerFacts | None) -> str | None:
    """Why ``image`` cannot be trained on or segmented (None: it can)."""
    if image is None:
        return "open an image (File > Open, or File > Open Sample > napari-cellseq)"
    if image.rgb:
        return (f"image {image.name!r} is RGB: convert it to one grey channel "
                "(Layers > Split RGB) and choose one channel")
    if image.multiscale:
        return f"image {image.name!r} is multiscale: open the full-resolution image as one layer"
    if image.ndim not in (2, 3):
        return (f"image {image.name!r} has shape {image.shape}: napari-cellseq needs (Y, X) images "
                "or (T, Y, X) movies; split channels or planes first")
    return None


@dataclass(frozen=True)
class TrainForm:
    """The Train widget's values.

    budget, unit : a number of ``"minutes"`` or ``"iterations"``.
    loss : a loss name, or None for the loss of the model's paper.
    start : what the weights start from: ``"builtin"`` (the built-in weights of ``model`` and
        ``target``: :mod:`napari_cellseq.core.builtin`), ``"current"`` (continue
        ``current_model``), ``"file"`` (continue ``start_file``) or ``"random"``; default
        :data:`~napari_cellseq.core.builtin.DEFAULT_INIT`.
    validation : a completely annotated frame held out and scored at each checkpoint, or None.
    model_file : where the model is written.
    """

    image: LayerFacts | None
    annotations: LayerFacts | None
    model: str = "unet"
    device: str = "auto"
    budget: float = 5
    unit: str = "minutes"
    lr: float = TrainConfig.lr
    crop: int = DataConfig.crop_size
    batch: int = 4
    target: str = "3class"
    loss: str | None = None
    sampling: str = "uniform"
    optimizer: str = "adam"
    start: str = DEFAULT_INIT
    current_model: str | None = None
    start_file: str = ""
    validation: int | None = None
    model_file: str = ""
    preview: bool = True

    def problem(self) -> str | None:
        """Why Train is off, with the fix; None when training can start."""
        bad = image_problem(self.image)
        if bad:
            return bad
        labels = self.annotations
        if labels is None:
            return "create an annotation layer (Annotate widget) and paint a few cells"
        if labels.shape != self.image.shape:
            return (f"labels layer shape {labels.shape} differs from image {self.image.shape}: "
                    "paint on a layer created from this image (Annotate widget)")
        if not labels.annotated:
            return f"paint at least one frame of {labels.name!r}"
        if self.validation is not None:
            if self.validation not in labels.annotated:
                return f"validation frame {self.validation} is not annotated: choose an annotated frame or none"
            if self.validation in labels.partial:
                return (f"validation frame {self.validation} is partly annotated: validation needs a "
                        "completely annotated frame")
            if len(labels.annotated) == 1:
                return (f"frame {self.validation} is the only annotated frame, so nothing is left to "
                        "train on: annotate another frame or set validation to none")
        if self.start == "builtin" and builtin_for(self.model, self.target) is None:
            return no_builtin_reason(self.model, self.target)
        if self.start == "current" and not self.current_model:
            return "there is no current model to continue from: train one or load a model file (Segment widget)"
        if self.start == "file" and not Path(str(self.start_file)).expanduser().is_file():
            return "choose the model file to start from (start file), or start from the built-in or random weights"
        if self.budget <= 0:
            return "set a budget above 0"
        if self.crop % 16:
            return f"crop size {self.crop} is not a multiple of 16: use {max(16, self.crop // 16 * 16)}"
        if not str(self.model_file).strip() or Path(self.model_file).expanduser().is_dir():
            return "choose a model file to write (a .pt file name)"
        return None


def train_request(form: TrainForm, image: Any, labels: Any) -> dict:
    """Arguments of :func:`._jobs.train_job` for a valid ``form`` and the layer snapshots."""
    problem = form.problem()
    if problem:
        raise CellseqError(problem)
    if form.unit == "minutes":
        budget = dict(iterations=None, max_time=60.0 * form.budget)
    else:
        budget = dict(iterations=int(form.budget), max_time=None)
    init = {"current": form.current_model, "file": str(Path(str(form.start_file)).expanduser())}.get(
        form.start, form.start)  # "builtin" / "random": the core resolves them
    continuing = form.start in ("current", "file")
    return dict(
        image=image,
        labels=labels,
        out_path=str(Path(form.model_file).expanduser()),
        model_config=None if continuing else default_model_config(form.model),
        data_config=DataConfig(crop_size=form.crop, target=form.target, sampling=form.sampling),
        train_config=TrainConfig(batch_size=form.batch, lr=form.lr, device=form.device, loss=form.loss,
                                 optimizer=form.optimizer, checkpoint_every=CHECKPOINT_EVERY_S, **budget),
        init=init,
        partial_frames=tuple(form.annotations.partial),
        background_label=form.annotations.background,
        validation_frame=form.validation,
    )


def no_builtin_reason(model: str, target: str) -> str:
    """Why "start from: built-in" cannot work for ``model`` and ``target``, with the fix."""
    networks = ", ".join(sorted({b.network for b in BUILTINS}))
    targets = "/".join(sorted({b.target for b in BUILTINS if b.network == model}))
    if targets:
        return (f"the built-in {model} weights learnt labels that are cells ({targets}), not {target}: "
                "start from random weights")
    return f"there are no built-in weights for {model} (only for {networks}): start from random weights"


def start_choices(model: str, target: str) -> list[tuple[str, str]]:
    """The Train widget's "start from" entries ``(label, value)``; the built-in's label names it
    (or says there is none for ``model`` / ``target``)."""
    builtin = builtin_for(model, target)
    first = f"built-in weights ({builtin.name})" if builtin else f"built-in weights (none for {model} / {target})"
    return [(first, "builtin"), ("current model", "current"), ("model file…", "file"), ("random weights", "random")]


@dataclass(frozen=True)
class SegmentForm:
    """The Segment widget's values.

    frames : ``"all"``, ``"current"`` or ``"range"`` (then ``range_text``, e.g. ``"0-9, 15"``).
    output : ``"instances"``, ``"classes"`` or None for the model's kind.
    """

    image: LayerFacts | None
    model_file: str | None
    frames: str = "all"
    range_text: str = ""
    current_frame: int = 0
    device: str = "auto"
    output: str | None = None

    def selected_frames(self) -> list[int] | None:
        """The frames to segment (None: all); raises CellseqError for a bad range."""
        if self.frames == "current":
            return [self.current_frame]
        if self.frames == "range":
            return parse_frames(self.range_text, self.image.frames if self.image else 1)
        return None

    def problem(self) -> str | None:
        bad = image_problem(self.image)
        if bad:
            return bad
        if not self.model_file:
            return "no model yet: train one (Train widget) or load a model file"
        if not Path(self.model_file).is_file():
            return f"model file {self.model_file} is gone: load another model file"
        if self.frames == "range":
            try:
                self.selected_frames()
            except CellseqError as err:
                return str(err)
        return None


@dataclass(frozen=True)
class ExportForm:
    """The Export widget's labels values: ``fmt`` is ``"stack"`` or ``"ctc"``."""

    labels: LayerFacts | None
    fmt: str = "stack"
    path: str = ""
    overwrite: bool = False

    def problem(self) -> str | None:
        if self.labels is None:
            return "choose a labels layer to export"
        if not str(self.path).strip() or str(self.path) == ".":
            return "choose a file name (TIFF stack) or a folder (CTC masks)"
        return None


@dataclass(frozen=True)
class AnnotateForm:
    """The Annotate widget's layers: the image, its annotations, a (corrected) segmentation."""

    image: LayerFacts | None
    annotations: LayerFacts | None
    segmentation: LayerFacts | None = None

    def create_problem(self) -> str | None:
        """Why no annotation layer can be created for the image."""
        return image_problem(self.image)

    def copy_problem(self) -> str | None:
        """Why the segmentation's current frame cannot become an annotation."""
        if self.annotations is None:
            return "create or choose an annotation layer"
        if self.segmentation is None:
            return "segment the image (Segment widget), correct a frame, then copy it here"
        if self.segmentation.name == self.annotations.name:
            return "the segmentation and the annotation layer are the same layer: choose the segmentation"
        if self.segmentation.shape != self.annotations.shape:
            return (f"segmentation {self.segmentation.name!r} {self.segmentation.shape} and annotations "
                    f"{self.annotations.name!r} {self.annotations.shape} differ in shape: segment the annotated image")
        return None
