"""--track mlflow: the run's config as parameters, every history column by step, the final
metrics and figures as artifacts, each seed a child run; a tracker that fails warns once and
the training goes on; a missing mlflow is one line naming the extra."""

import json
import sys

import pytest

from nnlab.cli import main

mlflow = pytest.importorskip("mlflow")  # a dev dependency (mlflow-skinny): make test has it


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts go beside its database
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return mlflow.tracking.MlflowClient(uri)


def _runs(client, experiment="nnlab toy"):
    found = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in client.search_runs([found.experiment_id])}


def test_a_run_with_seeds_is_a_parent_run_with_a_child_per_seed(store, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "toy", "--quick", "--epochs", "12", "--lr", "0.05", "--seeds", "2",
                 "--track", "mlflow", "--out", str(out)]) == 0
    runs = _runs(store)
    parent, seeds = runs["run"], [runs["seed0"], runs["seed1"]]
    assert parent.info.status == "FINISHED" and parent.data.params["lr"] == "0.05"
    assert parent.data.metrics["final/numpy.test_acc_mean"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["numpy.test_acc_mean"])
    for seed in seeds:
        assert seed.data.tags["mlflow.parentRunId"] == parent.info.run_id
        history = store.get_metric_history(seed.info.run_id, "numpy/test_acc")
        assert [m.step for m in history] == list(range(1, 13))  # every epoch, by epoch
        artifacts = {a.path for a in store.list_artifacts(seed.info.run_id)}
        assert {"curves.png", "metrics.json", "config.json", "history.csv"} <= artifacts
    config = json.loads((out / "seed0" / "config.json").read_text())
    assert config["mlflow_run_id"] == seeds[0].info.run_id  # a resume goes on in it


def test_a_tracker_that_fails_warns_once_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("not a folder")  # the store cannot be made under it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'x.db'}")
    out = tmp_path / "run"
    assert main(["run", "toy", "--quick", "--track", "mlflow", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: MLflow") == 1 and "the run goes on" in err
    assert (out / "metrics.json").is_file()


def test_a_missing_mlflow_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    assert main(["run", "toy", "--quick", "--track", "mlflow", "--out",
                 str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "nnlab: error: --track mlflow needs the mlflow package: pip install " \
                  "'nnlab[mlflow]'"
    assert not (tmp_path / "run").exists()
