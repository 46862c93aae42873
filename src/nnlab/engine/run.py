"""One run's lifecycle: folder, resolved config with provenance, checkpoints, resume,
signals, TensorBoard, and ``metrics.json`` written last.

An experiment is ``train(config, run) -> metrics``; :func:`launch` gives it a :class:`Run`
and does the rest, so a new experiment gets all of this without writing any of it:

* ``config.json``: the resolved config (what actually runs) plus ``experiment`` and
  ``provenance`` (versions, git commit, command line, device, precision, threads, CPU/GPU).
* ``checkpoint-NNNNNN.pt``: written atomically by the training drivers every
  ``checkpoint_every`` epochs (or evaluations), the newest two kept. Each holds every object
  the experiment handed to :meth:`Run.track` (model, optimizer, scheduler, EMA, generators,
  its own state), the process-wide RNGs, the histories of the phases so far, where training
  stands (phase, epoch or step, batch) and the fitted data state (:meth:`Run.fitted`).
* Resume (``launch(..., resume=True)``): every tracked object is loaded from the newest good
  checkpoint when its phase starts, and training continues exactly where it stopped: the same
  batches, the same augmentation, the same numbers as a run that never stopped.
* SIGINT / SIGTERM: the current step finishes, a checkpoint is written, and
  :class:`~nnlab.errors.Interrupted` goes up to the CLI, which prints how to resume.
* ``metrics.json`` last and atomically: a folder is a finished run iff it holds one.

Only rank 0 of a torchrun launch writes anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from nnlab.config import CONFIG_FORMAT
from nnlab.device import autocast, cpu_has_native_bf16, cpu_name, resolve_device, resolve_precision
from nnlab.engine import budget, distributed, tracking
from nnlab.engine import checkpoint as ckpt
from nnlab.engine.distributed import elastic
from nnlab.engine.history import History
from nnlab.engine.prepare import EXTENDS
from nnlab.errors import ConfigError, Interrupted, NnlabError

CHECKPOINT_FORMAT = 2  # 2: NumPy arrays stored as tensors, read with weights_only=True


@dataclasses.dataclass
class RunOptions:
    """How a run is looked after (not what is trained: changing these never changes results)."""

    resume: bool = False
    checkpoint_every: int = 1  # epochs, or evaluations for step-driven runs
    tensorboard: bool = False
    progress: bool | None = None  # None: a bar on a terminal, lines in a log; False: silent
    keep: int = 2  # checkpoints kept
    # --time-budget: the plan (nnlab.engine.budget.Plan.record()) and the process age, in
    # seconds, by which training stops; the epoch driver stops early only if it runs late
    budget: dict | None = None
    deadline: float | None = None
    # a watcher of every history row the drivers log (a sweep's pruner): returning a reason
    # stops the run after that row, as a time budget's deadline does, keeping what it trained
    watch: Callable[[dict], str | None] | None = None
    track: str | None = None  # --track mlflow: the run logged to MLflow as well


# --------------------------------------------------------------------------- signals


class _Signals:
    """Set by SIGINT/SIGTERM while a training driver runs; the driver stops after its step."""

    requested: int | None = None
    training = 0  # drivers running; outside them a signal interrupts at once


def _on_signal(signum: int, frame: Any) -> None:
    if _Signals.training and _Signals.requested is None:
        _Signals.requested = signum  # finish the step, checkpoint, then stop
        return
    raise Interrupted(signum)  # a second signal, or none of our loops running: stop now


@contextlib.contextmanager
def signals_handled() -> Iterator[None]:
    """Route SIGINT and SIGTERM to a graceful stop while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    _Signals.requested = None
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        _Signals.requested = None


