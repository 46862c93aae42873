"""Tables of results, built from run folders alone: one builder per kind of result, shared by
``nnlab report`` and the documentation (``python -m nnlab.docs``), so a number reads the same
in both and both change when the runs do.

Every builder returns a :class:`Table`; :func:`markdown` renders one. Builders read
``config.json``, ``metrics.json``, ``history*.csv`` and ``eval-*.json``; they never train.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnlab.config import shown
from nnlab.engine.files import read_json
from nnlab.engine.history import History


@dataclass
class Table:
    """A table: a header and rows of already formatted cells, and what ran to make them
    (``setting``: the command or profile, seeds, steps, CPU; the docs print it under the
    table; empty: :func:`setting` says it from the run folders)."""

    header: list[str]
    rows: list[list[str]]
    setting: str = ""


def markdown(table: Table) -> str:
    """The table in GitHub/MkDocs Markdown; a column whose cells start with a digit (or are
    '—') is right-aligned."""
    def numeric(i: int) -> bool:
        cells = [r[i] for r in table.rows if r[i] not in ("—", "")]
        return bool(cells) and all(c[:1].isdigit() or c[:1] in "+−-" and c[1:2].isdigit()
                                   for c in cells)
    align = ["---:" if numeric(i) else "---" for i in range(len(table.header))]
    lines = ["| " + " | ".join(table.header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
              for row in table.rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- formatting


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def whole(x: float) -> str:
    return f"{x:,.0f}"


def mean_sd(m: dict, key: str, fmt: Callable[[float], str]) -> str:
    """'84.2% ± 0.4%' from a seeds summary's key_mean/key_std, or the one run's value (a
    dotted key walks a one-run metrics.json's nesting: 'adam.val_acc'); '—' if it has none."""
    if f"{key}_mean" in m:
        return f"{fmt(m[f'{key}_mean'])} ± {fmt(m.get(f'{key}_std', 0.0))}"
    value = m.get(key)
    if value is None and "." in key:
        value = m
        for k in key.split("."):
            value = value.get(k) if isinstance(value, dict) else None
    return "—" if value is None else fmt(value)


def _spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """'84.2% ± 0.4%' over seeds (sample std), the value alone for one."""
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.mean(values))} ± {fmt(statistics.stdev(values))}"


def cell_name(cell: str) -> str:
    return "tanh RNN" if cell == "rnn" else cell.upper()


def seed_folders(run: Path) -> list[Path]:
    """A multi-seed run's seed folders (seed0, seed1, ...), or the run itself."""
    found = sorted((p.parent for p in run.glob("seed*/metrics.json")),
                   key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0)
    return found or [run]


def run_name(folder: Path) -> str:
    """A run folder's name in a table: 'pair/recipe' when it sits in a folder of runs that is
    not a profile's (so two pairs' 'recipe' runs stay apart), else its own name."""
    if (folder.parent / "profile.json").exists() or folder.parent.name in ("", "results"):
        return folder.name
    return f"{folder.parent.name}/{folder.name}"


def _metrics(folder: Path) -> dict:
    return read_json(folder / "metrics.json")


def _seed(folder: Path) -> str:
    return str(read_json(folder / "config.json").get("seed", "?"))


def against(metrics: dict[str, dict], name: str, base: str, key: str) -> str:
    """'−3.1 points' from ``base``'s mean ``key``; '—' for the base itself or without it."""
    if name == base or base not in metrics:
        return "—"
    mean = lambda m: m.get(f"{key}_mean", m.get(key))  # noqa: E731
    return f"{100 * (mean(metrics[name]) - mean(metrics[base])):+.1f} points"


# --------------------------------------------------------------------------- Part I


def toy(folder: Path) -> Table:
    """One toy run: per dataset, the NumPy and PyTorch MLPs' test accuracy and seconds."""
    metrics = _metrics(folder)
    rows = [[d, pct(m["numpy"]["test_acc"]), pct(m["torch"]["test_acc"]),
             f"{m['numpy']['wall_s']:.2f}", f"{m['torch']['wall_s']:.2f}",
             f"{m['time_ratio_numpy_over_torch']:.2f}"]
            for d in ("moons", "circles", "blobs") if (m := metrics.get(d))]
    return Table(["dataset", "NumPy test acc", "PyTorch test acc", "NumPy s", "PyTorch s",
                  "time NumPy / PyTorch"], rows)


def toy_seeds(*folders: Path) -> Table:
    """Toy runs over seeds: per run and dataset, both implementations' test accuracy and the
    time ratio, mean ± std."""
    rows = []
    for folder in folders:
        m = _metrics(folder)
        cfg = read_json(folder / "config.json")
        setting = (f"{cfg.get('optimizer', '?')}, lr {cfg.get('lr', '?')}, "
                   f"{cfg.get('epochs', '?')} epochs")
        for d in ("moons", "circles", "blobs"):
            if d in m or f"{d}.numpy.test_acc_mean" in m:
                rows.append([folder.name, setting, d, str(m.get("n_seeds", 1)),
                             mean_sd(m, f"{d}.numpy.test_acc", pct),
                             mean_sd(m, f"{d}.torch.test_acc", pct),
                             mean_sd(m, f"{d}.time_ratio_numpy_over_torch",
                                     lambda x: f"{x:.2f}")])
    return Table(["run", "setting", "dataset", "seeds", "NumPy test acc", "PyTorch test acc",
                  "time NumPy / PyTorch"], rows)


def gradient_check(folder: Path) -> Table:
    """A toy run's recorded gradient check: the largest relative error per dataset."""
    m = _metrics(folder)
    return Table(["dataset", "vs centred differences", "vs autograd"],
                 [[d, f"{g['max_vs_differences']:.1e}", f"{g['max_vs_autograd']:.1e}"]
                  for d in ("moons", "circles", "blobs")
                  if (g := m.get(d, {}).get("gradient_check"))])


# --------------------------------------------------------------------------- Part I.3


