"""torchrun / DistributedDataParallel set-up: PyTorch's own engine, nothing home-made.

Launched as ``torchrun --nproc_per_node N -m nnlab run NAME ...``, every process reads its
rank from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK), joins the process
group (NCCL on CUDA, Gloo on the CPU), takes its share of every batch and wraps the model in
DistributedDataParallel, which averages gradients across processes. Only rank 0 writes files
and shows progress. Launched plainly, everything here is a no-op.

Under torchrun's elastic restart (``--max-restarts N``), a worker that dies takes the job's
other workers down with it and torchrun starts them all again with the same command;
``TORCHELASTIC_RESTART_COUNT`` tells each it is a restart and ``TORCHELASTIC_RUN_ID`` which
job it belongs to. A restarted ``nnlab run ... --out DIR`` then goes on from DIR's newest
checkpoint (:func:`restarted_in`), and a peer lost mid-step is said as what it is
(:func:`lost_peer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from nnlab.engine.files import read_json
from nnlab.errors import NnlabError


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
        backend = "nccl" if device.type == "cuda" else "gloo"
        if (store := _store_of_this_attempt()) is not None:
            dist.init_process_group(backend, store=store, rank=d.rank, world_size=d.world_size)
        else:
            dist.init_process_group(backend)
    return d, device


def _store_of_this_attempt() -> dist.Store | None:
    """A restarted single-machine job's store, under a prefix of its restart count.

    torchrun shares one TCPStore server across its restarts (unless the launcher has
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``), and the process group's keys of the attempt
    that died are still in it: a restarted worker that reaches them before its peer has
    written new ones connects to a dead address and hangs. Each attempt's keys under a
    prefix of its own avoid that. Across machines the restart counts differ (a healthy
    machine's workers are restarted without counting), so there the launcher's opt-out is
    the cure (docs: Scaling out)."""
    job = elastic()
    if job is None or job["restart"] < 1 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") \
            != "True" or os.environ.get("GROUP_WORLD_SIZE", "1") != "1":
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          int(os.environ["WORLD_SIZE"]), is_master=False,
                          timeout=timedelta(minutes=10))
    return dist.PrefixStore(f"nnlab/attempt-{job['restart']}", store)


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


def elastic() -> dict | None:
    """This torchrun job's run id, restart count and world size (None without torchrun)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    return {"run_id": os.environ["TORCHELASTIC_RUN_ID"],
            "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0),
            "world_size": int(os.environ.get("WORLD_SIZE", "1"))}


def restarted_in(out: Path | None) -> bool:
    """True when this process is a torchrun restart and ``out`` holds the run this same
    job started (its config.json names this job's run id, ``--rdzv-id``): the run goes on
    from its newest checkpoint. A folder of another job, or none, is left to the usual
    rules."""
    job = elastic()
    if job is None or out is None:
        return False
    # One machine: its restart count says. Across machines it does not: a machine whose
    # workers were healthy restarts them without counting, so there the job's id alone does.
    if job["restart"] < 1 and os.environ.get("GROUP_WORLD_SIZE", "1") == "1":
        return False
    try:
        provenance = read_json(Path(out) / "config.json").get("provenance")
    except NnlabError:  # damaged: the usual rules say so
        return False
    started = provenance.get("torchrun") if isinstance(provenance, dict) else None
    return isinstance(started, dict) and started.get("run_id") == job["run_id"]


def lost_peer(error: BaseException) -> bool:
    """An error of a collective whose peer went away (a worker killed, a machine lost)."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        word in text for word in ("Connection closed by peer", "Connection reset by peer",
                                  "Broken pipe", "gloo", "NCCL", "c10d"))
