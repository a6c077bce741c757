"""Small Qt building blocks shared by the dock widgets: a layer picker and safe connections."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from qtpy.QtWidgets import QComboBox, QProgressBar, QWidget

if TYPE_CHECKING:
    import napari

__all__ = ["connect_while_alive", "LayerPicker", "reset_progress", "format_seconds"]


def _disconnect(emitter: Any, callback: Callable, *_args) -> None:
    try:
        emitter.disconnect(callback)
    except Exception:  # noqa: BLE001 - the emitter may already be gone with its viewer
        pass


def connect_while_alive(emitter: Any, callback: Callable, owner: QWidget) -> None:
    """Connect ``callback`` to a napari/psygnal ``emitter`` until Qt widget ``owner`` is destroyed.

    Prevents callbacks into deleted Qt objects after a dock widget is closed.
    """
    emitter.connect(callback)
    owner.destroyed.connect(partial(_disconnect, emitter, callback))


class LayerPicker(QComboBox):
    """Combo box of the viewer's layers of one type, kept in sync with the layer list.

    Parameters
    ----------
    viewer : the napari viewer.
    layer_type : ``napari.layers.Image`` or ``napari.layers.Labels`` (or a tuple of types).
    """

    def __init__(self, viewer: napari.viewer.Viewer, layer_type: type | tuple[type, ...],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self._viewer = viewer
        self._type = layer_type
        self._layers: list = []
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        for name in ("inserted", "removed", "moved", "reordered"):
            emitter = getattr(viewer.layers.events, name, None)
            if emitter is not None:
                connect_while_alive(emitter, self.refresh, self)
        self.refresh()

    def refresh(self, *_args) -> None:
        """Re-read the layer list, keeping the current choice when it still exists."""
        current = self.layer()
        self._layers = [layer for layer in self._viewer.layers if isinstance(layer, self._type)]
        self.blockSignals(True)
        self.clear()
        for layer in self._layers:
            self.addItem(layer.name)
        self.blockSignals(False)
        if current in self._layers:
            self.setCurrentIndex(self._layers.index(current))
        elif self._layers:
            self.setCurrentIndex(0)
        if self.layer() is not current:
            self.currentIndexChanged.emit(self.currentIndex())

    def showPopup(self) -> None:  # noqa: N802 - Qt override
        """Refresh names (layers may have been renamed) before showing the list."""
        self.refresh()
        super().showPopup()

    def layer(self):
        """The chosen layer, or None when the viewer has no layer of this type."""
        i = self.currentIndex()
        return self._layers[i] if 0 <= i < len(self._layers) else None

    def set_layer(self, layer) -> None:
        """Choose ``layer`` (refreshing first if it is new)."""
        if layer not in self._layers:
            self.refresh()
        if layer in self._layers:
            self.setCurrentIndex(self._layers.index(layer))


def reset_progress(bar: QProgressBar, maximum: int = 1000) -> None:
    """Put ``bar`` back to 0 of ``maximum``."""
    bar.setRange(0, maximum)
    bar.setValue(0)


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"
