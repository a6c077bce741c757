"""npe2 sample data: a synthetic nuclei time-lapse with its exact labels."""

from __future__ import annotations

from ..core.synthetic import sample_data

__all__ = ["synthetic_nuclei"]


def synthetic_nuclei() -> list:
    """``[(image, {...}, "image"), (labels, {...}, "labels")]``: (20, 256, 256) uint16 each."""
    return sample_data()
