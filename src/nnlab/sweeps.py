"""``nnlab sweep``: a search over an experiment's flags on Optuna, every trial an ordinary
nnlab run folder.

A sweep folder holds ``sweep.json`` (what was asked), ``study.db`` (Optuna's SQLite storage,
unless ``--storage`` names another database), ``trials/NNNN/`` (one run folder per trial:
resumable, evaluable, exportable like any run), and, at the end, ``trials.csv``,
``trials.md``, ``best.json`` and two figures: ``history.png`` (the objective trial by trial)
and ``effect.png`` (the objective against each parameter). Trials are pruned from the
held-out metric the engine's drivers log after each epoch or evaluation (Optuna's median
pruner); a killed sweep continues with ``nnlab sweep --resume DIR``: finished trials are kept
and the interrupted ones resume from their checkpoints.

Several processes share one study through Optuna's own parts, nothing of nnlab's: on one
machine (``--jobs``, SQLite) or many (``--storage postgresql://...``, then ``nnlab sweep
--join URL --study NAME --out DIR`` on each further machine; the sweep's definition is kept in
the study). Each worker runs under ``study.optimize`` with the storage's heartbeat: a worker
that dies stops beating, and after two heartbeats the next worker to ask for a trial fails the
lost one and takes its retry (``RetryHeartbeatStaleTrialCallback``), resumed from the lost
trial's checkpoint when its folder is reachable from there, started afresh otherwise. Trials
are counted by Optuna's ``MaxTrialsCallback``: workers that start a trial at the same moment
may each finish one past ``--trials``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nnlab import api, experiments
from nnlab.config import field_kind, flag_name, parse_sizes, shown
from nnlab.engine import tracking
from nnlab.engine.files import read_json, write_json_atomic
from nnlab.engine.history import flatten
from nnlab.errors import ConfigError, Interrupted, NnlabError

SAMPLERS = ("tpe", "random", "grid")
SWEEP_FILE = "sweep.json"


# --------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched flag: a range (``low``..``high``, ``log`` scale; whole numbers for an
    int field) or a list of ``choices``."""

    name: str  # the Config field
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def keys(self) -> list:
        """The choices as Optuna stores them (a list-valued one as its flag text: '64,64')."""
        return [shown(c) if isinstance(c, tuple) else c for c in self.choices]

    def value(self, stored: Any) -> Any:
        """A value Optuna stored for this parameter, as the Config takes it."""
        return self.choices[self.keys().index(stored)] if self.kind == "choice" else stored

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            return self.value(trial.suggest_categorical(self.name, self.keys()))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def grid(self) -> list:
        """The values a grid sampler tries: each choice's index, or each whole number."""
        if self.kind == "choice":
            return self.keys()
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1))
        raise ConfigError(f"--sampler grid: --param {flag_name(self.name)} is a continuous "
                          "range; give a list of values (a,b,c) or whole numbers (lo..hi)")


def parse_param(text: str, config_cls: type) -> Param:
    """``FLAG=SPEC`` -> a :class:`Param`. SPEC: ``lo..hi`` (whole numbers for an int flag),
    ``lo..hi:log`` (log scale), or choices ``a,b,c``; for a list-valued flag (``--widths``)
    the choices are separated by ``|``: ``widths=32,64|64,128``. One line (ConfigError) for
    an unknown flag or a malformed spec."""
    flag, sep, spec = text.partition("=")
    name = flag.strip().lstrip("-").replace("-", "_")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if not sep or not spec.strip():
        raise ConfigError(f"--param {text!r}: write FLAG=SPEC (lr=1e-4..1e-1:log, "
                          "epochs=5..20, momentum=0,0.5,0.9)")
    if name not in fields or name == "seed":
        known = ", ".join(flag_name(f) for f in fields if f != "seed")
        raise ConfigError(f"--param {flag}: no such flag of this experiment "
                          f"(its flags: {known})")
    kind = field_kind(config_cls, name)
    where = f"--param {flag_name(name)}={spec}"
    spec = spec.strip()
    if ".." in spec and kind in (int, float):
        bounds, _, scale = spec.partition(":")
        if scale not in ("", "log"):
            raise ConfigError(f"{where}: the scale after ':' is 'log' or nothing")
        lo, _, hi = bounds.partition("..")
        low, high = _number(lo, kind, where), _number(hi, kind, where)
        if not low < high:
            raise ConfigError(f"{where}: the range's low end must be below its high end")
        if scale == "log" and low <= 0:
            raise ConfigError(f"{where}: a log scale needs a positive low end")
        return Param(name, "int" if kind is int else "float", low, high, scale == "log")
    items = spec.split("|") if kind is tuple or "|" in spec else spec.split(",")
    choices = tuple(_value(item.strip(), kind, name, where) for item in items)
    if len(set(choices)) != len(choices):
        raise ConfigError(f"{where}: a value is listed twice")
    return Param(name, "choice", choices=choices)


