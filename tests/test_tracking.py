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
                  "mlflow (in a clone of nnlab: pip install -e '.[mlflow]')"
    assert not (tmp_path / "run").exists()


def _rest(url: str, path: str, body: dict | None = None) -> dict:
    """One call of MLflow's REST API (GET, or POST with a JSON body)."""
    import urllib.parse
    import urllib.request

    if body is None:
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}")
    else:
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}", method="POST",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _server_runs(url: str, experiment: str) -> list[dict]:
    import urllib.parse

    found = _rest(url, "experiments/get-by-name?experiment_name="
                  + urllib.parse.quote(experiment))["experiment"]
    return _rest(url, "runs/search", {"experiment_ids": [found["experiment_id"]],
                                      "max_results": 100}).get("runs", [])


@pytest.fixture
def served(mlflow_server, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing of MLflow's lands in the working folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return mlflow_server


@pytest.mark.slow
def test_a_run_tracked_to_an_mlflow_server_reads_back_over_http(served, tmp_path):
    import urllib.parse

    out = tmp_path / "run"
    assert main(["run", "toy", "--quick", "--epochs", "7", "--lr", "0.05", "--track",
                 "mlflow", "--out", str(out)]) == 0
    run, = [r for r in _server_runs(served, "nnlab toy") if r["info"]["run_name"] == "run"]
    info, data = run["info"], run["data"]
    assert info["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in data["params"]}
    assert params["lr"] == "0.05" and params["epochs"] == "7"
    history = _rest(served, "metrics/get-history?run_id=" + info["run_id"] + "&metric_key="
                    + urllib.parse.quote("numpy/test_acc"))["metrics"]
    assert sorted(m["step"] for m in history) == list(range(1, 8))  # every epoch, by epoch
    final = {m["key"]: m["value"] for m in data["metrics"]}
    metrics = json.loads((out / "metrics.json").read_text())
    assert final["final/numpy.test_acc"] == pytest.approx(metrics["numpy"]["test_acc"])
    listed = _rest(served, "artifacts/list?run_id=" + info["run_id"])
    assert {"curves.png", "metrics.json", "config.json", "history.csv"} <= {
        f["path"] for f in listed["files"]}
    assert not list(tmp_path.glob("mlruns")) and not list(tmp_path.glob("mlflow.db"))


@pytest.mark.slow
def test_a_sweep_tracked_to_an_mlflow_server_is_one_experiment_of_its_trials(served,
                                                                            tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "toy", "--quick", "--param", "lr=1e-3..1e-1:log", "--trials", "3",
                 "--no-prune", "--track", "mlflow", "--out", str(out), "--", "--epochs",
                 "4"]) == 0
    runs = _server_runs(served, "nnlab sweep toy")
    tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
    folders = {t["nnlab.folder"] for t in tags}
    assert {str((out / "trials" / f"{n:04d}").absolute()) for n in range(3)} <= folders
    assert all(r["info"]["status"] == "FINISHED" for r in runs)
    lrs = sorted(float(p["value"]) for r in runs for p in r["data"]["params"]
                 if p["key"] == "lr")
    assert len(lrs) >= 3
    # each trial's MLflow run carries the sweep's number for it, as trials.md shows it
    table = (out / "trials.md").read_text()
    for t in (t for t in tags if t["nnlab.folder"].startswith(str(out))):
        assert t["nnlab.sweep.measured"] == "final"
        assert f"| {t['nnlab.sweep.trial']} | complete | " in table
        assert f"| {t['nnlab.sweep.val_acc']} | final |" in table
    import os

    assert "NNLAB_MLFLOW_EXPERIMENT" not in os.environ  # later runs are their own again


@pytest.mark.slow
def test_a_tracking_server_that_goes_away_mid_run_warns_once_and_training_goes_on(
        tmp_path, monkeypatch):
    import os
    import subprocess
    import time

    from conftest import start_mlflow_server, stop_server

    (tmp_path / "server").mkdir()
    server, url = start_mlflow_server(tmp_path / "server")
    out = tmp_path / "run"
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "OMP_NUM_THREADS": "1",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    try:
        run = subprocess.Popen([sys.executable, "-m", "nnlab", "run", "toy", "--quick",
                                "--epochs", "600", "--track", "mlflow", "--out", str(out)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path)
        deadline = time.time() + 120
        while time.time() < deadline and run.poll() is None:
            try:
                if _server_runs(url, "nnlab toy"):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        stop_server(server)  # gone, mid-run
        _, err = run.communicate(timeout=240)
    finally:
        if server.poll() is None:
            stop_server(server)
    assert run.returncode == 0, err[-2000:]
    assert err.count("warning: MLflow") == 1 and "the run goes on" in err
    assert (out / "metrics.json").is_file()


def test_without_a_tracking_uri_the_store_is_beside_the_run_not_where_one_stands(
        tmp_path, monkeypatch):
    """Run from a repository's root with no MLFLOW_TRACKING_URI: MLflow's database and
    artifacts go beside the run folder (runs/, which the repository ignores), nothing into
    the working folder, and the environment is as it was after the run."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "toy", "--quick", "--epochs", "3", "--track", "mlflow", "--out",
                 str(tmp_path / "runs" / "toy")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert {"mlflow.db", "mlartifacts", "toy"} <= {p.name for p in (tmp_path / "runs").iterdir()}
    import os

    assert "MLFLOW_TRACKING_URI" not in os.environ
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    run = _runs(client)["toy"]
    assert run.info.status == "FINISHED"
    assert "metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