# --------------------------------------------------------------------------- provenance


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def provenance(device: torch.device | None = None, precision: str | None = None) -> dict:
    """What ran this: versions, commit, command line, hardware, threads, time."""

    try:
        nnlab_version = version("nnlab")
    except PackageNotFoundError:
        nnlab_version = "unknown"
    info = {
        "nnlab": nnlab_version, "git_commit": _git_commit(), "torch": torch.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
        "command": shlex.join(["nnlab", *sys.argv[1:]]) if Path(sys.argv[0]).name == "nnlab"
        or Path(sys.argv[0]).parent.name == "nnlab" else shlex.join(sys.argv),
        "host": platform.node(), "cpu": cpu_name(), "cpu_native_bf16": cpu_has_native_bf16(),
        "threads": torch.get_num_threads(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if (job := elastic()) is not None:  # which torchrun job: a restart of it resumes here
        info["torchrun"] = job
    if device is not None:
        info["device"] = str(device)
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
    if precision is not None:
        info["precision"] = precision
    return info


# --------------------------------------------------------------------------- the run


@dataclasses.dataclass
class PhaseState:
    """Where one training phase (a driver's loop: 'train', 'adam', 'numpy') stands; every
    checkpoint keeps it, and a resumed driver starts from it."""

    history: list[dict] = dataclasses.field(default_factory=list)  # its rows so far
    position: int = 0  # epochs or steps done
    stopped: bool = False  # stopped early (patience, a time limit)
    wall_s: float = 0.0  # seconds of training and evaluation so far, across resumes

    @classmethod
    def from_checkpoint(cls, saved: Any, path: Path | None = None, name: str = "") -> PhaseState:
        """The phase as a checkpoint kept it; one NnlabError naming the checkpoint when its
        record is not one (a damaged file)."""
        names = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in names}) \
            if isinstance(saved, dict) else None
        if state is None or not (
                isinstance(state.history, list) and all(isinstance(r, dict)
                                                        for r in state.history)
                and _count(state.position) and isinstance(state.stopped, bool)
                and isinstance(state.wall_s, int | float) and not isinstance(state.wall_s, bool)):
            raise NnlabError(f"{path}: damaged checkpoint: phase {name!r} is not a history "
                             "and a position")
        return state