def _number(text: str, kind: type, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or (kind is int and value != int(value)):
        raise ConfigError(f"{where}: {text.strip()!r} is not a "
                          f"{'whole ' if kind is int else ''}number")
    return int(value) if kind is int else value


def _value(text: str, kind: type, name: str, where: str) -> Any:
    if kind is tuple:
        return parse_sizes(text, flag_name(name))
    if kind is bool:
        if text.lower() not in ("on", "off", "true", "false", "1", "0"):
            raise ConfigError(f"{where}: {text!r} is not on or off")
        return text.lower() in ("on", "true", "1")
    if kind in (int, float):
        return _number(text, kind, where)
    return text


def check_params(exp: experiments.Experiment, params: list[Param], flags: dict) -> None:
    """Every value a sweep may try passes the experiment's own checks (bounds, choices,
    ``__post_init__``): each range's ends and each choice, the others at their defaults."""
    from nnlab.engine import prepare

    for p in params:
        values = p.choices if p.kind == "choice" else (p.low, p.high)
        for value in values:
            try:
                prepare.new_config(exp, {**flags, p.name: value})
            except ConfigError as e:
                raise ConfigError(f"--param {flag_name(p.name)}: {e}") from None


# --------------------------------------------------------------------------- the study


HEARTBEAT_S = 30  # --heartbeat: seconds between a running trial's signs of life
RETRIES = 3  # how often a lost trial is retried before it stays failed


@dataclasses.dataclass
class Spec:
    """What ``sweep.json`` records and the study itself keeps (its user attribute
    ``nnlab.sweep``): everything a resumed sweep, or a worker joining it, needs."""

    experiment: str
    params: list[str]  # FLAG=SPEC, as given
    trials: int
    flags: dict[str, Any]  # fixed flags of every trial
    metric: str
    direction: str
    sampler: str
    storage: str  # a database URL; "": the sweep folder's study.db
    quick: bool = False
    seed: int = 0
    time_budget_s: float | None = None
    started: float = 0.0
    track: str | None = None
    prune: bool = True
    study: str = "nnlab"  # the study's name in the storage (sweeps before --study: "nnlab")
    heartbeat_s: int = HEARTBEAT_S


def _storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out / 'study.db').absolute()}"


def shown_url(url: str) -> str:
    """A storage URL as messages show it: the password hidden."""
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: shown as given
        return url


def _driver_url(url: str) -> str:
    """``postgresql://`` with the psycopg (3) driver when psycopg2, SQLAlchemy's default
    for that scheme, is not installed (``nnlab[postgres]`` installs psycopg)."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None \
            and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _storage(url: str, heartbeat_s: int) -> Any:
    """Optuna's RDB storage with its heartbeat: a trial whose process stops beating for two
    heartbeats is failed by the next worker that asks for a trial, and retried
    (``RetryHeartbeatStaleTrialCallback``) as a waiting trial that worker takes first."""
    import warnings

    import optuna

    sqlite = url.startswith("sqlite")
    # SQLite: wait for a writer instead of failing with "database is locked"; a server: a
    # connection that died with a restarted server is replaced, not used
    engine = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            _driver_url(url), engine_kwargs=engine, heartbeat_interval=heartbeat_s,
            grace_period=2 * heartbeat_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=RETRIES))


def _reach(url: str, heartbeat_s: int) -> Any:
    """The storage, or one line saying why the database cannot be used."""
    try:
        return _storage(url, heartbeat_s)
    except ModuleNotFoundError as e:
        hint = " (pip install -e '.[postgres]' installs psycopg)" \
            if url.startswith("postgres") else ""
        raise NnlabError(f"the sweep's storage {shown_url(url)}: its database driver is not "
                         f"installed: no module {e.name!r}{hint}") from None
    except Exception as e:  # noqa: BLE001 - a database that cannot be reached or read
        raise _unusable(url, e) from None


def _unusable(url: str, e: Exception) -> NnlabError:
    line = str(e).splitlines()[0][:200] if str(e) else ""
    return NnlabError(f"the sweep's storage {shown_url(url)}: {type(e).__name__}: {line}")


def _load(spec: Spec, params: list[Param], out: Path, worker: int = 0) -> Any:
    """The study, with this process's sampler: seeded from the sweep's seed, the process's
    number and the trials the study holds already, so that processes sharing the study, or
    resuming it, draw different values."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # nnlab says each trial's end itself
    storage = _storage_url(out, spec.storage or None)  # default: study.db beside it
    reached = _reach(storage, spec.heartbeat_s)
    try:
        study = optuna.create_study(study_name=spec.study, storage=reached,
                                    pruner=_pruner(spec), direction=spec.direction,
                                    load_if_exists=True)
    except Exception as e:  # noqa: BLE001 - a database that cannot be reached or read
        raise _unusable(storage, e) from None
    seed = spec.seed + worker + 1009 * len(study.get_trials(deepcopy=False))
    if spec.sampler == "grid":
        study.sampler = optuna.samplers.GridSampler({p.name: p.grid() for p in params},
                                                    seed=seed)
    elif spec.sampler == "random":
        study.sampler = optuna.samplers.RandomSampler(seed=seed)
    else:  # the constant liar: a running trial counts as a poor one, so others look elsewhere
        study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return study


