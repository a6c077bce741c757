"""Training on several processes with torch DistributedDataParallel (DDP), launched by ``torchrun``.

``torchrun --nproc_per_node=N -m napari_cellseq train ...`` starts N copies of the CLI; each
finds ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` in its environment and
:func:`process_group` joins them into one process group (gloo on CPU, NCCL on CUDA, each rank
on GPU ``LOCAL_RANK``). The training loop then asks :func:`current` for the run's
:class:`DDPRun` and, when there is one, makes four small calls:

- :meth:`DDPRun.seed` — each rank draws its own crops: its numpy generator is seeded with
  ``(seed, rank)``; torch's seed (initial weights) is the same on every rank, and DDP also
  broadcasts rank 0's weights when it wraps the model.
- :meth:`DDPRun.attach` / :meth:`DDPRun.wrap` — the network in ``DistributedDataParallel``: gradients are averaged over
  the ranks in every backward pass, so every rank takes the same optimiser step (an effective
  batch of N times the batch size). ``broadcast_buffers=False``: forward passes do no
  collective calls (a U-LSTM context chunk runs forward without backward on one rank while
  another rank is in a training step), so batch-norm statistics are each rank's own and rank
  0's are saved.
- :meth:`DDPRun.mean_loss` — the step's loss averaged over the ranks (what the progress shows);
  a NaN on any rank makes every rank stop with the divergence error, none hangs in a backward.
- :meth:`DDPRun.agree` — the stop decision (Ctrl-C / SIGTERM on any rank, the time or step
  budget) reduced with MAX before every step, so all ranks end at the same step.

Only rank 0 (:attr:`DDPRun.writer`) writes checkpoints, chooses the threshold (calibration)
and writes the final model file, which is the ordinary single-process file; the other ranks
wait for it at a barrier.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..errors import CellseqError, InputError

logger = logging.getLogger(__name__)

__all__ = ["DDPRun", "current", "process_group", "launched", "rank", "REASONS"]

# Stop reasons in increasing priority: the MAX over the ranks is the one every rank takes.
REASONS = (None, "iterations", "time", "stopped")


def launched() -> bool:
    """True when this process was started by torchrun (or alike) as one of several ranks."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def rank() -> int:
    """This process's rank (0 outside a multi-process run)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


@dataclass
class DDPRun:
    """This rank's view of a multi-process training run (see the module docstring)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def writer(self) -> bool:
        """Rank 0 writes the model file, checkpoints and chooses the threshold."""
        return self.rank == 0

    def seed(self, seed: int) -> list[int]:
        """Seed for this rank's numpy generator: its own crops, reproducible."""
        return [int(seed), self.rank]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def _reduce(self, value: float, op) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        torch.distributed.all_reduce(t, op=op)
        return float(t.item())

    def _comm_device(self) -> torch.device:
        return self.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")

    def mean_loss(self, loss: torch.Tensor) -> float:
        """The loss averaged over the ranks (NaN if any rank's is NaN)."""
        return self._reduce(float(loss.detach()), torch.distributed.ReduceOp.SUM) / self.world_size

    def agree(self, reason: str | None) -> str | None:
        """The stop reason every rank takes: the strongest over the ranks (None: go on)."""
        code = self._reduce(float(REASONS.index(reason)), torch.distributed.ReduceOp.MAX)
        return REASONS[int(code)]

    def attach(self, stepper) -> None:
        """Make the training loop's stepper a DDP one: its forward wrapped in DDP (gradients
        averaged in backward) and the loss it reports averaged over the ranks before any rank
        steps, so that a loss that diverged on one rank stops every rank (none hangs in backward)."""
        stepper.forward = self.wrap(stepper.model)  # (a torch.compile'd forward is not kept)
        local_update = stepper._update

        def update(loss: torch.Tensor) -> float:
            mean = self.mean_loss(loss)
            if not math.isfinite(mean):  # on some rank: every rank stops here, before backward
                raise _diverged(mean)
            local_update(loss)
            return mean

        stepper._update = update

    def barrier(self) -> None:
        torch.distributed.barrier()


def _diverged(value: float) -> Exception:
    """The training loop's divergence error (its own type where the loop has one)."""
    try:
        from ..training.loop import Diverged
    except ImportError:
        return CellseqError("training diverged (the loss became NaN or infinite): lower the learning rate; "
                            "the last good weights are kept in the model file")
    return Diverged(value)


def current(device: torch.device) -> DDPRun | None:
    """The run's :class:`DDPRun` when a process group of 2 or more ranks is initialised, else None.

    On CUDA each rank trains on GPU ``LOCAL_RANK`` (the returned ``device``)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count())))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise InputError(f"training on several processes needs CPU (gloo) or CUDA (NCCL) devices, not {device}: "
                         "use --device cpu or cuda")
    return DDPRun(dist.get_rank(), dist.get_world_size(), device)


@contextmanager
def process_group(device: str = "auto") -> Iterator[bool]:
    """Join the ranks torchrun started (no-op, yielding False, in a single process).

    The backend is NCCL when ``device`` is (or ``auto`` finds) CUDA, else gloo. Left at the end.
    """
    if not launched() or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        yield False
        return
    if not torch.distributed.is_available():
        raise InputError("this torch has no torch.distributed: training on several processes needs it")
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    backend = "nccl" if cuda else "gloo"
    torch.distributed.init_process_group(backend=backend)
    logger.debug("rank %d of %d joined (%s)", torch.distributed.get_rank(), torch.distributed.get_world_size(),
                 backend)
    try:
        yield True
    finally:
        torch.distributed.destroy_process_group()
