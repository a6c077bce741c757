"""Annotate dock widget: create the annotation layer, track annotated frames, reuse corrections.

Painting happens with napari's own Labels tools. This widget

* creates a Labels layer matching an image (same shape, uint16, ``"<image> annotations"``);
* lists the frames that carry labels (click one to jump there);
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
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import _layers
from ._widgets import LayerPicker, connect_while_alive

if TYPE_CHECKING:
    import napari

__all__ = ["AnnotateWidget"]

_REFRESH_DELAY_MS = 300  # coalesce refreshes while the user paints


class AnnotateWidget(QWidget):
    """Dock widget that prepares and tracks annotations for training.

    Parameters
    ----------
    viewer : the napari viewer.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self._watched = None
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(_REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._build()
        self._connect()
        self._on_labels_changed()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.image_picker = LayerPicker(self.viewer, napari.layers.Image, self)
        self.create_button = QPushButton("Create annotation layer", self)
        self.create_button.setToolTip("add an empty uint16 Labels layer with the image's shape")
        self.labels_picker = LayerPicker(self.viewer, napari.layers.Labels, self)
        self.partial_check = QCheckBox("current frame is partly annotated", self)
        self.partial_check.setToolTip(
            "unpainted pixels of this frame are ignored instead of learnt as background; "
            "paint background explicitly with the background label"
        )
        self.background_spin = QSpinBox(self)
        self.background_spin.setRange(1, 65535)
        self.background_spin.setValue(_layers.BACKGROUND_LABEL)
        self.background_button = QPushButton("Paint background", self)
        self.background_button.setToolTip("select the background label for painting")
        background = QHBoxLayout()
        background.addWidget(self.background_spin)
        background.addWidget(self.background_button)
        self.frames_list = QListWidget(self)
        self.frames_list.setMinimumHeight(90)
        self.summary = QLabel("", self)
        self.refresh_button = QPushButton("Refresh", self)

        self.source_picker = LayerPicker(self.viewer, napari.layers.Labels, self)
        self.copy_button = QPushButton("Use corrected frame as annotation", self)
        self.copy_button.setToolTip(
            "copy the current frame of the segmentation layer into the annotation layer, "
            "replacing that frame's annotation (the frame becomes completely annotated)"
        )

        form = QFormLayout()
        form.addRow("image", self.image_picker)
        form.addRow("", self.create_button)
        form.addRow("annotations", self.labels_picker)
        form.addRow("", self.partial_check)
        form.addRow("background label", background)
        hint = QLabel(
            "Paint each cell with its own label. In a partly annotated frame, paint background "
            "with the background label (default 65535); elsewhere unpainted pixels are background.",
            self,
        )
        hint.setWordWrap(True)
        corrections = QGroupBox("Corrections", self)
        corr = QFormLayout(corrections)
        corr.addRow("segmentation", self.source_picker)
        corr.addRow("", self.copy_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(QLabel("annotated frames (click to show):", self))
        layout.addWidget(self.frames_list)
        row = QHBoxLayout()
        row.addWidget(self.summary, 1)
        row.addWidget(self.refresh_button)
        layout.addLayout(row)
        layout.addWidget(corrections)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.create_button.clicked.connect(self.create_annotation_layer)
        self.labels_picker.currentIndexChanged.connect(self._on_labels_changed)
        self.partial_check.toggled.connect(self._on_partial_toggled)
        self.background_spin.valueChanged.connect(self._on_background_changed)
        self.background_button.clicked.connect(self.select_background_label)
        self.refresh_button.clicked.connect(self.refresh)
        self.frames_list.itemClicked.connect(self._on_frame_clicked)
        self.copy_button.clicked.connect(self.copy_current_frame)
        self.image_picker.currentIndexChanged.connect(self._update_buttons)
        self.source_picker.currentIndexChanged.connect(self._update_buttons)
        connect_while_alive(self.viewer.dims.events.current_step, self._sync_partial_check, self)
        connect_while_alive(self.viewer.layers.events.inserted, self._on_layer_inserted, self)

    # ------------------------------------------------------------------ actions
    def create_annotation_layer(self) -> napari.layers.Labels | None:
        """Add an empty annotation layer for the chosen image and select it."""
        image = self.image_picker.layer()
        if image is None:
            show_error("open an image first: the annotation layer copies its shape")
            return None
        if getattr(image, "rgb", False) or image.ndim not in (2, 3):
            show_error(f"layer {image.name!r} must be a (Y, X) image or a (T, Y, X) movie, "
                       f"not {'RGB' if image.rgb else image.data.shape}")
            return None
        layer = _layers.new_labels_layer(
            self.viewer, image, "annotations",
            metadata={_layers.PARTIAL_KEY: [], _layers.BACKGROUND_KEY: self.background_spin.value()},
        )
        self.labels_picker.set_layer(layer)
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        return layer

    def select_background_label(self) -> None:
        """Make the background label the painting label of the annotation layer."""
        layer = self.labels_picker.layer()
        if layer is not None:
            layer.selected_label = self.background_spin.value()
            self.viewer.layers.selection.active = layer

    def copy_current_frame(self) -> int | None:
        """Replace the current frame of the annotations with that of the segmentation layer.

        Returns the frame copied, or None when the layers do not fit (an error is shown).
        """
        source, target = self.source_picker.layer(), self.labels_picker.layer()
        if source is None or target is None:
            show_error("choose the corrected segmentation layer and the annotation layer")
            return None
        if source is target:
            show_error("the segmentation layer and the annotation layer are the same layer: "
                       "choose the segmentation layer under 'Corrections'")
            return None
        if source.data.shape != target.data.shape:
            show_error(f"{source.name!r} {source.data.shape} and {target.name!r} "
                       f"{target.data.shape} differ in shape: segment the annotated image")
            return None
        t = _layers.current_frame(self.viewer, target)
        frame = np.asarray(source.data if source.ndim == 2 else source.data[t])
        _layers.put_frame(target, t, frame)
        _layers.set_partial(target, t, False)
        self.refresh()
        n = len(np.unique(frame)) - (1 if (frame == 0).any() else 0)
        show_info(f"frame {t} of {source.name!r} ({n} cells) now annotates {target.name!r}")
        return t

    def refresh(self, *_args) -> None:
        """Re-list the annotated frames of the annotation layer."""
        self._refresh_timer.stop()
        self.frames_list.clear()
        layer = self.labels_picker.layer()
        if layer is None:
            self.summary.setText("no annotation layer")
            self._update_buttons()
            return
        background = _layers.background_label(layer)
        partial = set(_layers.partial_frames(layer))
        counts = _layers.frame_summary(layer.data, background)
        for t, n in counts.items():
            text = f"frame {t}: {n} cell{'s' if n != 1 else ''}" + (" (partial)" if t in partial else "")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, t)
            self.frames_list.addItem(item)
        frames = layer.data.shape[0] if layer.ndim == 3 else 1
        self.summary.setText(f"{len(counts)} of {frames} frame{'s' if frames != 1 else ''} annotated")
        self._sync_partial_check()
        self._update_buttons()

    # ------------------------------------------------------------------ reactions
    def annotated_frames(self) -> list[int]:
        """The frames currently listed as annotated."""
        return [self.frames_list.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(self.frames_list.count())]

    def _schedule_refresh(self, *_args) -> None:
        self._refresh_timer.start()

    def _on_labels_changed(self, *_args) -> None:
        """Watch the newly chosen annotation layer for painting and data changes."""
        layer = self.labels_picker.layer()
        if self._watched is not None:
            for name in ("data", "paint", "set_data"):
                emitter = getattr(self._watched.events, name, None)
                if emitter is not None:
                    emitter.disconnect(self._schedule_refresh)
        self._watched = layer
        if layer is not None:
            for name in ("data", "paint", "set_data"):
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    connect_while_alive(emitter, self._schedule_refresh, self)
            self.background_spin.blockSignals(True)
            self.background_spin.setValue(_layers.background_label(layer))
            self.background_spin.blockSignals(False)
        self.refresh()

    def _on_layer_inserted(self, event) -> None:
        """A new segmentation layer becomes the default source of corrections."""
        layer = getattr(event, "value", None)
        if isinstance(layer, napari.layers.Labels) and "(segmentation)" in layer.name:
            self.source_picker.set_layer(layer)

    def _on_frame_clicked(self, item: QListWidgetItem) -> None:
        """Show the clicked frame."""
        layer = self.labels_picker.layer()
        if layer is not None and layer.ndim == 3:
            t = int(item.data(Qt.ItemDataRole.UserRole))
            axis = self.viewer.dims.ndim - 3
            if tuple(layer.scale[:1]) == (1,) and tuple(layer.translate[:1]) == (0,):
                self.viewer.dims.set_current_step(axis, t)
            else:  # scaled or shifted time axis: go through world coordinates
                self.viewer.dims.set_point(axis, float(layer.data_to_world((t, 0, 0))[0]))

    def _on_partial_toggled(self, checked: bool) -> None:
        """Mark or unmark the current frame as partly annotated."""
        layer = self.labels_picker.layer()
        if layer is None:
            return
        _layers.set_partial(layer, _layers.current_frame(self.viewer, layer), checked)
        self.refresh()

    def _on_background_changed(self, value: int) -> None:
        layer = self.labels_picker.layer()
        if layer is not None:
            _layers.set_background_label(layer, value)

    def _sync_partial_check(self, *_args) -> None:
        """Show whether the frame on screen is marked partly annotated."""
        layer = self.labels_picker.layer()
        checked = layer is not None and _layers.current_frame(self.viewer, layer) in _layers.partial_frames(layer)
        self.partial_check.blockSignals(True)
        self.partial_check.setChecked(checked)
        self.partial_check.blockSignals(False)

    def _update_buttons(self, *_args) -> None:
        have_labels = self.labels_picker.layer() is not None
        self.create_button.setEnabled(self.image_picker.layer() is not None)
        self.partial_check.setEnabled(have_labels)
        self.background_button.setEnabled(have_labels)
        self.copy_button.setEnabled(have_labels and self.source_picker.layer() is not None)
