"""Figures as pure functions: saved histories and arrays in, a PNG out. Nothing here trains."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnlab.engine.history import History  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _whole_numbers(ax: plt.Axes) -> None:
    """Ticks only at whole numbers on the x axis (epochs, steps, T: never 1.5 or 5.25)."""
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """The figure as a PNG, written atomically (a full disk: WriteFailed, naming the file)."""
    from nnlab.engine.files import write_atomic

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=120, format="png")
    plt.close(fig)
    return write_atomic(path, buffer.getvalue())


def plot_dataset(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    path: str | Path, title: str = "",
) -> Path:
    """Scatter of a 2-D dataset: x (N, 2), y (N,) labels; train as dots, test as crosses."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for c in np.unique(np.concatenate([y_train, y_test])):
        color = COLORS[int(c) % len(COLORS)]
        ax.scatter(*x_train[y_train == c].T, s=8, color=color, alpha=0.6, label=f"class {c}")
        ax.scatter(*x_test[y_test == c].T, s=14, color=color, marker="x", linewidths=0.8)
    ax.set_title(title or "dataset (dots: train, crosses: test)", fontsize=9)
    ax.set_xlabel("x1 (standardised)")
    ax.set_ylabel("x2 (standardised)")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_curves(
    history: History, path: str | Path, group: str = "impl",
    splits: Sequence[str] = ("train", "test"), title: str = "", x: str = "epoch",
    twin: str | None = None,
) -> Path:
    """Loss and accuracy against ``x`` (epoch or step), one colour per value of ``group``
    (e.g. numpy/torch), one line style per split (train solid, the next dashed). ``twin``
    names a column (say the curriculum's T) drawn in grey on a right axis of the accuracy panel."""
    groups = list(dict.fromkeys(history.column(group))) or [None]
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for metric, ax in zip(("loss", "acc"), axes, strict=True):
        for gi, g in enumerate(groups):
            where = {group: g} if g is not None else {}
            epochs = history.column(x, **where)
            for si, split in enumerate(splits):
                values = history.column(f"{split}_{metric}", **where)
                if values:
                    # Earlier groups drawn wider, so identical curves stay visible under later ones.
                    ax.plot(epochs, values, styles[si % len(styles)],
                            color=COLORS[gi % len(COLORS)], lw=1.2 + 2.0 * (len(groups) - 1 - gi),
                            alpha=0.6 if gi < len(groups) - 1 else 1.0,
                            label=f"{g} {split}" if g is not None else split)
        ax.set_xlabel(x)
        _whole_numbers(ax)
        ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if twin is not None and history.column(twin):
        right = axes[1].twinx()
        right.plot(history.column(x), history.column(twin), color="gray", lw=1, alpha=0.7)
        right.set_ylabel(f"{twin} (grey line)", color="gray")
    fig.suptitle(title)
    return _save(fig, path)


def plot_history(history: History, path: str | Path, title: str = "") -> Path:
    """Any run's curves: every split's loss and accuracy in ``history`` against its epoch (or
    step, or first column), one colour per phase where it has a ``phase`` column."""
    columns = list(history.rows[0]) if len(history) else ["epoch"]
    x = next((c for c in ("epoch", "step") if c in columns), columns[0])
    splits = list(dict.fromkeys(c.rsplit("_", 1)[0] for c in columns
                                if c.endswith(("_loss", "_acc"))))
    return plot_curves(history, path, group="phase" if "phase" in columns else "",
                       splits=splits, title=title, x=x)


