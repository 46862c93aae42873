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

from nnlab.config import save_json


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


def _run_in_process(module_name: str, config, out_dir: Path, threads: int) -> dict:
    import torch  # here, not at the top: `nnlab list` should not pay for importing torch

    torch.set_num_threads(threads)
    return importlib.import_module(module_name).run(config, out_dir)


def run_seeds(module: ModuleType, config, out_dir: Path, n_seeds: int,
              jobs: int = 1) -> dict[str, float]:
    """Run ``config`` with seeds seed, seed+1, ... in ``out_dir/seed<k>``; write and return the
    aggregate (``metrics.json`` in ``out_dir``).

    ``jobs`` > 1 runs that many seeds at once, each in its own process with an equal share of
    the CPU threads: small networks use one core badly, so this is near ``jobs`` x faster.
    """
    configs = [replace(config, seed=config.seed + k) for k in range(n_seeds)]
    dirs = [Path(out_dir) / f"seed{c.seed}" for c in configs]
    if jobs <= 1:
        runs = [module.run(c, d) for c, d in zip(configs, dirs, strict=True)]
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = list(pool.map(_run_in_process, [module.__name__] * n_seeds, configs, dirs,
                                 [threads] * n_seeds))
    if hasattr(module, "plot_seeds"):  # an experiment's figure across seeds
        module.plot_seeds(Path(out_dir), runs)
    summary = aggregate(runs)
    save_json(Path(out_dir) / "metrics.json", summary)
    return summary


def format_summary(summary: dict[str, float]) -> str:
    """One line per metric: name, mean ± std, over N seeds."""
    names = [k[: -len("_mean")] for k in summary if k.endswith("_mean")]
    width = max(map(len, names), default=0)
    lines = [f"over {summary['n_seeds']} seeds (mean ± std):"]
    lines += [f"  {n:<{width}}  {summary[n + '_mean']:.4f} ± {summary[n + '_std']:.4f}"
              for n in names]
    return "\n".join(lines)