def cifar_mlp(*folders: Path) -> Table:
    """CIFAR-10 MLP runs: validation accuracy with and without TTA, train accuracy, epochs
    and seconds per seed, mean ± std over seeds."""
    rows = []
    for folder in folders:
        m = _metrics(folder)
        cfg = read_json(folder / "config.json")
        rows.append([folder.name, f"{cfg.get('recipe', '?')}, {cfg.get('precision', '?')}",
                     str(m.get("n_seeds", 1)), mean_sd(m, "val_acc", pct),
                     mean_sd(m, "val_acc_no_tta", pct), mean_sd(m, "train_acc", pct),
                     mean_sd(m, "epochs", whole), mean_sd(m, "wall_s", whole)])
    return Table(["run", "recipe, precision", "seeds", "val acc", "val acc, no TTA",
                  "train acc", "epochs", "wall s per seed"], rows)


def mlp_seeds(*folders: Path) -> Table:
    """CIFAR-10 MLP runs whose seeds ran apart (each ``seed*/`` a whole run folder): the
    command of the first seed, then mean ± std over the seed folders of validation accuracy
    with and without TTA, train accuracy and seconds."""
    rows, machines = [], set()
    for folder in folders:
        runs = seed_folders(folder)
        seeds = [read_json(s / "metrics.json") for s in runs]
        machines |= {cpu(s) for s in runs}
        flags = [f"{k} {v}".strip() for k, v in flag_pairs(_argv(runs[0]))
                 if k not in ("--out", "--seed")]
        epochs = sorted({m["epochs"] for m in seeds})
        rows.append([folder.name, f"`{' '.join(flags)}`" if flags else "(the defaults)",
                     str(len(seeds)),
                     *(_spread([m[k] for m in seeds], pct) for k in
                       ("val_acc", "val_acc_no_tta", "train_acc")),
                     " to ".join(map(whole, epochs)),
                     _spread([m["wall_s"] for m in seeds], whole)])
    return Table(["run", "flags", "seeds", "val acc", "val acc, no TTA", "train acc", "epochs",
                  "wall s per seed"], rows,
                 setting="seeds run apart, each its own process; " + "; ".join(sorted(machines)))


def evaluations(*folders: Path) -> Table:
    """The same trained models scored again by ``nnlab eval --tta MODE`` (their
    eval-val-MODE.json files): per run and mode, mean ± std over seeds and each seed."""
    rows = []
    for folder in folders:
        seeds = seed_folders(folder)
        modes = sorted({p.stem.removeprefix("eval-val-") for s in seeds
                        for p in s.glob("eval-val-*.json")}, key=len)
        for mode in modes:
            accs = [read_json(s / f"eval-val-{mode}.json").get("val_acc") for s in seeds]
            if None in accs:
                continue
            rows.append([folder.name, mode, str(len(accs)),
                         _spread(accs, lambda x: f"{100 * x:.2f}%"),
                         ", ".join(f"{100 * a:.2f}" for a in accs)])
    return Table(["run", "TTA views", "seeds", "val acc", "per seed (%)"], rows)


# --------------------------------------------------------------------------- Part II


def epoch_seconds(history: History) -> list[float]:
    """Each epoch's seconds, from a history's cumulative ``wall_s``."""
    wall = history.column("wall_s")
    return [b - a for a, b in zip([0.0, *wall], wall, strict=False)]


def vgg(folder: Path) -> Table:
    """A cifar-cnn run (one or both optimizers), from its per-optimizer histories: epochs,
    the best validation accuracy and its epoch, the last epoch's accuracies, the epoch of the
    lowest held-out loss (where overfitting starts) and the median minutes per epoch (so
    epochs slowed by other work count little). A run scored on the test split shows no best
    epoch: that would choose on the test split."""
    m = _metrics(folder) if (folder / "metrics.json").exists() else {}
    split = "test" if "n_test" in m else "val"
    rows = []
    for opt in ("adam", "sgd"):
        path = folder / f"history-{opt}.csv"
        if not path.exists():
            continue
        h = History.load_csv(path)
        best_epoch, best_acc = h.best(f"{split}_acc")
        low_epoch, low_loss = h.best(f"{split}_loss", lowest=True)
        per_epoch = epoch_seconds(h)
        lr = m.get(opt, {}).get("lr", h.rows[0].get("lr"))
        rows.append([opt, f"{lr:g}" if isinstance(lr, float) else "—", str(len(h)),
                     f"{pct(best_acc)} ({best_epoch})" if split == "val" else "—",
                     pct(h.last[f"{split}_acc"]), pct(h.last["train_acc"]),
                     f"{low_epoch} ({low_loss:.3f})",
                     f"{statistics.median(per_epoch) / 60:.2f}"])
    return Table(["optimizer", "lr", "epochs", "best val acc (epoch)", f"last {split} acc",
                  "last train acc", f"{split} loss lowest at epoch (value)",
                  "minutes per epoch (median)"], rows)


def vgg_short(*folders: Path) -> Table:
    """cifar-cnn runs side by side: per run and optimizer, the accuracy at the end (with TTA
    where the run used it), the best epoch's, and seconds."""
    rows = []
    for folder in folders:
        m = _metrics(folder)
        cfg = read_json(folder / "config.json")
        extras = [f"{k} {cfg[k]}" for k in ("tta", "schedule", "momentum", "translate")
                  if cfg.get(k) not in (None, "none", 0, 0.0, "constant")]
        for opt in ("adam", "sgd"):
            if opt in m or f"{opt}.val_acc_mean" in m:
                rows.append([folder.name, ", ".join(extras) or "the study's setting", opt,
                             mean_sd(m, f"{opt}.val_acc", pct),
                             mean_sd(m, f"{opt}.best_val_acc", pct),
                             mean_sd(m, f"{opt}.best_epoch", whole),
                             mean_sd(m, f"{opt}.wall_s", whole)])
    return Table(["run", "changes", "optimizer", "val acc at the end", "best val acc",
                  "at epoch", "wall s"], rows)


def _milestones(folder: Path, percents: Sequence[int]) -> dict[str, float | None]:
    """Seconds to each milestone, from history.csv (cifar_speedrun.milestone_times: the first
    epoch end at or above it, no TTA)."""
    from nnlab.experiments.cifar_speedrun import milestone_times

    return milestone_times(list(History.load_csv(folder / "history.csv")), "val",
                           [p / 100 for p in percents])


