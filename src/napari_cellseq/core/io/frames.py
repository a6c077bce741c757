"""Frame selections: ``"0-4, 7"`` -> ``[0, 1, 2, 3, 4, 7]`` (the CLI's ``--frames`` and the widgets').

Frames are counted from 0 as napari's time slider does; ranges are inclusive.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import InputError

__all__ = ["parse_frames"]

_NUMBER = re.compile(r"\d+")
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def parse_frames(spec: str, n_frames: int) -> list[int]:
    """Parse a frame selection such as ``"0-4, 7"`` into sorted unique frame indices.

    Parameters
    ----------
    spec : comma-separated frame numbers (0-based) and inclusive ranges ``a-b``; spaces are
        allowed; ``"all"`` selects every frame.
    n_frames : number of frames T of the movie; valid frames are ``0..T-1``.

    Returns
    -------
    list[int]
        Sorted, unique frame indices, e.g. ``"0-4,7"`` -> ``[0, 1, 2, 3, 4, 7]``.

    Raises
    ------
    InputError
        Empty (``""``, blanks, ``","``) or malformed spec, negative numbers, a backwards range,
        or a frame >= T.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise InputError(f"the movie has no frames (n_frames={n_frames!r}); load an image first")
    n_frames = int(n_frames)
    valid = f"valid frames are 0..{n_frames - 1}"
    if not isinstance(spec, str):
        raise InputError(f"frame selection must be text like '0-4,7', got {spec!r}")
    text = spec.strip()
    if text.lower() == "all":
        return list(range(n_frames))
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):  # "", "  ", ",": nothing selected (leaving the option out means all frames)
        raise InputError(
            f"empty frame selection {spec!r}: give frames such as '0-4,7' ({valid}), "
            "or leave the option out for all frames"
        )
    frames: set[int] = set()
    for part in parts:
        if not part:
            continue  # "1,,2" or a trailing comma: harmless
        if _NUMBER.fullmatch(part):
            lo = hi = int(part)
        elif m := _RANGE.fullmatch(part):
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise InputError(f"frame range {part!r} in {spec!r} goes backwards; write it as '{hi}-{lo}'")
        elif part.startswith("-") or re.search(r"(^|[,\s-])-\s*\d", part):
            raise InputError(f"negative frame number in {spec!r}; frames are counted from 0 ({valid})")
        else:
            raise InputError(
                f"{part!r} in {spec!r} is not a frame number or range; use numbers and ranges like '0-4,7' ({valid})"
            )
        if hi >= n_frames:
            raise InputError(f"frame {hi} in {spec!r} is out of range: the movie has {n_frames} frames, {valid}")
        frames.update(range(lo, hi + 1))
    return sorted(frames)
