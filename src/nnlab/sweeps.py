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

Several processes, on one machine (``--jobs``) or many (the same ``--storage``), share one
study: each asks Optuna for its next trial under a lock in the sweep folder, so together they
run exactly ``--trials`` trials.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import math
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nnlab import api, experiments
from nnlab.config import field_kind, flag_name, parse_sizes, shown
from nnlab.engine.checkpoint import read_json, write_json_atomic
from nnlab.engine.history import flatten
from nnlab.errors import ConfigError, Interrupted, NnlabError

SAMPLERS = ("tpe", "random", "grid")
SWEEP_FILE = "sweep.json"
LOCK = ".sweep.lock"


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


@dataclasses.dataclass
class Spec:
    """What ``sweep.json`` records: everything a resumed sweep (or another process joining
    it) needs."""

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


def _storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out / 'study.db').absolute()}"


def _load(spec: Spec, params: list[Param], out: Path, worker: int = 0) -> Any:
    """The study, with this process's sampler: seeded from the sweep's seed and the
    process's number, so that processes sharing the study draw different values."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec.sampler == "grid":
        sampler = optuna.samplers.GridSampler({p.name: p.grid() for p in params},
                                              seed=spec.seed + worker)
    elif spec.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed + worker)
    else:  # the constant liar: a running trial counts as a poor one, so others look elsewhere
        sampler = optuna.samplers.TPESampler(seed=spec.seed + worker, constant_liar=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, spec.trials // 4)),
                                         n_warmup_steps=1) \
        if spec.prune else optuna.pruners.NopPruner()
    storage = _storage_url(out, spec.storage or None)  # default: study.db beside it
    try:
        return optuna.create_study(study_name="nnlab", storage=storage, sampler=sampler,
                                   pruner=pruner, direction=spec.direction,
                                   load_if_exists=True)
    except Exception as e:  # noqa: BLE001 - a database that cannot be reached or read
        raise NnlabError(f"the sweep's storage {storage}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]}") from None


@contextlib.contextmanager
def _turn(out: Path) -> Iterator[None]:
    """One process at a time asks the study for a trial (count, then ask: never one too
    many)."""
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _counted(study: Any) -> int:
    """Trials that count towards --trials: every one asked for (running ones too), but
    those that failed."""
    import optuna

    return sum(t.state != optuna.trial.TrialState.FAIL for t in study.get_trials(deepcopy=False))


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
        if trial.should_prune():
            trial.set_user_attr("pruned_at", reports)
            return f"pruned by the sweep (its {column} {value:.4g} is below the median " \
                   f"of earlier trials by evaluation {reports})"
        return None
    return watch


def _run_trial(spec: Spec, exp: experiments.Experiment, out: Path, trial: Any,
               values: dict[str, Any], resume: bool, reported: int = 0) -> None:
    """One trial, start to end (or from its checkpoint), told to the study."""
    import optuna

    folder = out / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("folder", str(folder.relative_to(out)))
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    given = {**spec.flags, **values}
    watch = _watch(trial, spec.metric, reported)
    try:
        outcome = api.execute(exp, given, out=None if resume else folder,
                              resume=folder if resume else None, quick=spec.quick,
                              progress=False, watch=watch, track=spec.track)
    except Interrupted:
        raise  # the trial stays running: --resume continues it from its checkpoint
    except NnlabError as e:  # this trial's values fail: the sweep goes on
        _failed(trial, e)
        print(f"nnlab: trial {trial.number}: {e}", file=sys.stderr)
        return
    try:
        value = _metric_of(outcome.metrics, spec.metric, folder)
    except NnlabError as e:  # a --metric no run has: every trial would fail
        _failed(trial, e)
        raise
    pruned = trial.user_attrs.get("pruned_at") is not None or _was_pruned(folder)
    if pruned:
        _tell(trial, optuna.trial.TrialState.PRUNED)
    else:
        _tell(trial, optuna.trial.TrialState.COMPLETE, value)
    tried = ", ".join(f"{flag_name(k)} {shown(v)}" for k, v in values.items())
    print(f"trial {trial.number}: {tried}: {spec.metric} {value:.4f}"
          + (" (pruned)" if pruned else ""), flush=True)


def _failed(trial: Any, error: NnlabError) -> None:
    import optuna

    trial.set_user_attr("error", str(error))
    _tell(trial, optuna.trial.TrialState.FAIL)


def _was_pruned(folder: Path) -> bool:
    """A resumed trial that its first process had already stopped (config.json says so)."""
    try:
        return "pruned by the sweep" in str(read_json(folder / "config.json").get("halted"))
    except NnlabError:
        return False


def _tell(trial: Any, state: Any, value: float | None = None) -> None:
    """The trial's end, to the study (a pruned one keeps its last reported value)."""
    try:
        trial.study.tell(trial, value, state=state)
    except RuntimeError as e:  # the grid sampler's "the grid is done", meant for optimize()
        if "Study.stop" not in str(e):  # the trial itself was stored before it
            raise


