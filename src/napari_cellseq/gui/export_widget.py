"""Export dock widget: labels as a TIFF stack or Cell Tracking Challenge masks; model files.

Nothing is overwritten unless "overwrite" is ticked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import napari.layers
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.errors import CellseqError
from ..core.io import OutputExistsError, write_ctc_masks, write_tiff_atomic
from ._state import session_state
from ._widgets import LayerPicker, connect_while_alive
from .writer import labels_for_tiff

if TYPE_CHECKING:
    import napari

__all__ = ["ExportWidget", "FORMATS"]

STACK, CTC = "TIFF stack (one file)", "CTC masks (maskNNN.tif per frame)"
FORMATS = (STACK, CTC)


class ExportWidget(QWidget):
    """Dock widget that writes labels layers and saves / loads model files.

    Parameters
    ----------
    viewer : the napari viewer; "Load model…" sets the session's current model.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.state = session_state(viewer)
        self._build()
        self._connect()
        self._on_model_path()

    def _build(self) -> None:
        self.labels_picker = LayerPicker(self.viewer, napari.layers.Labels, self)
        self.format_combo = QComboBox(self)
        self.format_combo.addItems(FORMATS)
        self.path_edit = QLineEdit(self)
        self.path_edit.setPlaceholderText("file.tif or folder")
        self.path_button = QPushButton("…", self)
        self.path_button.setMaximumWidth(30)
        self.overwrite_check = QCheckBox("overwrite existing files", self)
        self.export_button = QPushButton("Export labels", self)
        self.model_label = QLabel(self)
        self.model_label.setWordWrap(True)
        self.save_model_button = QPushButton("Save model as…", self)
        self.load_model_button = QPushButton("Load model…", self)

        path = QHBoxLayout()
        path.addWidget(self.path_edit)
        path.addWidget(self.path_button)
        labels_box = QGroupBox("Labels", self)
        form = QFormLayout(labels_box)
        form.addRow("layer", self.labels_picker)
        form.addRow("format", self.format_combo)
        form.addRow("path", path)
        form.addRow("", self.overwrite_check)
        form.addRow("", self.export_button)
        model_box = QGroupBox("Model", self)
        model = QVBoxLayout(model_box)
        model.addWidget(self.model_label)
        row = QHBoxLayout()
        row.addWidget(self.save_model_button)
        row.addWidget(self.load_model_button)
        model.addLayout(row)
        layout = QVBoxLayout(self)
        layout.addWidget(labels_box)
        layout.addWidget(model_box)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.path_button.clicked.connect(self._choose_path)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.save_model_button.clicked.connect(self._on_save_model_clicked)
        self.load_model_button.clicked.connect(self._on_load_model_clicked)
        connect_while_alive(self.state.events.model_path, self._on_model_path, self)

    # ------------------------------------------------------------------ labels
    def _choose_path(self) -> None:
        if self.format_combo.currentText() == CTC:
            path = QFileDialog.getExistingDirectory(self, "Folder for the mask files")
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Labels TIFF", "", "TIFF (*.tif *.tiff)")
            if path:  # the dialog has asked about replacing
                self.overwrite_check.setChecked(Path(path).exists())
        if path:
            self.path_edit.setText(path)

    def _on_export_clicked(self) -> None:
        self.export_labels()

    def export_labels(self) -> list[Path]:
        """Write the chosen labels layer in the chosen format; returns the files written."""
        layer = self.labels_picker.layer()
        text = self.path_edit.text().strip()
        overwrite = self.overwrite_check.isChecked()
        try:
            if layer is None:
                raise CellseqError("choose a labels layer to export")
            if not text:
                raise CellseqError("give a file name (TIFF stack) or a folder (CTC masks)")
            data = labels_for_tiff(layer.data)
            if self.format_combo.currentText() == CTC:
                paths = write_ctc_masks(text, data, overwrite=overwrite)
            else:
                path = Path(text)
                if path.suffix.lower() not in (".tif", ".tiff"):
                    path = path.with_name(path.name + ".tif")
                paths = [write_tiff_atomic(path, data, overwrite=overwrite)]
        except OutputExistsError as err:
            show_error(err.reworded(how="tick 'overwrite existing files'"))
            return []
        except (CellseqError, ValueError, OSError) as err:
            show_error(f"export failed: {err}")
            return []
        where = paths[0] if len(paths) == 1 else f"{len(paths)} files in {Path(text)}"
        show_info(f"{layer.name!r} ({data.dtype}) written to {where}")
        return paths

    # ------------------------------------------------------------------ model
    def _on_model_path(self, *_args) -> None:
        path = self.state.model_path
        self.model_label.setText(f"current model: {path}" if path else "no current model yet")
        self.save_model_button.setEnabled(bool(path))

    def _on_save_model_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.pt", "napari-cellseq model (*.pt)")
        if path:  # the dialog has asked about replacing
            self.save_model(path, overwrite=True)

    def _on_load_model_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", "napari-cellseq model (*.pt);;all files (*)")
        if path:
            self.load_model(path)

    def save_model(self, path: str | Path, overwrite: bool | None = None) -> Path | None:
        """Copy the current model to ``path`` (checked, written atomically)."""
        overwrite = self.overwrite_check.isChecked() if overwrite is None else overwrite
        try:
            if not self.state.model_path:
                raise CellseqError("there is no model to save: train one first")
            out = save_checkpoint(load_checkpoint(self.state.model_path), path, overwrite=overwrite)
        except OutputExistsError as err:
            show_error(err.reworded(how="tick 'overwrite existing files'"))
            return None
        except (CellseqError, OSError) as err:
            show_error(f"could not save the model: {err}")
            return None
        show_info(f"model saved to {out}")
        return out

    def load_model(self, path: str | Path) -> bool:
        """Check ``path`` is a readable model file and make it the session's current model."""
        try:
            ckpt = load_checkpoint(path)
        except CellseqError as err:
            show_error(str(err))
            return False
        self.state.model_path = str(path)
        it = ckpt.training.get("iterations", "?")
        show_info(f"loaded {ckpt.model_config.name} model ({it} iterations) from {path}")
        return True
