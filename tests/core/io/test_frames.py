"""Frame selections such as "0-4,7" (napari_cellseq.core.io.frames)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_cellseq.core.errors import InputError
from napari_cellseq.core.io import parse_frames


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("0-4,7", [0, 1, 2, 3, 4, 7]),
        (" 7 , 0 - 2 ", [0, 1, 2, 7]),
        ("3,3,1-3", [1, 2, 3]),
        ("9", [9]),
        ("5-5", [5]),
        ("1,,2,", [1, 2]),
        ("all", list(range(10))),
    ],
)
def test_parse_frames(spec, expected):
    assert parse_frames(spec, 10) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("a-b", r"'a-b' in 'a-b' is not a frame number or range; use numbers and ranges like '0-4,7' \(valid frames are 0..9\)"),
        ("5-2", r"frame range '5-2' in '5-2' goes backwards; write it as '2-5'"),
        ("-1", r"negative frame number in '-1'; frames are counted from 0 \(valid frames are 0..9\)"),
        ("2,-3", r"negative frame number"),
        ("10", r"frame 10 in '10' is out of range: the movie has 10 frames, valid frames are 0..9"),
        ("8-12", r"frame 12 .* out of range"),
        ("", r"^empty frame selection '': give frames such as '0-4,7' \(valid frames are 0..9\), "
             r"or leave the option out for all frames$"),
        ("   ", r"^empty frame selection '   ': .*leave the option out for all frames$"),
        (",", r"^empty frame selection ','"),
        (" , ,", r"^empty frame selection"),
        ("1.5", r"'1.5' .* is not a frame number"),
    ],
)
def test_parse_frames_errors(spec, message):
    with pytest.raises(InputError, match=message):
        parse_frames(spec, 10)


def test_parse_frames_no_frames():
    with pytest.raises(InputError, match="the movie has no frames"):
        parse_frames("0", 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), data=st.data())
def test_parse_frames_round_trips_any_selection(n, data):
    frames = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10))
    spec = ", ".join(str(f) for f in frames)
    assert parse_frames(spec, n) == sorted(set(frames))
    lo, hi = sorted(data.draw(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))))
    assert parse_frames(f"{lo}-{hi}", n) == list(range(lo, hi + 1))

