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
    name = json.loads((out / "sweep.json").read_text())["study"]
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def _states(out) -> list[str]:
    return [t.state.name for t in _study(out).trials]


def _finished(study) -> list:
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_a_sweep_killed_mid_way_resumes_and_ends_with_every_trial(tmp_path, capsys):
    out = tmp_path / "sweep"
    proc = subprocess.Popen([*NNLAB, "sweep", "toy", "--quick", *SEARCH, "--trials", "8",
                             "--jobs", "2", "--out", str(out), "--", "--epochs", "150"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    # Killed once both first trials have checkpointed: both are mid-way
    deadline = time.time() + 120
    while time.time() < deadline and len({p.parent for p in out.glob(
            "trials/*/checkpoint-*.pt")}) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"nnlab sweep --resume {out}" in err
    study = _study(out)
    assert len(_finished(study)) < 8  # stopped mid-way
    interrupted = [t for t in study.trials if t.state.name == "FAIL"]
    assert interrupted and all(t.user_attrs["interrupted"] == "SIGTERM" for t in interrupted)
    waiting = [t for t in study.trials if t.state.name == "WAITING"]
    assert len(waiting) == len(interrupted)  # each queued again by Optuna's retry callback
    assert main(["sweep", "--resume", str(out), "--jobs", "2"]) == 0
    said = capsys.readouterr().out
    study = _study(out)
    finished = _finished(study)
    assert 8 <= len(finished) <= 9  # two workers may each finish the last trial together
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED", "FAIL"}
    for t in interrupted:  # each resumed from its checkpoint, in its own folder
        retry, = (r for r in study.trials if r.system_attrs.get("retry_history") == [t.number])
        assert retry.state.name in {"COMPLETE", "PRUNED"}
        assert retry.user_attrs["folder"] == t.user_attrs["folder"]
        config = json.loads((out / t.user_attrs["folder"] / "config.json").read_text())
        assert config["provenance"]["resumed"]
    best = json.loads((out / "best.json").read_text())
    assert f"best: trial {best['trial']}" in said
    assert best["val_acc"] == max(t.value for t in study.trials if t.state.name == "COMPLETE")
    folders = [t.user_attrs["folder"] for t in finished]
    assert len(set(folders)) == len(finished)  # no trial run twice
    assert all((out / f / "metrics.json").is_file() for f in folders)
    rows = (out / "trials.csv").read_text()
    assert rows.count("interrupted, retried as trial") == len(interrupted)


def test_a_lost_trial_is_failed_by_its_heartbeat_and_retried_with_the_rest_chosen(
        tmp_path, capsys):
    """A worker lost between Optuna's ask and the trial's last suggestion: its heartbeat
    stops, the next worker fails it (after two heartbeats) and takes its retry, whose missing
    values the sampler chooses."""
    out = tmp_path / "sweep"
    assert main(["sweep", "toy", "--quick", *SEARCH, "--trials", "2", "--heartbeat", "1",
                 "--out", str(out), "--", "--epochs", "3"]) == 0
    from nnlab.sweeps import Spec, _storage

    spec = Spec(**json.loads((out / "sweep.json").read_text()))
    storage = _storage(f"sqlite:///{out / 'study.db'}", 1)
    study = optuna.load_study(study_name=spec.study, storage=storage)
    with pytest.warns(UserWarning, match="Heartbeat"):  # outside optimize(), as a lost one
        half = study.ask()
    half.suggest_categorical("optimizer", ["sgd", "adam"])  # lost here, before lr
    storage.record_heartbeat(half._trial_id)  # its last sign of life
    time.sleep(3.5)  # two heartbeats of silence (the database keeps whole seconds)
    capsys.readouterr()
    assert main(["sweep", "--resume", str(out), "--trials", "3"]) == 0  # one more
    said = capsys.readouterr().out
    assert f"trial {half.number}: running on ?; if its worker is gone" in said
    study = _study(out)
    assert study.trials[half.number].state.name == "FAIL"
    retry = study.trials[-1]
    assert f"trial {retry.number} (a retry of trial {half.number}, lost before its run " \
           f"began): started in" in said
    assert retry.state.name in {"COMPLETE", "PRUNED"}
    assert set(retry.params) == {"lr", "optimizer"}
    assert retry.params["optimizer"] == study.trials[half.number].params["optimizer"]
    assert (out / retry.user_attrs["folder"] / "metrics.json").is_file()
    assert f"lost, retried as trial {retry.number}" in (out / "trials.csv").read_text()


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
    # Optuna's MaxTrialsCallback: two workers ending a trial together may make it five
    assert 4 <= len(study.trials) <= 5
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    assert len({t.user_attrs["folder"] for t in study.trials}) == len(study.trials)
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


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_two_machines_share_a_postgresql_sweep_and_a_killed_worker_is_retried(
        postgres_url, tmp_path):
    """Two workers in folders of their own share only the database URL; one is SIGKILLed
    mid-trial: its heartbeat stops, the other fails the lost trial and resumes it from its
    checkpoint, and the sweep ends with the trials asked for and the best named."""
    first, second = tmp_path / "machine-a", tmp_path / "machine-b"
    a = subprocess.Popen([*NNLAB, "sweep", "toy", "--quick", *SEARCH, "--trials", "6",
                          "--no-prune",  # pruned trials could all end before two heartbeats
                          "--heartbeat", "1", "--storage", postgres_url, "--study", "shared",
                          "--out", str(first), "--", "--epochs", "300"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(lambda: (first / "sweep.json").is_file(), 60, "the first worker's sweep")
        b = subprocess.Popen([*NNLAB, "sweep", "--join", postgres_url, "--study", "shared",
                              "--out", str(second)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())
        _wait_for(lambda: list(first.glob("trials/*/checkpoint-*.pt")), 120,
                  "a checkpoint of the first worker's trial")
        a.kill()  # SIGKILL: no checkpoint, no word to the study
        a.communicate(timeout=30)
        said, err = b.communicate(timeout=300)
    finally:
        for proc in (a, locals().get("b")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert b.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="shared", storage=postgres_url.replace(
        "postgresql://", "postgresql+psycopg://"))
    lost = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(lost) == 1 and lost[0].user_attrs["path"].startswith(str(first))
    finished = _finished(study)
    assert len(finished) == 6  # the one worker left counts to the end alone
    retry, = (t for t in study.trials if t.system_attrs.get("retry_history") == [lost[0].number])
    assert retry in finished and retry.params == lost[0].params
    assert f"trial {retry.number} (a retry of trial {lost[0].number}, lost on " in said
    assert f"resumed from its checkpoint in {lost[0].user_attrs['path']}" in said
    resumed = json.loads((first / lost[0].user_attrs["folder"] / "config.json").read_text())
    assert resumed["provenance"]["resumed"]  # carried on, not started again
    best = json.loads((second / "best.json").read_text())
    assert best["trial"] == max((t for t in finished if t.state.name == "COMPLETE"),
                                key=lambda t: t.value).number
    assert "rerun it: nnlab run toy" in said
    rows = (second / "trials.csv").read_text()
    assert f"lost, retried as trial {retry.number}" in rows and "host" in rows.splitlines()[0]
    assert str(first) in rows  # the rows name the machine's folder that ran each trial


def test_joining_a_sweep_that_the_database_does_not_hold_is_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["sweep", "toy", "--quick", "--param", "lr=1e-3..1e-1:log", "--trials", "1",
                 "--storage", url, "--study", "mine", "--out", str(tmp_path / "a"), "--",
                 "--epochs", "2"]) == 0
    capsys.readouterr()
    assert main(["sweep", "--join", url, "--study", "yours", "--out", str(tmp_path / "b")]) == 1
    assert capsys.readouterr().err.strip() == (f"nnlab: error: --join {url}: it holds no study "
                                               "'yours' (it holds: mine)")
    assert not (tmp_path / "b").exists()
    assert main(["sweep", "toy", "--param", "lr=1e-3..1e-1:log", "--storage", url, "--study",
                 "mine", "--out", str(tmp_path / "c")]) == 1
    assert "holds a study 'mine' already: join it with nnlab sweep --join" in \
        capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_worker_joins_a_sweep_from_the_database_alone(tmp_path, capsys):
    """What the second machine types: the URL, the study and its own folder."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["sweep", "toy", "--quick", "--param", "lr=1e-3..1e-1:log", "--trials", "2",
                 "--storage", url, "--study", "mine", "--out", str(tmp_path / "a"), "--",
                 "--epochs", "2"]) == 0
    assert main(["sweep", "--resume", str(tmp_path / "a"), "--trials", "1"]) == 1  # no shrink
    assert main(["sweep", "--join", url, "--study", "mine", "--out", str(tmp_path / "b")]) == 0
    said = capsys.readouterr().out
    assert "best: trial" in said and "2 complete" in said  # nothing left to do: it reports
    joined = json.loads((tmp_path / "b" / "sweep.json").read_text())
    assert joined["storage"] == url and joined["flags"] == {"epochs": 2}
    study = optuna.load_study(study_name="mine", storage=url)
    assert len(study.trials) == 2


def test_a_small_sweep_prunes_only_once_the_rule_allows_and_says_one_number_per_trial(
        learnable_cifar, nnlab_cache, tmp_path, capsys):
    """6 trials: the pruner waits for 2 finished ones (a quarter of --trials, at least 2);
    each trial has one number, the same in the console, trials.md and best.json, and says
    how it was measured (the final evaluation with the run's TTA, or a pruned trial's last
    per-epoch one); the default metric is the validation accuracy."""
    import re

    out = tmp_path / "sweep"
    assert main(["sweep", "cifar-speedrun", "--quick", "--param", "lr=0.001..3:log",
                 "--trials", "6", "--out", str(out), "--", "--data", str(learnable_cifar),
                 "--epochs", "4", "--widths", "8,16,16"]) == 0
    said, err = capsys.readouterr()
    assert "median pruner after 2 finished trials" in err
    study = _study(out)
    assert [t.state.name for t in study.trials[:2]] == ["COMPLETE", "COMPLETE"]
    console = {int(n): (v, how) for n, v, how in
               re.findall(r"^trial (\d+): .*: val_acc (\d\.\d{4}) \((.+)\)$", said, re.M)}
    table = {int(r[0]): (r[1], r[2]) for r in re.findall(
        r"^\| (\d+) \| \w+ \| [^|]+ \| (\d\.\d{4}) \| ([^|]+?) \|", (out / "trials.md")
        .read_text(), re.M)}
    assert len(console) == 6 and console == table
    for t in _finished(study):
        value = t.value if t.state.name == "COMPLETE" else \
            t.intermediate_values[max(t.intermediate_values)]
        assert console[t.number][0] == f"{value:.4f}"
        assert console[t.number][1].startswith("pruned" if t.state.name == "PRUNED" else
                                               "final, flip+translate TTA")
    best = json.loads((out / "best.json").read_text())
    assert f"{best['val_acc']:.4f}" == console[best["trial"]][0]
    assert best["measured"] == console[best["trial"]][1]
