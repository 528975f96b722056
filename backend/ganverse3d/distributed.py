"""Data-parallel training on ``torch.distributed``: the process group and the few collectives the run kit uses.

A trainer runs data-parallel when it is started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) with more than one process: :func:`join` then joins the
process group (NCCL for CUDA, gloo for the CPU), one process per device. Without torchrun, or with one process,
nothing here does anything, and training is the single-process code path, bit for bit.

The conventions the run kit (:mod:`ganverse3d.runs`) builds on:

* **Batches.** A config's ``batch`` is the global batch. Every rank draws the whole global batch's random
  choices (item indices, latents, flips) from the same shared generator and keeps its own rows,
  ``rank::size`` (:func:`shard`); so the ranks see disjoint parts of one global batch, and the union is what
  one process would have drawn. Strided rows, not blocks, so that StyleGAN's minibatch-stddev groups (rows
  ``j, j + B/4, ...``) are the same on any number of ranks.
* **Gradients.** The networks a step trains are wrapped in ``DistributedDataParallel`` (:func:`wrap`), which
  averages their gradients over the ranks during the backward pass; every rank then takes the same optimiser
  step, so the weights stay equal everywhere. Nothing here reduces gradients itself; :func:`average` is for
  the few numbers a step needs alike on every rank (the loss an early stop decides on).
* **Per-rank randomness.** What a network draws from torch's global RNG (StyleGAN's per-pixel noise) differs
  per rank: with several ranks, each seeds it from (seed, rank, step) (:func:`rank_seed`), so a run is
  reproducible for a given number of processes.
"""

from __future__ import annotations

import atexit
import datetime
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .errors import InputError

# How long a rank waits in a collective for the others (init_process_group's timeout).
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=6)


def size() -> int:
    """How many processes train together (1 when not distributed)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when not distributed); rank 0 writes the run folder."""
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    return rank() == 0


def join(device: torch.device) -> torch.device:
    """Join the process group torchrun's environment describes, once per process, and return the device this
    rank trains on (``cuda:LOCAL_RANK`` for CUDA). Without torchrun, or with ``WORLD_SIZE`` 1, returns ``device``
    and joins nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # Rank 0's periodic actions (sample grids, FID, StyleGAN-R's view sweep at the start) run while the other
        # ranks wait in their next collective; at paper scale on CPUs they outlast the default 10-30 minutes. A
        # rank that dies is stopped by torchrun, not by this timeout.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
        atexit.register(_leave)
    return device


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's rows ``rank::size`` of a global-batch tensor [B, ...] (the tensor itself on one process)."""
    return tensor if size() == 1 else tensor[rank()::size()]


def wrap(module: torch.nn.Module, device: torch.device):
    """``module`` in ``DistributedDataParallel`` when distributed, else ``module`` itself. Every parameter that
    requires a gradient must receive one in each backward pass."""
    if size() == 1:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def broadcast(value):
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def on_main(action):
    """``action()`` run on rank 0 alone (writing files); its result, or the InputError it raised, on every rank."""
    if size() == 1:
        return action()
    outcome = None
    if is_main():
        try:
            outcome = (True, action())
        except InputError as error:
            outcome = (False, str(error))
    done, value = broadcast(outcome)
    if not done:
        raise InputError(value)
    return value


def gather(value) -> list:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if size() == 1:
        return [value]
    values = [None] * size()
    dist.all_gather_object(values, value)
    return values


def average(tensor: torch.Tensor) -> torch.Tensor:
    """The mean over the ranks of every rank's ``tensor`` (any shape, on the rank's device), on every rank; the
    tensor itself on one process. For numbers that a host decision or a normaliser needs alike everywhere (a
    step's loss), not for gradients: DistributedDataParallel averages those."""
    if size() == 1:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total / size()


def barrier() -> None:
    """Wait until every rank gets here (rank 0's files are written before the others go on)."""
    if size() > 1:
        dist.barrier()


def rank_seed(seed: int, rank_: int, step: int) -> int:
    """The seed of torch's global RNG on rank ``rank_`` of a run with several ranks, starting or resuming at
    ``step``: a hash of the three, so that no two ranks (or restarts) draw the same stream."""
    return int(np.random.SeedSequence([seed, rank_, step]).generate_state(1, dtype=np.uint64)[0])
