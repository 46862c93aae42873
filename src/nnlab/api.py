"""nnlab's Python API, the CLI's twin: the same checks, the same one-line errors.

>>> import nnlab
>>> metrics = nnlab.run("toy", out="runs/toy-5", epochs=5)        # nnlab run toy --epochs 5
>>> metrics["torch"]["test_acc"]

:func:`run` takes an experiment's name (or record, or ``.py`` file) and its flags as keyword
arguments (``batch_size=64`` for ``--batch-size 64``); :func:`launch` trains *your* function
``train(config, run)`` with nnlab's durable runs (checkpoints, resume, signals, progress,
seeds, TensorBoard, ``metrics.json``). Errors a user can cause raise
:class:`nnlab.NnlabError` with the message the CLI prints.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnlab import experiments
from nnlab.errors import ConfigError, NnlabError
from nnlab.experiments import Experiment, experiment_of


@dataclass
class Outcome:
    """What :func:`execute` did: the metrics, the run folder, and whether it trained
    (False: a finished run that a resume did not extend, read back)."""

    experiment: Experiment
    metrics: dict
    out: Path
    seeds: int
    trained: bool = True

    def summary(self) -> str:
        from nnlab.seeds import format_summary

        return (format_summary(self.metrics) if self.seeds > 1
                else self.experiment.summarize(self.metrics))


def execute(exp: Experiment, given: dict[str, Any], *, out: str | Path | None = None,
            overwrite: bool = False, resume: str | Path | None = None, quick: bool = False,
            seeds: int | None = None, jobs: int | None = None,
            checkpoint_every: int | None = None, tensorboard: bool = False,
            progress: bool | None = None, time_budget: str | float | None = None,
            watch: Callable[[dict], str | None] | None = None,
            track: str | None = None) -> Outcome:
    """One experiment run (or several seeds) as ``nnlab run`` makes it; see :func:`run`.
    ``watch``: sees every history row and may stop the run (a sweep's pruner; one seed).
    The lifecycle around the training is the engine's (:mod:`nnlab.engine.lifecycle`)."""
    from nnlab.engine import distributed as dist
    from nnlab.engine import lifecycle, tracking
    from nnlab.engine.run import launch
    from nnlab.seeds import run_seeds

    out = Path(out) if out is not None else None
    tracking.check(track)
    if resume is None and lifecycle.restarted(out):  # torchrun started this job again
        resume, overwrite = out, False
    budget_s = _check_budget(exp, time_budget, resume, 1 if seeds is None else seeds)
    settled = lifecycle.settle(exp, given, out=out, resume=resume, quick=quick, seeds=seeds,
                               jobs=jobs, checkpoint_every=checkpoint_every,
                               tensorboard=tensorboard, progress=progress, track=track,
                               watch=watch)
    if settled.done is not None:
        return Outcome(exp, settled.done, settled.out, settled.seeds, trained=False)
    config, options = settled.config, settled.options
    threads = None  # a budget on a busy machine trains on fewer: given back at the end
    try:
        with lifecycle.holding(exp.name, settled, overwrite, lambda folder: shlex.join(
                ["nnlab", "run", experiments.reference_or_name(exp), "--resume",
                 str(folder)])) as out:
            if budget_s is not None:  # probe this machine, choose, and set the plan's flags
                import torch

                from nnlab.engine import budget

                say = (lambda line: print(f"nnlab: {line}", file=sys.stderr, flush=True)) \
                    if progress is not False else (lambda line: None)
                threads = torch.get_num_threads()
                plan = budget.plan(exp.budget, config, budget_s, given, say)
                config = exp.resolve(dataclasses.replace(config, **plan.fields))
                options.update(budget=plan.record(), deadline=plan.deadline_s)
            if settled.seeds == 1:
                metrics = launch(exp, config, out, **options)
            else:
                metrics = run_seeds(exp, config, out, settled.seeds, settled.jobs, **options)
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
    if dist.from_env().enabled:
        dist.teardown()
    if dist.from_env().is_main:
        _draw_curves(out, exp.name)
    return Outcome(exp, metrics, out, settled.seeds)


def _draw_curves(out: Path, name: str) -> None:
    """``curves.png`` from ``history.csv`` in a finished run folder (and each of its seeds')
    whose experiment drew no curves: every run, one made with `launch` too, has its figure."""
    from nnlab.engine.history import History
    from nnlab.plots import plot_history

    for folder in [out, *sorted(p for p in out.glob("seed*") if p.is_dir())]:
        if (folder / "history.csv").is_file() and (folder / "metrics.json").is_file() and \
                not any(folder.glob("curves*.png")):
            history = History.load_csv(folder / "history.csv")
            if len(history):
                plot_history(history, folder / "curves.png", f"{name}: {folder.name}")


def _check_budget(exp: Experiment, time_budget: str | float | None, resume: Path | None,
                  seeds: int) -> float | None:
    """The seconds of ``--time-budget`` (None without one); one line for a budget that
    cannot apply."""
    if time_budget is None:
        return None
    from nnlab.engine.budget import parse_budget

    seconds = parse_budget(time_budget)
    if exp.budget is None:
        raise ConfigError(f"{exp.name} has no --time-budget plan (nothing measured says what "
                          "its sizes reach); set its flags instead")
    if resume is not None:
        raise ConfigError("--time-budget plans a new run; a resumed run keeps its own plan "
                          "(drop --time-budget)")
    if seeds != 1:
        raise ConfigError("--time-budget plans one run; drop --seeds")
    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise ConfigError("--time-budget probes one process; run it without torchrun")
    return seconds


def run(experiment: str | Path | Experiment, *, out: str | Path | None = None,
        overwrite: bool = False, resume: str | Path | None = None, quick: bool = False,
        seeds: int | None = None, jobs: int | None = None, checkpoint_every: int | None = None,
        tensorboard: bool = False, progress: bool | None = None,
        time_budget: str | float | None = None, track: str | None = None,
        **flags: Any) -> dict:
    """Run an experiment as ``nnlab run`` does and return its metrics (the dict that
    ``metrics.json`` holds; over several seeds, ``<metric>_mean``/``_std``).

    ``experiment``: a name (``"cifar-speedrun"``), a ``.py`` file that defines
    ``EXPERIMENT``, or an `Experiment`. ``flags``: the
    experiment's flags by field name (``epochs=2``, ``widths=(32, 64, 64)``). The run
    options are the CLI's: ``out`` (default ``runs/<name>/<timestamp>``), ``overwrite``,
    ``resume`` (a run folder), ``quick``, ``seeds``, ``jobs``, ``checkpoint_every``,
    ``tensorboard``, ``time_budget`` (``"10m"`` or seconds: the experiment's sizes are probed
    on this machine and the best plan that fits runs), ``track`` (``"mlflow"``);
    ``progress=False`` keeps it silent.

    Raises `nnlab.NnlabError` (a ConfigError for a bad value) with the CLI's message.
    """
    exp = experiment if isinstance(experiment, Experiment) else experiments.get(str(experiment))
    from nnlab.engine.run import signals_handled

    with signals_handled():
        return execute(exp, flags, out=out, overwrite=overwrite, resume=resume, quick=quick,
                       seeds=seeds, jobs=jobs, checkpoint_every=checkpoint_every,
                       tensorboard=tensorboard, progress=progress,
                       time_budget=time_budget, track=track).metrics


def launch(train: Callable[[Any, Any], dict], config: Any, out: str | Path | None = None, *,
           name: str | None = None, **options: Any) -> dict:
    """Train your own ``train(config, run) -> metrics`` with nnlab's run lifecycle.

    ``config`` is a dataclass instance (its fields are recorded in ``config.json``; a
    ``seed`` field makes ``seeds=N`` work, ``device``/``precision`` fields pick where it
    trains). ``train`` builds its model and data, hands what must survive a restart to
    ``run.track(...)`` and calls a driver (`nnlab.train_epochs`). ``options``: as
    `run` (``resume``, ``seeds``, ``checkpoint_every``, ``tensorboard``...). Returns
    the metrics.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError("launch: config must be a dataclass instance (its fields are "
                          "what config.json records)")
    fields = {f.name for f in dataclasses.fields(config)}
    exp = Experiment(name=name or getattr(train, "__name__", "custom").replace("_", "-"),
                     description=(train.__doc__ or "your experiment").strip().splitlines()[0],
                     Config=type(config), train=train, source="python")  # devices: derived
    given = {f: getattr(config, f) for f in fields}
    return run(exp, out=out, **options, **given)


def _has_model(run_dir: Path) -> bool:
    return any(run_dir.glob("model*.pt")) or any(run_dir.glob("checkpoint-*.pt"))


def evaluate(run_dir: str | Path, *, split: str | None = None, tta: str | None = None,
             data: str | None = None, experiment: str | Path | Experiment | None = None
             ) -> dict:
    """``nnlab eval RUN_DIR``: the saved model (or the newest checkpoint's) of a run on
    ``split`` (default: the run's own held-out split) with ``tta`` (default: the run's own);
    each sub-run (seeds, datasets, sweeps) of a folder that holds no model. Writes
    ``RUN_DIR/eval-<split>[-<tta>].json`` and returns what it holds. ``experiment``: the
    ``.py`` file (or record) of a run of an experiment defined in a file."""
    from nnlab.engine import prepare
    from nnlab.engine.files import write_json_atomic

    run_dir = Path(run_dir)
    exp, record = experiment_of(run_dir, experiment)
    if exp.evaluate is None:
        raise NnlabError(f"a {exp.name} run has no separate evaluation: nnlab run evaluates "
                         "it in full (see its metrics.json)")
    if not _has_model(run_dir):
        children = [p for p in sorted(run_dir.iterdir()) if (p / "config.json").is_file()]
        if not children:
            raise NnlabError(f"{run_dir}: no saved model or checkpoint to evaluate yet")
        return {p.name: evaluate(p, split=split, tta=tta, data=data, experiment=exp)
                for p in children}
    config = exp.resolve(prepare.config_from(exp, record))
    split = split or exp.held_out(config)
    result = exp.evaluate(run_dir, config, split, tta, data)
    if not any(run_dir.glob("model*.pt")):  # still training, or stopped: say from where
        from nnlab.engine.checkpoint import Checkpoints

        if (found := Checkpoints(run_dir).latest()) is not None:
            at = found[0]["progress"]
            result["from_checkpoint"] = int(found[1].stem.split("-")[1])
            print(f"nnlab: {run_dir} has not finished: this is the model of "
                  f"{found[1].name} ({at.get('phase')} at {at.get('position')}"
                  + (f", batch {at['batch']}" if at.get("batch") else "")
                  + "), not a finished one", file=sys.stderr)
    used = result.get("tta")
    write_json_atomic(run_dir / f"eval-{split}{'-' + used if used else ''}.json", result)
    return result


def load(run_dir: str | Path, *, model: str | None = None,
         experiment: str | Path | None = None) -> Any:
    """A finished run's trained image classifier (`nnlab.export.TrainedModel`), loaded as
    safely as ``nnlab eval`` loads it:

    >>> model = nnlab.load("runs/cifar-speedrun/20261203-103003")
    >>> model.predict(["cat.jpg", "photos/"], top_k=3)[0].classes     # ['cat', 'dog', 'frog']

    ``model``: which ``model*.pt`` when the run holds several (cifar-cnn: ``model-adam``);
    ``experiment``: the ``.py`` file of a run of an experiment defined in a file."""
    from nnlab.export import load as load_model

    return load_model(run_dir, model, experiment)
