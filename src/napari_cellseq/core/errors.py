"""User-facing errors.

Every problem a user can fix (bad file, wrong dimensions, no annotated frame, ...) is raised as a
:class:`CellseqError` whose message names the problem *and* the fix. The CLI prints the message
as one line and exits non-zero; the napari widgets show it as a notification.
"""

from __future__ import annotations

__all__ = ["CellseqError", "InputError", "ModelFileError"]


class CellseqError(ValueError):
    """A problem the user can fix; ``str(err)`` says what is wrong and what to do."""


class InputError(CellseqError):
    """Image, labels or frame selection are not usable as given."""


class ModelFileError(InputError):
    """A model file is missing, corrupt, from a newer version, for another model, or holds a field
    of the wrong type or value (a model file is input from outside)."""