def plot_decision_boundaries(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    x: np.ndarray, y: np.ndarray, path: str | Path, title: str = "",
) -> Path:
    """One panel per model: predicted class over a grid, the points (x (N, 2), y (N,)) on top.

    ``panels`` maps a name to (xx, yy, pred), each (H, W): the grid and its predicted class.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.3), squeeze=False)
    n_classes = int(max(y.max(), *(p[2].max() for p in panels.values())) + 1)
    cmap = matplotlib.colors.ListedColormap(COLORS[:n_classes])
    for ax, (name, (xx, yy, pred)) in zip(axes[0], panels.items(), strict=True):
        ax.contourf(xx, yy, pred, levels=np.arange(n_classes + 1) - 0.5, cmap=cmap, alpha=0.25)
        ax.scatter(*x.T, c=y, cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5, s=8,
                   edgecolors="k", linewidths=0.2)
        ax.set_title(name)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    fig.suptitle(title)
    return _save(fig, path)


def plot_accuracy_vs_length(
    results: Mapping[str, Mapping[int, Sequence[float]]], path: str | Path, title: str = "",
    ylabel: str = "held-out accuracy",
) -> Path:
    """Accuracy against palindrome length T, one line per cell: mean over seeds, with the
    min-max range shaded and each seed's value as a dot. ``results[cell][T]`` = accuracies."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (cell, by_T) in enumerate(results.items()):
        Ts = sorted(by_T)
        accs = [np.asarray(by_T[T], dtype=float) for T in Ts]
        color = COLORS[i % len(COLORS)]
        n = max(len(a) for a in accs)
        ax.plot(Ts, [a.mean() for a in accs], "-o", color=color, ms=4,
                label=f"{cell} (mean of {n} seed{'s' if n > 1 else ''})")
        ax.fill_between(Ts, [a.min() for a in accs], [a.max() for a in accs], color=color,
                        alpha=0.2)
        for T, a in zip(Ts, accs, strict=True):
            ax.scatter([T] * len(a), a, color=color, s=8, alpha=0.6)
    ax.axhline(0.1, color="gray", ls=":", lw=1, label="chance (10%)")
    ax.set_xlabel("palindrome length T")
    _whole_numbers(ax)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], path: str | Path,
                   title: str = "") -> Path:
    """A confusion matrix (rows: true class, columns: predicted), each row as fractions."""
    frac = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_seed_curves(paths: Sequence[str | Path], path: str | Path, title: str = "",
                     x: str = "epoch") -> Path:
    """Held-out loss and accuracy (the val_* or test_* columns) of several runs' saved
    histories, one line per run, train accuracy dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, p in enumerate(paths):
        h = History.load_csv(p)
        split = "test" if h.column("test_acc") else "val"
        color = COLORS[i % len(COLORS)]
        label = Path(p).parent.name
        axes[0].plot(h.column(x), h.column(f"{split}_loss"), color=color, label=label)
        axes[1].plot(h.column(x), h.column(f"{split}_acc"), color=color, label=f"{label} {split}")
        axes[1].plot(h.column(x), h.column("train_acc"), ":", color=color,
                     label=f"{label} train")
    for ax, name in zip(axes, ("cross-entropy loss", "accuracy"), strict=True):
        ax.set_xlabel(x)
        _whole_numbers(ax)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def plot_time_to_accuracy(paths: Sequence[str | Path], path: str | Path,
                          milestones: Sequence[float] = (), title: str = "",
                          labels: Sequence[str] | None = None,
                          colors: Sequence[int] | None = None) -> Path:
    """Held-out accuracy (val_acc or test_acc) against minutes since the run's clock started
    (the ``wall_s`` column of each saved history), one line per run, with a dashed
    line at each milestone accuracy up to 2 points above the best one plotted. Lines are
    labelled ``labels`` (default: each history's folder name) in palette entries ``colors``
    (default: one each); a label repeated is shown once in the legend."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    best = 0.0
    shown: set[str] = set()
    for i, p in enumerate(paths):
        h = History.load_csv(p)
        split = "test" if h.column("test_acc") else "val"
        acc = h.column(f"{split}_acc")
        best = max(best, *acc)
        label = labels[i] if labels is not None else Path(p).parent.name
        ax.plot([s / 60 for s in h.column("wall_s")], acc, "o-", ms=3,
                color=COLORS[(colors[i] if colors is not None else i) % len(COLORS)],
                label=None if label in shown else label)
        shown.add(label)
    for m in (m for m in milestones if m <= best + 0.02):
        ax.axhline(m, ls="--", lw=0.8, color="gray")
        ax.text(ax.get_xlim()[0], m, f" {m:.0%}", va="bottom", fontsize=7, color="gray")
    ax.set_xlabel("minutes since start (whitening fit + training + per-epoch evaluation)")
    ax.set_ylabel("held-out accuracy, no TTA")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_accuracy_vs_budget(expected: Sequence[tuple[float, float, str]],
                            measured: Sequence[tuple[float, float, str]], path: str | Path,
                            title: str = "") -> Path:
    """Accuracy against a time budget: the planner's expectation as a step line
    (budget minutes, accuracy, size) and the runs it planned as points (budget minutes,
    accuracy reached, label)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if expected:
        xs, ys, sizes = zip(*expected, strict=True)
        ax.step(xs, [100 * y for y in ys], where="post", color="0.55", lw=1.5,
                label="expected (the planner's table)")
        changes = [i for i in range(len(sizes)) if i == 0 or sizes[i] != sizes[i - 1]]
        for i in changes:
            ax.annotate(sizes[i], (xs[i], 100 * ys[i]), textcoords="offset points",
                        xytext=(2, -12), fontsize=8, color="0.4")
    for i, (x, y, label) in enumerate(measured):
        ax.plot([x], [100 * y], "o", color=COLORS[0], ms=7,
                label="measured: the planned run" if i == 0 else None)
        ax.annotate(label, (x, 100 * y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ticks = sorted({round(x) for x, _, _ in measured} | {2, 3, 5, 10, 20, 40, 60})
    ticks = [t for t in ticks if min(xs_all := [x for x, _, _ in [*expected, *measured]])
             <= t <= max(xs_all)]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("time budget (minutes, whole process)")
    ax.set_ylabel("validation accuracy, TTA (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)
