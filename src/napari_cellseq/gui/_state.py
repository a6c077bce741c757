"""Session state shared by the four dock widgets of one viewer.

One :class:`SessionState` per napari viewer (see :func:`session_state`): the Train widget writes
the model it produced and its :class:`TrainState`; the Segment and Export widgets read the model
and follow its changes through the psygnal events ``state.events.<field>``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from psygnal import evented

if TYPE_CHECKING:
    import napari

__all__ = ["TrainState", "SessionState", "session_state"]


class TrainState(Enum):
    """Life cycle of a training run; drives which Train-widget buttons are enabled."""

    IDLE = "idle"
    TRAINING = "training"
    STOPPING = "stopping"
    DONE = "done"
    FAILED = "failed"

    @property
    def busy(self) -> bool:
        """True while a run occupies the worker (``training`` or ``stopping``)."""
        return self in (TrainState.TRAINING, TrainState.STOPPING)


@evented
@dataclass
class SessionState:
    """What the widgets of one viewer share.

    Attributes
    ----------
    model_path : the current model file (written by training, or loaded by the user), or None.
    train_state : state of the Train widget's run.
    segmenting : True while the Segment widget runs.
    """

    model_path: str | None = None
    train_state: TrainState = TrainState.IDLE
    segmenting: bool = False


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_state(viewer: napari.viewer.Viewer) -> SessionState:
    """The :class:`SessionState` of ``viewer`` (created on first use, dropped with the viewer)."""
    state = _STATES.get(viewer)
    if state is None:
        state = SessionState()
        _STATES[viewer] = state
    return state