def startup_trials(trials: int) -> int:
    """Finished trials the pruner waits for before it compares a trial with their median:
    a quarter of --trials, at least 2 and at most 5 (with fewer, a median is one run)."""
    return max(2, min(5, trials // 4))


def _pruner(spec: Spec) -> Any:
    import optuna

    if not spec.prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials(spec.trials),
                                       n_warmup_steps=1)


def _metric_of(metrics: dict, metric: str, folder: Path) -> float:
    """The value of ``metric`` in a run's metrics: the key itself, else the first nested key
    that ends with it (``test_acc``: ``numpy.test_acc`` of a toy run)."""
    flat = flatten(metrics)
    found = [metric] if metric in flat else [k for k in flat if k.endswith(f".{metric}")]
    if not found:
        raise NnlabError(f"{folder}: its metrics hold no {metric!r} (they hold "
                         f"{', '.join(list(flat)[:12])}); pick one with --metric")
    return float(flat[found[0]])


def _watch(trial: Any, metric: str, reported: int = 0) -> Any:
    """The run's watcher: each logged row's value of the metric (its last part: ``val_acc``
    of ``torch.val_acc``) reported to the trial, and a reason to stop when Optuna's pruner
    says the trial does worse than the others did by then."""
    column = metric.rsplit(".", 1)[-1]
    reports = reported  # a resumed trial goes on from its last report

    def watch(row: dict) -> str | None:
        nonlocal reports
        value = row.get(column)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return None
        reports += 1
        trial.report(float(value), reports)
        watch.last = (reports, float(value))  # a pruned trial's number: this one
        if trial.should_prune():
            trial.set_user_attr("pruned_at", reports)
            return f"pruned by the sweep (its {column} {value:.4g} is below the median " \
                   f"of earlier trials by evaluation {reports})"
        return None
    watch.last = None
    return watch


class _TrialFailed(Exception):
    """A trial whose values the experiment refuses (or whose run fails): the sweep goes on."""


def _frozen(study: Any, number: int) -> Any:
    return study.get_trials(deepcopy=False)[number]  # a study numbers its trials 0, 1, ...


def _where(trial: Any, study: Any, out: Path) -> tuple[Path, bool, int]:
    """Where a trial runs: its own folder in this worker's sweep folder; for a retry of a
    lost or interrupted trial, that trial's folder when this machine can reach it (it is
    resumed from its checkpoint) — said in one line either way. Returns the folder, whether
    it resumes, and the evaluations already reported."""

    own = out / "trials" / f"{trial.number:04d}"
    history = _history(_frozen(study, trial.number))
    if not history:
        return own, False, 0
    before = _frozen(study, history[-1])
    old = Path(before.user_attrs.get("path", ""))
    host = before.user_attrs.get("host", "?")
    what = f"trial {trial.number} (a retry of trial {history[-1]}"
    if not before.user_attrs.get("path"):
        print(f"{what}, lost before its run began): started in {own}", flush=True)
        return own, False, 0
    what += f", lost on {host})" if not before.user_attrs.get("interrupted") else \
        f", interrupted by {before.user_attrs['interrupted']})"
    if _reachable(old):
        for step, value in sorted(before.intermediate_values.items()):
            trial.report(value, step)  # the pruner sees the evaluations it already had
        print(f"{what}: resumed from its checkpoint in {old}", flush=True)
        return old, True, max(before.intermediate_values, default=0)
    print(f"{what}: its folder {old} is not reachable from this machine; started afresh "
          f"in {own}", flush=True)
    return own, False, 0


def _history(t: Any) -> list[int]:
    """The trials that trial ``t`` retries, oldest first (Optuna's retry history)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(t)


def _retry(study: Any, t: Any) -> None:
    """Queue ``t`` again as a waiting trial with its values (what Optuna does for a trial
    whose heartbeat stopped)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, t)


def _reachable(folder: Path) -> bool:
    """A run folder this machine can read (the lost trial's own, or a shared one)."""
    from nnlab.engine import prepare

    return prepare.is_run_folder(folder)


