"""Train dock widget: learn a U-LSTM / U-Net from the painted frames, in a background worker.

The inputs (image, annotations, their partly-annotated frames) are copied on the main thread
when Train is pressed; the worker (:mod:`._workers`) only sees those copies, so painting may go
on during training. Events come back as progress, ETA, a loss plot and validation SEG. Stop is
cooperative and keeps the weights; errors become napari notifications and the widget returns
to idle.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
import logging
from typing import TYPE_CHECKING

import napari.layers
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.checkpoint import load_checkpoint
from ..core.config import DataConfig, TrainConfig
from ..core.device import available_devices
from ..core.errors import CellseqError
from ..core.events import CheckpointSaved, Done, Started, Step, Validation
from ..core.losses import LOSSES, default_loss
from ..core.models import available_models, default_model_config, model_info
from ..core.training import CROP_BATCH, SEQUENCE_BATCH
from . import _layers
from ._jobs import train_job
from ._plot import LossPlot
from ._state import TrainState, session_state
from ._widgets import LayerPicker, connect_while_alive, format_seconds, reset_progress
from ._workers import Job, default_mode

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

__all__ = ["TrainWidget", "default_model_for", "TARGET_CHOICES", "PAPER_LOSS"]

#: Target combo entries: what the painted label values mean.
TARGET_CHOICES = {"cells (each label one cell)": "3class",
                  "classes (label 1 = background, 2, 3, …)": "classes"}
#: First loss combo entry: the loss of the model's paper.
PAPER_LOSS = "model's paper"


def default_model_for(ndim: int, models: list[str]) -> str:
    """The model that fits the data: U-LSTM for a (T, Y, X) movie, U-Net for one (Y, X) image."""
    if ndim == 3 and "ulstm" in models:
        return "ulstm"
    if "unet" in models:
        return "unet"
    return models[0]


class TrainWidget(QWidget):
    """Dock widget that trains a model on an image layer and its annotation layer.

    Parameters
    ----------
    viewer : the napari viewer; the trained model becomes the session's current model
        (:func:`~napari_cellseq.gui._state.session_state`), used by Segment and Export.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.state = session_state(viewer)
        self.job: Job | None = None
        self._error: BaseException | None = None
        self._done: Done | None = None
        self._started_iterations = 0
        self._default_path = str(Path(tempfile.mkdtemp(prefix="napari-cellseq-")) / "model.pt")
        self._build()
        self._connect()
        self._on_image_changed()
        self._on_model_path()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.image_picker = LayerPicker(self.viewer, napari.layers.Image, self)
        self.labels_picker = LayerPicker(self.viewer, napari.layers.Labels, self)
        self.model_combo = QComboBox(self)
        self.model_combo.addItems(available_models())
        self.model_kind = QLabel(self)
        self.device_combo = QComboBox(self)
        self.device_combo.addItems(available_devices())
        self.budget_spin = QSpinBox(self)
        self.budget_spin.setRange(1, 1_000_000)
        self.budget_spin.setValue(5)
        self.budget_unit = QComboBox(self)
        self.budget_unit.addItems(["minutes", "iterations"])
        budget = QHBoxLayout()
        budget.addWidget(self.budget_spin)
        budget.addWidget(self.budget_unit)
        self.lr_spin = QDoubleSpinBox(self)
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(1e-5, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(TrainConfig().lr)
        self.crop_spin = QSpinBox(self)
        self.crop_spin.setRange(32, 2048)
        self.crop_spin.setSingleStep(16)
        self.crop_spin.setValue(DataConfig().crop_size)
        self.crop_spin.setToolTip("side of the square training crops in pixels (a multiple of 16)")
        self.batch_spin = QSpinBox(self)
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setValue(CROP_BATCH)
        self.target_combo = QComboBox(self)
        self.target_combo.addItems(list(TARGET_CHOICES))
        self.target_combo.setToolTip(
            "cells: each label value is one cell (instance segmentation); classes: each label value "
            "is a class (semantic segmentation), 1 = background, 0 = unpainted and ignored")
        self.loss_combo = QComboBox(self)
        self.loss_combo.addItems([PAPER_LOSS, *LOSSES])
        self.sampling_combo = QComboBox(self)
        self.sampling_combo.addItems(["uniform", "balanced"])
        self.sampling_combo.setToolTip("balanced: every class is equally likely at the centre of a "
                                       "training crop (helps rare classes)")
        self.fresh_radio = QRadioButton("start fresh", self)
        self.continue_radio = QRadioButton("continue from current model", self)
        self.fresh_radio.setChecked(True)
        self._start_group = QButtonGroup(self)
        self._start_group.addButton(self.fresh_radio)
        self._start_group.addButton(self.continue_radio)
        start = QHBoxLayout()
        start.addWidget(self.fresh_radio)
        start.addWidget(self.continue_radio)
        self.current_label = QLabel(self)
        self._current_model_name: str | None = None

        self.validation_spin = QSpinBox(self)
        self.validation_spin.setRange(-1, 0)
        self.validation_spin.setValue(-1)
        self.validation_spin.setSpecialValueText("none")
        self.validation_spin.setToolTip(
            "a completely annotated frame left out of training; its SEG score is reported at "
            "every checkpoint"
        )
        self.path_edit = QLineEdit(self._default_path, self)
        self.path_button = QPushButton("…", self)
        self.path_button.setMaximumWidth(30)
        path = QHBoxLayout()
        path.addWidget(self.path_edit)
        path.addWidget(self.path_button)
        self.train_button = QPushButton("Train", self)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("stop after the current step; the weights are kept")
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.stop_button)
        self.progress = QProgressBar(self)
        reset_progress(self.progress)
        self.status = QLabel("idle", self)
        self.status.setWordWrap(True)
        self.validation_label = QLabel("", self)
        self.plot = LossPlot(self)

        form = QFormLayout()
        form.addRow("image", self.image_picker)
        form.addRow("annotations", self.labels_picker)
        form.addRow("model", self.model_combo)
        form.addRow("", self.model_kind)
        form.addRow("device", self.device_combo)
        form.addRow("budget", budget)
        form.addRow("learning rate", self.lr_spin)
        form.addRow("crop size", self.crop_spin)
        form.addRow("batch size", self.batch_spin)
        form.addRow("labels are", self.target_combo)
        form.addRow("loss", self.loss_combo)
        form.addRow("crop sampling", self.sampling_combo)
        form.addRow("weights", start)
        form.addRow("", self.current_label)
        form.addRow("validation frame", self.validation_spin)
        form.addRow("model file", path)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.validation_label)
        layout.addWidget(self.plot)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.image_picker.currentIndexChanged.connect(self._on_image_changed)
        self.model_combo.currentTextChanged.connect(self._on_model_changed)
        self.continue_radio.toggled.connect(self._on_continue_toggled)
        self.path_button.clicked.connect(self._choose_path)
        self.train_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.labels_picker.currentIndexChanged.connect(self._update_buttons)
        connect_while_alive(self.viewer.layers.events.inserted, self._on_layer_inserted, self)
        connect_while_alive(self.state.events.train_state, self._update_buttons, self)
        connect_while_alive(self.state.events.model_path, self._on_model_path, self)

    # ------------------------------------------------------------------ reactions
    def _on_image_changed(self, *_args) -> None:
        """Follow the data: default model, crop size and validation-frame range of the image."""
        layer = self.image_picker.layer()
        if layer is None:
            self._update_buttons()
            return
        models = available_models()
        self.model_combo.setCurrentText(default_model_for(layer.ndim, models))
        side = min(layer.data.shape[-2:])
        self.crop_spin.setValue(max(32, min(160, (side // 16) * 16)))
        frames = layer.data.shape[0] if layer.ndim == 3 else 1
        self.validation_spin.setRange(-1, frames - 1)
        self._on_model_changed(self.model_combo.currentText())
        self._update_buttons()

    def _on_model_path(self, *_args) -> None:
        """Describe the current model (what "continue" would continue)."""
        path = self.state.model_path
        text = "no current model"
        self._current_model_name = None
        if path and not self.state.train_state.busy:
            try:
                ckpt = load_checkpoint(path)
                self._current_model_name = ckpt.model_config.name
                text = (f"current: {ckpt.model_config.name}, "
                        f"{ckpt.training.get('iterations', '?')} iterations ({Path(path).name})")
            except CellseqError:
                text = f"current: {Path(path).name} (unreadable)"
        elif path:
            text = f"current: {Path(path).name} (being trained)"
        self.current_label.setText(text)
        self.current_label.setToolTip(path or "")
        self._on_continue_toggled(self.continue_radio.isChecked())

    def _on_continue_toggled(self, checked: bool) -> None:
        """Continuing trains the current model's network: show it in the model box."""
        if checked and self._current_model_name:
            self.model_combo.setCurrentText(self._current_model_name)
        self._update_buttons()

    def _on_layer_inserted(self, event) -> None:
        """A new annotation layer (made by the Annotate widget) becomes the one to train on."""
        layer = getattr(event, "value", None)
        if (isinstance(layer, napari.layers.Labels) and _layers.PARTIAL_KEY in layer.metadata
                and not self.state.train_state.busy):
            self.labels_picker.set_layer(layer)

    def _on_model_changed(self, name: str) -> None:
        """Say what kind of input the chosen model expects."""
        if not name:
            return
        temporal = model_info(name).input_kind == "time-lapse"
        self.model_kind.setText(
            "learns from time-lapse sequences" if temporal else "learns from single frames"
        )
        self.batch_spin.setValue(SEQUENCE_BATCH if temporal else CROP_BATCH)
        self.batch_spin.setToolTip("sequences per step" if temporal else "crops per step")
        self.loss_combo.setItemText(0, f"{PAPER_LOSS} ({default_loss(name)})")

    def _choose_path(self) -> None:
        """Pick where the model file is written."""
        path, _ = QFileDialog.getSaveFileName(self, "Model file", self.path_edit.text(),
                                              "napari-cellseq model (*.pt)")
        if path:
            self.path_edit.setText(path)

    def _update_buttons(self, *_args) -> None:
        """Enable controls from the training state (the state enum drives the buttons)."""
        busy = self.state.train_state.busy
        have_inputs = self.image_picker.layer() is not None and self.labels_picker.layer() is not None
        have_model = bool(self.state.model_path)
        if not have_model and self.continue_radio.isChecked():
            self.fresh_radio.setChecked(True)
        self.train_button.setEnabled(not busy and have_inputs)
        self.stop_button.setEnabled(self.state.train_state is TrainState.TRAINING)
        self.continue_radio.setEnabled(not busy and have_model)
        self.model_combo.setEnabled(not busy and not self.continue_radio.isChecked())
        for w in (self.image_picker, self.labels_picker, self.device_combo, self.budget_spin,
                  self.budget_unit, self.lr_spin, self.crop_spin, self.batch_spin,
                  self.target_combo, self.loss_combo, self.sampling_combo, self.fresh_radio, self.validation_spin, self.path_edit, self.path_button):
            w.setEnabled(not busy)

    # ------------------------------------------------------------------ run
    def job_kwargs(self) -> dict:
        """Snapshot of everything the worker needs (copies of the layer data, configs, paths).

        Raises CellseqError for inputs that cannot work (shown as a notification by :meth:`start`).
        """
        image_layer, labels_layer = self.image_picker.layer(), self.labels_picker.layer()
        if image_layer is None or labels_layer is None:
            raise CellseqError("choose an image layer and its annotation layer (Annotate widget)")
        image = _layers.image_snapshot(image_layer)
        labels = _layers.snapshot(labels_layer)
        if labels.shape != image.shape:
            raise CellseqError(
                f"annotations {labels_layer.name!r} have shape {labels.shape} but the image "
                f"{image_layer.name!r} {image.shape}: paint on a layer created from this image "
                "with the Annotate widget"
            )
        value = self.budget_spin.value()
        if self.budget_unit.currentText() == "minutes":
            budget = dict(iterations=None, max_time=60.0 * value)
        else:
            budget = dict(iterations=value, max_time=None)
        loss = self.loss_combo.currentText() if self.loss_combo.currentIndex() > 0 else None
        train_config = TrainConfig(batch_size=self.batch_spin.value(), lr=self.lr_spin.value(),
                                   device=self.device_combo.currentText(), loss=loss, **budget)
        init = None
        model_config = default_model_config(self.model_combo.currentText())
        if self.continue_radio.isChecked():
            init = self.state.model_path
            if not init or not Path(init).is_file():
                raise CellseqError("there is no current model to continue from: train one first "
                                   "or load a model file in the Export widget")
            model_config = None  # the model file decides
        out_path = self.path_edit.text().strip()
        if not out_path:
            raise CellseqError("give a model file path to write the trained model to")
        validation = self.validation_spin.value()
        return dict(
            image=image,
            labels=labels,
            out_path=out_path,
            model_config=model_config,
            data_config=DataConfig(crop_size=self.crop_spin.value(),
                                   target=TARGET_CHOICES[self.target_combo.currentText()],
                                   sampling=self.sampling_combo.currentText()),
            train_config=train_config,
            init=init,
            partial_frames=_layers.partial_frames(labels_layer),
            background_label=_layers.background_label(labels_layer),
            validation_frame=None if validation < 0 else validation,
        )

    def start(self) -> None:
        """Snapshot the inputs and start training in the worker."""
        if self.state.train_state.busy:
            return
        try:
            kwargs = self.job_kwargs()
        except (CellseqError, OSError) as err:
            show_error(str(err))
            return
        self._error = None
        self._done = None
        self.plot.clear()
        self.validation_label.setText("")
        reset_progress(self.progress)
        self.status.setText("starting…")
        self.job = Job(train_job, kwargs, mode=default_mode("process"), parent=self)
        self.job.received.connect(self._on_event)
        self.job.failed.connect(self._on_failed)
        self.job.finished.connect(self._on_finished)
        self.state.train_state = TrainState.TRAINING
        self.job.start()

    def stop(self) -> None:
        """Ask training to end after the current step (the weights are saved)."""
        if self.job is not None and self.state.train_state is TrainState.TRAINING:
            self.state.train_state = TrainState.STOPPING
            self.status.setText("stopping after this step…")
            self.job.stop()

    def _on_event(self, event) -> None:
        """Turn one training event into progress, plot points and state."""
        if isinstance(event, Started):
            self.status.setText(f"training on {event.device}…")
        elif isinstance(event, Step):
            self.progress.setValue(int(1000 * event.fraction))
            self.plot.add_loss(event.iteration, event.loss)
            if event.fraction > 0:
                eta = event.elapsed * (1.0 - event.fraction) / event.fraction
                text = (f"iteration {event.iteration}, loss {event.loss:.4f}, "
                        f"{format_seconds(event.elapsed)} elapsed, about {format_seconds(eta)} left")
                if self.state.train_state is TrainState.STOPPING:
                    text = "stopping after this step… " + text
                self.status.setText(text)
        elif isinstance(event, CheckpointSaved):
            self.state.model_path = event.path
        elif isinstance(event, Validation):
            if "mean_dice" in event.scores:  # a semantic (classes) model
                score = float(event.scores["mean_dice"])
                per_class = ", ".join(f"{d:.2f}" for d in event.scores.get("dice_per_class", []))
                text = f"validation mean Dice {score:.3f} (per class {per_class})"
            else:
                score = float(event.scores.get("seg", math.nan))
                text = f"validation SEG {score:.3f}, AP50 {event.scores.get('ap50', math.nan):.3f}"
            self.plot.add_validation(event.iteration, score)
            self.validation_label.setText(f"{text} at iteration {event.iteration}")
        elif isinstance(event, Done):
            self._done = event
            self.state.model_path = event.path

    def _on_failed(self, error: BaseException, trace: str) -> None:
        """Show the error as a notification (the message says what to do)."""
        self._error = error
        if not isinstance(error, CellseqError):  # unexpected: keep the traceback for bug reports
            logger.error("training failed:\n%s", trace)
        if isinstance(error, CellseqError):
            show_error(f"training failed: {error}")
        elif isinstance(error, MemoryError):
            show_error("training ran out of memory: use a smaller crop size or batch size")
        else:
            show_error(f"training failed ({type(error).__name__}: {error})")

    def _on_finished(self) -> None:
        """Back to a resting state: done (with a model) or failed."""
        if self._error is not None:
            self.state.train_state = TrainState.FAILED
            self.status.setText(f"failed: {self._error}")
        else:
            self.state.train_state = TrainState.DONE
            done = self._done
            if done is not None:
                self.progress.setValue(1000)
                why = {"stopped": "stopped", "time": "time budget used",
                       "iterations": "all iterations done"}.get(done.reason, done.reason)
                text = (f"{why}: {done.iteration} iterations in {format_seconds(done.elapsed)}; "
                        f"model saved to {done.path}")
                self.status.setText(text)
                show_info(text)
        if self.job is not None:
            self.job.deleteLater()
        self.job = None
        self._on_model_path()

    def shutdown(self) -> None:
        """Stop a running worker and wait for it (napari is closing)."""
        if self.job is not None:
            self.job.shutdown()
            self.job = None
            self.state.train_state = TrainState.IDLE
