"""Session state shared by the four dock widgets of one viewer.

One :class:`SessionState` per napari viewer (see :func:`session_state`): the Train widget writes
the model it produced, Segment and Export (load model) too; every widget follows changes through
the psygnal events ``state.events.<field>``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psygnal import evented

if TYPE_CHECKING:
    import napari

__all__ = ["SessionState", "session_state"]


@evented
@dataclass
class SessionState:
    """What the widgets of one viewer share.

    Attributes
    ----------
    model_path : the current model file (written by training, or loaded by the user), or None.
    training : True while the Train widget's run is busy (its model file is being written).
    """

    model_path: str | None = None
    training: bool = False


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_state(viewer: napari.viewer.Viewer) -> SessionState:
    """The :class:`SessionState` of ``viewer`` (created on first use, dropped with the viewer)."""
    state = _STATES.get(viewer)
    if state is None:
        state = SessionState()
        _STATES[viewer] = state
    return state
