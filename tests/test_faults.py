"""Faults a real machine produces: a run folder from someone else (loading never runs code),
every checkpoint damaged (stop and say so, delete nothing), a run killed before its first
checkpoint, and two processes on one run folder (one writer at a time)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from fakes import disk_full_at

from nnlab.cli import main
from nnlab.engine.checkpoint import Checkpoints


class _Payload:
    """What a crafted model.pt holds: unpickling it would create a file of its choosing."""

    def __init__(self, target: pathlib.Path) -> None:
        self.target = target

    def __reduce__(self):  # noqa: ANN204
        return pathlib.Path.touch, (self.target,)


def test_a_crafted_model_file_is_refused_and_its_payload_never_runs(tmp_path, capsys):
    run = tmp_path / "shared"
    assert main(["run", "palindrome", "--quick", "--out", str(run)]) == 0
    pwned = tmp_path / "pwned"
    torch.save({"experiment": "palindrome", "model": _Payload(pwned), "data": {}},
               run / "model.pt")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a file nnlab reads safely" in err, err
    assert not pwned.exists()  # the payload did not run


def test_a_model_of_other_shapes_is_one_line(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["run", "palindrome", "--quick", "--out", str(run)]) == 0
    from nnlab.engine import checkpoint

    saved = checkpoint.load(run / "model.pt")
    saved["model"] = {k: torch.zeros(3) for k in saved["model"]}
    checkpoint.save(saved, run / "model.pt")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not fit the network" in err


def test_when_no_checkpoint_can_be_read_resume_stops_and_deletes_nothing(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["run", "toy", "--quick", "--dataset", "moons", "--epochs", "30",
                 "--checkpoint-every", "10", "--out", str(run)]) == 0
    (run / "metrics.json").unlink()  # as if killed after its last checkpoint
    for path in Checkpoints(run).paths():
        path.write_bytes(path.read_bytes()[:300])  # every one cut short
    before = sorted((p.name, p.stat().st_size) for p in run.iterdir())
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "no checkpoint can be read (checkpoint-000006.pt" in err[-1]
    assert "nothing was deleted" in err[-1] and "--overwrite" in err[-1]
    assert sorted((p.name, p.stat().st_size) for p in run.iterdir()) == before


def test_a_run_stopped_before_its_first_checkpoint_says_it_starts_over(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["run", "toy", "--quick", "--dataset", "moons", "--out", str(run)]) == 0
    for path in [*Checkpoints(run).paths(), run / "metrics.json"]:
        path.unlink()
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(run)]) == 0
    assert "holds no checkpoint yet (stopped before its first): it starts from the " \
           "beginning" in capsys.readouterr().err


def _nnlab(argv, tmp_path) -> subprocess.Popen:
    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nnlab", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _race(argvs, tmp_path) -> list[tuple[int, str]]:
    procs = [_nnlab(argv, tmp_path) for argv in argvs]
    return [(p.wait(timeout=120), p.stderr.read()) for p in procs]


@pytest.mark.slow
def test_two_processes_never_write_in_one_run_folder(tmp_path):
    """Two --resume of one folder at once: one runs, the other is told the folder is in use
    (naming its PID); two new runs into one empty --out at once: exactly one runs."""
    run = tmp_path / "r"
    steps = ["--quick", "--steps", "400", "--eval-every", "20", "--patience", "100000"]
    assert main(["run", "palindrome", *steps, "--out", str(run)]) == 0
    (run / "metrics.json").unlink()
    for path in Checkpoints(run).paths()[:-1]:
        path.unlink()  # resumed from an early point: both would have work to do
    done = _race([["run", "palindrome", "--resume", str(run), "--steps", "2000"]] * 2,
                 tmp_path)
    codes = sorted(code for code, _ in done)
    assert codes == [0, 1], done
    refused = next(err for code, err in done if code == 1).strip().splitlines()[-1]
    assert "is in use by PID" in refused and "one process writes in a run folder" in refused
    assert json.loads((run / "metrics.json").read_text())["steps"] == 2000
    for attempt in range(3):  # the race, again and again
        out = tmp_path / f"new{attempt}"
        out.mkdir()
        done = _race([["run", "palindrome", *steps, "--out", str(out)]] * 2, tmp_path)
        assert sorted(code for code, _ in done) == [0, 1], done
        json.loads((out / "config.json").read_text())  # one writer: whole JSON
        assert (out / "metrics.json").exists()


@pytest.mark.parametrize("name, after", [
    ("checkpoint-", 3), pytest.param("metrics.json", 1, marks=pytest.mark.slow),
    pytest.param("history.csv", 1, marks=pytest.mark.slow),
    pytest.param("curves.png", 1, marks=pytest.mark.slow)])
def test_a_full_disk_is_one_line_keeps_what_was_written_and_says_how_to_resume(
        name, after, tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    disk_full_at(monkeypatch, name, after)
    argv = ["--quick", "--dataset", "moons", "--epochs", "40", "--checkpoint-every", "10"]
    assert main(["run", "toy", *argv, "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"nnlab: error: cannot write {run}/{name}")
    assert "No space left on device" in err and "are kept" in err
    assert f"resume with: nnlab run toy --resume {run}" in err
    assert not list(run.glob(".*.tmp"))  # the partial temporary file is gone
    kept = [p.name for p in Checkpoints(run).paths()]
    # history.csv is written with each checkpoint, after it: the first one is kept
    assert kept == {"checkpoint-": ["checkpoint-000001.pt", "checkpoint-000002.pt"],
                    "history.csv": ["checkpoint-000001.pt"]}.get(
        name, ["checkpoint-000007.pt", "checkpoint-000008.pt"])  # all trained
    monkeypatch.undo()  # room again
    assert main(["run", "toy", "--resume", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["numpy"]["test_acc"] > 0


def test_a_damaged_config_json_is_one_line(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["run", "toy", "--quick", "--dataset", "moons", "--out", str(run)]) == 0
    (run / "config.json").write_text('{"experiment": "toy"} {"extra": 1}')  # two writers
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(run)]) == 1
    assert capsys.readouterr().err.strip() == f"nnlab: error: {run / 'config.json'}: not " \
                                              "readable JSON"


def test_a_truncated_data_cache_is_decoded_again(learnable_cifar, nnlab_cache):
    from nnlab.data.cifar10 import load_cifar10

    first = load_cifar10(learnable_cifar)
    (cache,) = nnlab_cache.glob("cifar10-*.pt")
    cache.write_bytes(cache.read_bytes()[:500])  # a copy cut short
    again = load_cifar10(learnable_cifar)
    assert torch.equal(again.x_train, first.x_train)
    assert cache.stat().st_size > 500  # and written whole again