def _count(value: Any) -> bool:
    """A whole number >= 0 (an epoch, a step, a batch)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_generator(obj: Any) -> bool:
    return isinstance(obj, torch.Generator | np.random.Generator)


class Run:
    """A run folder and everything that happens to it; see the module docstring.

    Made by :func:`launch` (and :meth:`child`), not by experiments. It is the handle an
    experiment uses: ``run.device``, ``run.precision``, ``run.dist``, ``run.main``,
    ``run.out``, ``run.deadline``, :meth:`track`, :meth:`fitted`, :meth:`save_model`,
    :meth:`record`, :meth:`child`, :meth:`note`, :meth:`autocast`, :meth:`schedule_progress`;
    and the lifecycle :func:`launch` drives (:meth:`start`, :meth:`execute`, :meth:`finish`).
    The training drivers' checkpoint protocol is its :class:`Durability`, ``run.durable``.
    """

    def __init__(self, out: str | Path, experiment: str, config: Any,
                 options: RunOptions | None = None, extra: dict | None = None,
                 device: str | None = None, precision: str | None = None) -> None:
        """Nothing happens until :meth:`start`. ``device``/``precision``: as the flags
        (``auto``, ``cpu``, ``bf16``...); None: the CPU in fp32."""
        self.out = Path(out)
        self.experiment, self.config = experiment, config
        self.options = options or RunOptions()
        if self.options.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every must be >= 1, got "
                              f"{self.options.checkpoint_every}")
        self._device_flags = (device, precision)
        self._extra = extra or {}
        self.data: dict[str, Any] = {}  # fitted data state (normalisation, ZCA, ...)
        self.deadline: float | None = None  # self.clock() by which training stops
        self._schedule_t0: float | None = None  # when the budget's schedule started
        if self.options.deadline is not None:
            self.deadline = self.clock() + self.options.deadline - budget.process_age_s()
        self.stopped_by_budget: str | None = None  # where a late run was stopped
        self.halted: str | None = None  # why a watcher (RunOptions.watch) stopped it
        self.tracker: Any = None  # --track mlflow (rank 0)
        self._parent_env: str | None = None
        self._store_env: dict | None = None  # the environment before the MLflow store's
        self.durable = Durability(self)  # the drivers' side: checkpoints, resume, signals

    def start(self) -> Run:
        """Join the torchrun group (if any), load the newest checkpoint when resuming, make
        the folder and write config.json. Returns the run."""
        self._setup_device(*self._device_flags)
        if self.options.tensorboard:
            _writer_class()  # a missing package is one line, before any file is written
        if self.options.resume:
            self.durable.open()  # the newest good checkpoint, checked
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.options.resume:
                self.durable.remember_folder()  # what a resume that fails puts back
            self._write_config(self._extra)
            if self.options.track is not None:
                self._start_tracker()
            if self.options.resume:  # extending a finished run: it is unfinished again
                done = self.out / "metrics.json"
                if done.exists():
                    done.replace(self.out / "metrics.before-resume.json")
        return self

    # -- device -------------------------------------------------------------------------

    def _setup_device(self, device: str | None, precision: str | None) -> None:
        if device is not None:
            self.dist, self.device = distributed.setup(resolve_device(device))
            self.precision = resolve_precision(precision or "fp32", self.device)
        else:  # the toy MLPs and the recurrent cells: small enough that the CPU is fastest
            self.dist, self.device, self.precision = distributed.from_env(), torch.device(
                "cpu"), "fp32"

    @property
    def main(self) -> bool:
        """True on the process that writes files (rank 0, or the only one)."""
        return self.dist.is_main

    @property
    def progress(self) -> bool | None:
        return self.options.progress if self.main else False

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast or nothing, as the run's precision says."""
        return autocast(self.device, self.precision)

    # -- files --------------------------------------------------------------------------

    def _write_config(self, extra: dict) -> None:
        path = self.out / "config.json"
        record = {"experiment": self.experiment, "config_format": CONFIG_FORMAT,
                  **dataclasses.asdict(self.config),
                  "checkpoint_every": self.options.checkpoint_every, **extra}
        info = provenance(self.device, self.precision)
        if self.options.budget is not None:
            record["time_budget"] = self.options.budget  # the plan that chose the config
        if self.options.resume and path.exists():
            old = ckpt.read_json(path)
            if "time_budget" in old:
                record["time_budget"] = old["time_budget"]
            # what the run learnt
            for kept in ("mlflow_run_id", "halted", "classes", "data_source"):
                if kept in old:
                    record[kept] = old[kept]
            record["provenance"] = old.get("provenance", info)
            record["provenance"].setdefault("resumed", []).append(
                {k: info[k] for k in ("command", "started", "host", "cpu", "threads",
                                      "git_commit")})
        else:
            record["provenance"] = info
        ckpt.write_json_atomic(path, record)

    def record(self, **facts: Any) -> None:
        """Add what a run learns of its data once it has read it (the class names, say) to
        its ``config.json`` (rank 0; a resume keeps what the run started with)."""
        if not self.main:
            return
        path = self.out / "config.json"
        record = ckpt.read_json(path)
        if any(record.get(k) != v for k, v in facts.items()):
            ckpt.write_json_atomic(path, {**record, **facts})

    def save_model(self, name: str, model_state: dict, **data: Any) -> None:
        """``<name>.pt``: the weights to evaluate, the config and the data state
        (normalisation, ZCA, classes) that ``nnlab eval`` needs; rank 0 only."""
        if self.main:
            ckpt.save({"experiment": self.experiment,
                              "config": dataclasses.asdict(self.config),
                              "model": model_state, "data": {**self.data, **data}},
                             self.out / f"{name}.pt")

    def note(self, message: str) -> None:
        if self.main and self.options.progress is not False:
            print(f"nnlab: {message}", file=sys.stderr, flush=True)

    # -- state --------------------------------------------------------------------------

    def track(self, **objects: Any) -> None:
        """Objects whose state goes into every checkpoint: anything with ``state_dict`` /
        ``load_state_dict`` (modules, optimizers, schedulers, EMA), torch and NumPy
        generators, and plain dicts of the experiment's own state. On resume each is loaded
        when the training phase that uses it starts."""
        self.durable.track(**objects)

    def fitted(self, name: str, compute: Callable[[], Any]) -> Any:
        """Fitted data state (normalisation statistics, a ZCA matrix...): computed once,
        kept in every checkpoint and in the saved model, taken from the checkpoint on resume."""
        if name not in self.data:
            self.data[name] = compute()
        return self.data[name]

    # -- TensorBoard --------------------------------------------------------------------

    def _start_tracker(self) -> None:
        """The run's MLflow run (its id kept in config.json, so a resume goes on in it);
        the sub-runs this run makes (seeds, datasets, lengths) become its children."""
        run_id = ckpt.read_json(self.out / "config.json").get("mlflow_run_id") \
            if self.options.resume else None
        self._store_env = tracking.store_beside(self.out.parent)  # unless one is named
        self.tracker = tracking.MlflowTracker(self.out, self.experiment,
                                              dataclasses.asdict(self.config), run_id)
        if self.tracker.run_id is not None:
            self.record(mlflow_run_id=self.tracker.run_id)
            self._parent_env = os.environ.get(tracking.PARENT_ENV)
            os.environ[tracking.PARENT_ENV] = self.tracker.run_id

    def _end_tracker(self, metrics: dict | None) -> None:
        if self.tracker is None:
            return
        if metrics is None:
            self.tracker.stop()
        else:
            self.tracker.finish(metrics)
        if self._parent_env is None:
            os.environ.pop(tracking.PARENT_ENV, None)
        else:
            os.environ[tracking.PARENT_ENV] = self._parent_env
        tracking.restore(self._store_env)
        self.tracker = None

    # -- children and the end -----------------------------------------------------------

    def child(self, name: str, config: Any, train: Callable[[Any, Run], dict]) -> dict:
        """A sub-run in ``out/name`` (a dataset, a cell and length of a sweep) with its own
        folder, checkpoints and metrics.json; on resume a finished one is read back."""
        return run_child(self.out / name, self.experiment, config, self.options, train,
                         self._device_flags, self._extra_of_child())

    def _extra_of_child(self) -> dict:
        return {k: v for k, v in self._extra.items()
                if k in ("experiment_file", "experiment_source")}

    def execute(self, train: Callable[[Any, Run], dict]) -> dict:
        try:
            metrics = train(self.config, self)
        except BaseException:
            self._end_tracker(None)  # its MLflow run says KILLED; a resume reopens it
            raise
        self.finish(metrics)
        return metrics

    clock = staticmethod(time.monotonic)  # seconds, for the deadline (a test's fake clock)

    def out_of_time(self, ahead: float = 0.0) -> bool:
        """True when a time budget's deadline falls within ``ahead`` seconds from now."""
        return self.deadline is not None and self.clock() + ahead > self.deadline

    def schedule_progress(self, step: int, steps: int) -> float:
        """How far a schedule planned for ``steps`` steps has come at ``step``, from 0 to 1.
        With a time budget, the fraction of the time left to train that has passed, when that
        is further: a slower machine than the plan's trains fewer steps of a schedule that
        still ends at the deadline, instead of stopping in the middle of one. Without a
        budget, ``step / steps`` exactly (a run stays reproducible)."""
        progress = step / max(steps, 1)
        if self.deadline is None:
            return min(progress, 1.0)
        now = self.clock()
        if self._schedule_t0 is None:
            self._schedule_t0 = now  # the first step: training starts now
        used = (now - self._schedule_t0) / max(self.deadline - self._schedule_t0, 1e-9)
        return min(max(progress, used), 1.0)

    def finish(self, metrics: dict) -> None:
        """metrics.json, last and atomically; the figures into TensorBoard. A run with a time
        budget adds its block: the budget, the plan's prediction, the process's age now."""
        if self.options.budget is not None:
            plan = self.options.budget
            metrics["time_budget"] = {
                "budget_s": plan["budget_s"], "predicted_s": plan["predicted_s"],
                "predicted_acc": plan["predicted_acc"],
                "process_s": round(budget.process_age_s(), 1), "probe_s": plan["probe_s"],
                "stopped_early": self.stopped_by_budget is not None}
        if not self.main:
            return
        if self.options.tensorboard:
            import matplotlib.image

            writer = self.durable.writer("")
            for png in sorted(self.out.glob("*.png")):
                writer.add_image(png.stem, matplotlib.image.imread(png)[..., :3],
                                 dataformats="HWC")
            self.durable.close_writers()
        ckpt.write_json_atomic(self.out / "metrics.json", metrics)
        self._end_tracker(metrics)


