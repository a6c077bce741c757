"""Train dock widget (magicgui): learn a network from the painted frames, in a napari worker.

The values form a :class:`~._forms.TrainForm`, checked at every edit: Train stays off with the
reason shown until the inputs can work. Pressing Train snapshots the image and annotations on
the main thread and hands them to the run controller (:mod:`._run`); the worker
(:mod:`._backend`: a thread, or a child process it drains) only sees those copies, so painting
may go on (of a lazy dask / zarr movie nothing is copied: training reads the frames it needs;
of the annotations only the painted frames are). Events come back as progress, ETA, a loss plot, validation scores and, with
"live preview" on, the segmentation of the frame on screen at every checkpoint, drawn in one
preview layer. Stop is cooperative and keeps the weights; errors are napari notifications.

The model file defaults to a persistent place (:mod:`._model_files`: beside the image file, or
the per-user data folder) and an existing file is never replaced: a numbered name is taken.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import napari.layers
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_info

from ..core.builtin import DEFAULT_INIT, RANDOM, builtin_for, builtin_of_path
from ..core.models.recommend import recommendation, recommended_network
from ..core.config import DataConfig, TrainConfig
from ..core.errors import CellseqError
from ..core.events import CheckpointSaved, Done, Started, Step, ThresholdChosen, Validation
from ..core.losses import default_loss
from ..core.models import available_models, model_info
from ..core.training import CROP_BATCH, SEQUENCE_BATCH
from . import _choices, _layers
from ._forms import TrainForm, start_choices, train_request
from ._jobs import Preview, train_job
from ._model_files import default_model_file, free_name, read_model
from ._plot import LossPlot
from ._run import RunController, RunState
from ._state import session_state
from ._widgets import compact, renew_choices, Debounced, connect_while_alive, format_seconds, layer_choice, on_close, row, text_label

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

__all__ = ["TrainWidget", "default_model_for"]

#: Seconds between updates of the status text and progress bar during training.
_STATUS_EVERY_S = 0.25


def default_model_for(ndim: int, models: list[str]) -> str:
    """The network recommended for the data (:mod:`napari_cellseq.core.models.recommend`: the
    U-Net for a (Y, X) image and, by measurement, for a (T, Y, X) movie too)."""
    preferred = recommended_network(2 if ndim == 3 else 1)
    if preferred in models:
        return preferred
    return "unet" if "unet" in models else models[0]


class TrainWidget(Container):
    """Dock widget that trains a model on an image layer and its annotation layer.

    Parameters
    ----------
    viewer : the napari viewer; the trained model becomes the session's current model
        (:func:`~._state.session_state`), used by Segment and Export.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.state = session_state(viewer)
        self.run = RunController("training")
        self._annotated: dict[int, tuple[int, ...]] = {}  # id(labels layer) -> annotated frames
        self._watched = None
        self._seen_image = None
        self._file_auto = True  # the model file follows the image until the user picks one
        self._start_fell_back = False  # "start from" went from built-in to random: none fits
        self._setting_start = False
        self._current_net: str | None = None  # the network of the current model (what "current" continues)
        self._setting_file = False
        self._done: Done | None = None
        self._threshold_summary = ""  # how the last run chose its threshold (ThresholdChoice.summary)
        self._last_status = 0.0
        self._job_image = None  # the image layer of the running job (preview placement)
        self.preview_layer: napari.layers.Labels | None = None
        self._build()
        self._connect()
        self._on_image_changed()
        self.start_from.value = self._default_start()
        self._on_start_changed()
        self._on_model_path()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        models = available_models()
        self.image = layer_choice(napari.layers.Image, "image")
        self.annotations = layer_choice(napari.layers.Labels, "annotations",
                                        "the painted labels (Annotate widget)")
        self.model = ComboBox(choices=models, value="unet" if "unet" in models else models[0], label="model",
                              tooltip=recommendation())
        self.model_kind = text_label()
        self.model_kind.tooltip = recommendation()
        self.device = ComboBox(choices=_choices.device_choices(), label="device")
        self.budget = SpinBox(min=1, max=1_000_000, value=5)
        self.unit = ComboBox(choices=["minutes", "iterations"], value="minutes")
        self.lr = FloatSpinBox(min=1e-5, max=1.0, step=1e-4, value=TrainConfig().lr, label="learning rate")
        self.crop = SpinBox(min=32, max=2048, step=16, value=DataConfig().crop_size, label="crop size",
                            tooltip="side of the square training crops in pixels (a multiple of 16)")
        self.batch = SpinBox(min=1, max=256, value=CROP_BATCH, label="batch size")
        self.target = ComboBox(choices=_choices.target_choices(), label="labels are",
                               tooltip="cells: each label value is one cell; classes: each label value is a "
                                       "class, 1 = background, 0 = unpainted and ignored")
        self.loss = ComboBox(choices=lambda _w: _choices.loss_choices(default_loss(self.model.value)), label="loss")
        self.sampling = ComboBox(choices=_choices.sampling_choices(), label="crop sampling")
        self.optimizer = ComboBox(choices=_choices.optimizer_choices(), label="optimizer")
        self.start_from = ComboBox(
            choices=lambda _w: start_choices(self.model.value, self.target.value), value=DEFAULT_INIT,
            label="start from",
            tooltip="what the weights start from: the built-in weights (learnt from synthetic cells; "
                    "fine-tuned on your frames they reach good results sooner), the current model, a "
                    f"model file, or random weights (default: {DEFAULT_INIT})")
        self.start_file = FileEdit(mode="r", filter="*.pt", label="start file",
                                   tooltip="the model file to continue training from")
        self.start_note = text_label()
        self.current = text_label()
        self.validation = ComboBox(choices=self._validation_choices, label="validation frame",
                                   tooltip="a completely annotated frame left out of training; its SEG "
                                           "score is reported at every checkpoint")
        self.model_file = FileEdit(mode="w", filter="*.pt", label="model file")
        self.preview = CheckBox(value=True, text="live preview (frame on screen)",
                                tooltip="at every checkpoint, segment the frame on screen into one "
                                        "preview layer")
        self.train_button = PushButton(text="Train")
        self.stop_button = PushButton(text="Stop", tooltip="stop after the current step; the weights are kept")
        self.reason = text_label()
        self.progress = ProgressBar(min=0, max=1000, value=0)
        self.status = text_label("idle")
        self.validation_text = text_label()
        self.extend([
            self.image, self.annotations, self.model, self.model_kind, self.device,
            row(self.budget, self.unit, label="budget"), self.lr, self.crop, self.batch,
            self.target, self.loss, self.sampling, self.optimizer, self.start_from, self.start_file,
            self.start_note, self.current,
            self.validation, self.model_file, self.preview,
            row(self.train_button, self.stop_button), self.reason, self.progress, self.status,
            self.validation_text,
        ])
        for label in (self.model_kind, self.start_note, self.current, self.reason, self.status,
                      self.validation_text):
            label.label = ""
        self.reason.native.setStyleSheet("color: #e8a33d")
        self.plot = LossPlot()
        self.native.layout().addWidget(self.plot)  # magicgui has no plot: the one embedded Qt widget
        compact(self)

    def _connect(self) -> None:
        self.image.changed.connect(self._on_image_changed)
        self.annotations.changed.connect(self._on_annotations_changed)
        self.model.changed.connect(self._on_model_changed)
        self.start_from.changed.connect(self._on_start_changed)
        self.start_file.changed.connect(self._on_start_changed)
        self.target.changed.connect(self._on_start_options)
        self.model_file.changed.connect(self._on_file_edited)
        self.preview.changed.connect(self._send_preview_frame)
        self.train_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.changed.connect(self.validate)
        self.run.state_changed.connect(self._on_run_state)
        self.run.event.connect(self._on_event)
        self._paint_debounce = Debounced(self._on_painted, 300, self.native)
        for emitter, slot in ((self.viewer.layers.events.inserted, self._on_layer_inserted),
                              (self.viewer.layers.events.removed, self.validate),
                              (self.viewer.dims.events.current_step, self._send_preview_frame),
                              (self.state.events.model_path, self._on_model_path)):
            connect_while_alive(emitter, slot, self.native)
        on_close(self.native, self.run.shutdown)  # the controller, not the (dying) widget

    def reset_choices(self, *args) -> None:
        """Follow the layer list (napari calls this on layer events): new choices, new checks.

        A combo box whose value changes through new choices emits no ``changed``: follow it here.
        """
        super().reset_choices(*args)
        if self.image.value is not self._seen_image:
            self._on_image_changed()
        if self.annotations.value is not self._watched:
            self._on_annotations_changed()
        self.validate()

    # ------------------------------------------------------------------ the form
    def _annotated_of(self, layer, fresh: bool = False) -> tuple[int, ...]:
        key = id(layer)
        if fresh or key not in self._annotated:
            self._annotated[key] = _layers.facts(layer, labels=True).annotated
        return self._annotated[key]

    def form(self, fresh: bool = False) -> TrainForm:
        """The widget's values as a :class:`TrainForm` (``fresh``: re-read the annotated frames)."""
        labels = self.annotations.value
        labels_facts = None
        if labels is not None:
            base = _layers.facts(labels)
            labels_facts = replace(base, annotated=self._annotated_of(labels, fresh),
                                   partial=_layers.partial_frames(labels),
                                   background=_layers.background_label(labels))
        return TrainForm(
            image=_layers.facts(self.image.value), annotations=labels_facts,
            model=self.model.value, device=self.device.value, budget=self.budget.value,
            unit=self.unit.value, lr=self.lr.value, crop=self.crop.value, batch=self.batch.value,
            target=self.target.value, loss=self.loss.value, sampling=self.sampling.value,
            optimizer=self.optimizer.value, start=self.start_from.value,
            current_model=self.state.model_path, start_file=str(self.start_file.value or ""),
            validation=self.validation.value,
            model_file=str(self.model_file.value or ""), preview=self.preview.value,
        )

    def validate(self, *_args) -> str | None:
        """Check the form; enable Train or show why it is off. Returns the problem (None: ok)."""
        problem = None if self.run.state.busy else self.form().problem()
        self.reason.value = problem or ""
        self.reason.visible = bool(problem)
        self._update_enabled(problem)
        return problem

    def _update_enabled(self, problem: str | None) -> None:
        """The run state drives the buttons; inputs are locked while a run is busy."""
        state = self.run.state
        busy = state.busy
        self.train_button.enabled = not busy and problem is None
        self.stop_button.enabled = state is RunState.RUNNING
        continuing = self.start_from.value in ("current", "file")  # the model file decides the network
        for w in (self.image, self.annotations, self.device, self.budget, self.unit, self.lr, self.crop,
                  self.batch, self.target, self.loss, self.sampling, self.optimizer, self.start_from,
                  self.start_file, self.validation, self.model_file):
            w.enabled = not busy
        self.model.enabled = not busy and not continuing

    def _validation_choices(self, _widget=None) -> list[tuple[str, int | None]]:
        labels = self.annotations.value if hasattr(self, "annotations") else None
        frames = self._annotated_of(labels) if labels is not None else ()
        return [("none", None), *((f"frame {t}", t) for t in frames)]

    # ------------------------------------------------------------------ reactions
    def _on_image_changed(self, *_args) -> None:
        """Follow the data: default model, crop size, model file of the image."""
        layer = self.image.value
        self._seen_image = layer
        if layer is not None:
            self.model.value = default_model_for(layer.ndim, list(self.model.choices))
            side = min(layer.data.shape[-2:])
            self.crop.value = max(32, min(DataConfig().crop_size, (side // 16) * 16))
            if self._file_auto:
                self._set_file(default_model_file(layer.name, _layers.source_path(layer)))
        self._on_model_changed()

    def _on_annotations_changed(self, *_args) -> None:
        """Watch the chosen annotation layer for painting (debounced re-check)."""
        layer = self.annotations.value
        if self._watched is not None:
            for name in ("data", "paint", "set_data"):
                emitter = getattr(self._watched.events, name, None)
                if emitter is not None:
                    emitter.disconnect(self._paint_debounce)
        self._watched = layer
        if layer is not None:
            for name in ("data", "paint", "set_data"):
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    connect_while_alive(emitter, self._paint_debounce, self.native)
        self._on_painted()

    def _on_painted(self) -> None:
        layer = self.annotations.value
        if layer is not None:
            self._annotated_of(layer, fresh=True)
        renew_choices(self.validation)
        self.validate()

    def _on_layer_inserted(self, event) -> None:
        """A new annotation layer (made by the Annotate widget) becomes the one to train on."""
        layer = getattr(event, "value", None)
        if (isinstance(layer, napari.layers.Labels) and _layers.PARTIAL_KEY in layer.metadata
                and not self.run.state.busy):
            self.annotations.reset_choices()
            self.annotations.value = layer
        self.validate()

    def _on_model_changed(self, *_args) -> None:
        """Say what kind of input the chosen model expects; its default batch and loss."""
        name = self.model.value
        temporal = model_info(name).input_kind == "time-lapse"
        kind = "learns from time-lapse sequences" if temporal else "learns from single frames"
        layer = self.image.value
        if layer is not None and name == default_model_for(layer.ndim, list(self.model.choices)):
            kind += " (recommended for this data: see the tooltip)"
        self.model_kind.value = kind
        self.batch.value = SEQUENCE_BATCH if temporal else CROP_BATCH
        self.batch.tooltip = "sequences per step" if temporal else "crops per step"
        renew_choices(self.loss)  # the first entry names this model's paper loss
        self._on_start_options()

    # ------------------------------------------------------------------ start from
    def _default_start(self) -> str:
        """DEFAULT_INIT, or random weights where it is "builtin" and none fits."""
        if DEFAULT_INIT == RANDOM or builtin_for(self.model.value, self.target.value) is not None:
            return DEFAULT_INIT
        return RANDOM

    def _on_start_options(self, *_args) -> None:
        """A new network or target: the built-in entry names its built-in. Where none fits, a
        "built-in" start falls back to random weights (and comes back when one fits again)."""
        if not hasattr(self, "start_from"):
            return
        renew_choices(self.start_from)
        fits = builtin_for(self.model.value, self.target.value) is not None
        if self.start_from.value == "builtin" and not fits:
            self._set_start(RANDOM)
            self._start_fell_back = True
        elif self.start_from.value == RANDOM and fits and self._start_fell_back:
            self._set_start("builtin")
            self._start_fell_back = False
        note = ""
        if self._start_fell_back:
            note = f"no built-in weights for {self.model.value} / {self.target.value}: starting from random weights"
        self.start_note.value = note
        self.start_note.visible = bool(note)

    def _set_start(self, value: str) -> None:
        """Change "start from" for the user (not a choice of theirs)."""
        self._setting_start = True
        try:
            self.start_from.value = value
        finally:
            self._setting_start = False

    def _on_start_changed(self, *_args) -> None:
        """Continuing trains the model file's network: show it in the model box."""
        start = self.start_from.value
        if not self._setting_start:  # the user chose: no fallback note any more
            self._start_fell_back = False
            self.start_note.value = ""
            self.start_note.visible = False
        self.start_file.visible = start == "file"
        net = None
        if start == "current":
            net = self._current_net
        elif start == "file" and self.start_file.value and Path(str(self.start_file.value)).is_file():
            try:
                net = read_model(self.start_file.value).model_config.name
            except CellseqError as err:
                self.start_note.value = f"start file: {err}"
                self.start_note.visible = True
        if net and net in self.model.choices:
            self.model.value = net
        self.validate()

    def _on_model_path(self, *_args) -> None:
        """Describe the current model (what "continue" would continue)."""
        path = self.state.model_path
        self._current_net = None
        text = "no current model"
        if path and not self.run.state.busy:
            try:
                ckpt = read_model(path)
                self._current_net = ckpt.model_config.name
                builtin = builtin_of_path(path)
                text = (f"current: the built-in {ckpt.model_config.name} weights ({builtin.name})" if builtin else
                        f"current: {ckpt.model_config.name}, {ckpt.training.get('iterations', '?')} "
                        f"iterations ({Path(path).name})")
            except CellseqError:
                text = f"current: {Path(path).name} (unreadable)"
        elif path:
            text = f"current: {Path(path).name} (being trained)"
        self.current.value = text
        self.current.tooltip = path or None
        if not path and self.start_from.value == "current":
            self._set_start(self._default_start())
        self.validate()

    def _set_file(self, path: Path) -> None:
        self._setting_file = True
        try:
            self.model_file.value = str(path)
        finally:
            self._setting_file = False

    def _on_file_edited(self, *_args) -> None:
        if not self._setting_file:
            self._file_auto = False

    def shown_frame(self) -> int:
        """The frame of the training image on screen."""
        layer = self._job_image or self.image.value
        return _layers.current_frame(self.viewer, layer) if layer is not None else 0

    def _send_preview_frame(self, *_args) -> None:
        if self.run.state.busy:
            self.run.set_preview_frame(self.shown_frame() if self.preview.value else None)

    # ------------------------------------------------------------------ run
    def job_kwargs(self) -> dict:
        """Snapshot of everything the worker needs (copies of the layer data, configs, paths)."""
        form = self.form(fresh=True)
        problem = form.problem()
        if problem:
            raise CellseqError(problem)
        # a lazy (dask, zarr) movie is read by training frame by frame, never loaded whole; of
        # the annotations only the painted frames are copied (and sent to the training process)
        image = _layers.image_snapshot(self.image.value, lazy=True)
        labels = _layers.labels_snapshot(self.annotations.value)
        return train_request(form, image, labels)

    def start(self, *_args) -> None:
        """Snapshot the inputs and start training in the worker (an existing model file gets a new name)."""
        if self.run.state.busy:
            return
        problem = self.validate()
        if problem:
            return
        asked = Path(str(self.model_file.value)).expanduser()
        target = free_name(asked)
        if target != asked:
            self._set_file(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)  # the per-user folder on first use
            kwargs = self.job_kwargs()
        except (CellseqError, OSError) as err:
            self.reason.value = str(err)
            self.reason.visible = True
            return
        self._done = None
        self._threshold_summary = ""
        self._last_status = 0.0
        self._job_image = self.image.value
        self.plot.clear()
        self.validation_text.value = ""
        self.progress.value = 0
        note = f" ({asked.name} exists: writing {target.name})" if target != asked else ""
        self.status.value = f"starting…{note}"
        self.state.training = True
        if self.preview.value:  # made now, so each checkpoint only updates it in place
            self._prepare_preview()
        self.run.start(train_job, kwargs, preview_frame=self.shown_frame() if self.preview.value else None)

    def _prepare_preview(self) -> None:
        """The preview layer of the training image, empty until the first checkpoint."""
        image = self._job_image
        shape = tuple(image.data.shape[-2:])
        layer = self.preview_layer
        if layer is not None and layer in self.viewer.layers and tuple(layer.data.shape[-2:]) == shape:
            return
        self.preview_layer = _layers.show_preview(self.viewer, image, self.shown_frame(),
                                                  np.zeros(shape, np.uint16), None)

    def stop(self, *_args) -> None:
        """Ask training to end after the current step (the weights are saved)."""
        if self.run.state is RunState.RUNNING:
            self.run.stop()
            self.status.value = "stopping after this step…"

    def _on_event(self, event) -> None:
        """Turn one training event into progress, plot points, preview and state."""
        if isinstance(event, Started):
            precision = f" in {event.precision}" if event.precision else ""
            self.status.value = f"training on {event.device}{precision}…"
        elif isinstance(event, Step):
            self.plot.add_loss(event.iteration, event.loss)  # (repaints are coalesced by Qt)
            now = time.perf_counter()
            if now - self._last_status < _STATUS_EVERY_S:
                return  # text and bar relayout the dock: a few times a second is enough
            self._last_status = now
            self.progress.value = int(1000 * event.fraction)
            if event.fraction > 0:
                eta = event.elapsed * (1.0 - event.fraction) / event.fraction
                text = (f"iteration {event.iteration}, loss {event.loss:.4f}, "
                        f"{format_seconds(event.elapsed)} elapsed, about {format_seconds(eta)} left")
                if self.run.state is RunState.STOPPING:
                    text = "stopping after this step… " + text
                self.status.value = text
        elif isinstance(event, CheckpointSaved):
            self.state.model_path = event.path
        elif isinstance(event, Validation):
            self._show_validation(event)
        elif isinstance(event, Preview):
            image = self._job_image
            if image is not None and image in self.viewer.layers:
                self.preview_layer = _layers.show_preview(self.viewer, image, event.frame, event.labels,
                                                          self.preview_layer)
        elif isinstance(event, ThresholdChosen):
            self._threshold_summary = event.choice.summary()
        elif isinstance(event, Done):
            self._done = event
            self.state.model_path = event.path

    def _show_validation(self, event: Validation) -> None:
        scores = event.scores
        if "mean_dice" in scores:  # a semantic (classes) model
            score = float(scores["mean_dice"])
            per_class = ", ".join(f"{d:.2f}" for d in scores.get("dice_per_class", []))
            text = f"validation mean Dice {score:.3f} (per class {per_class})"
        elif "seg" in scores:
            score = float(scores["seg"])
            text = f"validation SEG {score:.3f}, AP50 {scores.get('ap50', math.nan):.3f}"
        else:
            return
        self.plot.add_validation(event.iteration, score)
        self.validation_text.value = f"{text} at iteration {event.iteration}"

    def _on_run_state(self, state: RunState) -> None:
        """Back to rest: done (with a model) or failed; the model file moves on to a free name."""
        if state is RunState.FAILED:
            self.status.value = f"failed: {self.run.error}"
        elif state is RunState.DONE and self._done is not None:
            done = self._done
            self.progress.value = 1000
            why = {"stopped": "stopped", "time": "time budget used",
                   "iterations": "all iterations done"}.get(done.reason, done.reason)
            text = (f"{why}: {done.iteration} iterations in {format_seconds(done.elapsed)}; "
                    f"saved {Path(done.path).name}")
            self.status.value = text
            self.status.tooltip = done.path
            chosen = self._threshold_summary
            if chosen:
                shown = self.validation_text.value
                self.validation_text.value = f"{shown}\n{chosen}" if shown else chosen
            show_info(f"{text} ({done.path})" + (f"\n{chosen}" if chosen else ""))
        if not state.busy:
            self.state.training = False
            self._job_image = None
            current = Path(str(self.model_file.value)).expanduser()
            if current.exists():  # the next run must not replace this model
                self._set_file(free_name(current))
            self._on_model_path()
        self.validate()

    def shutdown(self) -> None:
        """Stop a running worker and wait for it (napari is closing)."""
        self.run.shutdown()