def _work(out: Path, exp: experiments.Experiment | None = None, worker: int = 0) -> None:
    """One process's share of the sweep: ask for a trial (under the folder's lock) until the
    study holds ``trials`` of them, or the time budget has passed."""
    spec = Spec(**read_json(out / SWEEP_FILE))
    exp = exp or experiments.get(spec.experiment)
    params = [parse_param(p, exp.Config) for p in spec.params]
    study = _load(spec, params, out, worker)
    while True:
        if spec.time_budget_s is not None and time.time() - spec.started > spec.time_budget_s:
            return
        with _turn(out):
            if _counted(study) >= spec.trials:
                return
            trial = study.ask()
            values = {p.name: p.suggest(trial) for p in params}
        _run_trial(spec, exp, out, trial, values, resume=False)


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


def _interrupted(study: Any) -> list[Any]:
    """Running trials left by a process that is gone (this host's, by PID): to resume."""
    import optuna

    here = socket.gethostname()
    stale = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == here and pid is not None and not _alive(pid):
            stale.append(t)
        elif t.user_attrs.get("host") is None:  # asked for, never started
            stale.append(t)
    return stale


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is starting now: whatever it ran before is over
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _resume_interrupted(spec: Spec, exp: experiments.Experiment, out: Path,
                        study: Any, params: list[Param]) -> None:
    import optuna

    for frozen in _interrupted(study):
        trial = optuna.trial.Trial(study, frozen._trial_id)  # the running trial, reopened
        # A trial killed between study.ask() and its last suggestion lacks some values: the
        # sampler gives them now.
        values = {p.name: p.value(frozen.params[p.name]) if p.name in frozen.params
                  else p.suggest(trial) for p in params}
        folder = out / "trials" / f"{frozen.number:04d}"
        started = (folder / "config.json").is_file()
        print(f"trial {frozen.number}: " + ("resumed from its checkpoint" if started
                                            else "started again"), flush=True)
        _run_trial(spec, exp, out, trial, values, resume=started,
                   reported=max(frozen.intermediate_values, default=0) if started else 0)


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


