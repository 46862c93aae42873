"""Run one experiment over several seeds and summarise every metric as mean ± std."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any


def flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """{'numpy': {'test_acc': 0.9}} -> {'numpy.test_acc': 0.9}; non-numbers are dropped."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def aggregate(runs: list[dict]) -> dict[str, float]:
    """Flat ``<metric>_mean`` and ``<metric>_std`` (sample std; 0 for one run) over runs."""
    flats = [flatten(m) for m in runs]
    out: dict[str, float] = {"n_seeds": len(runs)}
    for key in flats[0]:
        values = [f[key] for f in flats if key in f]
        out[f"{key}_mean"] = statistics.fmean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def _run_in_process(module_name: str, config, folder: Path, threads: int, options) -> dict:
    import torch  # here, not at the top: `nnlab list` should not pay for importing torch

    from nnlab.engine.run import run_child, signals_handled

    torch.set_num_threads(threads)
    module = importlib.import_module(module_name)
    with signals_handled():
        return run_child(folder, module, config, options)


def run_seeds(module: ModuleType, config, out_dir: Path, n_seeds: int, jobs: int = 1,
              **options: Any) -> dict[str, float]:
    """Run ``config`` with seeds seed, seed+1, ... as sub-runs ``out_dir/seed<k>``; write
    (``metrics.json`` in ``out_dir``) and return the aggregate. Resumable like one run:
    finished seeds are read back, an interrupted one continues from its checkpoint.

    ``jobs`` > 1 runs that many seeds at once, each in its own process with an equal share of
    the CPU threads: small networks use one core badly, so this is near ``jobs`` x faster.
    """
    from nnlab.engine.run import Run, experiment_name, run_child, run_options, signals_handled

    opts = run_options(module, **options)
    configs = [replace(config, seed=config.seed + k) for k in range(n_seeds)]
    dirs = [Path(out_dir) / f"seed{c.seed}" for c in configs]
    with signals_handled():
        parent = Run(out_dir, experiment_name(module), config, opts,
                     extra={"seeds": n_seeds, "jobs": jobs})
        if jobs <= 1:
            runs = [run_child(d, module, c, opts) for c, d in zip(configs, dirs, strict=True)]
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            with ProcessPoolExecutor(jobs,
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
                runs = list(pool.map(_run_in_process, [module.__name__] * n_seeds, configs,
                                     dirs, [threads] * n_seeds, [opts] * n_seeds))
        if hasattr(module, "plot_seeds"):  # an experiment's figure across seeds
            module.plot_seeds(Path(out_dir), runs)
        summary = aggregate(runs)
        parent.finish(summary)
    return summary


def format_summary(summary: dict[str, float]) -> str:
    """One line per metric: name, mean ± std, over N seeds."""
    names = [k[: -len("_mean")] for k in summary if k.endswith("_mean")]
    width = max(map(len, names), default=0)
    lines = [f"over {summary['n_seeds']} seeds (mean ± std):"]
    lines += [f"  {n:<{width}}  {summary[n + '_mean']:.4f} ± {summary[n + '_std']:.4f}"
              for n in names]
    return "\n".join(lines)
