"""A run's lifecycle around its training, as ``nnlab run`` and ``nnlab.run`` go through it:
what a ``--resume`` continues with (:func:`settle`), and the folder held while it trains
(:func:`holding`): made or locked, unlocked at the end, left behind only when it holds
something, and every failure a user can act on said in one line with the command that goes
on. The API (:func:`nnlab.api.execute`) calls these two around the training itself."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nnlab.engine import distributed as dist
from nnlab.engine import prepare, tracking
from nnlab.engine.run import finished
from nnlab.errors import ConfigError, Interrupted, NnlabError, WriteFailed


@dataclasses.dataclass
class Settled:
    """What a run will be, once its resume, seeds and options are settled: the resolved
    ``config``, its folder ``out`` (None: the default, made by :func:`holding`), ``seeds``
    and ``jobs``, the run ``options`` (:class:`~nnlab.engine.run.RunOptions` fields), and
    ``done``, the metrics of a finished run that a resume does not extend."""

    config: Any
    out: Path | None
    seeds: int
    jobs: int
    options: dict[str, Any]
    resume: Path | None = None
    done: dict | None = None


def _logged_to_tensorboard(run_dir: Path | None) -> bool:
    """A run that logged to TensorBoard keeps logging when resumed (if the package is here)."""
    if run_dir is None or not any(run_dir.rglob("events.out.tfevents.*")):
        return False
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def settle(exp: Any, given: dict[str, Any], *, out: Path | None, resume: Path | None,
           quick: bool, seeds: int | None, jobs: int | None, checkpoint_every: int | None,
           tensorboard: bool, progress: bool | None, track: str | None,
           watch: Any = None) -> Settled:
    """The config and options of a new run (``given`` flags, ``quick`` defaults), or of a
    resumed one (its recorded config with what ``given`` may change, its seeds, jobs,
    checkpoint interval and tracking unless given again); its data and folder checked. One
    ConfigError or NnlabError for anything that cannot run."""
    if resume is not None:
        resume = Path(resume)
        record = prepare.recorded(resume)
        if out is not None and out.resolve() != resume.resolve():
            raise NnlabError("--resume continues a run in its own folder; drop --out")
        if seeds is not None and seeds != record.get("seeds", 1):
            raise NnlabError(f"--resume: --seeds {seeds} differs from the run's "
                             f"{record.get('seeds', 1)}")
        config = prepare.resumed_config(exp, resume, given, record)
        if track is None and "mlflow_run_id" in record:  # it was tracked: it goes on being
            track = "mlflow"
            tracking.check(track)
        seeds, out = record.get("seeds", 1), resume
        jobs = jobs or record.get("jobs", 1)  # how many at once: results do not change
        if checkpoint_every is None:  # the options it was started with, unless given again
            checkpoint_every = record.get("checkpoint_every")
        if (metrics := finished(out, exp.resolve(config))) is not None:
            return Settled(config, out, seeds, jobs, {}, resume, done=metrics)
    else:
        config = prepare.new_config(exp, given, quick)
        seeds = 1 if seeds is None else seeds
        jobs = 1 if jobs is None else jobs
    config = exp.resolve(config)  # config.json records what runs, not "the recipe's value"
    if exp.needs_cifar:
        prepare.check_data(config.data)
    if resume is not None:
        prepare.check_out(resume, "--resume")
    if seeds < 1 or jobs < 1:
        raise ConfigError(f"--seeds and --jobs must be >= 1, got {seeds} and {jobs}")
    options: dict[str, Any] = {"resume": resume is not None,
                               "checkpoint_every": checkpoint_every,
                               "tensorboard": tensorboard or _logged_to_tensorboard(resume),
                               "progress": progress}
    if track is not None:
        options["track"] = track
    if watch is not None:
        if seeds != 1:
            raise ConfigError("a watched run (a sweep's trial) is one seed")
        options["watch"] = watch
    if dist.from_env().enabled and (seeds > 1 or out is None):
        raise ConfigError("under torchrun, pass --out DIR (every process must name the "
                          "same folder) and run one seed at a time")
    return Settled(config, out, seeds, jobs, options, resume)


@contextlib.contextmanager
def holding(name: str, settled: Settled, overwrite: bool,
            again: Callable[[Path], str]) -> Iterator[Path]:
    """The run folder while the run trains: a new one made (``--overwrite`` deletes only
    what nnlab wrote) or the resumed one, locked against a second writer, unlocked at the end
    (its process may go on: a notebook, ``reproduce``). Failures, in one line: an interrupted
    run says how to resume (``again(out)``: the command that goes on); a full
    disk keeps what was written and says the same; a torchrun worker lost says torchrun
    starts the job again; a new run that failed before writing anything but its config
    leaves no folder behind."""
    out = settled.out
    rank = dist.from_env().rank  # under torchrun: only rank 0 makes, locks and removes
    fresh = settled.resume is None and not (out is not None and out.exists())
    if settled.resume is None and rank == 0:
        out = prepare.new_folder(name, out, overwrite)  # locked
    elif rank == 0:
        prepare.lock(out)
    again_line = again(out)
    try:
        yield out
    except Interrupted as e:
        e.resume = e.resume or again_line
        raise
    except WriteFailed as e:  # a full disk, say: what was written stays, and it can go on
        if not (out / "config.json").exists():
            raise
        raise WriteFailed(f"{e}; the run's earlier files and checkpoints are kept; once that "
                          f"is fixed, resume with: {again_line}") from None
    except RuntimeError as e:
        if not (dist.from_env().enabled and dist.lost_peer(e)):
            raise
        line = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise NnlabError(f"a worker of this torchrun job was lost ({line}); torchrun starts "
                         "the job again if --max-restarts allows, and the restarted workers go "
                         f"on from {out}'s newest checkpoint") from None
    except NnlabError:
        # a new run that failed before it wrote anything but its config (say, unreadable
        # data): leave no folder behind, as if it had been refused up front
        if fresh and rank == 0 and all(p.name == "config.json" for p in prepare.contents(out)):
            prepare.unlock(out)
            shutil.rmtree(out)
        raise
    finally:
        prepare.unlock(out)


def restarted(out: Path | None) -> bool:
    """Whether torchrun started this job again with ``out`` holding its run (said once, by
    rank 0): the run then resumes from its newest checkpoint."""
    if not dist.restarted_in(out):
        return False
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"nnlab: torchrun restarted the job: {out} goes on from its newest "
              "checkpoint", file=sys.stderr, flush=True)
    return True
