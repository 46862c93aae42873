"""Run one experiment over several seeds and summarise every metric as mean ± std."""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from nnlab.engine.history import flatten
from nnlab.errors import Interrupted

# Facts of a run, the same for every seed, not measurements: reported once, never averaged.
FACTS = ("n_params", "n_train", "n_val", "n_test", "world_size", "epochs", "T",
         "log10_distinct_palindromes")


def aggregate(runs: list[dict]) -> dict[str, float]:
    """Over the runs of several seeds: ``n_seeds``; for each measured metric ``<m>_mean``,
    ``<m>_std`` (sample std; 0 for one value) and ``<m>_n``, how many seeds have a value (a
    milestone some seeds did not reach is null in theirs: the mean is over those that did,
    and ``_n`` says how many); each fact (FACTS) once, as ``<m>``, when every seed agrees."""
    flats = [flatten(m, keep_none=True) for m in runs]
    out: dict[str, float] = {"n_seeds": len(runs)}
    keys = list(dict.fromkeys(k for f in flats for k in f))
    for key in keys:
        values = [v for f in flats if (v := f.get(key)) is not None]
        if key.rsplit(".", 1)[-1] in FACTS and len(set(values)) == 1:
            out[key] = values[0]
            continue
        out[f"{key}_n"] = len(values)
        if values:
            out[f"{key}_mean"] = statistics.fmean(values)
            out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


_STOP = None  # in a worker process: the parent's stop event (see _worker_started)


def _run_in_process(reference: str, config, folder: Path, threads: int, options) -> dict:
    if _STOP is not None and _STOP.is_set():  # queued before the stop: never started
        raise Interrupted(signal.SIGTERM, "before this seed started")
    import torch  # here, not at the top: `nnlab list` should not pay for importing torch

    from nnlab import experiments
    from nnlab.engine.run import run_child, signals_handled

    torch.set_num_threads(threads)
    exp = experiments.get(reference)
    with signals_handled():
        return run_child(folder, exp.name, config, options, exp.train,
                         *_child_args(exp, config))


def _worker_started(stop) -> None:  # noqa: ANN001 - a multiprocessing Event
    """A worker ignores signals between seeds (a seed's run installs its own handlers) and
    keeps the parent's stop event, which it checks before each seed."""
    global _STOP
    _STOP = stop
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def _stop_workers(pool: ProcessPoolExecutor, futures: list, stop, signum: int,  # noqa: ANN001
                  grace_s: float = 10.0) -> None:
    """A signal stopped the parent: start no further seed, and stop the running ones as one
    run stops (their step finished, a checkpoint written). Ctrl-C reaches the workers too
    (the terminal signals the whole process group) and they stop within ``grace_s``; a
    signal sent to the parent alone (``kill PID``, a job scheduler) is passed on to them.
    (A seed already queued to a worker cannot be cancelled: it sees the ``stop`` event.)"""
    stop.set()
    pool.shutdown(wait=False, cancel_futures=True)
    running = [f for f in futures if not f.done()]
    if running and concurrent.futures.wait(running, timeout=grace_s).not_done:
        for child in multiprocessing.active_children():  # the pool's workers
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)


def _child_args(exp, config) -> tuple:  # noqa: ANN001
    """(device flags, extra) of each seed's sub-run, as :func:`start_run` gives a run."""
    from nnlab.engine.run import device_flags, experiment_extra

    return device_flags(exp, config), experiment_extra(exp)


def run_seeds(exp, config, out_dir: Path, n_seeds: int, jobs: int = 1,  # noqa: ANN001
              **options: Any) -> dict[str, float]:
    """Run experiment ``exp`` (a record) with ``config`` and seeds seed, seed+1, ... as
    sub-runs ``out_dir/seed<k>``; write (``metrics.json`` in ``out_dir``) and return the
    aggregate. Resumable like one run: finished seeds are read back, an interrupted one
    continues from its checkpoint.

    ``jobs`` > 1 runs that many seeds at once, each in its own process with an equal share of
    the CPU threads: small networks use one core badly, so this is near ``jobs`` x faster.
    """
    from nnlab import experiments
    from nnlab.engine.run import run_child, signals_handled, start_run

    configs = [replace(config, seed=config.seed + k) for k in range(n_seeds)]
    dirs = [Path(out_dir) / f"seed{c.seed}" for c in configs]
    with signals_handled():
        parent = start_run(exp, config, out_dir, extra={"seeds": n_seeds, "jobs": jobs},
                           **options)
        opts = parent.options
        if jobs <= 1:
            runs = [run_child(d, exp.name, c, opts, exp.train,
                              *_child_args(exp, c))
                    for c, d in zip(configs, dirs, strict=True)]
        else:
            reference = experiments.reference(exp)
            threads = max(1, (os.cpu_count() or 1) // jobs)
            context = multiprocessing.get_context("spawn")
            stop = context.Event()  # set by a signal: no worker starts another seed
            with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_started,
                                     initargs=(stop,)) as pool:
                futures = [pool.submit(_run_in_process, reference, c, d, threads, opts)
                           for c, d in zip(configs, dirs, strict=True)]
                try:
                    runs = [f.result() for f in futures]
                except Interrupted as e:
                    _stop_workers(pool, futures, stop, e.signum)
                    raise
        if exp.plot_seeds is not None:  # an experiment's figure across seeds
            exp.plot_seeds(Path(out_dir), runs)
        summary = aggregate(runs)
        parent.finish(summary)
    return summary


def format_summary(summary: dict[str, float]) -> str:
    """One line per measured metric: mean ± std over the seeds that have it (and how many,
    when not all); the facts on one line at the end."""
    n = int(summary["n_seeds"])
    names = [k[: -len("_n")] for k in summary if k.endswith("_n")]
    facts = [k for k in summary if k != "n_seeds" and not k.endswith(("_n", "_mean", "_std"))]
    width = max(map(len, names), default=0)
    lines = [f"over {n} seeds (mean ± std, n = {n}):"]
    for name in names:
        got = int(summary[f"{name}_n"])
        if not got:
            lines.append(f"  {name:<{width}}  not reached by any seed")
            continue
        line = f"  {name:<{width}}  {summary[name + '_mean']:.4f} ± {summary[name + '_std']:.4f}"
        lines.append(line + (f"  ({got} of {n} seeds reached it: the mean is over those)"
                             if got < n else ""))
    if facts:
        lines.append("  the same in every seed: " + ", ".join(
            f"{k} {summary[k]:g}" for k in facts))
    return "\n".join(lines)
