"""torchrun / DDP: each process takes its share of a batch; a 2-process CPU run (Gloo) writes
one run folder."""

import json
import os
import subprocess
import sys

import pytest
import torch

from nnlab.data.cifar10 import Loader
from nnlab.engine import distributed


def test_ranks_split_every_batch_disjointly():
    x = torch.zeros(40, 3, 32, 32, dtype=torch.uint8)
    y = torch.arange(40)
    mean, std = torch.zeros(3), torch.ones(3)
    shares = [[yb for _, yb in Loader(x, y, 8, mean, std, shuffle=True, seed=3, rank=r,
                                      world_size=2)] for r in (0, 1)]
    whole = [yb for _, yb in Loader(x, y, 8, mean, std, shuffle=True, seed=3)]
    for a, b, full in zip(*shares, whole, strict=True):
        assert len(a) == len(b) == 4
        assert sorted(torch.cat([a, b]).tolist()) == sorted(full.tolist())


def test_without_torchrun_everything_is_a_no_op(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    d, device = distributed.setup(torch.device("cpu"))
    model = torch.nn.Linear(2, 2)
    assert d.is_main and not d.enabled and device.type == "cpu"
    assert distributed.wrap(model, d, device) is model


@pytest.mark.slow
def test_torchrun_two_cpu_processes_write_one_run(learnable_cifar, nnlab_cache, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "nnlab", "run", "cifar-mlp", "--quick", "--data",
         str(learnable_cifar), "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["n_val"] == 100
    # what rank 0 wrote is the saved model's score, as one process finds it
    from nnlab.cli import main

    assert main(["eval", str(out), "--data", str(learnable_cifar)]) == 0
    evaluated = json.loads((out / f"eval-val-{metrics['tta']}.json").read_text())
    # bf16 vs bf16: at most one image in 100 flips
    assert evaluated["val_acc"] == pytest.approx(metrics["val_acc"], abs=0.011)
    assert proc.stdout.count("run folder:") == 1  # printed by rank 0 only


@pytest.mark.slow
def test_torchrun_runs_a_users_model_file_on_two_processes(learnable_cifar, tmp_path):
    """The ResNet example (a model and a Config, on nnlab's classifier loop) under torchrun:
    each process trains its share, rank 0 writes the one run folder."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "resnet_cifar.py"
    out = tmp_path / "run"
    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "nnlab", "run", str(example), "--quick", "--data", str(learnable_cifar),
         "--out", str(out)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and (out / "model.pt").exists()
    assert proc.stdout.count("run folder:") == 1