def _summary_time_to(m: dict, percent: int) -> str:
    """Seconds to a milestone from a seeds summary (over the seeds that reached it, saying how
    many when not all) or one run's metrics; 'not reached'."""
    key = f"time_to_{percent}_s"
    if f"{key}_n" in m:
        n, seeds = int(m[f"{key}_n"]), int(m.get("n_seeds", 1))
        if n == 0:
            return "not reached"
        text = mean_sd(m, key, whole)
        return text if n == seeds else f"{text} ({n} of {seeds})"
    return "not reached" if m.get(key) is None else whole(m[key])


def speedrun(*folders: Path, milestones: str = "80,84") -> Table:
    """Speedrun runs (multi-seed or single) side by side: validation accuracy with and
    without TTA and wall seconds, mean ± std over seeds (each seed's TTA accuracy in the last
    column), and the seconds to each milestone (the first epoch end at or above it, no TTA;
    'not reached', or how many seeds reached it when not all did)."""
    percents = [int(p) for p in str(milestones).split(",")]
    rows = []
    for folder in folders:
        seeds = seed_folders(folder)
        cfg = read_json(folder / "config.json")
        optimizer = {"muon": "Muon", "sgd": "SGD"}.get(
            cfg.get("optimizer"), "Muon" if cfg.get("muon_lr") else "SGD")  # before format 3
        setting = f"{cfg.get('widths', '?')}, {cfg.get('epochs', '?')} ep., {optimizer}"
        if not (seeds[0] / "history.csv").exists():  # a seeds summary alone: its means
            m = _metrics(folder)
            rows.append([folder.name, setting, str(m.get("n_seeds", 1)),
                         mean_sd(m, "val_acc", pct), mean_sd(m, "val_acc_no_tta", pct),
                         mean_sd(m, "wall_s", whole)]
                        + [_summary_time_to(m, p) for p in percents] + ["—"])
            continue
        ms = [{**_metrics(s), **_milestones(s, percents)} for s in seeds]
        row = [run_name(folder), setting, ", ".join(_seed(s) for s in seeds),
               _spread([m["val_acc"] for m in ms], pct),
               _spread([m["val_acc_no_tta"] for m in ms], pct),
               _spread([m["wall_s"] for m in ms], whole)]
        for p in percents:
            got = [m[f"time_to_{p}_s"] for m in ms if m[f"time_to_{p}_s"] is not None]
            row.append("not reached" if not got else _spread(got, whole)
                       + (f" ({len(got)} of {len(ms)})" if len(got) < len(ms) else ""))
        row.append(", ".join(f"{100 * m['val_acc']:.1f}" for m in ms))
        rows.append(row)
    return Table(["run", "widths, epochs, optimizer", "seeds", "val acc, TTA",
                  "val acc, no TTA", "wall s"] + [f"s to {p}% (no TTA)" for p in percents]
                 + ["per seed, TTA (%)"], rows)


def profile_argv(folder: Path) -> list[str] | None:
    """The words after ``nnlab run`` of the profile part a folder is (its profile.json beside
    it), or None when no profile ran it."""
    parts = read_json(folder.parent / "profile.json").get("parts", [])
    return next((p["argv"] for p in parts if p["name"] == folder.name), None)


def _argv(folder: Path) -> list[str]:
    """The command that made a run folder, as words after ``nnlab run``: the profile part's
    own, else the recorded command's."""
    argv = profile_argv(folder)
    if argv is None:
        argv = read_json(folder / "config.json").get("provenance", {}).get("command", "").split()
        argv = argv[argv.index("run") + 1:] if "run" in argv else argv
    return list(argv)


def flag_pairs(argv: list[str]) -> list[tuple[str, str]]:
    """['--lr', '0.4', '--quick'] -> [('--lr', '0.4'), ('--quick', '')]."""
    out: list[tuple[str, str]] = []
    for word in argv[1:]:
        if word.startswith("--"):
            out.append((word, ""))
        elif out:
            out[-1] = (out[-1][0], word)
    return out


def ablation(*folders: Path, base: str = "", key: str = "val_acc", train: str = "") -> Table:
    """One change at a time against a base run: the flags that differ from ``base``'s (a
    folder name among ``folders``; where a run was written, ``--out``, is not a change),
    accuracy, its difference from the base's, and seconds; for validation runs the accuracy
    without TTA, for palindromes the steps to 99%; with ``train=yes`` also the last epoch's
    training accuracy (how far a run is from fitting its training set)."""
    metrics = {f.name: _metrics(f) for f in folders}
    base_flags = set(flag_pairs(_argv(next(f for f in folders if f.name == base)))) \
        if base else set()
    split = key.split("_")[0]
    rows = []
    for f in folders:
        m = metrics[f.name]
        change = [f"{k} {v}".strip() for k, v in flag_pairs(_argv(f))
                  if (k, v) not in base_flags and k != "--out"]
        if split == "test":
            steps = m.get("steps_to_99")
            extra = "never" if steps is None else f"{steps:,}"
        else:
            extra = mean_sd(m, f"{key}_no_tta", pct)
        rows.append([f.name, f"`{' '.join(change)}`" if change else "—", mean_sd(m, key, pct),
                     against(metrics, f.name, base, key), extra,
                     *([mean_sd(m, "train_acc", pct)] if train else []),
                     mean_sd(m, "wall_s", whole)])
    last = "steps to 99% (val)" if split == "test" else f"{split} acc, no TTA"
    return Table(["run", "change", f"{split} acc", "against the base", last,
                  *(["train acc"] if train else []), "wall s"], rows)


@dataclass
class LrSweep:
    """Speedrun runs that differ only in ``--muon-lr``: each lr's seed accuracies, the runs'
    number of steps, what ``muon_lr_rule`` gives for it, the best lr and the one nearest it."""

    runs: list[tuple[float, list[float], dict]]  # (lr, each seed's val_acc, metrics), by lr
    steps: int
    rule: float
    best: float
    nearest: float

    def mean(self, lr: float) -> float:
        return next(statistics.mean(accs) for x, accs, _ in self.runs if x == lr)


