"""Helpers for ``torchrun``: process-group set-up from its environment, and small collectives.

A plain ``python -m training.train`` is a world of one and needs no process group. Under
``torchrun`` (``WORLD_SIZE`` > 1) the group is initialised with ``env://``: NCCL when the
processes use GPUs, gloo on CPU. Multi-node runs use torchrun's rendezvous flags unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and logs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group of more than one process is in use."""
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks this process's GPU when CUDA is available, else the CPU."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Set up this process from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Selects the GPU before creating the process group, as NCCL requires.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        device_id = device if backend == "nccl" else None
        dist.init_process_group(backend=backend, init_method="env://", device_id=device_id)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup() -> None:
    """Destroy the process group, if one was created."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op in a world of one)."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(array: np.ndarray, ctx: DistContext) -> np.ndarray:
    """Element-wise sum of ``array`` over all processes (e.g. confusion matrices)."""
    if not ctx.distributed:
        return array
    t = torch.from_numpy(np.ascontiguousarray(array)).to(ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def all_reduce_mean(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean of a float tensor over all processes (for logging losses)."""
    if not ctx.distributed:
        return values
    values = values.detach().clone().to(ctx.device)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / ctx.world_size


def any_process(flag: bool, ctx: DistContext) -> bool:
    """True when ``flag`` is true on at least one process."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([int(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every process."""
    if ctx.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