def _objective(spec: Spec, exp: experiments.Experiment, out: Path, params: list[Param],
               study: Any, ran: list[int], received: list[int]) -> Any:
    """One trial, start to end (or from its checkpoint): Optuna's objective. ``ran``: the
    numbers of the trials this process started; ``received``: signals that came between
    trials (the run's own handler takes those that come while it trains)."""
    import optuna

    def objective(trial: Any) -> float:
        ran.append(trial.number)
        if received:  # a signal as Optuna handed this trial out: it is queued again
            trial.set_user_attr("interrupted", signal.Signals(received[0]).name)
            raise Interrupted(received[0], "the sweep")
        trial.set_user_attr("interrupted", None)  # a retry's own, not its predecessor's
        values = {p.name: p.suggest(trial) for p in params}  # a retry: its stored values
        folder, resume, reported = _where(trial, study, out)
        trial.set_user_attr("folder", str(folder.relative_to(out))
                            if folder.is_relative_to(out) else str(folder))
        trial.set_user_attr("path", str(folder.absolute()))
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())  # who ran it (never asked whether it lives)
        trial.set_user_attr("pruned_at", None)
        given = {**spec.flags, **values}
        watch = _watch(trial, spec.metric, reported)
        try:
            outcome = api.execute(exp, given, out=None if resume else folder,
                                  resume=folder if resume else None, quick=spec.quick,
                                  progress=False, watch=watch, track=spec.track)
        except Interrupted as e:  # checkpointed: failed now, retried from its folder
            trial.set_user_attr("interrupted", signal.Signals(e.signum).name)
            raise
        except NnlabError as e:  # this trial's values fail: the sweep goes on
            trial.set_user_attr("error", str(e))
            print(f"nnlab: trial {trial.number}: {e}", file=sys.stderr)
            raise _TrialFailed(str(e)) from None
        value = _metric_of(outcome.metrics, spec.metric, folder)  # none: every trial fails
        tried = ", ".join(f"{flag_name(k)} {shown(v)}" for k, v in values.items())
        pruned = trial.user_attrs.get("pruned_at") is not None or _was_pruned(folder)
        if pruned and watch.last is not None:  # Optuna keeps its last reported value
            at, value = watch.last
            measured = f"pruned: evaluation {at}'s, per epoch (no TTA)"
        else:
            tta = outcome.metrics.get("tta")
            measured = f"final, {tta} TTA" if tta not in (None, "none") else "final"
        trial.set_user_attr("measured", measured)
        print(f"trial {trial.number}: {tried}: {spec.metric} {value:.4f} ({measured})",
              flush=True)
        if spec.track is not None:  # the same number on the trial's MLflow run
            tracking.tag_run(outcome.out, {"nnlab.sweep.trial": str(trial.number),
                                           f"nnlab.sweep.{spec.metric}": f"{value:.4f}",
                                           "nnlab.sweep.measured": measured})
        if pruned:
            raise optuna.TrialPruned()  # it keeps its last reported value
        return value
    return objective


def _was_pruned(folder: Path) -> bool:
    """A resumed trial that its first process had already stopped (config.json says so)."""
    try:
        return "pruned by the sweep" in str(read_json(folder / "config.json").get("halted"))
    except NnlabError:
        return False


def _finished(study: Any) -> int:
    import optuna

    state = optuna.trial.TrialState
    return len(study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED)))


def _work(out: Path, exp: experiments.Experiment | None = None, worker: int = 0) -> None:
    """One process's share of the sweep, under Optuna's ``study.optimize`` (its heartbeat
    runs there): trials until the study holds ``trials`` finished ones (Optuna's
    ``MaxTrialsCallback``; processes that start a trial at the same moment may each finish
    one more), or the time budget has passed. A trial interrupted here (SIGINT/SIGTERM) is
    checkpointed, failed and queued again: the next worker to ask, or ``--resume``,
    continues it from its folder."""
    import optuna

    spec = Spec(**read_json(out / SWEEP_FILE))
    exp = exp or experiments.get(spec.experiment)
    params = [parse_param(p, exp.Config) for p in spec.params]
    study = _load(spec, params, out, worker)
    kept = study.user_attrs.get("nnlab.sweep")  # --resume --trials N, said on another machine
    if isinstance(kept, dict) and isinstance(kept.get("trials"), int):
        spec.trials = max(spec.trials, kept["trials"])
    timeout = None
    if spec.time_budget_s is not None:
        timeout = spec.started + spec.time_budget_s - time.time()
        if timeout <= 0:
            return
    if _finished(study) >= spec.trials:
        return
    state = optuna.trial.TrialState
    ran: list[int] = []
    received: list[int] = []

    def between_trials(signum: int, frame: Any) -> None:  # told to Optuna, then stopped
        received.append(signum)

    def stop_if_asked(study: Any, trial: Any) -> None:
        if received:
            raise Interrupted(received[0], "the sweep")

    main = threading.current_thread() is threading.main_thread()
    before = {s: signal.signal(s, between_trials) for s in (signal.SIGINT, signal.SIGTERM)} \
        if main else {}
    try:
        study.optimize(_objective(spec, exp, out, params, study, ran, received),
                       timeout=timeout, catch=(_TrialFailed,),
                       callbacks=[optuna.study.MaxTrialsCallback(
                           spec.trials, states=(state.COMPLETE, state.PRUNED)), stop_if_asked])
    except Interrupted:
        for number in ran:  # Optuna failed it: queued again, as a lost trial would be
            t = study.get_trials(deepcopy=True)[number]
            if t.state == state.FAIL and t.user_attrs.get("interrupted"):
                _retry(study, t)
        raise
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _worker(out: str, threads: int, worker: int) -> None:  # a --jobs process
    import torch

    torch.set_num_threads(threads)
    try:
        _work(Path(out), worker=worker)
    except (Interrupted, KeyboardInterrupt):  # its trial checkpointed: --resume goes on
        sys.exit(130)
    except NnlabError as e:
        print(f"nnlab: error: {e}", file=sys.stderr)
        sys.exit(1)


