"""The network to pick for the data, as measured: the one default every entry point follows.

The design card has the U-LSTM for time-lapse movies and the U-Net for single frames. Measured
here (issue 13; README "Several kinds of data, and which network"), the U-LSTM does not earn that
place on a 2-core CPU: on HeLa (frames 0-4 painted, 600 s, 2 CPU cores, one run each, held-out
threshold) the U-Net scored SEG 0.924 / AP50 0.914 from random weights and 0.933 / 0.939 from
its built-in, the U-LSTM 0.876 / 0.845 and 0.906 / 0.853 (about 1000 steps in that time to the
U-Net's 2600); at 120 s (``benchmarks/datasets.py``) the U-Net matched or beat it on every movie:
a phase-contrast bacterial colony 0.395 vs 0.205, a CHO plane 0.921 vs 0.866, four synthetic
styles by 0.05-0.16, a tie on the dim one. So the U-Net is recommended for movies too (it
segments them frame by frame) and the U-LSTM, whose memory follows cells through time, stays one
choice away (``--model ulstm``, the Train widget's model list). Where a movie needs that memory
(cells that fade in and out) or a GPU gives the U-LSTM its steps, it may win: measure with
``benchmarks/datasets.py``.
"""

from __future__ import annotations

__all__ = ["MOVIE_NETWORK", "IMAGE_NETWORK", "recommended_network", "recommendation"]

#: Network recommended for a ``(T, Y, X)`` movie, and for a single ``(Y, X)`` image.
MOVIE_NETWORK = "unet"
IMAGE_NETWORK = "unet"


def recommended_network(n_frames: int) -> str:
    """The network for data of ``n_frames`` frames (1: a single image)."""
    return MOVIE_NETWORK if int(n_frames) > 1 else IMAGE_NETWORK


def recommendation() -> str:
    """One line for users (``napari-cellseq models``, the Train widget's tooltip): what to pick
    and why."""
    return ("recommended: unet, for single images and for movies (measured on 2 CPU cores: on HeLa after 600 s "
            "U-Net SEG 0.924-0.933 / AP50 0.914-0.939, U-LSTM 0.876-0.906 / 0.845-0.853; at 120 s the U-Net matched "
            "or beat the U-LSTM on every movie tried); ulstm remembers earlier frames: try it for movies where "
            "cells fade in and out, or on a GPU")
