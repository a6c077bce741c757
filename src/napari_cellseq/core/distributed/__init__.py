"""Beyond one machine: many movies and frames larger than memory on dask.distributed, training
on several processes with torch DistributedDataParallel.

Modules (each imported on its own, so that ``import napari_cellseq.core`` never needs dask):

- :mod:`.cluster` — ``--scheduler none|local|local:N|tcp://host:port`` to a ``distributed.Client``.
- :mod:`.batch` — :func:`~.batch.segment_movies`: one task per movie (or per range of frames),
  each output written atomically by the worker that made it; failures reported per movie.
- :mod:`.blocks` — :func:`~.blocks.segment_blocks`: one 2-D frame (numpy, zarr, OME-Zarr)
  segmented block by block with an overlap, instance ids stitched across the block seams
  (dask-image's relabelling), written to zarr.
- :mod:`.ddp` — the hooks the training loop calls when it runs under ``torchrun``.

dask, distributed, dask-image and zarr come with ``pip install napari-cellseq[distributed]``;
:func:`require` turns their absence into one clear :class:`~napari_cellseq.core.errors.InputError`.
"""

from __future__ import annotations

import importlib

from ..errors import InputError

__all__ = ["require", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "napari-cellseq[distributed]"'


def require(*modules: str) -> None:
    """Import ``modules`` (default: dask and distributed) or raise one clear :class:`InputError`."""
    for name in modules or ("dask", "distributed"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise InputError(
                f"{name.replace('_', '-')} is not installed: it is needed to run on several processes or "
                f"machines; install it with {INSTALL_HINT}"
            ) from None
