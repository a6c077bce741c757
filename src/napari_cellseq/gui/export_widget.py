"""Export dock widget (magicgui): labels as a TIFF stack, Cell Tracking Challenge masks or an ImageJ
ROI set; model files, and the current model as a BioImage Model Zoo package.

Nothing is overwritten unless "overwrite existing files" is ticked. The model actions sit in
:attr:`ExportWidget.model_actions`, a row of buttons: another export (a model zoo package, ROIs)
is one more ``PushButton`` appended there with its handler.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import napari.layers
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, PushButton
from napari.utils.notifications import show_error, show_info

from ..core.checkpoint import save_checkpoint
from ..core.errors import CellseqError
from ..core.io import OutputExistsError, write_ctc_masks, write_tiff_atomic
from ._forms import ExportForm
from ._layers import PREVIEW_KEY, facts
from ._model_files import ask_model_file, load_model_into, read_model
from ._state import session_state
from ._widgets import compact, connect_while_alive, layer_choice, row, text_label
from .writer import labels_for_tiff

if TYPE_CHECKING:
    import napari

__all__ = ["ExportWidget", "FORMATS"]

#: Format combo entries: (label, value of :attr:`ExportForm.fmt`).
FORMATS = [("TIFF stack (one file)", "stack"), ("CTC masks (maskNNN.tif per frame)", "ctc")]


class ExportWidget(Container):
    """Dock widget that writes labels layers and saves / loads model files.

    Parameters
    ----------
    viewer : the napari viewer; "Load model…" sets the session's current model.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.state = session_state(viewer)
        self.labels_layer = layer_choice(napari.layers.Labels, "labels")
        self.format = ComboBox(choices=FORMATS, value="stack", label="format")
        self.path = FileEdit(mode="w", filter="*.tif *.tiff", label="path",
                             tooltip="a .tif file (TIFF stack) or a folder (CTC masks)")
        self.overwrite = CheckBox(value=False, text="overwrite existing files")
        self.export_button = PushButton(text="Export labels")
        self.rois_button = PushButton(text="Export ImageJ ROIs…",
                                      tooltip="a .zip ROI set for Fiji's ROI Manager: one polygon per cell and frame")
        self.reason = text_label()
        self.model_text = text_label()
        self.save_model_button = PushButton(text="Save model as…")
        self.load_model_button = PushButton(text="Load model…")
        self.zoo_button = PushButton(text="Export to BioImage Model Zoo…",
                                     tooltip="the current model as a bioimage.io package (.zip, format 0.5), "
                                             "validated and tested offline")
        self.model_actions = row(self.save_model_button, self.load_model_button, self.zoo_button)
        self._zoo_worker = None
        self._known_labels = {id(layer) for layer in self._labels_layers()}
        self.extend([self.labels_layer, self.format, self.path, self.overwrite,
                     row(self.export_button, self.rois_button), self.reason, self.model_text, self.model_actions])
        for label in (self.reason, self.model_text):
            label.label = ""
        self.reason.native.setStyleSheet("color: #e8a33d")
        compact(self)
        self.format.changed.connect(self._on_format)
        self.export_button.changed.connect(self.export_labels)
        self.save_model_button.changed.connect(self._on_save_model_clicked)
        self.load_model_button.changed.connect(self._on_load_model_clicked)
        self.rois_button.changed.connect(self._on_rois_clicked)
        self.zoo_button.changed.connect(self._on_zoo_clicked)
        self.changed.connect(self.validate)
        connect_while_alive(self.state.events.model_path, self._on_model_path, self.native)
        self._on_model_path()

    def reset_choices(self, *args) -> None:
        """Follow the layer list (napari calls this on layer events); a labels layer that has just
        appeared (a new segmentation, say) becomes the one to export, never the training preview."""
        super().reset_choices(*args)
        layers = self._labels_layers()
        new = [layer for layer in layers if id(layer) not in self._known_labels
               and not layer.metadata.get(PREVIEW_KEY)]
        self._known_labels = {id(layer) for layer in layers}
        if new and new[-1] in self.labels_layer.choices:
            self.labels_layer.value = new[-1]
        self.validate()

    def _labels_layers(self) -> list:
        """The viewer's labels layers, in layer-list order."""
        return [layer for layer in self.viewer.layers if isinstance(layer, napari.layers.Labels)]

    # ------------------------------------------------------------------ labels
    def form(self) -> ExportForm:
        value = self.path.value
        return ExportForm(labels=facts(self.labels_layer.value), fmt=self.format.value,
                          path=str(value) if value else "", overwrite=self.overwrite.value)

    def validate(self, *_args) -> str | None:
        problem = self.form().problem()
        self.reason.value = problem or ""
        self.reason.visible = bool(problem)
        self.export_button.enabled = problem is None
        self.rois_button.enabled = self.labels_layer.value is not None
        return problem

    def _on_format(self, *_args) -> None:
        self.path.mode = "d" if self.format.value == "ctc" else "w"

    def export_labels(self, *_args) -> list[Path]:
        """Write the chosen labels layer in the chosen format; returns the files written."""
        form = self.form()
        problem = form.problem()
        if problem:
            show_error(problem)
            return []
        layer = self.labels_layer.value
        try:
            data = labels_for_tiff(layer.data)
            if form.fmt == "ctc":
                paths = write_ctc_masks(form.path, data, overwrite=form.overwrite)
            else:
                path = Path(form.path)
                if path.suffix.lower() not in (".tif", ".tiff"):
                    path = path.with_name(path.name + ".tif")
                paths = [write_tiff_atomic(path, data, overwrite=form.overwrite)]
        except OutputExistsError as err:
            show_error(err.reworded(how="tick 'overwrite existing files'"))
            return []
        except (CellseqError, ValueError, OSError) as err:
            show_error(f"export failed: {err}")
            return []
        where = paths[0] if len(paths) == 1 else f"{len(paths)} files in {Path(form.path)}"
        show_info(f"{layer.name!r} ({data.dtype}) written to {where}")
        return paths

    # ------------------------------------------------------------------ model
    def _on_model_path(self, *_args) -> None:
        path = self.state.model_path
        self.model_text.value = f"current model: {path}" if path else "no current model yet"
        self.save_model_button.enabled = bool(path)
        self.zoo_button.enabled = bool(path) and self._zoo_worker is None

    def _on_save_model_clicked(self, *_args) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Save model", "model.pt", "napari-cellseq model (*.pt)")
        if path:  # the dialog has asked about replacing
            self.save_model(path, overwrite=True)

    def _on_load_model_clicked(self, *_args) -> None:
        path = ask_model_file(self.native)
        if path:
            self.load_model(path)

    def save_model(self, path: str | Path, overwrite: bool | None = None) -> Path | None:
        """Copy the current model to ``path`` (checked, written atomically)."""
        overwrite = self.overwrite.value if overwrite is None else overwrite
        try:
            if not self.state.model_path:
                raise CellseqError("there is no model to save: train one first")
            out = save_checkpoint(read_model(self.state.model_path), path, overwrite=overwrite)
        except OutputExistsError as err:
            show_error(err.reworded(how="tick 'overwrite existing files'"))
            return None
        except (CellseqError, OSError) as err:
            show_error(f"could not save the model: {err}")
            return None
        show_info(f"model saved to {out}")
        return out

    # ------------------------------------------------------------------ exchange
    def _on_rois_clicked(self, *_args) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Export ImageJ ROIs", "rois.zip", "ImageJ ROI set (*.zip)")
        if path:  # the dialog has asked about replacing
            self.export_rois(path, overwrite=True)

    def export_rois(self, path: str | Path, overwrite: bool | None = None) -> Path | None:
        """Write the chosen labels layer as an ImageJ ROI set (:func:`~napari_cellseq.core.io.write_imagej_rois`)."""
        from ..core.io import write_imagej_rois

        overwrite = self.overwrite.value if overwrite is None else overwrite
        layer = self.labels_layer.value
        if layer is None:
            show_error("choose a labels layer to export as ROIs")
            return None
        path = Path(path)
        if path.suffix.lower() != ".zip":
            path = path.with_name(path.name + ".zip")
        try:
            out = write_imagej_rois(path, labels_for_tiff(layer.data), overwrite=overwrite)
        except OutputExistsError as err:
            show_error(f"{str(err).split(';')[0]}: tick 'overwrite existing files' to replace it")
            return None
        except (CellseqError, ValueError, OSError) as err:
            show_error(f"ROI export failed: {err}")
            return None
        show_info(f"{layer.name!r} written as ImageJ ROIs to {out}")
        return out

    def _on_zoo_clicked(self, *_args) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Export to BioImage Model Zoo", "model.zip",
                                              "bioimage.io package (*.zip)")
        if path:
            self.export_model_zoo(path, overwrite=True)

    def export_model_zoo(self, path: str | Path, overwrite: bool | None = None):
        """Write the current model as a BioImage Model Zoo package in a worker thread.

        Runs :func:`~napari_cellseq.core.bioimageio.export_bioimageio` (validation and the zoo's
        model test included, tens of seconds) on the synthetic movie's frames as test input; the
        result or error is a notification. Returns the worker, or None when nothing started.
        """
        from napari.qt.threading import create_worker

        from ..core.bioimageio.export import export_bioimageio, require_bioimageio

        overwrite = self.overwrite.value if overwrite is None else overwrite
        model, out = self.state.model_path, Path(path)  # snapshot before the worker starts
        if out.suffix.lower() != ".zip":
            out = out.with_name(out.name + ".zip")
        try:
            if not model:
                raise CellseqError("there is no model to export: train or load one first")
            require_bioimageio()
            if out.exists() and not overwrite:
                raise OutputExistsError(f"{out} already exists")
        except OutputExistsError as err:
            show_error(f"{str(err).split(';')[0]}: tick 'overwrite existing files' to replace it")
            return None
        except CellseqError as err:
            show_error(str(err))
            return None
        worker = create_worker(export_bioimageio, model, out, None, overwrite=overwrite, _start_thread=False)
        worker.returned.connect(lambda written: show_info(f"BioImage Model Zoo package written to {written} "
                                                          "(validated; its model test passed)"))
        worker.errored.connect(lambda err: show_error(f"model zoo export failed: {err}"))
        worker.finished.connect(self._on_zoo_finished)
        self._zoo_worker = worker
        self.zoo_button.enabled = False
        worker.start()
        return worker

    def _on_zoo_finished(self, *_args) -> None:
        self._zoo_worker = None
        self._on_model_path()

    def load_model(self, path: str | Path) -> bool:
        """Make ``path`` the current model (the GUI's one :func:`~._model_files.load_model_into`)."""
        return load_model_into(self.state, path)