class Durability:
    """The drivers' side of a run (``run.durable``): where each phase stands, the objects
    tracked for checkpoints and restored from one on resume, the checkpoints themselves, the
    histories written with them, signals, and each history row to TensorBoard, the tracker
    and the run's watcher. The training drivers of :mod:`nnlab.engine.loop` use it (and
    :class:`Transient` where they train without a run); an experiment never needs it."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._tracked: dict[str, Any] = {}
        self._restored: set[str] = set()
        self._checkpoints = ckpt.Checkpoints(run.out, run.options.keep)
        self._resume: dict | None = None
        self._resumed_from: Path | None = None  # the checkpoint a resume loaded
        self._protected: list[Path] = []  # kept from rotation until all it holds is restored
        self._before: dict | None = None  # what a failed resume puts back (_roll_back)
        self._written: list[Path] = []  # checkpoints this process wrote
        self._rng_restored = False
        self._phases: dict[str, PhaseState] = {}
        self._histories: dict[str, list[dict]] = {}  # rows logged in this process, by phase
        self._writers: dict[str, Any] = {}  # TensorBoard, one writer per phase

    # -- what the drivers read of the run ----------------------------------------------

    @property
    def checkpoint_every(self) -> int:
        return self.run.options.checkpoint_every

    @property
    def progress(self) -> bool | None:
        return self.run.progress

    @property
    def halted(self) -> str | None:
        """Why the run's watcher (a sweep's pruner) asked it to stop, if it did."""
        return self.run.halted

    def note(self, message: str) -> None:
        self.run.note(message)

    def record(self, **facts: Any) -> None:
        self.run.record(**facts)

    def out_of_time(self, ahead: float = 0.0) -> bool:
        return self.run.out_of_time(ahead)

    def stopped_by_budget(self, where: str) -> None:
        """The driver stopped at ``where`` because the time budget ends (the figures say)."""
        self.run.stopped_by_budget = where

    # -- resume -------------------------------------------------------------------------

    def open(self) -> None:
        """On resume: the newest good checkpoint, checked, its phases and data state taken;
        a folder whose every checkpoint is damaged is refused (nothing deleted)."""
        run = self.run
        if (found := self._checkpoints.latest()) is not None:
            self._resume, path = found
            self._check_checkpoint(path)
            self._phases = {name: PhaseState.from_checkpoint(saved, path, name)
                            for name, saved in self._resume["phases"].items()}
            run.data = self._resume["data"]
            self._resumed_from = path
            self._protected = self._checkpoints.paths()
            run.note(f"resuming from {path}")
        elif self._checkpoints.damaged:
            # starting over silently would throw away hours; the user decides
            damaged = "; ".join(f"{p.name} ({why})" for p, why in self._checkpoints.damaged)
            raise NnlabError(f"--resume {run.out}: no checkpoint can be read ({damaged}); "
                             "nothing was deleted. To start over: the same command with "
                             f"--out {run.out} --overwrite")
        else:
            run.note(f"{run.out} holds no checkpoint yet (stopped before its first): "
                     "it starts from the beginning")

    def remember_folder(self) -> None:
        """What a resume that fails to restore its checkpoint puts back (rank 0)."""
        out = self.run.out
        self._before = {"files": {p: p.read_bytes() for p in (
                            out / "config.json", *out.glob("history*.csv")) if p.is_file()},
                        "metrics": (out / "metrics.json").exists()}

    def refuse_checkpoint(self, why: str) -> NnlabError:
        """The error that stops a resume whose checkpoint does not fit (``why``), once the
        folder is put back as the resume found it."""
        self._roll_back()
        return NnlabError(f"{self._resumed_from}: {why}; the run folder is as it was")

    def _roll_back(self) -> None:
        """Put a resumed run's folder back as it was found: a resume that failed to restore
        its checkpoint deletes the checkpoints it wrote and restores config.json and
        metrics.json (nothing it did not write is touched)."""
        if not self.run.main or self._before is None:
            return
        for path in self._written:
            path.unlink(missing_ok=True)
        for path, data in self._before["files"].items():
            ckpt.write_atomic(path, data)
        before = self.run.out / "metrics.before-resume.json"
        if self._before["metrics"] and before.exists():
            before.replace(self.run.out / "metrics.json")
        self._before = None

    def _check_checkpoint(self, path: Path) -> None:
        """A checkpoint of another format version or of another experiment is refused, and
        so is one whose parts are missing or of the wrong kind (before anything is changed)."""
        fmt, name = self._resume.get("format"), self._resume.get("experiment")
        if fmt != CHECKPOINT_FORMAT:
            raise NnlabError(f"{path}: checkpoint format {fmt!r}, but this nnlab reads format "
                             f"{CHECKPOINT_FORMAT}; resume it with the nnlab that wrote it")
        if name != self.run.experiment:
            raise NnlabError(f"{path}: a checkpoint of experiment {name!r}, not "
                             f"{self.run.experiment!r}")
        for key in ("progress", "phases", "data", "rng", "generators", "state"):
            if not isinstance(self._resume.get(key), dict):
                raise NnlabError(f"{path}: damaged checkpoint: its {key!r} is missing or "
                                 "not a table")
        progress = self._resume["progress"]
        if not isinstance(progress.get("phase"), str) or not _count(progress.get("position")) \
                or not _count(progress.get("batch", 0)):
            raise NnlabError(f"{path}: damaged checkpoint: its 'progress' is not a phase and "
                             "a position")
        if progress["phase"] not in self._resume["phases"]:
            raise NnlabError(f"{path}: damaged checkpoint: it stopped in phase "
                             f"{progress['phase']!r}, which it holds no record of")
        sums = progress.get("sums")
        if sums is not None and not (isinstance(sums, list | tuple) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in sums)):
            raise NnlabError(f"{path}: damaged checkpoint: its 'progress' sums are not numbers")
        if not all(isinstance(k, str) for k in (*self._resume["state"],
                                                 *self._resume["generators"])):
            raise NnlabError(f"{path}: damaged checkpoint: a tracked object without a name")

    # -- state --------------------------------------------------------------------------

    def track(self, **objects: Any) -> None:
        """See :meth:`Run.track`."""
        for name, obj in objects.items():
            if obj is not None:
                self._tracked[name] = obj

    @staticmethod
    def _state(obj: Any) -> Any:
        if isinstance(obj, dict):
            return dict(obj)
        return obj.state_dict()

    def _load(self, obj: Any, state: Any) -> None:
        if _is_generator(obj):
            ckpt.set_generator_state(obj, state)
        elif isinstance(obj, dict):
            obj.clear()
            obj.update(state)
        else:
            obj.load_state_dict(state)

    def record_history(self, phase: str, rows: list[dict]) -> None:
        """``phase``'s rows so far, for a driver whose experiment keeps no history file of its
        own: every checkpoint writes them to ``history.csv`` (:meth:`_write_history`)."""
        self._histories[phase] = list(rows)

    def _write_history(self) -> None:
        """``history.csv``: the rows the drivers recorded, phase after phase (a ``phase``
        column where there are several). Written with each checkpoint, not each row (a toy
        run has thousands), and never after the experiment (which may write its own)."""
        phases = {**{n: p.history for n, p in self._phases.items()}, **self._histories}
        several = len(phases) > 1
        History([{**({"phase": name} if several else {}), **row}
                 for name, phase_rows in phases.items() for row in phase_rows]
                ).to_csv(self.run.out / "history.csv")

    def phase(self, name: str) -> PhaseState | None:
        """Where phase ``name`` stood at the checkpoint this run resumed from (None: not
        started then)."""
        return self._phases.get(name)

    def record_phase(self, name: str, state: PhaseState) -> None:
        """Where phase ``name`` stands now: the next checkpoint keeps it."""
        self._phases[name] = state

    def restore(self) -> None:
        """Load every tracked object the checkpoint holds and that is not loaded yet. One that
        does not fit (other shapes, a damaged file) is one NnlabError naming it, and the
        folder is put back as the resume found it."""
        if self._resume is None:
            return
        for name, obj in self._tracked.items():
            if name in self._restored:
                continue
            kind = "generators" if name in self._resume["generators"] else "state"
            saved = self._own(kind) if kind == "generators" else self._resume[kind]
            if name not in saved:
                continue
            try:
                self._load(obj, saved[name])
            except Exception as e:  # noqa: BLE001 - whatever a damaged file makes torch raise
                why = "other layers or shapes" if "state_dict" in str(e) else \
                    type(e).__name__
                raise self.refuse_checkpoint(f"its {name!r} does not fit this run ({why})"
                                             ) from None
            self._restored.add(name)
        saved = {*self._resume["generators"], *self._resume["state"]}
        if saved <= self._restored:  # every part is in use: old checkpoints may rotate away
            self._protected = []

    def restore_rng(self) -> None:
        """The process-wide RNGs as the checkpoint left them (once, for the phase that goes
        on training)."""
        if self._resume is not None and not self._rng_restored:
            try:
                ckpt.set_global_rng_state(self._own("rng"))
            except Exception as e:  # noqa: BLE001 - a damaged file: any error torch raises
                raise self.refuse_checkpoint("damaged checkpoint: its random generators "
                                             f"cannot be restored ({type(e).__name__})"
                                             ) from None
            self._rng_restored = True

    def resume_position(self, phase: str) -> dict | None:
        """Where ``phase`` stopped inside an epoch/interval (batch, partial sums), if it did."""
        if self._resume is None or self._resume["progress"].get("phase") != phase:
            return None
        return self._resume["progress"]

    def checkpoint(self, progress: dict, generator_states: dict | None = None) -> None:
        """Write the next checkpoint (rank 0); ``generator_states`` replaces the generators'
        current states (an epoch driver passes those at the start of the epoch)."""
        gens = {**self.generator_states(), **(generator_states or {})}
        rng = ckpt.global_rng_state()
        ranks = self._gathered({"generators": gens, "rng": rng})
        if not self.run.main:
            return
        state = {n: self._state(o) for n, o in self._tracked.items() if not _is_generator(o)}
        if self._resume is not None:
            # a phase that has not started again in this process (the torch phase while an
            # extended NumPy phase trains): its saved state goes on into every checkpoint
            for name, saved in self._resume["generators"].items():
                gens.setdefault(name, saved)
            for name, saved in self._resume["state"].items():
                state.setdefault(name, saved)
        self._written.append(self._checkpoints.save({
            "format": CHECKPOINT_FORMAT, "experiment": self.run.experiment,
            "config": dataclasses.asdict(self.run.config), "progress": progress,
            "phases": {n: dataclasses.asdict(p) for n, p in self._phases.items()},
            "data": self.run.data, "rng": rng,
            "generators": gens, "state": state,
            # under torchrun, each rank's own generators (its share's augmentation): a
            # restarted job's rank r takes entry r, so it goes on as the lost job would have
            **({"ranks": ranks} if ranks is not None else {}),
        }, protect=self._protected))
        if self._histories:  # after the checkpoint, which holds the same rows
            self._write_history()
        for writer in self._writers.values():  # what TensorBoard has now survives a kill
            writer.flush()

    def _gathered(self, mine: dict) -> list[dict] | None:
        """Every rank's ``mine``, on every rank (None when not distributed)."""
        if not self.run.dist.enabled:
            return None
        every: list[Any] = [None] * self.run.dist.world_size
        dist.all_gather_object(every, mine)
        return every

    def _own(self, kind: str) -> dict:
        """The resumed checkpoint's ``generators`` (or ``rng``) of this rank: its own entry of
        a torchrun job's checkpoint, else the one that rank 0 saved."""
        ranks = self._resume.get("ranks") if self._resume is not None else None
        rank, world = self.run.dist.rank, self.run.dist.world_size
        if isinstance(ranks, list) and len(ranks) == world and \
                isinstance(ranks[rank], dict) and kind in ranks[rank]:
            return ranks[rank][kind]
        return self._resume[kind]

    def generator_states(self) -> dict:
        return {n: ckpt.generator_state(g) for n, g in self._tracked.items() if _is_generator(g)}

    # -- signals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """Marks a driver's loop: a signal inside it asks for a stop after the step."""
        _Signals.training += 1
        try:
            yield
        finally:
            _Signals.training -= 1

    def stop_requested(self) -> int | None:
        """The signal that asked for a stop, if any (the same answer on every rank)."""
        signum = _Signals.requested
        if self.run.dist.enabled:
            flag = torch.tensor([signum or 0])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            signum = int(flag) or None
        return signum

    # -- TensorBoard, the tracker and the watcher --------------------------------------

    def writer(self, phase: str, first_step: int | None = None) -> Any:
        """The writer of ``out/tensorboard/<phase>`` (a TensorBoard run per phase, so Adam and
        SGD share a chart). In a resumed run it purges the steps from ``first_step`` on: those
        logged after the checkpoint it resumes from are stale, and are logged again."""
        if phase not in self._writers:
            purge = first_step if self.run.options.resume else None
            self._writers[phase] = _writer_class()(
                log_dir=str(self.run.out / "tensorboard" / phase), purge_step=purge)
        return self._writers[phase]

    def close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def log_row(self, row: dict, x: str, phase: str = "") -> None:
        """Every numeric column of a history row as a TensorBoard scalar at step ``row[x]``,
        in the TensorBoard run of ``phase`` (a path such as 'adam' or 'numpy'); the row to
        the run's watcher, whose reason to stop (``halted``) the driver then acts on."""
        run = self.run
        if run.options.watch is not None and run.halted is None:
            run.halted = run.options.watch(row)
        if run.tracker is not None:
            run.tracker.log_row(row, x, phase)
        if not (run.options.tensorboard and run.main):
            return
        writer = self.writer(phase, int(row[x]))
        for key, value in row.items():
            if key != x and isinstance(value, int | float) and not isinstance(value, bool):
                writer.add_scalar(key, value, global_step=int(row[x]))


