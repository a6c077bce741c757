"""Annotate dock widget (magicgui): create the annotation layer, track annotated frames, reuse corrections.

Painting happens with napari's own Labels tools. This widget

* creates a Labels layer matching an image (same shape, uint16, ``"<image> annotations"``);
* lists the frames that carry labels (choose one to jump there);
* marks frames as *partly* annotated: there, unpainted pixels are ignored instead of being
  learnt as background, and background is painted with an explicit label value (65535 by
  default). Both are stored in the layer's metadata (``cellseq_partial_frames``,
  ``cellseq_background_label``), where the Train widget reads them;
* copies the current frame of a (corrected) segmentation layer into the annotations, so fixed
  predictions become training data for the next round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import napari.layers
import numpy as np
from magicgui.widgets import CheckBox, Container, PushButton, Select, SpinBox
from napari.utils.notifications import show_error, show_info

from . import _layers
from ._forms import AnnotateForm
from ._widgets import compact, renew_choices, Debounced, connect_while_alive, layer_choice, row, text_label

if TYPE_CHECKING:
    import napari

__all__ = ["AnnotateWidget"]

_HINT = ("Paint each cell with its own label. In a partly annotated frame, paint background with "
         "the background label; elsewhere unpainted pixels are background.")


class AnnotateWidget(Container):
    """Dock widget that prepares and tracks annotations for training.

    Parameters
    ----------
    viewer : the napari viewer.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self._watched = None
        self._syncing = False
        self._listed: list[int] = []
        self.image = layer_choice(napari.layers.Image, "image")
        self.create_button = PushButton(text="Create annotation layer",
                                        tooltip="add an empty uint16 Labels layer with the image's shape")
        self.annotations = layer_choice(napari.layers.Labels, "annotations")
        self.partial = CheckBox(value=False, text="current frame is partly annotated",
                                tooltip="unpainted pixels of this frame are ignored instead of learnt as "
                                        "background; paint background explicitly with the background label")
        self.background = SpinBox(min=1, max=65535, value=_layers.BACKGROUND_LABEL)
        self.background_button = PushButton(text="Paint background",
                                            tooltip="select the background label for painting")
        self.hint = text_label(_HINT)
        self._frame_items: list[tuple[str, int]] = []
        self.frames = Select(choices=lambda _w: self._frame_items, label="annotated frames",
                             tooltip="the frames with labels; choose one to show it")
        self.summary = text_label()
        self.refresh_button = PushButton(text="Refresh")
        self.segmentation = layer_choice(napari.layers.Labels, "segmentation",
                                         "the corrected segmentation layer")
        self.copy_button = PushButton(
            text="Use corrected frame as annotation",
            tooltip="copy the current frame of the segmentation layer into the annotation layer, "
                    "replacing that frame's annotation (the frame becomes completely annotated)")
        self.reason = text_label()
        self.extend([self.image, self.create_button, self.annotations, self.partial,
                     row(self.background, self.background_button, label="background label"),
                     self.hint, self.frames, row(self.summary, self.refresh_button),
                     self.segmentation, self.copy_button, self.reason])
        for label in (self.hint, self.summary, self.reason):
            label.label = ""
        self.frames.native.setMinimumHeight(90)
        self.reason.native.setStyleSheet("color: #e8a33d")
        compact(self)
        self._refresh_later = Debounced(self.refresh, 300, self.native)

        self.create_button.changed.connect(self.create_annotation_layer)
        self.annotations.changed.connect(self._on_labels_changed)
        self.partial.changed.connect(self._on_partial_toggled)
        self.background.changed.connect(self._on_background_changed)
        self.background_button.changed.connect(self.select_background_label)
        self.refresh_button.changed.connect(self.refresh)
        self.frames.changed.connect(self._on_frame_chosen)
        self.copy_button.changed.connect(self.copy_current_frame)
        self.image.changed.connect(self.validate)
        self.segmentation.changed.connect(self.validate)
        connect_while_alive(viewer.dims.events.current_step, self._sync_partial, self.native)
        connect_while_alive(viewer.layers.events.inserted, self._on_layer_inserted, self.native)
        self._on_labels_changed()

    def reset_choices(self, *args) -> None:
        """Follow the layer list (napari calls this on layer events)."""
        super().reset_choices(*args)
        if self.annotations.value is not self._watched:
            self._on_labels_changed()
        self.validate()

    # ------------------------------------------------------------------ form
    def form(self) -> AnnotateForm:
        return AnnotateForm(image=_layers.facts(self.image.value),
                            annotations=_layers.facts(self.annotations.value),
                            segmentation=_layers.facts(self.segmentation.value))

    def validate(self, *_args) -> None:
        """Enable the buttons that can work; say why copying cannot."""
        form = self.form()
        have_labels = self.annotations.value is not None
        self.create_button.enabled = form.create_problem() is None
        self.partial.enabled = have_labels
        self.background_button.enabled = have_labels
        problem = form.copy_problem()
        self.copy_button.enabled = problem is None
        self.reason.value = problem if have_labels and problem else ""
        self.reason.visible = bool(self.reason.value)

    # ------------------------------------------------------------------ actions
    def create_annotation_layer(self, *_args) -> napari.layers.Labels | None:
        """Add an empty annotation layer for the chosen image and select it."""
        problem = self.form().create_problem()
        if problem:
            show_error(problem)
            return None
        layer = _layers.new_labels_layer(
            self.viewer, self.image.value, "annotations",
            metadata={_layers.PARTIAL_KEY: [], _layers.BACKGROUND_KEY: self.background.value},
        )
        self.annotations.reset_choices()
        self.annotations.value = layer
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        return layer

    def select_background_label(self, *_args) -> None:
        """Make the background label the painting label of the annotation layer."""
        layer = self.annotations.value
        if layer is not None:
            layer.selected_label = self.background.value
            self.viewer.layers.selection.active = layer

    def copy_current_frame(self, *_args) -> int | None:
        """Replace the current frame of the annotations with that of the segmentation layer.

        Returns the frame copied, or None when the layers do not fit (an error is shown).
        """
        problem = self.form().copy_problem()
        if problem:
            show_error(problem)
            return None
        source, target = self.segmentation.value, self.annotations.value
        t = _layers.current_frame(self.viewer, target)
        frame = np.asarray(source.data if source.ndim == 2 else source.data[t])
        _layers.put_frame(target, t, frame)
        _layers.set_partial(target, t, False)
        target.events.data(value=target.data)  # others (Train) re-read the annotated frames
        self.refresh()
        n = len(np.unique(frame)) - (1 if (frame == 0).any() else 0)
        show_info(f"frame {t} of {source.name!r} ({n} cells) now annotates {target.name!r}")
        return t

    def refresh(self, *_args) -> None:
        """Re-list the annotated frames of the annotation layer."""
        self._refresh_later.timer.stop()
        layer = self.annotations.value
        self._syncing = True
        try:
            if layer is None:
                self._listed = []
                self._frame_items = []
                self.summary.value = "no annotation layer"
            else:
                partial = set(_layers.partial_frames(layer))
                counts = _layers.frame_summary(layer.data, _layers.background_label(layer))
                self._listed = list(counts)
                self._frame_items = [
                    (f"frame {t}: {n} cell{'s' if n != 1 else ''}" + (" (partial)" if t in partial else ""), t)
                    for t, n in counts.items()
                ]
                frames = layer.data.shape[0] if layer.ndim == 3 else 1
                self.summary.value = f"{len(counts)} of {frames} frame{'s' if frames != 1 else ''} annotated"
            renew_choices(self.frames)
        finally:
            self._syncing = False
        self._sync_partial()
        self.validate()

    def annotated_frames(self) -> list[int]:
        """The frames currently listed as annotated."""
        return list(self._listed)

    # ------------------------------------------------------------------ reactions
    def _on_labels_changed(self, *_args) -> None:
        """Watch the newly chosen annotation layer for painting and data changes."""
        layer = self.annotations.value
        if self._watched is not None:
            for name in ("data", "paint", "set_data"):
                emitter = getattr(self._watched.events, name, None)
                if emitter is not None:
                    emitter.disconnect(self._refresh_later)
        self._watched = layer
        if layer is not None:
            for name in ("data", "paint", "set_data"):
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    connect_while_alive(emitter, self._refresh_later, self.native)
            with self.background.changed.blocked():
                self.background.value = _layers.background_label(layer)
        self.refresh()

    def _on_layer_inserted(self, event) -> None:
        """A new segmentation layer becomes the default source of corrections."""
        layer = getattr(event, "value", None)
        if isinstance(layer, napari.layers.Labels) and "(segmentation)" in layer.name:
            self.segmentation.reset_choices()
            self.segmentation.value = layer

    def _on_frame_chosen(self, *_args) -> None:
        """Show the chosen frame."""
        layer = self.annotations.value
        if self._syncing or layer is None or layer.ndim != 3 or not self.frames.value:
            return
        t = int(self.frames.value[0])
        axis = self.viewer.dims.ndim - 3
        if tuple(layer.scale[:1]) == (1,) and tuple(layer.translate[:1]) == (0,):
            self.viewer.dims.set_current_step(axis, t)
        else:  # scaled or shifted time axis: go through world coordinates
            self.viewer.dims.set_point(axis, float(layer.data_to_world((t, 0, 0))[0]))

    def _on_partial_toggled(self, *_args) -> None:
        """Mark or unmark the current frame as partly annotated."""
        layer = self.annotations.value
        if layer is None or self._syncing:
            return
        _layers.set_partial(layer, _layers.current_frame(self.viewer, layer), self.partial.value)
        self.refresh()

    def _on_background_changed(self, *_args) -> None:
        layer = self.annotations.value
        if layer is not None:
            _layers.set_background_label(layer, self.background.value)

    def _sync_partial(self, *_args) -> None:
        """Show whether the frame on screen is marked partly annotated."""
        layer = self.annotations.value
        checked = layer is not None and _layers.current_frame(self.viewer, layer) in _layers.partial_frames(layer)
        with self.partial.changed.blocked():
            self.partial.value = checked
