"""Single-process or torchrun data parallelism, behind one small object.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) ``setup`` joins the process group (NCCL when
CUDA is available, gloo on CPU) unless the caller already did; ``wrap`` puts the module in
DistributedDataParallel. Only the main rank (0) writes files or prints. A process group the caller
created is left alone; one created here is destroyed by ``shutdown``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    created_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: str | None = None) -> Dist:
    """The process's place in the job; joins the torchrun process group if there is one."""
    created = False
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() and device != "cpu" else "gloo")
        created = True
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0)
        torch.cuda.set_device(dev)
    return Dist(rank, world, dev, created)


def wrap(module: nn.Module, d: Dist) -> nn.Module:
    if not d.active:
        return module
    return DistributedDataParallel(module, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def all_gather_object(obj: Any, d: Dist) -> list[Any]:
    if not d.active:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_tensors(tensors: list[torch.Tensor], d: Dist, src: int = 0) -> None:
    """Overwrite every rank's tensors with rank ``src``'s, in place."""
    if d.active:
        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t.data, src)


def mean(value: float, d: Dist) -> float:
    """The mean of a per-rank scalar over all ranks (the global batch's loss, for logging)."""
    if not d.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return float(t) / d.world


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.created_group and dist.is_initialized():
        dist.destroy_process_group()
