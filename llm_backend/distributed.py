"""Data-parallel training on torch.distributed: what the trainer needs from it, and nothing when it runs alone.

``torchrun --nproc_per_node N`` and ``accelerate launch`` (multi-GPU or multi-CPU, DDP) both start N processes with
``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment; :func:`context` joins that process
group (NCCL on GPUs, gloo on CPUs) or, without it, returns a world of one. The trainer then:

* gives each process its own micro-batch *slots* (slot j = rank·A + i, A micro-batches per process), each with its
  own generator, so sampling is seeded per rank and the oracle's calls are sharded;
* averages the gradients across processes after the backward passes (:func:`average_gradients`) — what DDP's
  reducer does, done explicitly because an algorithm's objective runs the policy several times before one backward
  pass (y, y′, several samplers), which DDP's once-per-forward hooks do not allow without extra flags;
* reduces the step's metrics and lets rank 0 alone evaluate and write.

So a run on N processes with A micro-batches each computes what one process computes with N·A micro-batches (the same
slots, the same pairs), up to the order of floating-point sums — tests/test_llm_distributed.py checks it with two gloo
processes. Sharded training (:mod:`llm_backend.fsdp`) uses the same slots and group; there FSDP's reduce-scatter
averages the gradients, and :func:`average_gradients` is not called.
"""

from __future__ import annotations

import atexit
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """This process's place: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process evaluates and writes (rank 0)."""
        return self.rank == 0


def context(device: torch.device | None = None) -> Context:
    """Join the process group a launcher set up through the environment, or a world of one without it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Context()
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        # a group still alive at interpreter exit can abort the process ("terminate called without an active
        # exception", seen with gloo under accelerate launch): the one who joined it leaves it
        atexit.register(_leave)
    return Context(dist.get_rank(), dist.get_world_size())


def _leave() -> None:
    if dist.is_initialized():
        # collect the trainer's garbage first, while the group and the interpreter are whole: FSDP's modules (in
        # reference cycles) keep gloo work handles that hold tensors, and freed during interpreter finalisation
        # instead they take the GIL there and abort the process (SIGABRT, "terminate called without an active
        # exception", the failure pytorch/pytorch#179291 describes; seen twice in about forty 2-process FSDP runs on a
        # loaded machine)
        gc.collect()
        dist.barrier()  # nobody leaves while another process still talks to it
        dist.destroy_process_group()


def average_gradients(params: list[torch.Tensor], world: int) -> None:
    """Every parameter's gradient replaced by its mean over the ``world`` processes (a zero gradient where a
    process has none, so all of them take part in every all-reduce)."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad.div_(world)


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's weights on every process (whatever each built or loaded)."""
    with torch.no_grad():
        for p in module.parameters():
            dist.broadcast(p.data, 0)


def all_sum(values: list[float], device=None) -> list[float]:
    """Each number summed over the processes."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