def _say_running(study: Any, spec: Spec) -> None:
    """A resumed or joined sweep's running trials: another worker's, or lost ones that the
    heartbeat will fail and retry."""
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        print(f"trial {t.number}: running on {t.user_attrs.get('host', '?')}; if its worker "
              f"is gone, it is retried {2 * spec.heartbeat_s} s after its last heartbeat",
              flush=True)


# --------------------------------------------------------------------------- the whole


@dataclasses.dataclass
class SweepResult:
    """What a sweep found: the best trial (its number, value, flag values and run folder),
    the command that reruns it, and how many trials finished, were pruned or failed."""

    out: Path
    metric: str
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_folder: Path | None
    command: str
    complete: int
    pruned: int
    failed: int


def sweep(experiment: str | Path | experiments.Experiment | None = None,
          params: list[str] | None = None, *, trials: int | None = None, jobs: int = 1,
          out: str | Path | None = None, sampler: str = "tpe", metric: str | None = None,
          direction: str = "maximize", storage: str | None = None,
          resume: str | Path | None = None, quick: bool = False,
          time_budget: str | float | None = None, track: str | None = None,
          prune: bool = True, study: str | None = None, join: str | None = None,
          heartbeat: int = HEARTBEAT_S, **flags: Any) -> SweepResult:
    """Search ``params`` (``["lr=1e-4..1e-1:log", "momentum=0,0.5,0.9"]``) of an experiment
    over ``trials`` runs (default 20; with ``resume``, a larger number continues a finished
    sweep), ``jobs`` at a time, into ``out`` (``nnlab sweep``'s twin);
    ``flags``: fixed flags of every trial, by field name. ``metric``: the flattened metrics
    key to optimise (default: ``val_acc``, the validation accuracy every experiment reports);
    ``resume``: a sweep folder to continue; ``track="mlflow"``: every trial a run of one
    MLflow experiment; ``prune=False``: every trial runs to its end. ``storage``: Optuna's
    database (default: ``study.db`` in ``out``); ``study``: the study's name in it (default:
    the folder's name); ``join``: the URL of a database that holds the sweep ``study``,
    which this process joins as one more worker, into its own ``out``; ``heartbeat``:
    seconds between a trial's heartbeats (a trial silent for two is lost and retried).
    Returns the best trial."""
    if jobs < 1:  # before any folder is made
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    worker = 0
    if resume is not None:
        if join is not None:
            raise ConfigError("--resume continues a sweep folder; --join starts a new one")
        out = Path(resume)
        if not (out / SWEEP_FILE).is_file():
            raise NnlabError(f"--resume {out}: no {SWEEP_FILE} in it (not a sweep folder)")
        spec = Spec(**read_json(out / SWEEP_FILE))
        exp = _resolve(experiment) if experiment else experiments.get(spec.experiment)
        if trials is not None and trials != spec.trials:
            if trials < spec.trials:
                raise ConfigError(f"--resume: --trials may only grow (the sweep's is "
                                  f"{spec.trials})")
            spec.trials = trials
            write_json_atomic(out / SWEEP_FILE, dataclasses.asdict(spec))
    elif join is not None:
        if study is None:
            raise ConfigError("--join URL needs --study NAME: the sweep to join")
        if out is None:
            raise ConfigError("--join needs --out DIR: this worker's own folder for its trials")
        spec = _joined(join, study)
        exp = experiments.get(spec.experiment)
        out = _new_out(Path(out))
        spec.storage = join
        worker = 1000 + os.getpid() % 100_000  # a sampler of its own
        write_json_atomic(out / SWEEP_FILE, dataclasses.asdict(spec))
    else:
        if experiment is None:
            raise ConfigError("nnlab sweep takes an experiment (NAME or FILE.py)")
        exp = _resolve(experiment)
        if track is not None:
            tracking.check(track)
        if heartbeat < 1:
            raise ConfigError(f"--heartbeat must be >= 1 (seconds), got {heartbeat}")
        spec = _new_spec(exp, params or [], 20 if trials is None else trials, out, sampler,
                         metric, direction, storage, quick, time_budget, flags)
        spec.track, spec.prune, spec.heartbeat_s = track, prune, int(heartbeat)
        out = Path(_default_out(exp, out))
        spec.study = study or out.absolute().name
        if storage:  # a shared database may hold this name already: join it instead
            _check_new_study(storage, spec)
        out = _new_out(out)
        spec.storage = storage or ""  # "": study.db in the sweep folder, wherever it is
        spec.started = time.time()
        write_json_atomic(out / SWEEP_FILE, dataclasses.asdict(spec))
    tracking.check(spec.track)
    p = [parse_param(t, exp.Config) for t in spec.params]
    try:
        optuna_study = _load(spec, p, out, worker)
        kept = optuna_study.user_attrs.get("nnlab.sweep")
        if kept is None or (resume is not None and kept.get("trials") != spec.trials):
            optuna_study.set_user_attr("nnlab.sweep", dataclasses.asdict(spec))  # for --join
    except NnlabError:
        if resume is None:  # a new sweep that cannot reach its storage leaves nothing
            shutil.rmtree(out)
        raise
    pruning = f"median pruner after {startup_trials(spec.trials)} finished trials" \
        if spec.prune else "no pruning"
    print(f"nnlab: sweep of {exp.name} into {out} (study {spec.study!r} in "
          f"{shown_url(_storage_url(out, spec.storage or None))}): {spec.trials} trials of "
          + ", ".join(spec.params) + f"; {spec.sampler} sampler, {pruning}, "
          f"{spec.direction} {spec.metric}", file=sys.stderr, flush=True)
    if resume is not None or join is not None:
        _say_running(optuna_study, spec)
    before = os.environ.get(tracking.EXPERIMENT_ENV)
    store = None
    if spec.track is not None:  # every trial (and --jobs worker) a run of one experiment
        os.environ[tracking.EXPERIMENT_ENV] = f"nnlab sweep {exp.name}"
        store = tracking.store_beside(out)  # in the sweep folder, unless one is named
    try:
        if jobs == 1:
            _work(out, exp, worker)
        else:
            _parallel(out, jobs, exp)
    except Interrupted as e:
        e.resume = f"nnlab sweep --resume {out}"
        raise
    finally:  # a later run of this Python session is its own experiment again
        if before is None:
            os.environ.pop(tracking.EXPERIMENT_ENV, None)
        else:
            os.environ[tracking.EXPERIMENT_ENV] = before
        tracking.restore(store)
    return finish(out, exp, optuna_study, spec, p)


