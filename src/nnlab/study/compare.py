"""``nnlab compare RUN RUN...``: separate runs on shared axes.

A run folder gives one curve per training it holds: its ``history.csv`` split by the column
that tells trainings apart (toy's ``impl``, cifar-cnn's ``optimizer``), or, for a folder of
runs (a palindrome sweep, the seeds of a run), each sub-folder's. The result: ``compare.png``
(held-out accuracy and training loss by epoch or step), ``compare.md`` (the last and best
numbers of each curve, whether a hand-written gradient check passed, and every setting in
which the runs' configs differ), and the same table printed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnlab.engine.history import History
from nnlab.errors import NnlabError
from nnlab.experiments.configs.toy import GRADCHECK_WRONG, gradient_error

TAGS = ("impl", "optimizer", "phase")  # columns that tell a history's trainings apart
NOT_SETTINGS = ("provenance", "started", "resumed", "command")  # config.json, not settings


@dataclass
class Curve:
    """One training: its ``label``, the rows of its history, the x column ('epoch' or
    'step') and the held-out split its accuracy is on ('val' or 'test')."""

    label: str
    history: History
    x: str
    split: str
    gradient_check: str = ""


def _gradient_check(run_dir: Path) -> str:
    try:
        g = json.loads((run_dir / "metrics.json").read_text()).get("gradient_check")
    except (OSError, ValueError):
        return ""
    if not isinstance(g, dict):
        return ""
    worst = gradient_error(g)
    return f"FAILS ({worst:.0e})" if worst > GRADCHECK_WRONG else f"passes ({worst:.0e})"


def curves(run_dir: Path, label: str) -> list[Curve]:
    """The trainings of the run folder ``run_dir`` (see the module's docstring)."""
    path = run_dir / "history.csv"
    if not path.is_file():
        subs = sorted((p.parent for p in run_dir.glob("*/history.csv")), key=_natural)
        return [c for sub in subs for c in curves(sub, f"{label}/{sub.name}")]
    history = History.load_csv(path)
    rows = list(history)
    if not rows:
        return []
    x = "epoch" if "epoch" in rows[0] else "step"
    split = "val" if any("val_acc" in r for r in rows) else "test"
    tag = next((t for t in TAGS if t in rows[0]), None)
    check = _gradient_check(run_dir)
    if tag is None:
        return [Curve(label, history, x, split, check)]
    values = list(dict.fromkeys(str(r[tag]) for r in rows))
    return [Curve(f"{label} {v}", History([r for r in rows if str(r[tag]) == v]), x, split,
                  check if v == "numpy" else "") for v in values]


def _labels(runs: list[Path]) -> list[str]:
    """The shortest tail of each path that tells the runs apart."""
    parts = [r.resolve().parts for r in runs]
    for n in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-n:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(r) for r in runs]


def _flat(record: dict, prefix: str = "") -> dict[str, Any]:
    """{'a.b': value} for nested dicts; values as they are."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _natural(path: Path) -> list:
    """rnn-T5 before rnn-T10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def differences(runs: list[Path], labels: list[str]) -> list[tuple[str, list[str]]]:
    """(setting, each run's value) for every config.json entry whose value differs."""
    configs = []
    for run in runs:
        record = json.loads((run / "config.json").read_text())
        configs.append({k: v for k, v in _flat(record).items()
                        if not k.startswith(NOT_SETTINGS)})
    keys = sorted(set().union(*configs))
    return [(k, ["—" if k not in c else json.dumps(c[k]) for c in configs]) for k in keys
            if len({json.dumps(c.get(k)) for c in configs}) > 1]


def _number(value: Any, fmt: str) -> str:
    return "—" if value is None or value == "" else format(value, fmt)


def table(all_curves: list[Curve]) -> list[str]:
    """Markdown rows: each curve's last and best held-out accuracy, its last training loss
    and accuracy, its length and its seconds."""
    lines = ["| training | held-out acc (last) | best | train acc | train loss | length | "
             "wall s | gradient check |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | "
             "--- |"]
    for c in all_curves:
        acc = [a for a in c.history.column(f"{c.split}_acc") if a != ""]
        last = c.history.last
        lines.append(
            f"| {c.label} | {_number(acc[-1] if acc else None, '.2%')} ({c.split}) | "
            f"{_number(max(acc) if acc else None, '.2%')} | "
            f"{_number(last.get('train_acc'), '.2%')} | {_number(last.get('train_loss'), '.4f')}"
            f" | {last.get(c.x)} {c.x}s | {_number(last.get('wall_s'), ',.0f')} | "
            f"{c.gradient_check or '—'} |")
    return lines


def plot(all_curves: list[Curve], path: Path, title: str) -> Path:
    """compare.png: held-out accuracy (train accuracy dotted) and training loss by x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.plots import COLORS

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, c in enumerate(all_curves):
        color = COLORS[i % len(COLORS)]
        xs = c.history.column(c.x)
        acc = c.history.column(f"{c.split}_acc")
        axes[0].plot([x for x, a in zip(xs, acc, strict=True) if a != ""],
                     [a for a in acc if a != ""], color=color, label=f"{c.label} ({c.split})")
        axes[0].plot(xs, c.history.column("train_acc"), ":", color=color)
        axes[1].plot(xs, c.history.column("train_loss"), color=color, label=c.label)
    x_names = " / ".join(dict.fromkeys(c.x for c in all_curves))
    for ax, name in zip(axes, ("accuracy (dotted: train)", "training loss"), strict=True):
        ax.set_xlabel(x_names)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def compare(runs: list[Path], out: Path | None = None,
            say: Any = print) -> Path:
    """Compare the run folders ``runs`` into ``out`` (new or empty; default
    runs/compare/<timestamp>): compare.png and compare.md, the table said. Returns ``out``."""
    for run in runs:
        if not (run / "config.json").is_file():
            raise NnlabError(f"{run}: not a run folder (no config.json)")
    labels = _labels(runs)
    all_curves = [c for run, label in zip(runs, labels, strict=True)
                  for c in curves(run, label)]
    if not all_curves:
        raise NnlabError(f"{', '.join(map(str, runs))}: no history.csv to draw")
    out = out or Path("runs/compare") / time.strftime("%Y%m%d-%H%M%S")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NnlabError(f"--out {out}: not an empty folder; nothing was written (comparisons "
                         "are never written over)")
    lines = [f"# {' vs '.join(labels)}", "", *table(all_curves), ""]
    diffs = differences(runs, labels)
    if diffs:
        lines += ["Settings that differ:", "", f"| setting | {' | '.join(labels)} |",
                  "| --- |" + " --- |" * len(labels)]
        lines += [f"| {k} | {' | '.join(v)} |" for k, v in diffs]
    else:
        lines.append("The runs' settings are the same.")
    plot(all_curves, out / "compare.png", " vs ".join(labels))
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    for line in lines[2:]:
        say(line)
    say(f"figure: {out / 'compare.png'}")
    return out
