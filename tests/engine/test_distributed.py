"""torchrun / DDP: each process takes its share of a batch; a 2-process CPU run (Gloo) writes
one run folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

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


def _torchrun(*launcher: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "nnlab", "run",
            "cifar-mlp", "--quick", "--epochs", "24"]


def _rank_of(pid: int) -> int | None:
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    except OSError:
        return None
    return next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)


def _workers(launcher_pid: int) -> dict[int, int]:
    """{rank: pid} of a torchrun launcher's worker processes."""
    found = subprocess.run(["pgrep", "-P", str(launcher_pid)], capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    return {r: p for p in pids if (r := _rank_of(p)) is not None}


def _same_metrics(a: Path, b: Path) -> None:
    timing = {"wall_s", "images_per_s", "data_s"}
    first, second = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
    assert {k: v for k, v in first.items() if k not in timing} == \
        {k: v for k, v in second.items() if k not in timing}


def _after_first_checkpoint(proc: subprocess.Popen, out: Path) -> None:
    import time

    deadline = time.time() + 120
    while not list(out.glob("checkpoint-*.pt")):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint came"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_torchrun_job_whose_worker_is_killed_comes_back_with_the_same_metrics(
        learnable_cifar, tmp_path):
    """--max-restarts 1, rank 1 SIGKILLed after the first checkpoint: the other worker says
    a worker was lost (not an internal error), torchrun restarts both, they resume from the
    checkpoint, and the job ends with the metrics of a job that was never interrupted."""
    import signal

    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    data = ["--data", str(learnable_cifar)]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    launcher = ["--standalone", "--nproc_per_node", "2", "--max-restarts", "1"]
    done = subprocess.run([*_torchrun(*launcher), *data, "--out", str(whole)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    proc = subprocess.Popen([*_torchrun(*launcher), *data, "--out", str(killed)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _after_first_checkpoint(proc, killed)
        os.kill(_workers(proc.pid)[1], signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "nnlab: error: a worker of this torchrun job was lost (" in err
    assert "internal error" not in err
    assert f"nnlab: torchrun restarted the job: {killed} goes on from its newest checkpoint" \
        in err
    assert "resuming from" in err
    _same_metrics(whole, killed)
    record = json.loads((killed / "config.json").read_text())
    assert record["provenance"]["torchrun"]["world_size"] == 2
    assert out.count("run folder:") == 1  # rank 0 of the attempt that finished


@pytest.mark.slow
def test_sigterm_to_the_torchrun_launcher_checkpoints_and_resumes(learnable_cifar, tmp_path):
    import signal

    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    command = [*_torchrun("--standalone", "--nproc_per_node", "2"), "--data",
               str(learnable_cifar), "--out", str(out)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _after_first_checkpoint(proc, out)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "nnlab: stopped by SIGTERM" in err and "--resume" in err
    assert not (out / "metrics.json").exists() and list(out.glob("checkpoint-*.pt"))
    resumed = subprocess.run([*command[:command.index("--out")], "--resume", str(out)],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (out / "metrics.json").is_file()


@pytest.mark.slow
def test_two_nodes_on_one_machine_through_the_c10d_rendezvous(learnable_cifar, tmp_path):
    """Two launchers (--nnodes 2, one process each) meet at a c10d rendezvous on 127.0.0.1,
    as two machines would; the run folder is written once, by global rank 0."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    nodes = [subprocess.Popen(
        [*_torchrun("--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank),
                    "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
                    "--rdzv_id", "nnlab-test"), "--data", str(learnable_cifar), "--out",
         str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)]
    said = [node.communicate(timeout=300) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), said[0][1][-2000:] + said[1][1][-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert sum(s[0].count("run folder:") for s in said) == 1


@pytest.mark.slow
def test_two_nodes_restart_after_a_lost_worker_with_a_fresh_store(learnable_cifar, tmp_path):
    """The multi-machine restart the docs describe: two launchers with the c10d rendezvous
    and TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1; node 1's worker is SIGKILLed after the first
    checkpoint; both nodes restart and the job ends with an unbroken job's metrics."""
    import signal
    import socket

    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}

    def job(out: Path) -> list[subprocess.Popen]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return [subprocess.Popen(
            [*_torchrun("--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank),
                        "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
                        "--rdzv_id", out.name, "--max-restarts", "1"), "--data",
             str(learnable_cifar), "--out", str(out)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True) for rank in (0, 1)]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for node in job(whole):
        node.communicate(timeout=300)
        assert node.returncode == 0
    nodes = job(killed)
    try:
        _after_first_checkpoint(nodes[0], killed)
        os.kill(next(iter(_workers(nodes[1].pid).values())), signal.SIGKILL)
        said = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert all(node.returncode == 0 for node in nodes), said[0][1][-1500:] + said[1][1][-1500:]
    errors = "".join(err for _, err in said)
    assert "goes on from its newest checkpoint" in errors
    assert "is not empty" not in errors  # the healthy node's worker resumed too, first time
    _same_metrics(whole, killed)
