"""``--track mlflow``: a run logged to MLflow as it trains.

The run's config as parameters, every history column as a metric by epoch or step (a phase's
under its name: ``adam/val_acc``), the final metrics, and at the end its figures,
``config.json``, ``metrics.json`` and ``history*.csv`` (and an ``export/`` folder, if one is
there) as artifacts. Where: ``MLFLOW_TRACKING_URI`` (a server, a database), else beside the
run: ``mlflow.db`` and ``mlartifacts/`` in the folder that holds the run folder (a sweep's:
in the sweep folder), never in the working folder. The seeds of ``--seeds N`` are child
runs of the run that holds their mean ± std; a sweep's trials are runs of one MLflow
experiment. A resumed run goes on in the same MLflow run (its id is in ``config.json``).

A tracker that fails (a server that is down, a full disk) says so once, and training goes on
without it: what nnlab writes in the run folder is the record; MLflow is a view of it. MLflow
retries a request to a server seven times with a doubling wait (minutes in all) by default;
nnlab asks for two retries and a 30 s timeout unless ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` /
``MLFLOW_HTTP_REQUEST_TIMEOUT`` say otherwise, so a server that goes away stalls training
once, for seconds.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

TRACKERS = ("mlflow",)
PARENT_ENV = "NNLAB_MLFLOW_PARENT"  # a seed's process: the run it is a child of
EXPERIMENT_ENV = "NNLAB_MLFLOW_EXPERIMENT"  # a sweep's trials: the MLflow experiment
URI_ENV = "MLFLOW_TRACKING_URI"
ARTIFACTS_ENV = "NNLAB_MLFLOW_ARTIFACTS"  # with the store nnlab chose: where artifacts go


def store_beside(folder: Path) -> dict[str, str | None] | None:
    """Unless ``MLFLOW_TRACKING_URI`` names a store, make it ``folder/mlflow.db`` (artifacts
    in ``folder/mlartifacts``) for this process and those it starts; returns what to give
    :func:`restore` at the end (None: the user's store, nothing changed)."""
    if os.environ.get(URI_ENV):
        return None
    before = {URI_ENV: os.environ.get(URI_ENV), ARTIFACTS_ENV: os.environ.get(ARTIFACTS_ENV)}
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[URI_ENV] = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ[ARTIFACTS_ENV] = str(folder / "mlartifacts")
    return before


def restore(before: dict[str, str | None] | None) -> None:
    """The environment as :func:`store_beside` found it."""
    for key, value in (before or {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def check(tracker: str | None) -> None:
    """One line, before anything runs, for a tracker this nnlab does not know or cannot
    import."""
    from nnlab.errors import ConfigError

    if tracker is None:
        return
    if tracker not in TRACKERS:
        raise ConfigError(f"--track must be one of {', '.join(TRACKERS)}; got {tracker!r}")
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError("--track mlflow needs the mlflow package: pip install mlflow "
                          "(in a clone of nnlab: pip install -e '.[mlflow]')") from None


class MlflowTracker:
    """One nnlab run as one MLflow run; every call is guarded (see the module)."""

    def __init__(self, out: Path, experiment: str, params: dict[str, Any],
                 run_id: str | None = None) -> None:
        self.out, self.broken = out, False
        self.run_id: str | None = None
        self._client: Any = None
        self._guard(lambda: self._start(experiment, params, run_id))

    def _guard(self, fn: Any) -> Any:
        if self.broken:
            return None
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - MLflow may fail in any way; training goes on
            self.broken = True
            line = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            print(f"nnlab: warning: MLflow: {type(e).__name__}: {line}; the run goes on "
                  "without it (its folder keeps everything)", file=sys.stderr, flush=True)
            return None

    def _start(self, experiment: str, params: dict[str, Any], run_id: str | None) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        self._client = MlflowClient()
        if run_id is not None:  # a resumed run goes on where it was
            self._client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            return
        name = os.environ.get(EXPERIMENT_ENV) or f"nnlab {experiment}"
        found = self._client.get_experiment_by_name(name)
        artifacts = os.environ.get(ARTIFACTS_ENV)  # the store nnlab chose: artifacts beside it
        experiment_id = found.experiment_id if found is not None else \
            self._client.create_experiment(
                name, artifact_location=Path(artifacts).as_uri() if artifacts else None)
        tags = {"nnlab.folder": str(self.out.absolute()), "nnlab.experiment": experiment}
        if parent := os.environ.get(PARENT_ENV):
            tags["mlflow.parentRunId"] = parent
        run = self._client.create_run(experiment_id, run_name=self.out.name, tags=tags)
        self.run_id = run.info.run_id
        shown = {k: _param(v) for k, v in params.items()}
        items = list(shown.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 per batch
            self._client.log_batch(self.run_id, params=[
                mlflow.entities.Param(k, v) for k, v in items[i:i + 100]])

    def log_row(self, row: dict, x: str, phase: str = "") -> None:
        """Every numeric column of a history row at step ``row[x]``."""
        def log() -> None:
            import time

            import mlflow

            now = int(time.time() * 1000)
            prefix = f"{phase}/" if phase else ""
            metrics = [mlflow.entities.Metric(f"{prefix}{k}", float(v), now, int(row[x]))
                       for k, v in row.items() if k != x and _number(v)]
            self._client.log_batch(self.run_id, metrics=metrics)
        if self.run_id is not None:
            self._guard(log)

    def finish(self, metrics: dict[str, Any]) -> None:
        """The final metrics, the run folder's figures and records as artifacts; the run
        ends FINISHED."""
        def end() -> None:
            import time

            import mlflow

            from nnlab.engine.history import flatten

            now = int(time.time() * 1000)
            final = [mlflow.entities.Metric(f"final/{k}", float(v), now, 0)
                     for k, v in flatten(metrics).items() if _number(v)]
            for i in range(0, len(final), 1000):
                self._client.log_batch(self.run_id, metrics=final[i:i + 1000])
            for path in sorted(self.out.iterdir()):
                if path.suffix in (".png", ".csv") or path.name in ("config.json",
                                                                    "metrics.json"):
                    self._client.log_artifact(self.run_id, str(path))
            if (self.out / "export").is_dir():
                self._client.log_artifacts(self.run_id, str(self.out / "export"), "export")
            self._client.set_terminated(self.run_id, "FINISHED")
        if self.run_id is not None:
            self._guard(end)

    def stop(self, status: str = "KILLED") -> None:
        """An interrupted or failed run: its MLflow run says so (a resume reopens it)."""
        if self.run_id is not None:
            self._guard(lambda: self._client.set_terminated(self.run_id, status))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _param(v: Any) -> str:
    if isinstance(v, tuple | list):
        return ",".join(map(str, v))
    return str(v)[:500]


def tag_run(run_dir: Path, tags: dict[str, str]) -> None:
    """Tags on the MLflow run of a finished run folder (its id in ``config.json``): a
    sweep's number for its trial. A store that fails is one warning, as for a run."""
    from nnlab.engine.files import read_json

    run_id = read_json(Path(run_dir) / "config.json").get("mlflow_run_id")
    if not isinstance(run_id, str):
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    except Exception as e:  # noqa: BLE001 - MLflow may fail in any way; the sweep goes on
        print(f"nnlab: warning: MLflow: {type(e).__name__}: {str(e).strip()[:200]}",
              file=sys.stderr, flush=True)