class Transient:
    """The stand-in for a run where a driver trains without one (``run=None``: a test, a
    notebook, a quick look): nothing is checkpointed, restored or logged beyond the history,
    and no signal, watcher or time budget stops it. The same methods as
    :class:`Durability`, so the drivers never ask whether there is a run."""

    checkpoint_every = 1
    progress: bool | None = None
    halted: str | None = None

    def phase(self, name: str) -> PhaseState | None:
        return None

    def refuse_checkpoint(self, why: str) -> NnlabError:
        return NnlabError(why)

    def track(self, **objects: Any) -> None:
        pass

    def restore(self) -> None:
        pass

    def restore_rng(self) -> None:
        pass

    def resume_position(self, phase: str) -> dict | None:
        return None

    def record_phase(self, name: str, state: PhaseState) -> None:
        pass

    def checkpoint(self, progress: dict, generator_states: dict | None = None) -> None:
        pass

    def generator_states(self) -> dict:
        return {}

    def record_history(self, phase: str, rows: list[dict]) -> None:
        pass

    def log_row(self, row: dict, x: str, phase: str = "") -> None:
        pass

    def training(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def stop_requested(self) -> int | None:
        return None

    def out_of_time(self, ahead: float = 0.0) -> bool:
        return False

    def stopped_by_budget(self, where: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def record(self, **facts: Any) -> None:
        pass


def durable(run: Run | None) -> Durability | Transient:
    """The drivers' side of ``run``; a :class:`Transient` stand-in when there is none."""
    return run.durable if run is not None else Transient()


def _writer_class() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install "
                          "tensorboard (in a clone: pip install -e '.[tensorboard]')") from None
    return SummaryWriter


def finished(folder: Path, config: Any) -> dict | None:
    """The metrics of a finished run in ``folder`` that ``config`` does not extend (it asks
    for no more epochs or steps than the run made); None when there is more to do."""
    done = folder / "metrics.json"
    if not done.exists():
        return None
    old = ckpt.read_json(folder / "config.json")
    new = dataclasses.asdict(config)
    if any(new.get(k) != old.get(k) for k in EXTENDS):
        return None
    return ckpt.read_json(done)


def run_child(folder: Path, experiment: str, config: Any, options: RunOptions,
              train: Callable[[Any, Run], dict], device_flags: tuple = (None, None),
              extra: dict | None = None) -> dict:
    """A sub-run in ``folder``: read back when it finished (unless ``config`` asks it for
    more epochs or steps), resumed when it started, else run from the start."""
    if options.resume and (metrics := finished(folder, config)) is not None:
        return metrics
    options = dataclasses.replace(
        options, resume=options.resume and (folder / "config.json").exists())
    return Run(folder, experiment, config, options, extra, *device_flags).start().execute(train)


def launch(experiment: Any, config: Any, out: str | Path, **options: Any) -> dict:
    """Run ``experiment`` (an :class:`~nnlab.experiments.Experiment`) with ``config`` in
    folder ``out``; keyword arguments are :class:`RunOptions` fields (``checkpoint_every``
    defaults to the experiment's). Returns the metrics."""
    with signals_handled():
        return start_run(experiment, config, out, **options).execute(experiment.train)


def start_run(experiment: Any, config: Any, out: str | Path, extra: dict | None = None,
              **options: Any) -> Run:
    """The started :class:`Run` of ``experiment`` (a record) in ``out``."""
    if options.get("checkpoint_every") is None:
        options["checkpoint_every"] = experiment.checkpoint_every
    return Run(out, experiment.name, config, RunOptions(**options),
               {**experiment_extra(experiment), **(extra or {})},
               *device_flags(experiment, config)).start()


def device_flags(experiment: Any, config: Any) -> tuple[str | None, str | None]:
    """(device, precision) a run of ``experiment`` asks for: its config's, when the record
    says it has them; (None, None), the CPU in fp32, otherwise."""
    return (config.device, config.precision) if experiment.devices else (None, None)


def experiment_extra(experiment: Any) -> dict:
    """What config.json records of where an experiment came from (a file: its path, so that
    ``nnlab eval`` finds it again)."""
    if experiment.source.startswith("file "):
        return {"experiment_file": experiment.source[len("file "):]}
    return {"experiment_source": "python"} if experiment.source == "python" else {}
