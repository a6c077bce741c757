"""Segment dock widget: apply the current model to an image; results go to a new Labels layer.

The result layer (``"<image> (segmentation)"``, numbered if that name exists) is created when
the run starts and filled frame by frame as the worker delivers
:class:`~napari_cellseq.core.pipeline.FrameLabels`; the user's layers are never overwritten.
"""

from __future__ import annotations

from pathlib import Path
import logging
from typing import TYPE_CHECKING

import napari.layers
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.checkpoint import load_checkpoint
from ..core.device import available_devices
from ..core.errors import CellseqError
from ..core.events import Done, Started
from ..core.io import parse_frames
from ..core.pipeline import FrameLabels
from . import _layers
from ._jobs import segment_job
from ._state import session_state
from ._widgets import LayerPicker, connect_while_alive, reset_progress
from ._workers import Job

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

__all__ = ["SegmentWidget", "FRAME_CHOICES", "OUTPUT_CHOICES"]

FRAME_CHOICES = ("all frames", "current frame", "frames…")
#: Output combo entries and the ``output`` they ask of the core (None: the model's kind).
OUTPUT_CHOICES = {"model's kind": None, "cells (instances)": "instances",
                  "class map (1 = background)": "classes"}


class SegmentWidget(QWidget):
    """Dock widget that segments an image layer with the session's current model.

    Parameters
    ----------
    viewer : the napari viewer; the model comes from the session state (set by the Train
        widget, or by "Load model…" here or in Export).
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.state = session_state(viewer)
        self.job: Job | None = None
        self.output_layer: napari.layers.Labels | None = None
        self._error: BaseException | None = None
        self._stopping = False
        self._frames_done = 0
        self._build()
        self._connect()
        self._on_model_path()
        self._update_buttons()

    def _build(self) -> None:
        self.image_picker = LayerPicker(self.viewer, napari.layers.Image, self)
        self.model_label = QLabel(self)
        self.model_label.setWordWrap(True)
        self.load_button = QPushButton("Load model…", self)
        self.frames_combo = QComboBox(self)
        self.frames_combo.addItems(FRAME_CHOICES)
        self.range_edit = QLineEdit(self)
        self.range_edit.setPlaceholderText("e.g. 0-9, 15")
        self.device_combo = QComboBox(self)
        self.device_combo.addItems(available_devices())
        self.output_combo = QComboBox(self)
        self.output_combo.addItems(list(OUTPUT_CHOICES))
        self.output_combo.setToolTip("cells: one label per cell; class map: the painted class values "
                                     "(models trained on classes give a class map by default)")
        self.run_button = QPushButton("Segment", self)
        self.stop_button = QPushButton("Stop", self)
        self.progress = QProgressBar(self)
        reset_progress(self.progress, 1)
        self.status = QLabel("idle", self)
        self.status.setWordWrap(True)

        model = QHBoxLayout()
        model.addWidget(self.model_label, 1)
        model.addWidget(self.load_button)
        frames = QHBoxLayout()
        frames.addWidget(self.frames_combo)
        frames.addWidget(self.range_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        form = QFormLayout()
        form.addRow("image", self.image_picker)
        form.addRow("model", model)
        form.addRow("frames", frames)
        form.addRow("device", self.device_combo)
        form.addRow("output", self.output_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.load_button.clicked.connect(self._choose_model)
        self.run_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.frames_combo.currentTextChanged.connect(self._update_buttons)
        self.image_picker.currentIndexChanged.connect(self._update_buttons)
        connect_while_alive(self.state.events.model_path, self._on_model_path, self)
        connect_while_alive(self.state.events.segmenting, self._update_buttons, self)

    # ------------------------------------------------------------------ model
    def _on_model_path(self, *_args) -> None:
        path = self.state.model_path
        self.model_label.setText(Path(path).name if path else "none: train one or load a file")
        self.model_label.setToolTip(path or "")
        self._update_buttons()

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "napari-cellseq model (*.pt);;all files (*)")
        if path:
            self.load_model(path)

    def load_model(self, path: str) -> bool:
        """Check ``path`` is a readable model file and make it the session's current model."""
        try:
            load_checkpoint(path)
        except CellseqError as err:
            show_error(str(err))
            return False
        self.state.model_path = str(path)
        return True

    # ------------------------------------------------------------------ run
    def selected_frames(self, layer: napari.layers.Image) -> list[int] | None:
        """Frames to segment from the frame choice (None = all); raises CellseqError."""
        n = layer.data.shape[0] if layer.ndim == 3 else 1
        choice = self.frames_combo.currentText()
        if choice == "current frame":
            return [_layers.current_frame(self.viewer, layer)]
        if choice == "frames…":
            return parse_frames(self.range_edit.text(), n)
        return None

    def start(self) -> None:
        """Snapshot the image, add the output layer and segment in the worker.

        A numpy image is copied; lazy data (dask, zarr, as napari gives for movies larger than
        memory) are handed over unread and the worker reads one frame at a time.
        """
        if self.state.segmenting:
            return
        image_layer = self.image_picker.layer()
        try:
            if image_layer is None:
                raise CellseqError("open an image to segment")
            if not self.state.model_path:
                raise CellseqError("there is no model yet: train one (Train widget) or load a model file")
            image = _layers.image_snapshot(image_layer, lazy=True)  # dask/zarr: read frame by frame
            frames = self.selected_frames(image_layer)
        except CellseqError as err:
            show_error(str(err))
            return
        self.output_layer = _layers.new_labels_layer(self.viewer, image_layer, "(segmentation)")
        self.output_layer.metadata["cellseq_model"] = self.state.model_path
        self._error = None
        self._stopping = False
        self._frames_done = 0
        total = len(frames) if frames is not None else (image.shape[0] if len(image.shape) == 3 else 1)
        reset_progress(self.progress, total)
        self.status.setText("loading the model…")
        self.job = Job(segment_job, dict(image=image, model_path=self.state.model_path,
                                         device=self.device_combo.currentText(), frames=frames,
                                         output=OUTPUT_CHOICES[self.output_combo.currentText()]),
                       parent=self)
        self.job.received.connect(self._on_event)
        self.job.failed.connect(self._on_failed)
        self.job.finished.connect(self._on_finished)
        self.state.segmenting = True
        self.job.start()

    def stop(self) -> None:
        """Stop after the current frame; finished frames stay in the layer."""
        if self.job is not None:
            self._stopping = True
            self.status.setText("stopping after this frame…")
            self.job.stop()
            self._update_buttons()

    def _on_event(self, event) -> None:
        if isinstance(event, Started):
            self.status.setText(f"segmenting {event.total} frame(s) on {event.device}…")
        elif isinstance(event, FrameLabels):
            layer = self.output_layer
            if layer is not None and layer in self.viewer.layers:
                _layers.put_frame(layer, event.index, event.labels)
            self._frames_done += 1
            self.progress.setValue(self._frames_done)
            if not self._stopping:
                self.status.setText(f"frame {event.index} done ({self._frames_done} of {event.total})")
        elif isinstance(event, Done):
            self.status.setText(
                f"{'stopped' if event.reason == 'stopped' else 'done'}: {event.iteration} frame(s) "
                f"in {event.elapsed:.1f} s into {self.output_layer.name!r}"
            )

    def _on_failed(self, error: BaseException, trace: str) -> None:
        self._error = error
        if not isinstance(error, CellseqError):  # unexpected: keep the traceback for bug reports
            logger.error("segmentation failed:\n%s", trace)
        if isinstance(error, CellseqError):
            show_error(f"segmentation failed: {error}")
        else:
            show_error(f"segmentation failed ({type(error).__name__}: {error})")

    def _on_finished(self) -> None:
        if self._error is not None:
            self.status.setText(f"failed: {self._error}")
        elif self.output_layer is not None:
            show_info(self.status.text())
        if self.job is not None:
            self.job.deleteLater()
        self.job = None
        self.state.segmenting = False

    def _update_buttons(self, *_args) -> None:
        busy = self.state.segmenting
        self.run_button.setEnabled(not busy and self.image_picker.layer() is not None
                                   and bool(self.state.model_path))
        self.stop_button.setEnabled(busy and not self._stopping)
        self.range_edit.setEnabled(self.frames_combo.currentText() == "frames…")
        for w in (self.image_picker, self.frames_combo, self.device_combo, self.output_combo,
                  self.load_button):
            w.setEnabled(not busy)

    def shutdown(self) -> None:
        """Stop a running worker and wait for it (napari is closing)."""
        if self.job is not None:
            self.job.shutdown()
            self.job = None
            self.state.segmenting = False
