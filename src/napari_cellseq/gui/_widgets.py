"""Small building blocks the magicgui dock widgets share (no layer picker: napari's own types)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from magicgui.widgets import ComboBox, Container, Label, create_widget

if TYPE_CHECKING:
    from qtpy.QtWidgets import QWidget

__all__ = ["connect_while_alive", "layer_choice", "text_label", "row", "format_seconds",
           "on_close", "Debounced", "compact", "renew_choices"]


def _disconnect(emitter: Any, callback: Callable, *_args) -> None:
    try:
        emitter.disconnect(callback)
    except Exception:  # noqa: BLE001 - the emitter may already be gone with its viewer
        pass


def connect_while_alive(emitter: Any, callback: Callable, owner: QWidget) -> None:
    """Connect ``callback`` to a napari/psygnal ``emitter`` until Qt widget ``owner`` is destroyed."""
    emitter.connect(callback)
    owner.destroyed.connect(partial(_disconnect, emitter, callback))


def on_close(owner: QWidget, callback: Callable[[], None]) -> None:
    """Call ``callback()`` when Qt widget ``owner`` is destroyed (its dock closes, napari quits)."""
    owner.destroyed.connect(lambda *_: callback())


def layer_choice(layer_type: type, label: str, tooltip: str = "", nullable: bool = False) -> ComboBox:
    """A ComboBox of the viewer's layers of ``layer_type`` from napari's magicgui type integration.

    Its choices follow the layer list once the widget is docked in a viewer.
    """
    widget = create_widget(annotation=layer_type, label=label, options={"nullable": nullable})
    widget.tooltip = tooltip or None
    return widget


def text_label(value: str = "", label: str = "", wrap: bool = True) -> Label:
    """A read-only text line that wraps (status, reasons)."""
    widget = Label(value=value, label=label)
    widget.native.setWordWrap(wrap)
    return widget


def row(*widgets, label: str = "") -> Container:
    """Widgets side by side, as one labelled row of a form."""
    return Container(widgets=list(widgets), layout="horizontal", labels=False, label=label)


def renew_choices(widget) -> None:
    """Re-read the choices of a ComboBox or Select in their order, with their current labels.

    magicgui matches items by their text: an entry whose label changed ("frame 2: 5 cells" ->
    "frame 2: 5 cells (partial)") would move to the end. Starting afresh keeps the order; the
    value is kept when it is still a choice.
    """
    value = widget.value
    with widget.changed.blocked():
        widget.native.clear()
        widget.reset_choices()
        try:
            widget.value = value
        except (ValueError, TypeError):
            pass
    if widget.value != value:
        widget.changed.emit(widget.value)


def compact(container: Container, chars: int = 10) -> None:
    """Let every combo box and line edit of ``container`` shrink to the dock's width.

    Combo boxes otherwise ask for the width of their longest entry (file paths, loss names),
    which pushes buttons and values out of a narrow dock.
    """
    from qtpy.QtWidgets import QComboBox, QLineEdit

    for box in container.native.findChildren(QComboBox):
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.setMinimumContentsLength(chars)
    for edit in container.native.findChildren(QLineEdit):
        edit.setMinimumWidth(60)


class Debounced:
    """Call ``callback()`` once, ``delay_ms`` after the last :meth:`__call__` (coalesce painting)."""

    def __init__(self, callback: Callable[[], None], delay_ms: int = 300, parent: QWidget | None = None):
        from qtpy.QtCore import QTimer

        self.timer = QTimer(parent)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(callback)

    def __call__(self, *_args) -> None:
        self.timer.start()


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"