def _new_out(out: Path) -> Path:
    """A sweep's folder: new or empty, made now."""
    if out.exists() and any(out.iterdir()):
        hint = " (a sweep: continue it with --resume)" if (out / SWEEP_FILE).exists() else ""
        raise NnlabError(f"--out {out}: the folder holds files{hint}; pick a new or empty one")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _joined(url: str, name: str) -> Spec:
    """The definition of the sweep ``name`` that the database at ``url`` holds."""
    import optuna

    storage = _reach(url, HEARTBEAT_S)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        raise NnlabError(f"--join {shown_url(url)}: it holds no study {name!r} (it holds: "
                         f"{', '.join(names) or 'none'})")
    attrs = optuna.load_study(study_name=name, storage=storage).user_attrs
    if not isinstance(attrs.get("nnlab.sweep"), dict):
        raise NnlabError(f"--join: study {name!r} was not made by nnlab sweep (it keeps no "
                         "sweep definition)")
    known = {f.name for f in dataclasses.fields(Spec)}
    try:
        return Spec(**{k: v for k, v in attrs["nnlab.sweep"].items() if k in known})
    except TypeError as e:
        raise NnlabError(f"--join: study {name!r}: its sweep definition is damaged ({e})") \
            from None


def _check_new_study(url: str, spec: Spec) -> None:
    import optuna

    if spec.study in optuna.get_all_study_names(_reach(url, spec.heartbeat_s)):
        raise NnlabError(f"--storage {shown_url(url)} holds a study {spec.study!r} already: "
                         f"join it with nnlab sweep --join URL --study {spec.study} --out DIR, "
                         "or name a new one with --study")


