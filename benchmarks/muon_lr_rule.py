"""How close Muon's learning-rate rule lands to the best lr of a sweep at a held-back size.

    python benchmarks/muon_lr_rule.py [FOLDER]   # default: docs/results/muon-lr-rule

The rule (``nnlab.experiments.cifar_speedrun.muon_lr_rule``, lr = A x steps^-B) was fitted on
the lrs a sweep found best at 76 and 1,400 steps. FOLDER holds runs that differ only in
``--muon-lr`` at another number of steps (made by the commands in the docs' fast-CNN page);
this prints their accuracies, the rule's lr for their steps, and the gap between the best lr
and the rule's, in accuracy and as a ratio of lrs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nnlab.experiments.cifar_speedrun import RULE_A, RULE_B
from nnlab.study.tables import lr_sweep, markdown, muon_lr_sweep


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/muon-lr-rule")
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


if __name__ == "__main__":
    main()
