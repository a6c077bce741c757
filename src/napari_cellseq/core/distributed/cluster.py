"""From a ``--scheduler`` text to a running ``distributed.Client`` (or none).

``none``: no client, work runs in this process. ``local`` / ``local:N``: a
``distributed.LocalCluster`` of N worker processes with one thread each (N defaults to the
number of cores), started here and closed at the end; each worker's torch uses its share of
the cores. ``tcp://host:port`` (or any address ``distributed.Client`` takes, e.g. ``tls://``):
a scheduler the user started, e.g. with dask-jobqueue on SLURM (README, "Beyond one machine").
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import InputError
from . import require

logger = logging.getLogger(__name__)

__all__ = ["parse_scheduler", "open_client", "local_cluster"]

_LOCAL = re.compile(r"local(?::(\d+))?")
_ADDRESS = re.compile(r"(tcp|tls|inproc|ucx|ws|wss)://\S+")


def parse_scheduler(text: str) -> tuple[str, Any]:
    """``("none", None)``, ``("local", n_workers or None)`` or ``("address", text)``.

    Raises :class:`InputError` for anything else, naming the accepted forms.
    """
    spec = (text or "none").strip()
    if spec.lower() == "none":
        return "none", None
    m = _LOCAL.fullmatch(spec.lower())
    if m:
        n = int(m.group(1)) if m.group(1) else None
        if n is not None and n < 1:
            raise InputError(f"--scheduler {spec}: a local cluster needs at least 1 worker, e.g. local:2")
        return "local", n
    if _ADDRESS.fullmatch(spec):
        return "address", spec
    raise InputError(
        f"--scheduler {spec!r} is not understood: use none, local, local:N (N worker processes) or the "
        "address of a running dask scheduler, e.g. tcp://10.0.0.5:8786"
    )


def local_cluster(n_workers: int | None = None, threads_per_worker: int = 1, processes: bool = True) -> Any:
    """A ``distributed.LocalCluster`` without a dashboard; torch in each worker process gets
    ``cores // n_workers`` threads (OMP_NUM_THREADS), so workers do not oversubscribe the CPU."""
    require("dask", "distributed")
    import dask
    from distributed import LocalCluster

    cores = os.cpu_count() or 1
    n = n_workers or max(1, cores // max(1, threads_per_worker))
    kwargs: dict[str, Any] = {}
    per = str(max(1, cores // n))
    if processes:
        kwargs["host"] = "127.0.0.1"  # this machine only (in-process clusters talk in memory)
    # no dashboard; the scheduler's small HTTP server on this machine, a free port (not 8787)
    kwargs["scheduler_kwargs"] = {"dashboard_address": "127.0.0.1:0"}
    with dask.config.set({PRE_SPAWN: worker_environment(per)}):
        return LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=processes,
                            dashboard_address=None, **kwargs)


#: dask's configuration key of the variables a nanny sets before its worker process starts.
PRE_SPAWN = "distributed.nanny.pre-spawn-environ"


def worker_environment(threads: str | int) -> dict[str, str]:
    """What a worker process of napari-cellseq's local cluster starts with: ``threads`` OpenMP /
    MKL / OpenBLAS threads, and dask's other pre-spawn variables, except ``MALLOC_TRIM_THRESHOLD_``.

    dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` so that workers hand freed memory back to the
    system; setting it also switches off glibc's adaptive mmap threshold, so every tensor above
    128 KiB is a fresh ``mmap`` (page faults on every use) and freed with ``munmap``. Measured on
    HeLa frames (U-Net, CPU, 2 workers x 1 thread): 13.5 s with it, 8.3 s without, against 8.4 s
    for the same movies in one process with 2 threads.
    For a cluster of your own (dask-jobqueue), give its workers the same mapping: the dask
    configuration key ``distributed.nanny.pre-spawn-environ`` without ``MALLOC_TRIM_THRESHOLD_``
    (README, "Beyond one machine").
    """
    import dask

    env = {k: v for k, v in dict(dask.config.get(PRE_SPAWN, {})).items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    return env


@contextmanager
def open_client(scheduler: str | None) -> Iterator[Any]:
    """Context manager: the ``distributed.Client`` that ``scheduler`` names, or None for ``none``.

    A local cluster is started and shut down here; a remote scheduler is only connected to
    (and left running). An unreachable address raises :class:`InputError`.
    """
    kind, value = parse_scheduler(scheduler or "none")
    if kind == "none":
        yield None
        return
    require("dask", "distributed")
    from distributed import Client

    if kind == "local":
        with local_cluster(value) as cluster, Client(cluster) as client:
            logger.info("local dask cluster: %d workers", len(cluster.workers))
            yield client
        return
    try:
        client = Client(value, timeout=30)
    except (OSError, TimeoutError) as err:
        raise InputError(
            f"cannot reach the dask scheduler at {value} ({type(err).__name__}): start it first "
            "(e.g. `dask scheduler`, or a dask-jobqueue cluster) and check the address"
        ) from None
    with client:
        logger.info("connected to dask scheduler %s (%d workers)", value,
                    len(client.scheduler_info().get("workers", {})))
        yield client
