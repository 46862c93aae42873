"""Print the README's speedrun comparison (per seed, then mean ± std) from two or more
multi-seed run folders, and optionally draw their time-to-accuracy curves on shared axes.

    python docs/results/speedrun_table.py docs/results/speedrun-cpu-muon-7ep/recipe \
        docs/results/speedrun-cpu-muon-7ep/muon --figure docs/figures/speedrun-muon.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from nnlab.plots import plot_time_to_accuracy

COLUMNS = [("val_acc", "val acc, TTA", 100, "%"), ("val_acc_no_tta", "no TTA", 100, "%"),
           ("wall_s", "wall s", 1, ""), ("time_to_80_s", "time to 80%", 1, " s"),
           ("time_to_84_s", "time to 84%", 1, " s")]


def _fmt(values: list[float | None], scale: float, unit: str) -> str:
    got = [v * scale for v in values if v is not None]
    if not got:
        return "not reached"
    if len(got) == 1:
        text = f"{got[0]:.1f}{unit}"
    else:
        text = f"{statistics.mean(got):.1f} ± {statistics.stdev(got):.1f}{unit}"
    return text + (f" ({len(got)} of {len(values)})" if len(got) < len(values) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="multi-seed run folders")
    parser.add_argument("--figure", type=Path, help="also draw the curves here")
    args = parser.parse_args()
    print("| run | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |")
    print("| --- | --- |" + " ---: |" * len(COLUMNS))
    histories, labels, colors = [], [], []
    for i, run in enumerate(args.runs):
        seeds = sorted(run.glob("seed*/metrics.json"))
        metrics = [json.loads(p.read_text()) for p in seeds]
        command = json.loads((run / "config.json").read_text())["provenance"]["command"]
        cells = [_fmt([m.get(key) for m in metrics], scale, unit)
                 for key, _, scale, unit in COLUMNS]
        names = ", ".join(p.parent.name.removeprefix("seed") for p in seeds)
        print(f"| {run.name} | {names} | " + " | ".join(cells) + " |")
        for p, m in zip(seeds, metrics, strict=True):
            print(f"|   {p.parent.name} | | " + " | ".join(
                _fmt([m.get(key)], scale, unit) for key, _, scale, unit in COLUMNS) + " |")
        print(f"<!-- {run}: {command} -->")
        histories += [p.parent / "history.csv" for p in seeds]
        labels += [run.name] * len(seeds)
        colors += [i] * len(seeds)
    if args.figure:
        plot_time_to_accuracy(histories, args.figure, (0.80, 0.84), labels=labels,
                              colors=colors, title="CPU-sized speedrun: every seed of each")
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
