"""torchrun / DistributedDataParallel set-up: PyTorch's own engine, nothing home-made.

Launched as ``torchrun --nproc_per_node N -m nnlab run NAME ...``, every process reads its
rank from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK), joins the process
group (NCCL on CUDA, Gloo on the CPU), takes its share of every batch and wraps the model in
DistributedDataParallel, which averages gradients across processes. Only rank 0 writes files
and shows progress. Launched plainly, everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_env() -> Dist:
    """This process's place in a torchrun launch (rank 0 of 1 without torchrun)."""
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group when launched by torchrun; return this process's Dist and its
    device (``cuda:LOCAL_RANK`` on CUDA)."""
    d = from_env()
    if not d.enabled:
        return d, device
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return d, device


def wrap(model: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when running distributed, else as it is."""
    if not d.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
