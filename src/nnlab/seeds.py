"""Run one experiment over several seeds and summarise every metric as mean ± std."""

from __future__ import annotations

import statistics
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


def run_seeds(module: ModuleType, config, out_dir: Path, n_seeds: int) -> dict[str, float]:
    """Run ``config`` with seeds seed, seed+1, ... in ``out_dir/seed<k>``; write and return the
    aggregate (``metrics.json`` in ``out_dir``)."""
    runs = []
    for k in range(n_seeds):
        seed = config.seed + k
        runs.append(module.run(replace(config, seed=seed), Path(out_dir) / f"seed{seed}"))
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
