"""Segment dock widget (magicgui): apply a model to an image; results go to a new Labels layer.

The model comes from a list of the model files napari-cellseq knows (the session's current
model, models written beside the image file or in the per-user data folder, newest first: so a
model trained before napari was closed is offered again; then the built-in weights, that of the
network recommended for the image first (``core.models.recommend``: the U-Net), so that a first
segmentation needs no training), or from "Load model…". The result
layer (``"<image> (segmentation)"``, numbered if that name exists) is created when the run
starts and filled frame by frame as the worker delivers
:class:`~napari_cellseq.core.pipeline.FrameLabels`; the user's layers are never overwritten.
Lazy (dask, zarr) images are handed to the worker unread and read one frame at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import napari.layers
from magicgui.widgets import ComboBox, Container, LineEdit, ProgressBar, PushButton
from napari.utils.notifications import show_error, show_info

from ..core.errors import CellseqError
from ..core.events import Done, Started
from ..core.pipeline import FrameLabels
from . import _choices, _layers
from ._forms import SegmentForm
from ._jobs import segment_job
from ._model_files import ask_model_file, builtin_choices, find_models, load_model_into
from ._run import RunController, RunState
from ._state import session_state
from ._widgets import compact, connect_while_alive, layer_choice, on_close, row, text_label

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

__all__ = ["SegmentWidget", "FRAME_CHOICES"]

#: Frame combo entries: (label, value of :attr:`SegmentForm.frames`).
FRAME_CHOICES = [("all frames", "all"), ("current frame", "current"), ("frames…", "range")]


class SegmentWidget(Container):
    """Dock widget that segments an image layer with a model file.

    Parameters
    ----------
    viewer : the napari viewer; the chosen model is the session's current model (shared with
        Train's "continue" and Export).
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.state = session_state(viewer)
        self.run = RunController("segmentation")
        self.output_layer: napari.layers.Labels | None = None
        self._frames_done = 0
        self._total = 0
        self._done: Done | None = None
        self._seen_image = None
        self._build()
        self._connect()
        self.refresh_models()

    def _build(self) -> None:
        self.image = layer_choice(napari.layers.Image, "image")
        self.model = ComboBox(choices=self._model_choices, label="model",
                              tooltip="the current model, the models napari-cellseq saved before, and the "
                                      "built-in weights (learnt from synthetic cells: segment before any "
                                      "training)")
        self.load_button = PushButton(text="Load model…")
        self.frames = ComboBox(choices=FRAME_CHOICES, value="all", label="frames")
        self.range_text = LineEdit(value="", tooltip="e.g. 0-9, 15")
        self.device = ComboBox(choices=_choices.device_choices(), label="device")
        self.output = ComboBox(choices=_choices.output_choices(), label="output",
                               tooltip="cells: one label per cell; class map: the painted class values "
                                       "(models trained on classes give a class map by default)")
        self.run_button = PushButton(text="Segment")
        self.stop_button = PushButton(text="Stop", tooltip="stop after the current frame; finished frames stay")
        self.reason = text_label()
        self.progress = ProgressBar(min=0, max=1, value=0)
        self.status = text_label("idle")
        self.extend([self.image, self.model, row(self.load_button), row(self.frames, self.range_text, label="frames"),
                     self.device, self.output, row(self.run_button, self.stop_button), self.reason,
                     self.progress, self.status])
        for label in (self.reason, self.status):
            label.label = ""
        self.reason.native.setStyleSheet("color: #e8a33d")
        compact(self)

    def _connect(self) -> None:
        self.load_button.changed.connect(self._choose_model)
        self.run_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.model.changed.connect(self._on_model_chosen)
        self.image.changed.connect(self.refresh_models)
        self.changed.connect(self.validate)
        self.run.state_changed.connect(self._on_run_state)
        self.run.event.connect(self._on_event)
        for emitter, slot in ((self.state.events.model_path, self.refresh_models),
                              (self.state.events.training, self.refresh_models)):
            connect_while_alive(emitter, slot, self.native)
        on_close(self.native, self.run.shutdown)

    def reset_choices(self, *args) -> None:
        """Follow the layer list (napari calls this on layer events): models of the new image too."""
        super().reset_choices(*args)
        self.refresh_models()

    # ------------------------------------------------------------------ model
    def _model_choices(self, _widget=None) -> list[tuple[str, str]]:
        """The session's model first, then the model files found for the image (newest first),
        then the built-ins (the one that fits the image first)."""
        image = self.image.value if hasattr(self, "image") else None
        builtins = builtin_choices(image.ndim if image is not None else 3)
        builtin_paths = {p for _, p in builtins}
        paths: list[str] = []
        if self.state.model_path and str(self.state.model_path) not in builtin_paths:
            paths.append(str(self.state.model_path))
        for p in find_models(_layers.source_path(image)):
            if str(p) not in paths:
                paths.append(str(p))
        return [*((Path(p).name, p) for p in paths), *builtins]

    def refresh_models(self, *_args) -> None:
        """Re-list the model files; the session's current model is chosen when there is one (a
        built-in one follows the image: a new image gets the first choice for it, e.g. the
        built-in that fits it)."""
        self.model.reset_choices()
        image = self.image.value
        new_image = image is not self._seen_image
        self._seen_image = image
        current = str(self.state.model_path) if self.state.model_path else None
        ordered = [p for _, p in self._model_choices()]  # (the combo box keeps its old order)
        if current and new_image and ordered and current in {p for _, p in builtin_choices(3)}:
            current = None  # a built-in was current: choose again for the new image
            self.model.value = ordered[0]
        if current and self.model.value != current:
            self.model.value = current
        elif not current and self.model.value:
            self._on_model_chosen()  # a model found on disk (e.g. trained before napari closed), or a built-in
        self.validate()

    def _on_model_chosen(self, *_args) -> None:
        path = self.model.value
        self.model.tooltip = path or None
        if path and path != self.state.model_path and not self.state.training:
            self.state.model_path = path

    def _choose_model(self, *_args) -> None:
        path = ask_model_file(self.native)
        if path:
            self.load_model(path)

    def load_model(self, path: str | Path) -> bool:
        """Make ``path`` the current model (see :func:`load_model_into`)."""
        return load_model_into(self.state, path)

    # ------------------------------------------------------------------ form
    def form(self) -> SegmentForm:
        layer = self.image.value
        return SegmentForm(
            image=_layers.facts(layer), model_file=self.model.value, frames=self.frames.value,
            range_text=self.range_text.value,
            current_frame=_layers.current_frame(self.viewer, layer) if layer is not None else 0,
            device=self.device.value, output=self.output.value,
        )

    def selected_frames(self) -> list[int] | None:
        """Frames to segment from the frame choice (None = all); raises CellseqError."""
        return self.form().selected_frames()

    def validate(self, *_args) -> str | None:
        """Enable Segment or show why it is off."""
        busy = self.run.state.busy
        problem = None if busy else self.form().problem()
        if not busy and self.state.training and self.model.value == self.state.model_path:
            problem = problem or "the current model is being trained: wait for it, or choose another model"
        self.reason.value = problem or ""
        self.reason.visible = bool(problem)
        self.run_button.enabled = not busy and problem is None
        self.stop_button.enabled = self.run.state is RunState.RUNNING
        self.range_text.enabled = self.frames.value == "range" and not busy
        for w in (self.image, self.model, self.frames, self.device, self.output, self.load_button):
            w.enabled = not busy
        return problem

    # ------------------------------------------------------------------ run
    def start(self, *_args) -> None:
        """Snapshot the image, add the output layer and segment in the worker."""
        if self.run.state.busy or self.validate():
            return
        form = self.form()
        layer = self.image.value
        try:
            image = _layers.image_snapshot(layer, lazy=True)  # dask/zarr: read frame by frame
            frames = form.selected_frames()
        except CellseqError as err:
            show_error(str(err))
            return
        self.output_layer = _layers.new_labels_layer(self.viewer, layer, "(segmentation)")
        self.output_layer.metadata["cellseq_model"] = form.model_file
        self._frames_done = 0
        self._done = None
        self._total = len(frames) if frames is not None else (image.shape[0] if len(image.shape) == 3 else 1)
        self.progress.max = max(self._total, 1)
        self.progress.value = 0
        self.status.value = "loading the model…"
        self.run.start(segment_job, dict(image=image, model_path=form.model_file, device=form.device,
                                         frames=frames, output=form.output))

    def stop(self, *_args) -> None:
        """Stop after the current frame; finished frames stay in the layer."""
        if self.run.state is RunState.RUNNING:
            self.run.stop()
            self.status.value = "stopping after this frame…"

    def _on_event(self, event) -> None:
        if isinstance(event, Started):
            self.status.value = f"segmenting {event.total} frame(s) on {event.device}…"
        elif isinstance(event, FrameLabels):
            layer = self.output_layer
            if layer is not None and layer in self.viewer.layers:
                _layers.put_frame(layer, event.index, event.labels)
            self._frames_done += 1
            self.progress.value = self._frames_done
            if self.run.state is RunState.RUNNING:
                self.status.value = f"frame {event.index} done ({self._frames_done} of {event.total})"
        elif isinstance(event, Done):
            self._done = event
            name = self.output_layer.name if self.output_layer is not None else "?"
            self.status.value = (f"{'stopped' if event.reason == 'stopped' else 'done'}: {event.iteration} "
                                 f"frame(s) in {event.elapsed:.1f} s into {name!r}")

    def _on_run_state(self, state: RunState) -> None:
        if state is RunState.FAILED:
            self.status.value = f"failed: {self.run.error}"
        elif state is RunState.DONE and self._done is not None:
            show_info(self.status.value)
        self.validate()
