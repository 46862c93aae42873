"""nnlab sweep: Optuna's search over an experiment's flags, every trial a run folder; pruned
trials recorded as pruned; a killed sweep resumed; processes sharing one study; bad specs
in one line."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

import nnlab
from nnlab.cli import main
from nnlab.sweeps import parse_param

NNLAB = [sys.executable, "-m", "nnlab"]
SEARCH = ["--param", "lr=1e-4..1:log", "--param", "optimizer=sgd,adam"]


def _study(out):
    return optuna.load_study(study_name="nnlab", storage=f"sqlite:///{out / 'study.db'}")


def _states(out) -> list[str]:
    return [t.state.name for t in _study(out).trials]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_a_sweep_killed_mid_way_resumes_and_ends_with_every_trial(tmp_path, capsys):
    out = tmp_path / "sweep"
    proc = subprocess.Popen([*NNLAB, "sweep", "toy", "--quick", *SEARCH, "--trials", "8",
                             "--jobs", "2", "--out", str(out), "--", "--epochs", "150"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    # Killed when the first trial ends: the pruner waits for two finished trials, so the
    # rest are still running (after two, pruned trials end within a second each).
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("trials/*/metrics.json")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"nnlab sweep --resume {out}" in err
    assert len(_states(out)) < 8  # stopped mid-way
    assert main(["sweep", "--resume", str(out), "--jobs", "2"]) == 0
    said = capsys.readouterr().out
    states = _states(out)
    assert len(states) == 8 and set(states) <= {"COMPLETE", "PRUNED"}
    best = json.loads((out / "best.json").read_text())
    assert f"best: trial {best['trial']}" in said
    study = _study(out)
    assert best["test_acc"] == max(t.value for t in study.trials if t.state.name == "COMPLETE")
    folders = [t.user_attrs["folder"] for t in study.trials]
    assert len(set(folders)) == 8  # no trial run twice
    assert all((out / f / "metrics.json").is_file() for f in folders)


def test_a_trial_killed_before_all_its_values_were_chosen_gets_the_rest_on_resume(
        tmp_path, capsys):
    """A sweep killed between Optuna's ask and the trial's last suggestion left a running
    trial without some values: --resume chose them instead of failing on the missing one."""
    out = tmp_path / "sweep"
    assert main(["sweep", "toy", "--quick", *SEARCH, "--trials", "2", "--out", str(out), "--",
                 "--epochs", "3"]) == 0
    half = _study(out).ask()
    half.suggest_categorical("optimizer", ["sgd", "adam"])  # killed here, before lr
    capsys.readouterr()
    assert main(["sweep", "--resume", str(out)]) == 0
    assert f"trial {half.number}: started again" in capsys.readouterr().out
    trial = _study(out).trials[half.number]
    assert trial.state.name in {"COMPLETE", "PRUNED"}
    assert set(trial.params) == {"lr", "optimizer"}
    assert (out / trial.user_attrs["folder"] / "metrics.json").is_file()
    for name in ("trials.csv", "trials.md", "history.png", "effect.png"):
        assert (out / name).is_file()


def test_pruned_trials_are_recorded_as_pruned_and_stop_early(tmp_path):
    out = tmp_path / "sweep"
    result = nnlab.sweep("toy", ["lr=1e-5..1:log"], trials=8, out=out, sampler="random",
                         quick=True, epochs=40)
    study = _study(out)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert result.pruned == len(pruned) >= 1 and result.complete + result.pruned == 8
    for t in pruned:  # its run stopped before the planned 40 epochs, and says why
        history = (out / t.user_attrs["folder"] / "history.csv").read_text().splitlines()
        assert len(history) - 1 < 2 * 40  # both implementations' rows
        config = json.loads((out / t.user_attrs["folder"] / "config.json").read_text())
        assert "pruned by the sweep" in config["halted"]
    rows = (out / "trials.csv").read_text().splitlines()
    assert sum(",pruned," in r for r in rows) == len(pruned)
    assert result.best_value == max(t.value for t in study.trials if t.state.name == "COMPLETE")
    assert (out / result.best_folder.relative_to(out) / "metrics.json").is_file()


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study_without_a_trial_twice(tmp_path):
    out = tmp_path / "sweep"
    first = subprocess.Popen([*NNLAB, "sweep", "toy", "--quick", *SEARCH, "--trials", "4",
                              "--out", str(out), "--", "--epochs", "250"],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "study.db").exists():
        time.sleep(0.05)
    second = subprocess.run([*NNLAB, "sweep", "--resume", str(out)], capture_output=True,
                            text=True, env=_env(), timeout=180)
    first.communicate(timeout=180)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    study = _study(out)
    assert len(study.trials) == 4 and {t.state.name for t in study.trials} <= {"COMPLETE",
                                                                               "PRUNED"}
    assert len({t.user_attrs["folder"] for t in study.trials}) == 4
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2  # both took a share


def test_a_list_valued_flag_is_searched_as_choices_split_by_a_bar():
    from nnlab.experiments.toy import Config

    p = parse_param("hidden=8|16,16", Config)
    assert p.kind == "choice" and p.choices == ((8,), (16, 16))
    assert p.keys() == ["8", "16,16"] and p.value("16,16") == (16, 16)
    assert parse_param("epochs=5..20", Config).kind == "int"
    assert parse_param("lr=1e-4..1e-1:log", Config).log


@pytest.mark.parametrize("args, said", [
    (["--param", "width=1..2"], "--param width: no such flag of this experiment"),
    (["--param", "lr"], "write FLAG=SPEC"),
    (["--param", "lr=0.1..x"], "'x' is not a number"),
    (["--param", "lr=1..0.1"], "low end must be below its high end"),
    (["--param", "lr=0..1:log"], "a log scale needs a positive low end"),
    (["--param", "lr=-1..1"], "--param lr: --lr must be > 0"),
    (["--param", "optimizer=sgd,rmsprop"], "--param optimizer: --optimizer must be one of"),
    (["--param", "lr=1e-3..1", "--sampler", "grid"], "--sampler grid: --param lr is a "
                                                      "continuous range"),
    (["--param", "lr=1e-3..1", "--trials", "0"], "--trials must be >= 1"),
    ([], "a sweep needs at least one --param"),
    (["--param", "lr=1e-3..1", "--storage", "nosuchdb://x"], "the sweep's storage nosuchdb://x"),
    (["--param", "lr=1e-3..1", "--", "--epochs", "0"], "--epochs must be > 0"),
])
def test_bad_sweeps_are_one_line(tmp_path, capsys, args, said):
    code = main(["sweep", "toy", *args, "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code in (1, 2) and said in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()  # nothing left behind


def test_a_sweep_folder_is_never_reused_and_resume_needs_one(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert main(["sweep", "toy", "--param", "lr=1e-3..1", "--out", str(tmp_path / "mine")]) == 1
    assert "holds files" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    assert main(["sweep", "--resume", str(tmp_path / "mine")]) == 1
    assert "not a sweep folder" in capsys.readouterr().err