def lr_sweep(*folders: Path) -> LrSweep:
    from nnlab.experiments.cifar_speedrun import muon_lr_rule

    runs, steps = [], 0
    for folder in folders:
        cfg, m = read_json(folder / "config.json"), _metrics(folder)
        steps = cfg["epochs"] * (int(m.get("n_train", 0)) // cfg["batch_size"])
        runs.append((cfg["muon_lr"], [_metrics(s)["val_acc"] for s in seed_folders(folder)], m))
    runs.sort(key=lambda r: r[0])
    rule = muon_lr_rule(steps)
    return LrSweep(runs, steps, rule,
                   best=max(runs, key=lambda r: statistics.mean(r[1]))[0],
                   nearest=min(runs, key=lambda r: abs(r[0] - rule))[0])


def muon_lr_sweep(*folders: Path) -> Table:
    """Speedrun runs that differ only in ``--muon-lr`` (multi-seed): per lr, validation
    accuracy with and without TTA (mean ± std over seeds), marking the best lr and the one
    nearest what ``muon_lr_rule`` gives for the runs' number of steps."""
    sweep = lr_sweep(*folders)
    marks = {sweep.best: ["best"]}
    marks.setdefault(sweep.nearest, []).append(f"nearest the rule's {sweep.rule:.3g}")
    rows = [[f"{lr:g}", str(sweep.steps), str(len(accs)), _spread(accs, pct),
             mean_sd(m, "val_acc_no_tta", pct), ", ".join(marks.get(lr, [])) or "—"]
            for lr, accs, m in sweep.runs]
    return Table(["Muon lr", "steps", "seeds", "val acc, TTA", "val acc, no TTA", ""], rows)


# --------------------------------------------------------------------------- Part III


def _palindrome_runs(folder: Path) -> dict[tuple[str, int], list[dict]]:
    runs: dict[tuple[str, int], list[dict]] = {}
    for path in sorted(folder.glob("**/metrics.json")):
        m = read_json(path)
        if "cell" in m and "T" in m:
            runs.setdefault((m["cell"], m["T"]), []).append(m)
    return dict(sorted(runs.items(), key=lambda kv: (kv[0][0] != "rnn", kv[0][1])))


def palindrome(folder: Path) -> Table:
    """A palindrome sweep (one folder per cell and T, under seed<k>/ folders or not): per
    cell and T, test accuracy (mean ± std over seeds, and each seed), steps run, how many
    seeds reached 99% validation accuracy and how many of those fell back below 90%, and the
    chance that a test palindrome was also drawn for training."""
    rows = []
    for (cell, T), ms in _palindrome_runs(folder).items():
        steps = [m["steps"] for m in ms]
        reached = sum((m.get("steps_to_99") or -1) > 0 for m in ms)
        fell = sum(bool(m.get("collapsed")) for m in ms)
        seen = [m["test_seen_in_training_frac"] for m in ms
                if m.get("test_seen_in_training_frac") is not None]
        rows.append([cell_name(cell), str(T), _spread([m["test_acc"] for m in ms], pct),
                     " / ".join(f"{100 * m['test_acc']:.1f}" for m in ms),
                     f"{min(steps)}–{max(steps)}" if min(steps) != max(steps) else str(steps[0]),
                     f"{reached}/{len(ms)}", f"{fell}/{reached}",
                     f"{statistics.fmean(seen):.0%}" if seen else "—"])
    return Table(["cell", "T", "test acc", "each seed (%)", "steps run", "reached 99% val",
                  "fell back after 99%", "test palindromes also seen in training"], rows)


def palindrome_results(folder: Path) -> dict[str, dict[int, list[float]]]:
    """{cell: {T: [test accuracy of each seed]}} of a sweep: what the study's claim reads."""
    out: dict[str, dict[int, list[float]]] = {}
    for (cell, T), ms in _palindrome_runs(folder).items():
        out.setdefault(cell, {})[T] = [m["test_acc"] for m in ms]
    return out


def long_memory(*folders: Path) -> Table:
    """Long palindrome runs, one each: the cell, the T aimed at, the longest T the curriculum
    passed at 99% validation accuracy, test accuracy at the aimed T, steps, and seconds: to
    99% validation at the aimed T (from history.csv) and in all."""
    rows = []
    for folder in folders:
        m = _metrics(folder)
        cfg = read_json(folder / "config.json")
        h = History.load_csv(folder / "history.csv") if (folder / "history.csv").exists() \
            else None
        passed, at_aim = "—", m.get("wall_s_to_99")  # without a curriculum: at the aimed T
        if h is not None and len(h) and "T" in h.rows[0]:
            good = [r for r in h.rows if r.get("val_acc", 0) >= 0.99]
            passed = str(int(max(r["T"] for r in good))) if good else "none"
            at_aim = next((r["wall_s"] for r in good if r["T"] >= m["T"]), None)
        rows.append([folder.name, cell_name(m["cell"]), str(cfg.get("hidden", "?")),
                     str(m["T"]), passed, f"{100 * m['test_acc']:.2f}%", f"{m['steps']:,}",
                     "never" if at_aim is None else whole(at_aim), whole(m["wall_s"])])
    return Table(["run", "cell", "hidden", "T aimed at", "longest T passed (≥ 99% val)",
                  "test acc at the aimed T", "steps", "s to 99% val at the aimed T",
                  "wall s"], rows)


def palindrome_grid(folder: Path) -> Table:
    """A sweep as a grid: a row per cell, a column per T, test accuracy (mean ± std over
    seeds), from its runs' folders, or from its seeds summary when only that is kept."""
    runs = _palindrome_runs(folder)
    if runs:
        lengths = sorted({T for _, T in runs})
        cells = list(dict.fromkeys(c for c, _ in runs))
        value = {(c, t): _spread([m["test_acc"] for m in ms], pct) for (c, t), ms in runs.items()}
    else:  # {"rnn-T5.test_acc_mean": ..., ...} or {"rnn-T5": {"test_acc": ...}}
        m = _metrics(folder)
        names = sorted({k.split(".")[0] for k in m if "-T" in k.split(".")[0]}
                       | {k for k, v in m.items() if isinstance(v, dict) and "-T" in k})
        cells = sorted({n.split("-T")[0] for n in names}, key=lambda c: c != "rnn")
        lengths = sorted({int(n.split("-T")[1]) for n in names})
        value = {(c, t): mean_sd(m, f"{c}-T{t}.test_acc", pct) for c in cells for t in lengths}
    return Table(["cell"] + [f"T = {t}" for t in lengths],
                 [[cell_name(c)] + [value.get((c, t), "—") for t in lengths] for c in cells])


# --------------------------------------------------------------------------- profiles


def profile(folder: Path) -> Table:
    """Each part of a ``nnlab reproduce --profile`` run: the plan's minutes beside the wall
    time its profile.json recorded (every invocation that worked on it, summed) and the CPU
    its config.json names."""
    from nnlab.study.reproduce import PROFILE_RUNS

    record = read_json(folder / "profile.json")
    seconds = record.get("seconds", {})
    rows = []
    for name, _, _, minutes in PROFILE_RUNS[record["profile"]]:
        s = seconds.get(name)
        config = folder / name / "config.json"
        prov = read_json(config).get("provenance", {}) if config.exists() else {}
        bf16 = {True: " (native bf16)", False: " (no native bf16)"}.get(
            prov.get("cpu_native_bf16"), "")
        state = ("finished" if (folder / name / "metrics.json").exists()
                 else "started" if s is not None else "not started")
        rows.append([name, f"{minutes:g}", "—" if s is None else f"{s / 60:.1f}", state,
                     prov.get("cpu", "—") + bf16])
    total = sum(seconds.get(r[0], 0.0) for r in rows)
    rows.append(["**all**", f"{sum(m for *_, m in PROFILE_RUNS[record['profile']]):g}",
                 f"{total / 60:.1f}", "", ""])
    return Table(["part", "plan (min)", "measured (min)", "state", "CPU"], rows)


# --------------------------------------------------------------------------- benchmarks


def bench(path: Path, table: str = "1") -> Table:
    """The Markdown table a benchmark script printed (``python benchmarks/X.py > FILE``): the
    ``table``-th one (from 1) when it printed several. Its first line (the machine) becomes
    the caption the docs print under it."""
    blocks: list[list[str]] = [[]]
    for line in path.read_text().splitlines():
        if line.strip().startswith("|"):
            blocks[-1].append(line.strip())
        elif blocks[-1]:
            blocks.append([])
    found = [b for b in blocks if len(b) >= 2]
    if len(found) < int(table):
        raise ValueError(f"{path}: no Markdown table number {table} in it")
    lines = found[int(table) - 1]
    split = lambda line: [c.strip() for c in line.strip("|").split("|")]  # noqa: E731
    return Table(split(lines[0]), [split(line) for line in lines[2:]])


def bench_caption(path: Path) -> str:
    return next((line.strip() for line in path.read_text().splitlines() if line.strip()), "")


def budget_sizes(results: Path) -> Table:
    """The accuracy ``--time-budget`` plans with: each size of cifar-speedrun, each number of
    epochs measured, its validation accuracy (TTA; mean over seeds where there are several)
    read from the run folder under ``results`` that measured it."""
    from nnlab.experiments.cifar_speedrun import BUDGET_SIZES, SIZE_SOURCES

    rows = []
    for size in BUDGET_SIZES:
        for epochs in sorted(size.accuracy):
            folder = results / SIZE_SOURCES[size.name, epochs]
            m = _metrics(folder)
            seeds = m.get("n_seeds", 1)
            rows.append([size.name, ",".join(map(str, size.fields["widths"])),
                         str(size.fields["batch_size"]), str(epochs),
                         mean_sd(m, "val_acc", pct), str(seeds),
                         f"`{folder.relative_to(results.parent.parent)}`"])
    return Table(["size", "widths", "batch", "epochs", "val acc, TTA", "seeds", "run folder"],
                 rows)


def time_budget(*folders: Path) -> Table:
    """Runs of ``--time-budget``: the budget, the plan it printed (size, epochs, predicted
    seconds and accuracy), the whole process's seconds (from the process's start to its
    metrics.json) and their ratio to the budget, the accuracy reached, and the CPU."""
    rows = []
    for folder in folders:
        plan = read_json(folder / "config.json")["time_budget"]
        m = _metrics(folder)
        done = m["time_budget"]
        rows.append([duration(plan["budget_s"]), f"{plan['size']}, {plan['epochs']} epochs",
                     f"{plan['probe_s']:.1f}", f"{plan['predicted_s']:.0f}",
                     f"{done['process_s']:.0f}", f"{done['process_s'] / plan['budget_s']:.3f}",
                     pct(plan["predicted_acc"]) if plan["predicted_acc"] is not None else "—",
                     pct(m["val_acc"]),
                     "yes" if done["stopped_early"] else "no", cpu(folder)])
    return Table(["budget", "plan", "probe s", "planned s", "whole process s", "/ budget",
                  "expected val acc", "val acc, TTA", "stopped early", "CPU"], rows)


def anchor_epochs(log: str) -> list[dict[str, float]]:
    """Each epoch line an airbench port printed (``| run | epoch | ... |``) as a history row:
    ``val_acc`` (no TTA) and ``wall_s`` (its ``total_time_seconds``: whitening and training
    so far, the per-epoch evaluations excluded)."""
    rows = []
    for line in log.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[1].isdigit():
            try:
                rows.append({"val_acc": float(cells[4]), "wall_s": float(cells[6])})
            except ValueError:
                continue
    return rows


def _paircpu(folder: Path, pair: dict) -> str:
    """The CPU a pair ran on: ``machine.json`` (the benchmark's), else nnlab's provenance."""
    if (folder / "machine.json").exists():
        m = read_json(folder / "machine.json")
        return f"{m['cpu']}, {'native bf16' if m['native_bf16'] else 'AVX2, no native bf16'}"
    return cpu(folder / Path(pair["nnlab_folder"]).name).rsplit(", ", 1)[0]


def _pair_means(folder: Path) -> dict[str, tuple[list[float], list[float]]]:
    """{'nnlab' | 'port': (each seed's TTA accuracy, each seed's whole-process seconds)} of
    an ``airbench_pair.py`` folder."""
    sides: dict[str, tuple[list[float], list[float]]] = {"nnlab": ([], []), "port": ([], [])}
    for pair in read_json(folder / "pair.json", list):
        log = (folder / Path(pair["anchor_log"]).name).read_text()
        sides["port"][0].append(json.loads(log.strip().splitlines()[-1])["tta_test_acc"])
        sides["port"][1].append(pair["anchor_result"]["process_s"])
        sides["nnlab"][0].append(_metrics(folder / Path(pair["nnlab_folder"]).name)["val_acc"])
        sides["nnlab"][1].append(pair["nnlab"]["process_s"])
    return sides


def airbench_pair(*folders: Path, milestones: str = "89,90") -> Table:
    """``benchmarks/airbench_pair.py``'s runs: nnlab's speedrun and an airbench port, started
    together, one thread each (or a port alone, with ``--port-only``). Accuracy from nnlab's
    run folder and the port's final JSON line; whole-process seconds as the benchmark timed
    them from outside (``pair.json``) and their ratio to the port's beside it; seconds to
    each milestone from nnlab's history and the port's epoch lines (no TTA)."""
    from nnlab.experiments.cifar_speedrun import milestone_times

    percents = [int(p) for p in str(milestones).split(",")]
    rows = []
    for folder in folders:
        pairs = read_json(folder / "pair.json", list)
        seen: dict[str, list[tuple[float, float, float, float]]] = {}
        for pair in pairs:
            log = (folder / Path(pair["anchor_log"]).name).read_text()
            port = json.loads(log.strip().splitlines()[-1])
            base = pair["anchor_result"]["process_s"]
            sides = []
            if pair.get("nnlab_folder"):
                run = folder / Path(pair["nnlab_folder"]).name
                m, cfg = _metrics(run), read_json(run / "config.json")
                sides.append((f"nnlab cifar-speedrun, {cfg['widths']}, {cfg['epochs']} ep.",
                              m["val_acc"], m["val_acc_no_tta"], pair["nnlab"]["process_s"],
                              list(History.load_csv(run / "history.csv")), "one thread each"))
            alone = "" if sides else " (--port-only)"
            sides.append((Path(pair["anchor"]).stem + alone, port["tta_test_acc"],
                          port["test_acc_no_tta"], base, anchor_epochs(log),
                          f"{port.get('threads', '?')} thread, no nnlab beside it" if alone
                          else "one thread each"))
            for name, tta, no_tta, seconds, history, how in sides:
                seen.setdefault(name, []).append((tta, no_tta, seconds, base))
                times = milestone_times(history, "val", [p / 100 for p in percents])
                rows.append([name, str(pair["seed"]), f"{100 * tta:.2f}%", f"{100 * no_tta:.2f}%",
                             whole(seconds), f"{seconds / base:.2f}" if len(sides) > 1 else "—"]
                            + [whole(t) if (t := times[f"time_to_{p}_s"]) is not None
                               else "not reached" for p in percents]
                            + [f"{port.get('precision', '?')}, {how}", _paircpu(folder, pair)])
        if len(pairs) > 1:  # each side's mean ± sample std over the seeds, its time ratio
            for name, runs in seen.items():
                mean, sd = statistics.mean, statistics.stdev
                tta, no_tta, seconds, base = zip(*runs, strict=True)
                rows.append([f"**{name}, mean**", ", ".join(str(p["seed"]) for p in pairs),
                             f"{100 * mean(tta):.2f}% ± {100 * sd(tta):.2f}%",
                             f"{100 * mean(no_tta):.2f}% ± {100 * sd(no_tta):.2f}%",
                             f"{whole(mean(seconds))} ± {whole(sd(seconds))}",
                             f"**{mean(seconds) / mean(base):.2f}**"]
                            + ["—"] * len(percents) + [rows[-1][-2], rows[-1][-1]])
    return Table(["run", "seed", "val acc, TTA", "val acc, no TTA", "whole process s",
                  "/ the port's"] + [f"s to {p}% (no TTA)" for p in percents]
                  + ["precision, threads", "CPU"], rows)

def precision(*folders: Path, base: str = "") -> Table:
    """Runs of one experiment in several precisions and settings: the data (its folder's
    name), the precision that ran, the flags that differ from ``base``'s, held-out accuracy
    with and without TTA, training accuracy, the first epoch's held-out loss (an exploding
    one says the network broke) and seconds."""
    base_flags = set(flag_pairs(_argv(next(f for f in folders if f.name == base)))) \
        if base else set()
    rows = []
    for folder in folders:
        cfg = read_json(folder / "config.json")
        history = History.load_csv(folder / "history.csv").rows \
            if (folder / "history.csv").exists() else []
        change = [f"{k} {v}".strip() for k, v in flag_pairs(_argv(folder))
                  if (k, v) not in base_flags and k not in ("--out", "--data", "--precision")]
        row = [folder.name, Path(str(cfg.get("data", "?"))).name,
               cfg.get("provenance", {}).get("precision", "?"),
               f"`{' '.join(change)}`" if change else "—"]
        if not history:  # stopped in its first epoch (a NaN loss)
            rows.append(row + ["stopped in epoch 1", "—", "—", "—", "—"])
            continue
        split = "test" if "test_acc" in history[0] else "val"
        if (folder / "metrics.json").exists():
            m = _metrics(folder)
            result = [f"{pct(m[f'{split}_acc'])} ({split})", pct(m[f"{split}_acc_no_tta"]),
                      pct(m["train_acc"]), whole(m["wall_s"])]
        else:  # stopped by nnlab: no better than chance (or NaN)
            last = history[-1]
            result = [f"stopped after epoch {last['epoch']}", pct(last[f"{split}_acc"]),
                      pct(last["train_acc"]), whole(last["wall_s"])]
        rows.append(row + [*result[:3], f"{history[0][f'{split}_loss']:.3g}", result[3]])
    return Table(["run", "data", "precision", "change", "acc, TTA", "no TTA", "train acc",
                  "first epoch's held-out loss", "wall s"], rows)


# --------------------------------------------------------------------------- sweeps


def sweep(*folders: Path) -> Table:
    """``nnlab sweep`` folders, one row each: the experiment and its fixed flags, what was
    searched, the trials (finished / pruned) and the best trial's value and flags."""
    rows, samplers = [], set()
    for folder in folders:
        spec, best = read_json(folder / "sweep.json"), read_json(folder / "best.json")
        samplers.add(str(spec.get("sampler")))
        fixed = " ".join(f"--{k.replace('_', '-')} {shown(v)}"
                         for k, v in spec.get("flags", {}).items() if k != "data")
        metric = spec.get("metric", "?")
        rows.append([run_name(folder), f"`{spec.get('experiment')} {fixed}`",
                     ", ".join(f"`{p}`" for p in spec.get("params", [])),
                     f"{best.get('complete', 0)} / {best.get('pruned', 0)}",
                     "—" if best.get(metric) is None else
                     pct(best[metric]) if metric.endswith("acc") else f"{best[metric]:.4f}",
                     ", ".join(f"--{k} {v}" for k, v in best.get("params", {}).items())])
    return Table(["sweep", "experiment and fixed flags", "searched", "trials finished / pruned",
                  "best value (held-out)", "best flags"], rows,
                 setting=f"one seed per trial, Optuna's {' and '.join(sorted(samplers))} "
                         "sampler, median pruner; "
                         + "; ".join(sorted({cpu(f / best_folder(f)) for f in folders})))


def best_folder(folder: Path) -> str:
    """The run folder of a sweep's best trial, relative to the sweep."""
    return str(read_json(folder / "best.json").get("folder") or "")


def refit_points(folder: Path) -> dict[str, tuple[int, float, float]]:
    """{length: (optimizer steps, best --muon-lr, its val_acc)} of a rule refit's sweeps
    (``benchmarks/muon_lr_rule.py --refit FOLDER``: ``short/`` and ``long/``)."""
    points = {}
    for name in ("short", "long"):
        best = read_json(folder / name / "best.json")
        run = folder / name / str(best["folder"])
        config, metrics = read_json(run / "config.json"), _metrics(run)
        steps = int(config["epochs"]) * (int(metrics["n_train"]) // int(config["batch_size"]))
        points[name] = (steps, float(config["muon_lr"]), float(best["val_acc"]))
    return points


def power_law(points: dict[str, tuple[int, float, float]]) -> tuple[float, float]:
    """(A, B) of lr = A x steps^-B through the short and the long run's best lrs."""
    (s1, lr1, _), (s2, lr2, _) = points["short"], points["long"]
    b = math.log(lr1 / lr2) / math.log(s2 / s1)
    return lr1 * s1 ** b, b


def muon_refit(folder: Path) -> Table:
    """The Muon lr rule rebuilt by two sweeps: each length's steps and every lr's validation
    accuracy (the best in bold), then the power law through the two bests beside today's."""
    from nnlab.experiments.cifar_speedrun import RULE_A, RULE_B

    points = refit_points(folder)
    rows = []
    for name, (steps, best_lr, _) in points.items():
        trials = sorted((float(r["muon-lr"]), r["val_acc"]) for r in
                        csv.DictReader((folder / name / "trials.csv").open()))
        rows.append([name, f"{steps:,}", ", ".join(
            (f"**{lr:g}: {100 * float(acc):.1f}%**" if lr == best_lr else
             f"{lr:g}: {100 * float(acc):.1f}%") for lr, acc in trials),
            f"{best_lr:g}", f"{RULE_A * steps ** -RULE_B:.3g}"])
    a, b = power_law(points)
    rows.append(["the power law through both", "", "", f"{a:.3g} × steps^−{b:.3g}",
                 f"{RULE_A:g} × steps^−{RULE_B:g}"])
    ran = setting(*(folder / n / str(read_json(folder / n / "best.json")["folder"])
                    for n in points))
    return Table(["run", "steps", "--muon-lr: val acc", "best lr", "today's rule"], rows,
                 setting=ran.replace("1 seed each", "one seed per lr"))


BUILDERS: dict[str, Callable[..., Table]] = {
    "toy": toy, "toy-seeds": toy_seeds, "gradient-check": gradient_check,
    "cifar-mlp": cifar_mlp, "mlp-seeds": mlp_seeds, "evaluations": evaluations, "vgg": vgg,
    "vgg-short": vgg_short,
    "speedrun": speedrun, "ablation": ablation, "palindrome": palindrome,
    "palindrome-grid": palindrome_grid, "long-memory": long_memory, "profile": profile,
    "bench": bench, "muon-lr-sweep": muon_lr_sweep,
    "budget-sizes": budget_sizes, "time-budget": time_budget,
    "airbench-pair": airbench_pair, "precision": precision, "sweep": sweep,
    "muon-refit": muon_refit,
}


# --------------------------------------------------------------------------- at a glance


def cpu(folder: Path) -> str:
    """'CPU, native bf16, 2 threads': where a run folder's run ran (its config.json)."""
    prov = read_json(folder / "config.json").get("provenance", {})
    cpu = prov.get("gpu") or prov.get("cpu", "unknown CPU")
    bf16 = {True: ", native bf16", False: ", AVX2, no native bf16"}.get(
        prov.get("cpu_native_bf16"), "")
    threads = prov.get("threads", "?")
    return f"{cpu}{bf16}, {threads} thread{'' if threads == 1 else 's'}"


def setting(*folders: Path) -> str:
    """What the run folders behind a table ran: the command (of one folder), the seeds and
    the CPU; '' when none is a run folder (a benchmark's output, a folder of folders)."""
    runs = [f for f in folders if (f / "config.json").is_file()]
    if not runs:
        return ""
    parts = []
    if len(runs) == 1:
        argv = profile_argv(runs[0])
        command = ("nnlab run " + " ".join(argv) if argv else
                   read_json(runs[0] / "config.json").get("provenance", {}).get("command"))
        if isinstance(command, str):  # where it wrote is this machine's, not the setting
            words = command.split()
            kept = [w for i, w in enumerate(words) if w not in ("--out", "--overwrite")
                    and (i == 0 or words[i - 1] != "--out")]
            parts.append(f"`{' '.join(kept)}`")
    seeds = sorted({int(_metrics(f).get("n_seeds", 1)) for f in runs})
    parts.append(" or ".join(map(str, seeds)) + (" seed" if seeds == [1] else " seeds")
                 + (" each" if len(runs) > 1 else ""))
    parts.append("; ".join(sorted({cpu(f) for f in runs})))
    return ", ".join(parts)


def duration(seconds: float) -> str:
    """48 -> '48 s', 420 -> '7 min', 13000 -> '3.6 h'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _time(folder: Path, per_seed: bool = True) -> str:
    """The wall time a part took: its profile's measured seconds (every invocation summed;
    per seed for a multi-seed part unless ``per_seed`` is False)."""
    seconds = read_json(folder.parent / "profile.json")["seconds"][folder.name]
    seeds = int(_metrics(folder).get("n_seeds", 1)) if per_seed else 1
    return duration(seconds / seeds) + (" per seed" if seeds > 1 else "")


def _vgg_time(folder: Path) -> str:
    """A cifar-cnn run's time on a quiet machine: each optimizer's median epoch × its epochs
    (epochs slowed by other work or a pause count little)."""
    total = 0.0
    for opt in ("adam", "sgd"):
        per_epoch = epoch_seconds(History.load_csv(folder / f"history-{opt}.csv"))
        total += statistics.median(per_epoch) * len(per_epoch)
    return duration(total) + " (median epoch × epochs)"


def glance(results: Path) -> Table:
    """One row per part of the study: what the study found, nnlab's current result (mean ±
    std over seeds, with its split), the command, and the minutes it took on the CPU named;
    every number from the run folders under ``results`` (``docs/results``)."""
    full = results / "full-profile"
    rows = []
    toy = _metrics(full / "toy-sgd")
    rows.append(["I: NumPy vs PyTorch MLP (toy data)",
                 "\"PyTorch outperforms NumPy in speed and stability\"",
                 f"same accuracy from the same weights (moons: "
                 f"{mean_sd(toy, 'moons.numpy.test_acc', pct)} both); NumPy takes "
                 f"{mean_sd(toy, 'moons.time_ratio_numpy_over_torch', lambda x: f'{x:.2f}')}× "
                 "PyTorch's time", "test, 3 seeds", "`nnlab run toy --dataset all --seeds 3`",
                 _time(full / "toy-sgd"), cpu(full / "toy-sgd")])
    mlp = results / "mlp-long" / "seeds" / "long-72ep"  # the default recipe, seeds run apart
    mlp_runs = seed_folders(mlp)
    seeds = [_metrics(s) for s in mlp_runs]
    study_mlp = _metrics(full / "cifar-mlp-study")
    rows.append(["I.3: pure MLP on CIFAR-10", "MLPs do poorly on CIFAR-10 and overfit",
                 f"{_spread([m['val_acc'] for m in seeds], pct)} (the study's MLP: "
                 f"{mean_sd(study_mlp, 'val_acc', pct)})",
                 f"val, {len(seeds)} seed{'' if len(seeds) == 1 else 's'}",
                 "`nnlab run cifar-mlp --seeds 3` (the default recipe)",
                 duration(statistics.mean(m["wall_s"] for m in seeds)) + " per seed",
                 cpu(mlp_runs[0])])
    vgg_run = results / "cifar-cnn-study-100ep"
    best = {o: History.load_csv(vgg_run / f"history-{o}.csv").best("val_acc")[1]
            for o in ("adam", "sgd")}
    rows.append(["II: reduced VGG, 100 epochs", "\"Adam converges faster than SGD\"",
                 f"best epoch: Adam {pct(best['adam'])}, SGD {pct(best['sgd'])}",
                 "val, 1 seed", "`nnlab run cifar-cnn --optimizer both --precision fp32`",
                 _vgg_time(vgg_run), cpu(vgg_run)])
    fast = full / "cifar-speedrun-cpu-muon"
    rows.append(["II: fast CNN (nnlab's addition)", "—",
                 mean_sd(_metrics(fast), "val_acc", pct), "val, 3 seeds",
                 "`nnlab run cifar-speedrun --widths 32,64,64 --batch-size 256 --epochs 7 "
                 "--muon-lr 0.1 --warmup 0 --seeds 3`", _time(fast), cpu(fast)])
    pair = results / "airbench-pair-8ep"
    if (pair / "pair.json").exists():
        sides = _pair_means(pair)
        ours, port = sides["nnlab"], sides["port"]
        rows.append(["II: fast CNN beside the public record (nnlab's addition)", "—",
                     f"{_spread(ours[0], pct)} (airbench94_muon's CPU port: "
                     f"{_spread(port[0], pct)}) in "
                     f"{statistics.mean(ours[1]) / statistics.mean(port[1]):.2f}× the port's "
                     "whole-process time", f"val, {len(ours[0])} seeds",
                     "`nnlab run cifar-speedrun` beside the port, one thread each "
                     "(`benchmarks/airbench_pair.py`)",
                     duration(statistics.mean(ours[1])) + " per seed",
                     _paircpu(pair, read_json(pair / "pair.json", list)[0]) + ", 1 thread"])
    sweep = palindrome_results(results / "palindrome-study-10k").get("rnn", {})
    solved = max((T for T, a in sweep.items() if min(a) >= 0.99), default=None)
    longer = {T: a for T, a in sweep.items() if solved is not None and T > solved}
    lstm = full / "palindrome-push-lstm"
    rows.append(["III: tanh RNN on palindromes", "\"The tanh RNN fails beyond T ≈ 10\"",
                 f"solves T ≤ {solved}; at T = {min(longer)}: "
                 f"{_spread(longer[min(longer)], pct)}; an LSTM with the long recipe: "
                 f"{pct(_metrics(lstm)['test_acc'])} at T = {_metrics(lstm)['T']}",
                 "test, 3 seeds (LSTM: 1)",
                 "`nnlab run palindrome --cell rnn,lstm --lengths 4,5,10,15,20,30,40 "
                 "--steps 10000 --seeds 3`",
                 _time(full / "palindrome-study-10k", per_seed=False) + " in all",
                 cpu(full / "palindrome-study-10k")])
    return Table(["part", "the study found", "nnlab's current result", "split", "command",
                  "time", "on"], rows,
                 setting="each row's command, seeds and split in its columns (the full "
                         "profile's runs, but for the VGG and the palindromes, run at the "
                         "study's own length); time: the part's wall time, on the CPU in the "
                         "last column")


BUILDERS["glance"] = glance