def sweep(experiment: str | Path | experiments.Experiment, params: list[str] | None = None,
          *, trials: int = 20, jobs: int = 1, out: str | Path | None = None,
          sampler: str = "tpe", metric: str | None = None, direction: str = "maximize",
          storage: str | None = None, resume: str | Path | None = None, quick: bool = False,
          time_budget: str | float | None = None, track: str | None = None,
          prune: bool = True, **flags: Any) -> SweepResult:
    """Search ``params`` (``["lr=1e-4..1e-1:log", "momentum=0,0.5,0.9"]``) of an experiment
    over ``trials`` runs, ``jobs`` at a time, into ``out`` (``nnlab sweep``'s twin);
    ``flags``: fixed flags of every trial, by field name. ``metric``: the flattened metrics
    key to optimise (default: the held-out accuracy, ``val_acc`` or ``test_acc``);
    ``resume``: a sweep folder to continue; ``track="mlflow"``: every trial a run of one
    MLflow experiment; ``prune=False``: every trial runs to its end. Returns the best
    trial."""
    if jobs < 1:  # before any folder is made
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if resume is not None:
        out = Path(resume)
        if not (out / SWEEP_FILE).is_file():
            raise NnlabError(f"--resume {out}: no {SWEEP_FILE} in it (not a sweep folder)")
        spec = Spec(**read_json(out / SWEEP_FILE))
        exp = _resolve(experiment) if experiment else experiments.get(spec.experiment)
    else:
        exp = _resolve(experiment)
        if track is not None:
            from nnlab.engine import tracking

            tracking.check(track)
        spec = _new_spec(exp, params or [], trials, out, sampler, metric, direction, storage,
                         quick, time_budget, flags)
        spec.track, spec.prune = track, prune
        out = Path(_default_out(exp, out))
        if out.exists() and any(out.iterdir()):
            hint = " (a sweep: continue it with --resume)" if (out / SWEEP_FILE).exists() \
                else ""
            raise NnlabError(f"--out {out}: the folder holds files{hint}; pick a new or "
                             "empty one")
        out.mkdir(parents=True, exist_ok=True)
        spec.storage = storage or ""  # "": study.db in the sweep folder, wherever it is
        spec.started = time.time()
        write_json_atomic(out / SWEEP_FILE, dataclasses.asdict(spec))
    if spec.track is not None:  # every trial a run of one MLflow experiment
        from nnlab.engine import tracking

        tracking.check(spec.track)
        os.environ[tracking.EXPERIMENT_ENV] = f"nnlab sweep {exp.name}"
    p = [parse_param(t, exp.Config) for t in spec.params]
    try:
        study = _load(spec, p, out)
    except NnlabError:
        if resume is None:  # a new sweep that cannot reach its storage leaves nothing
            shutil.rmtree(out)
        raise
    pruning = "median pruner" if spec.prune else "no pruning"
    print(f"nnlab: sweep of {exp.name} into {out}: {spec.trials} trials of "
          + ", ".join(spec.params) + f"; {spec.sampler} sampler, {pruning}, "
          f"{spec.direction} {spec.metric}", file=sys.stderr, flush=True)
    try:
        _resume_interrupted(spec, exp, out, study, p)
        if jobs == 1:
            _work(out, exp)
        else:
            _parallel(out, jobs, exp)
    except Interrupted as e:
        e.resume = f"nnlab sweep --resume {out}"
        raise
    return finish(out, exp, study, spec, p)


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
    metric = metric or f"{exp.held_out(exp.resolve(config))}_acc"
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
    """trials.csv, trials.md, best.json, history.png and effect.png; the best trial."""
    import optuna

    done = study.get_trials(deepcopy=False)
    state = optuna.trial.TrialState
    rows = []
    for t in done:
        values = {p.name: p.value(t.params[p.name]) for p in params if p.name in t.params}
        value = t.value if t.state == state.COMPLETE else _last(t)
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     **{flag_name(k): shown(v) for k, v in values.items()},
                     spec.metric: "" if value is None else f"{value:.4f}",
                     "seconds": f"{t.duration.total_seconds():.1f}" if t.duration else "",
                     "folder": t.user_attrs.get("folder", "")})
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
    folder = out / best.user_attrs["folder"] if best else None
    command = ""
    if best is not None:
        words = ["nnlab", "run", spec.experiment]
        for k, v in {**spec.flags, **best_values}.items():
            words += _flag_words(k, v)
        command = " ".join(words + (["--quick"] if spec.quick else []))
    result = SweepResult(out, spec.metric, best.number if best else None,
                         best.value if best else None, best_values, folder, command,
                         len(complete), sum(t.state == state.PRUNED for t in done),
                         sum(t.state == state.FAIL for t in done))
    write_json_atomic(out / "best.json", {
        "trial": result.best_trial, spec.metric: result.best_value,
        "params": {flag_name(k): shown(v) for k, v in best_values.items()},
        "folder": str(folder.relative_to(out)) if folder else None, "command": command,
        "complete": result.complete, "pruned": result.pruned, "failed": result.failed})
    if complete:
        _figures(out, study, spec, params)
    return result


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
