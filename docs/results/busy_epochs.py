"""Seconds a run lost to other work on the machine: the epochs that took 1.25x the median
epoch or longer, and their excess over the median, from each history-*.csv of a run folder.

    python docs/results/busy_epochs.py docs/results/study-profile/cifar-cnn
"""

import csv
import statistics
import sys
from pathlib import Path

total = 0.0
for path in sorted(Path(sys.argv[1]).glob("history-*.csv")):
    wall = [float(r["wall_s"]) for r in csv.DictReader(path.open())]
    epochs = [wall[0]] + [b - a for a, b in zip(wall, wall[1:], strict=False)]
    median = statistics.median(epochs)
    slow = [e for e in epochs if e >= 1.25 * median]
    excess = sum(e - median for e in slow)
    total += excess
    print(f"{path.name}: median epoch {median:.1f} s, {len(slow)} slow epochs, "
          f"{excess:.0f} s over the median")
print(f"in all: {total:.0f} s ({total / 60:.1f} min)")
