"""Print the README's speedrun comparison (per seed, then mean ± std) from two or more
run folders (multi-seed or single), and optionally draw their time-to-accuracy curves on
shared axes.

    python docs/results/speedrun_table.py docs/results/speedrun-cpu-muon-7ep/recipe \
        docs/results/speedrun-cpu-muon-7ep/muon --figure docs/figures/speedrun-muon.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from nnlab.engine import History
from nnlab.experiments.cifar_speedrun import milestone_times
from nnlab.plots import plot_time_to_accuracy

COLUMNS = [("val_acc", "val acc, TTA", 100, "%"), ("val_acc_no_tta", "no TTA", 100, "%"),
           ("wall_s", "wall s", 1, "")]


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
    parser.add_argument("--milestones", default="80,84",
                        help="time-to columns, in percent (default: 80,84)")
    args = parser.parse_args()
    percents = [int(p) for p in args.milestones.split(",")]
    columns = COLUMNS + [(f"time_to_{p}_s", f"time to {p}%", 1, " s") for p in percents]

    def facts(metrics_path: Path) -> dict:
        """metrics.json, with the time to each milestone read from history.csv (the first
        epoch end at or above it, no TTA), so any milestone can be asked for."""
        rows = list(History.load_csv(metrics_path.parent / "history.csv"))
        return {**json.loads(metrics_path.read_text()),
                **milestone_times(rows, "val", [p / 100 for p in percents])}
    print("| run | seeds | " + " | ".join(c[1] for c in columns) + " |")
    print("| --- | --- |" + " ---: |" * len(columns))
    histories, labels, colors = [], [], []
    for i, run in enumerate(args.runs):
        seeds = sorted(run.glob("seed*/metrics.json")) or [run / "metrics.json"]
        metrics = [facts(p) for p in seeds]
        command = json.loads((run / "config.json").read_text())["provenance"]["command"]
        cells = [_fmt([m.get(key) for m in metrics], scale, unit)
                 for key, _, scale, unit in columns]
        names = ", ".join(str(json.loads((p.parent / "config.json").read_text())["seed"])
                          for p in seeds)
        print(f"| {run.name} | {names} | " + " | ".join(cells) + " |")
        for p, m in zip(seeds, metrics, strict=True):
            print(f"|   {p.parent.name} | | " + " | ".join(
                _fmt([m.get(key)], scale, unit) for key, _, scale, unit in columns) + " |")
        print(f"<!-- {run}: {command} -->")
        histories += [p.parent / "history.csv" for p in seeds]
        labels += [run.name] * len(seeds)
        colors += [i] * len(seeds)
    if args.figure:
        plot_time_to_accuracy(histories, args.figure, [p / 100 for p in percents],
                              labels=labels,
                              colors=colors, title="speedrun: every seed of each")
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
