"""Durable runs through the CLI, as a user meets them: a real process killed part-way and
resumed ends with the numbers of a run that never stopped; Ctrl-C checkpoints and says how
to resume; a changed flag is refused on resume; --quick yields to given flags; progress lines
in a log; TensorBoard scalars; nnlab eval reproduces metrics.json."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest
from fakes import (
    kill_then_resume,
    same_results,
    start_nnlab,
    untimed_history,
    wait_for_checkpoint,
)

from nnlab.cli import main
from nnlab.engine.checkpoint import Checkpoints


@pytest.mark.slow
def test_toy_killed_in_the_numpy_phase_resumes_exactly(tmp_path, monkeypatch, capsys):
    argv = ["--quick", "--epochs", "150", "--hidden", "64,64", "--batch-size", "8",
            "--checkpoint-every", "10"]
    killed, reference = kill_then_resume("toy", argv, tmp_path, monkeypatch, at=3,
                                          truncate=True)
    same_results(killed, reference)
    assert "is unreadable" in capsys.readouterr().err


@pytest.mark.slow
def test_toy_killed_in_the_torch_phase_resumes_exactly(tmp_path, monkeypatch):
    argv = ["--quick", "--epochs", "150", "--hidden", "64,64", "--batch-size", "8",
            "--checkpoint-every", "10"]
    killed, reference = kill_then_resume("toy", argv, tmp_path, monkeypatch, at=18)
    same_results(killed, reference)


@pytest.mark.slow
def test_speedrun_killed_resumes_exactly(learnable_cifar, tmp_path, monkeypatch):
    argv = ["--quick", "--epochs", "25", "--batch-size", "32", "--whiten-eps", "1",
            "--lookahead", "0.5", "--lookahead-k", "3", "--whiten-bias-epochs", "2",
            "--muon-lr", "0.1",
            "--data", str(learnable_cifar)]
    same_results(*kill_then_resume("cifar-speedrun", argv, tmp_path, monkeypatch, at=3))


@pytest.mark.slow
def test_cifar_mlp_killed_resumes_exactly(learnable_cifar, tmp_path, monkeypatch):
    argv = ["--quick", "--epochs", "60", "--mixup", "0.4", "--cutmix", "1",
            "--data", str(learnable_cifar)]
    same_results(*kill_then_resume("cifar-mlp", argv, tmp_path, monkeypatch, at=5))


@pytest.mark.slow
def test_palindrome_killed_resumes_exactly(tmp_path, monkeypatch):
    argv = ["--quick", "--steps", "1500", "--eval-every", "20", "--patience", "1000"]
    same_results(*kill_then_resume("palindrome", argv, tmp_path, monkeypatch, at=5))


@pytest.mark.slow
def test_ctrl_c_checkpoints_exits_130_and_says_how_to_resume(tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = ["--quick", "--epochs", "150", "--hidden", "64,64", "--batch-size", "8",
            "--checkpoint-every", "25"]
    proc = start_nnlab(["run", "toy", *argv, "--out", str(out)], tmp_path)
    wait_for_checkpoint(proc, out, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("nnlab: stopped by SIGINT")
    assert f"resume with: nnlab run toy --resume {out}" in err
    assert Checkpoints(out).paths()[-1].name > "checkpoint-000002.pt"  # written on the stop
    assert main(["run", "toy", "--resume", str(out)]) == 0
    # the resume kept --checkpoint-every 25 (toy's own default is 100): the checkpoint
    # before the last is at the torch phase's epoch 125
    import torch

    before_last = torch.load(Checkpoints(out).paths()[-2], weights_only=False)
    assert (before_last["progress"]["phase"], before_last["progress"]["position"]) == \
        ("torch", 125)
    assert json.loads((out / "config.json").read_text())["checkpoint_every"] == 25
    assert main(["run", "toy", *argv, "--out", str(tmp_path / "reference")]) == 0
    same_results(out, tmp_path / "reference")


@pytest.mark.slow
def test_a_signal_to_the_parent_alone_stops_its_seed_workers(tmp_path):
    """`kill PID` (a job scheduler's SIGTERM) reaches only the parent of a --jobs run, not
    its worker processes: it passes the stop on, and starts no further seed, so the run stops
    in seconds instead of training every seed to its end (about 15 min here)."""
    out = tmp_path / "run"
    argv = ["--quick", "--steps", "1000000", "--eval-every", "20", "--patience", "1000000",
            "--seeds", "3", "--jobs", "2", "--out", str(out)]
    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "nnlab", "run", "palindrome", *argv],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: cleared whatever happens
    try:
        for seed in ("seed0", "seed1"):
            wait_for_checkpoint(proc, out / seed, 2)
        proc.send_signal(signal.SIGTERM)  # to the parent only
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err[-1500:]
    assert "Traceback" not in err and "resume with: nnlab run palindrome --resume" in err
    assert not (out / "seed2").exists()  # the third seed never started
    assert not any((out / s / "metrics.json").exists() for s in ("seed0", "seed1"))


@pytest.mark.slow
def test_sigterm_exits_143(tmp_path):
    out = tmp_path / "run"
    proc = start_nnlab(["run", "palindrome", "--quick", "--steps", "100000", "--patience", "1000",
                   "--out", str(out)], tmp_path)
    wait_for_checkpoint(proc, out, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err


@pytest.mark.parametrize("flag, value", [("--hidden", "32"), ("--lr", "0.1"),
                                         ("--optimizer", "adam")])
@pytest.mark.slow
def test_resume_refuses_a_changed_flag_naming_it(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    assert main(["run", "toy", "--quick", "--out", str(out)]) == 0
    before = (out / "metrics.json").read_text()
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(out), flag, value]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--resume: {flag} {value} differs" in err
    assert (out / "metrics.json").read_text() == before  # nothing touched


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "toy", "--quick", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(out)]) == 0
    assert "is a finished run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "toy", "--resume", str(tmp_path / "nope")]) == 1
    assert "no config.json" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["run", "palindrome", "--quick", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(out)]) == 1
    assert "holds a palindrome run, not toy" in capsys.readouterr().err


@pytest.mark.slow
def test_raising_epochs_extends_a_finished_run_to_a_longer_runs_numbers(tmp_path):
    argv = ["--quick", "--dataset", "all", "--optimizer", "adam"]
    out = tmp_path / "run"
    assert main(["run", "toy", *argv, "--out", str(out)]) == 0
    assert main(["run", "toy", "--resume", str(out), "--epochs", "35"]) == 0
    assert main(["run", "toy", *argv, "--epochs", "35", "--out", str(tmp_path / "long")]) == 0
    for name in ("moons", "circles", "blobs"):
        same_results(out / name, tmp_path / "long" / name)
    assert json.loads((out / "config.json").read_text())["epochs"] == 35
    assert (out / "metrics.before-resume.json").exists()


@pytest.mark.slow
def test_a_schedule_tied_to_the_length_cannot_be_extended(learnable_cifar, nnlab_cache,
                                                          tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(learnable_cifar),
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", "cifar-speedrun", "--resume", str(out), "--epochs", "4"]) == 1
    assert "cannot be extended" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_never_overrides_a_given_flag(learnable_cifar, nnlab_cache, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--epochs", "3", "--widths", "8,16,16",
                 "--data", str(learnable_cifar), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 3 and config["widths"] == [8, 16, 16]
    assert config["batch_size"] == 128  # quick's default where no flag was given
    assert [r["epoch"] for r in untimed_history(out / "history.csv")] == ["1", "2", "3"]
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3
    prov = config["provenance"]
    assert {"nnlab", "torch", "command", "device", "precision", "threads", "cpu"} <= set(prov)


@pytest.mark.slow
def test_progress_lines_in_a_log(learnable_cifar, nnlab_cache, tmp_path, capsys):
    assert main(["run", "cifar-cnn", "--quick", "--optimizer", "adam", "--epochs", "3",
                 "--data", str(learnable_cifar), "--out", str(tmp_path / "r")]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "epoch" in ln]
    assert lines[0].startswith("cifar-cnn adam seed 0  epoch 1/3  train_loss ")
    assert lines[-1].startswith("cifar-cnn adam seed 0  epoch 3/3")
    for word in ("val_acc", "lr", "images_per_s", "elapsed", "left"):
        assert word in lines[-1]


def test_tensorboard_scalars_equal_the_history(tmp_path):
    pytest.importorskip("tensorboard")  # a dev dependency: installed by `make test`
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["run", "palindrome", "--quick", "--tensorboard", "--out", str(out)]) == 0
    events = EventAccumulator(str(out / "tensorboard"),
                              size_guidance={"scalars": 0, "images": 0}).Reload()
    rows = untimed_history(out / "history.csv")
    for column in ("train_loss", "train_acc", "val_loss", "val_acc", "T"):
        logged = events.Scalars(column)
        assert [e.step for e in logged] == [int(r["step"]) for r in rows]
        assert [e.value for e in logged] == pytest.approx([float(r[column]) for r in rows],
                                                          rel=1e-6)  # stored as float32
    assert "curves" in events.Tags()["images"]


@pytest.mark.slow
def test_tensorboard_after_a_crash_holds_each_step_once(learnable_cifar, nnlab_cache,
                                                       tmp_path):
    """A run that died after its last checkpoint had logged steps past it; resumed from that
    checkpoint, it logs them again. TensorBoard must show each step once, per phase."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    argv = ["run", "cifar-cnn", "--quick", "--epochs", "4", "--tensorboard",
            "--data", str(learnable_cifar), "--out", str(out)]
    assert main(argv) == 0
    # The crash: every epoch logged, but the newest checkpoint (SGD's last epoch) lost, and
    # no metrics.json yet: the resume runs SGD's last epoch again.
    (out / "metrics.json").unlink()
    Checkpoints(out).paths()[-1].unlink()
    assert main(["run", "cifar-cnn", "--resume", str(out), "--data", str(learnable_cifar)]) == 0
    # it kept logging without --tensorboard given again
    assert len(list((out / "tensorboard" / "sgd").glob("events.out.tfevents.*"))) == 2
    for phase in ("adam", "sgd"):
        events = EventAccumulator(str(out / "tensorboard" / phase),
                                  size_guidance={"scalars": 0}).Reload()
        rows = [r for r in untimed_history(out / "history.csv") if r["optimizer"] == phase]
        assert [e.step for e in events.Scalars("val_acc")] == [int(r["epoch"]) for r in rows]
        assert [e.value for e in events.Scalars("val_acc")] == pytest.approx(
            [float(r["val_acc"]) for r in rows], rel=1e-6)