def _parallel(out: Path, jobs: int, exp: experiments.Experiment) -> None:
    if exp.source == "python":
        raise ConfigError("--jobs > 1 needs an experiment another process can find (built "
                          "in, a plugin or a file); one defined in this Python session runs "
                          "with jobs=1")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(out), threads, 1 + i)) for i in range(jobs)]
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:  # each worker checkpoints its trial
        received.append(signum)
        for proc in procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    before = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    if received:
        raise Interrupted(received[0], "the sweep")
    if codes := sorted({proc.exitcode for proc in procs} - {0}):
        if any(c in (130, 143, -2, -15) for c in codes):
            raise Interrupted(signal.SIGTERM, "the sweep's workers")
        raise NnlabError(f"a sweep worker ended with exit code {codes[-1]}; the trials stay "
                         f"in {out} (nnlab sweep --resume {out} goes on)")


def _resolve(experiment: str | Path | experiments.Experiment) -> experiments.Experiment:
    return experiment if isinstance(experiment, experiments.Experiment) \
        else experiments.get(str(experiment))


def _default_out(exp: experiments.Experiment, out: str | Path | None) -> Path:
    return Path(out) if out is not None else \
        Path("runs") / f"sweep-{exp.name}" / time.strftime("%Y%m%d-%H%M%S")


def _new_spec(exp: experiments.Experiment, params: list[str], trials: int,
              out: str | Path | None, sampler: str, metric: str | None, direction: str,
              storage: str | None, quick: bool, time_budget: str | float | None,
              flags: dict) -> Spec:
    from nnlab.engine import prepare
    from nnlab.engine.budget import parse_budget

    if not params:
        raise ConfigError("a sweep needs at least one --param FLAG=SPEC")
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"--direction must be maximize or minimize; got {direction!r}")
    parsed = [parse_param(t, exp.Config) for t in params]
    if len({p.name for p in parsed}) != len(parsed):
        raise ConfigError("--param: a flag is given twice")
    if clash := sorted({p.name for p in parsed} & set(flags)):
        raise ConfigError(f"--{flag_name(clash[0])} is both searched and fixed")
    config = prepare.new_config(exp, flags, quick)
    check_params(exp, parsed, flags)
    if sampler == "grid":
        for p in parsed:
            p.grid()
    if metric is None:  # tuned on validation: every experiment reports a val_acc
        if getattr(config, "final", False):
            raise ConfigError("--final scores on the test split, which a sweep must not tune "
                              "on: drop it (the default metric is val_acc), or give --metric")
        metric = "val_acc"
    budget_s = parse_budget(time_budget) if time_budget is not None else None
    return Spec(experiment=experiments.reference_or_name(exp), params=list(params),
                trials=trials, flags=_jsonable(flags), metric=metric, direction=direction,
                sampler=sampler, storage=storage or "", quick=quick,
                seed=int(getattr(config, "seed", 0) or 0), time_budget_s=budget_s)


def _jsonable(flags: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in flags.items()}


# --------------------------------------------------------------------------- the end


def finish(out: Path, exp: experiments.Experiment, study: Any, spec: Spec,
           params: list[Param]) -> SweepResult:
    """trials.csv, trials.md, best.json, history.png and effect.png, all read from the
    study's database (so any worker can write them); the best trial."""
    import optuna

    done = study.get_trials(deepcopy=False)
    state = optuna.trial.TrialState
    retried_as = {_history(t)[-1]: t.number for t in done if _history(t)}
    rows = []
    for t in done:
        values = {p.name: p.value(t.params[p.name]) for p in params if p.name in t.params}
        value = t.value if t.state == state.COMPLETE else \
            _last(t) if t.state == state.PRUNED else None
        note = []
        if _history(t):
            note.append(f"a retry of trial {_history(t)[-1]}")
        if t.number in retried_as:
            why = "interrupted" if t.user_attrs.get("interrupted") else "lost"
            note.append(f"{why}, retried as trial {retried_as[t.number]}")
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     **{flag_name(p.name): shown(values[p.name]) if p.name in values
                        else "" for p in params},  # a trial lost before all were chosen
                     spec.metric: "" if value is None else f"{value:.4f}",
                     "measured": t.user_attrs.get("measured", "") if value is not None else "",
                     "seconds": f"{t.duration.total_seconds():.1f}" if t.duration else "",
                     "host": t.user_attrs.get("host", ""),
                     "folder": _shown_folder(t, out), "note": "; ".join(note)})
    if rows:
        with open(out / "trials.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        header = list(rows[0])
        lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header)
                 + " |"] + ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
        (out / "trials.md").write_text("\n".join(lines) + "\n")
    complete = [t for t in done if t.state == state.COMPLETE]
    best = study.best_trial if complete else None
    best_values = {p.name: p.value(best.params[p.name]) for p in params} if best else {}
    folder = Path(best.user_attrs.get("path") or out / best.user_attrs["folder"]) \
        if best else None
    command = ""
    if best is not None:
        words = ["nnlab", "run", spec.experiment]
        for k, v in {**spec.flags, **best_values}.items():
            words += _flag_words(k, v)
        command = " ".join(words + (["--quick"] if spec.quick else []))
    result = SweepResult(out, spec.metric, best.number if best else None,
                         best.value if best else None, best_values, folder, command,
                         len(complete), sum(t.state == state.PRUNED for t in done),
                         sum(t.state == state.FAIL and t.number not in retried_as
                             for t in done))
    write_json_atomic(out / "best.json", {
        "trial": result.best_trial, spec.metric: result.best_value,
        "measured": best.user_attrs.get("measured") if best else None,
        "params": {flag_name(k): shown(v) for k, v in best_values.items()},
        "folder": _shown_folder(best, out) if best else None,
        "host": best.user_attrs.get("host") if best else None, "command": command,
        "complete": result.complete, "pruned": result.pruned, "failed": result.failed,
        "retried": len(retried_as)})
    if complete:
        _figures(out, study, spec, params)
    return result


