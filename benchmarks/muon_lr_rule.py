"""How close Muon's learning-rate rule lands to the best lr of a sweep at a held-back size;
and the rule rebuilt by one command.

    python benchmarks/muon_lr_rule.py [FOLDER]   # default: docs/results/muon-lr-rule
    python benchmarks/muon_lr_rule.py --refit OUT [--data PATH] [--lrs 0.06,0.1,...]
        [--short "FLAGS"] [--long "FLAGS"]

The rule (``nnlab.experiments.cifar_speedrun.muon_lr_rule``, lr = A x steps^-B) was fitted on
the lrs a sweep found best at 76 and 1,400 steps. FOLDER holds runs that differ only in
``--muon-lr`` at another number of steps (made by the commands in the docs' fast-CNN page);
this prints their accuracies, the rule's lr for their steps, and the gap between the best lr
and the rule's, in accuracy and as a ratio of lrs.

``--refit OUT`` rebuilds the rule: two ``nnlab sweep`` grids over ``--muon-lr`` (no pruning),
one at a short run (default: 10,000 images, 4 epochs, batch 512: 76 steps, as the rule's
first point) and one at a long one (default: the CPU-sized recipe, 8 epochs at batch 256:
1,400 steps), each into its sweep folder under OUT; it prints the power law through the two
best lrs beside today's and draws OUT/rule.png. Hours on a 2-core CPU at the defaults;
``--short``/``--long`` take any cifar-speedrun flags; run again on the same OUT, it
continues an interrupted sweep (or only redraws).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from nnlab.experiments.cifar_speedrun import RULE_A, RULE_B
from nnlab.study.tables import lr_sweep, markdown, muon_lr_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="docs/results/muon-lr-rule")
    parser.add_argument("--refit", type=Path, default=None, metavar="OUT")
    parser.add_argument("--data", default=None, metavar="PATH")
    parser.add_argument("--lrs", default="0.06,0.1,0.14,0.2,0.28,0.4")
    parser.add_argument("--short", default="--widths 32,64,64 --train-limit 10000 --epochs 4 "
                                           "--batch-size 512")
    parser.add_argument("--long", default="--widths 32,64,64 --epochs 8 --batch-size 256")
    args = parser.parse_args()
    if args.refit is not None:
        return refit(args)
    folder = Path(args.folder)
    runs = sorted(p for p in folder.glob("lr*") if (p / "metrics.json").exists())
    if not runs:
        sys.exit(f"{folder}: no finished sweep runs (lr*/metrics.json)")
    print(f"the rule: lr = {RULE_A:g} x steps^-{RULE_B:g}; the sweep in {folder}\n")
    print(markdown(muon_lr_sweep(*runs)))
    sweep = lr_sweep(*runs)
    best, nearest = sweep.best, sweep.nearest
    print(f"\n{sweep.steps} steps: the rule gives {sweep.rule:.3g}; the best lr swept is "
          f"{best:g} ({100 * sweep.mean(best):.1f}%), {best / sweep.rule:.2f}x the rule's; the "
          f"lr swept nearest the rule ({nearest:g}) is "
          f"{100 * (sweep.mean(best) - sweep.mean(nearest)):.1f} points below the best")


def refit(args: argparse.Namespace) -> None:
    """Rebuild the rule: a grid sweep of ``--muon-lr`` (``nnlab sweep``, no pruning: a high
    lr that starts slowly must not be cut) at a short and a long run, the best lr of each,
    and the power law through the two; OUT/rule.png draws it beside today's rule."""
    import nnlab
    from nnlab.study.tables import cpu, power_law, refit_points

    lengths = {"short": shlex.split(args.short), "long": shlex.split(args.long)}
    for name, flags in lengths.items():
        given = _flags(flags)
        if args.data:
            given["data"] = args.data
        if (args.refit / name / "sweep.json").is_file():  # run before: go on (or redraw)
            nnlab.sweep(None, resume=args.refit / name)
            continue
        nnlab.sweep("cifar-speedrun", [f"muon_lr={args.lrs}"], sampler="grid",
                    trials=len(args.lrs.split(",")), prune=False, out=args.refit / name,
                    **given)
    found = refit_points(args.refit)  # the same numbers the docs' table reads
    for name, (steps, lr, acc) in found.items():
        run = args.refit / name / json.loads((args.refit / name / "best.json").read_text())[
            "folder"]
        print(f"{name}: {steps} steps, best --muon-lr {lr:g} (val_acc {acc:.4f}) on "
              f"{cpu(run)}", flush=True)
    a, b = power_law(found)
    print(f"\nthe refit rule: lr = {a:.3g} x steps^-{b:.3g} (today's: {RULE_A:g} x "
          f"steps^-{RULE_B:g}); at 430 steps (the full-width recipe): {a * 430 ** -b:.3g} "
          f"(today's {RULE_A * 430 ** -RULE_B:.3g})")
    _draw(args.refit / "rule.png", found, a, b)


def _flags(words: list[str]) -> dict:
    """'--widths 32,64,64 --epochs 4' -> {'widths': (32, 64, 64), 'epochs': 4}."""
    out, key = {}, None
    for w in words:
        if w.startswith("--"):
            key = w[2:].replace("-", "_")
            out[key] = True
        elif key is not None:
            out[key] = tuple(int(x) for x in w.split(",")) if "," in w else \
                int(w) if w.lstrip("-").isdigit() else float(w)
            key = None
    return out


def _draw(path: Path, found: dict, a: float, b: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s for s, _, _ in found.values()]
    xs = [x for i in range(80) if (x := min(steps) / 2 * 1.1 ** i) < max(steps) * 3]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [a * x ** -b for x in xs], label=f"refit: {a:.3g} × steps^-{b:.3g}")
    ax.plot(xs, [RULE_A * x ** -RULE_B for x in xs], "--",
            label=f"today's rule: {RULE_A:g} × steps^-{RULE_B:g}")
    for name, (s, lr, acc) in found.items():
        ax.scatter([s], [lr], zorder=3)
        ax.annotate(f"{name}: best {lr:g} ({100 * acc:.1f}%)", (s, lr),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer steps of the run")
    ax.set_ylabel("Muon's best --muon-lr")
    ax.set_title("Muon's best learning rate against the run's length\n"
                 "(two nnlab sweeps, one seed per lr)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