def test_tensorboard_missing_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["run", "toy", "--quick", "--tensorboard", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install tensorboard" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name, keys", [
    ("cifar-mlp", ["val_acc", "val_loss"]),
    ("cifar-speedrun", ["val_acc", "val_loss"]),
    ("cifar-cnn", ["adam.val_acc", "sgd.val_acc", "adam.val_loss"]),
])
def test_eval_of_a_finished_run_reproduces_its_metrics(name, keys, learnable_cifar,
                                                       nnlab_cache, tmp_path, capsys):
    from nnlab.seeds import flatten

    out = tmp_path / "run"
    assert main(["run", name, "--quick", "--data", str(learnable_cifar), "--out",
                 str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = flatten(json.loads((out / "metrics.json").read_text()))
    written = flatten(json.loads(next(out.glob("eval-val-*.json")).read_text()))
    for key in keys:
        assert written[key] == pytest.approx(metrics[key], abs=1e-6)
        assert f"{key}  " in printed


@pytest.mark.slow
def test_eval_of_a_palindrome_sweep_and_of_a_checkpointed_run(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["run", "palindrome", "--quick", "--lengths", "3,4", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("rnn-T3", "rnn-T4"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert f"{name}.test_acc  {metrics['test_acc']:.4f}" in printed
        written = json.loads((out / name / "eval-test.json").read_text())
        assert written["test_acc"] == metrics["test_acc"]
    (out / "rnn-T4" / "model.pt").unlink()  # as if it had not finished: the checkpoint
    capsys.readouterr()
    assert main(["eval", str(out / "rnn-T4")]) == 0
    newest = sorted((out / "rnn-T4").glob("checkpoint-*.pt"))[-1]
    said = capsys.readouterr().err
    assert f"has not finished: this is the model of {newest.name} (train at 60)" in said
    assert json.loads((out / "rnn-T4" / "eval-test.json").read_text())["from_checkpoint"] == \
        int(newest.stem.split("-")[1])


@pytest.mark.slow
def test_eval_of_a_toy_run_says_what_it_takes(tmp_path, capsys):
    assert main(["run", "toy", "--quick", "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "r")]) == 1
    assert "a toy run has no separate evaluation" in capsys.readouterr().err


@pytest.mark.slow
def test_overwrite_clears_a_run_and_refuses_other_folders(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "toy", "--quick", "--dataset", "all", "--out", str(out)]) == 0
    assert main(["run", "toy", "--quick", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "moons").exists()  # nothing of the first run is left beside the second
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert main(["run", "toy", "--quick", "--out", str(other), "--overwrite"]) == 1
    assert "not an nnlab run" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "keep me"