def _shown_folder(t: Any, out: Path) -> str:
    """A trial's run folder: relative to this sweep folder when it is in it, else as the
    worker that ran it named it (another machine's, or a shared folder)."""
    path = t.user_attrs.get("path")
    if not path:
        return str(t.user_attrs.get("folder", ""))
    path = Path(path)
    return str(path.relative_to(out.absolute())) if path.is_relative_to(out.absolute()) \
        else str(path)


def _last(t: Any) -> float | None:
    """A pruned trial's last reported value."""
    return t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None


def _flag_words(name: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [f"--{flag_name(name)}" if value else f"--no-{flag_name(name)}"]
    return [f"--{flag_name(name)}", repr(value) if isinstance(value, float) else shown(value)]


def _figures(out: Path, study: Any, spec: Spec, params: list[Param]) -> None:
    """history.png (each trial's value and the best so far: Optuna's plot) and effect.png
    (the value against each parameter: drawn here)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as oplt

    # rc_context: Optuna's plot sets matplotlib's ggplot style for the whole process; it is
    # undone here, so figures drawn after it (effect.png, a run's) keep nnlab's look
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        ax = oplt.plot_optimization_history(study, target_name=spec.metric)
        ax.set_title(f"{spec.experiment}: {spec.metric} by trial ({len(study.trials)} trials)")
        ax.figure.set_size_inches(7, 4)
        ax.figure.tight_layout()
        ax.figure.savefig(out / "history.png", dpi=120)
        plt.close(ax.figure)
    _effect(out / "effect.png", study, spec, params)


def _effect(path: Path, study: Any, spec: Spec, params: list[Param]) -> None:
    """The objective against each parameter: finished trials filled, pruned ones hollow at
    their last reported value, the best starred; a log axis for a log range."""
    import matplotlib.pyplot as plt
    import optuna

    state = optuna.trial.TrialState
    drawn = [t for t in study.trials if t.state in (state.COMPLETE, state.PRUNED)
             and (t.value is not None or t.intermediate_values)]
    best = study.best_trial
    fig, axes = plt.subplots(1, len(params), figsize=(max(6.0, 4 * len(params)), 3.8),
                             squeeze=False, sharey=True)
    for ax, p in zip(axes[0], params, strict=True):
        keys = p.keys() if p.kind == "choice" else None
        for t in drawn:
            x = t.params[p.name]
            x = keys.index(x) if keys else x
            y = t.value if t.state == state.COMPLETE else _last(t)
            done = t.state == state.COMPLETE
            ax.scatter([x], [y], s=36, facecolors="tab:blue" if done else "none",
                       edgecolors="tab:blue", zorder=3)
        x = best.params[p.name]
        ax.scatter([keys.index(x) if keys else x], [best.value], marker="*", s=180,
                   color="tab:orange", zorder=4, label=f"best (trial {best.number})")
        if keys:
            ax.set_xticks(range(len(keys)), [str(k) for k in keys])
            ax.set_xlim(-0.5, len(keys) - 0.5)
        elif p.log:
            ax.set_xscale("log")
        ax.set_xlabel(f"--{flag_name(p.name)}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(spec.metric)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{spec.experiment}: {spec.metric} against each searched flag\n"
                 "(filled: finished; hollow: pruned, at its last evaluation)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(result: SweepResult) -> str:
    """What ``nnlab sweep`` prints at the end."""
    if result.best_trial is None:
        return (f"no trial finished ({result.pruned} pruned, {result.failed} failed); "
                f"sweep folder: {result.out}")
    best = ", ".join(f"--{flag_name(k)} {shown(v)}" for k, v in result.best_params.items())
    return (f"best: trial {result.best_trial}, {result.metric} {result.best_value:.4f} "
            f"({best}); {result.complete} complete, {result.pruned} pruned, "
            f"{result.failed} failed\nits run folder: {result.best_folder}\nrerun it: "
            f"{result.command}\nsweep folder: {result.out} (trials.md, history.png, "
            f"effect.png)")


__all__ = ["sweep", "SweepResult", "parse_param", "Param"]
