"""The README's Part III table from a palindrome sweep's run folders (one seed<k>/ each).

    python docs/results/palindrome_table.py docs/results/palindrome-study-10k

Per cell and T: test accuracy as mean ± std over the seeds (%), the range of steps run,
how many seeds reached 99% validation accuracy, how many of those fell back below 90%, and
the chance that a test palindrome was also drawn for training.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(folder: Path) -> None:
    runs: dict[tuple[str, int], list[dict]] = {}
    for path in sorted(folder.glob("seed*/*/metrics.json")):
        m = json.loads(path.read_text())
        runs.setdefault((m["cell"], m["T"]), []).append(m)
    print("| cell | T | test acc (%) | seeds | steps run | reached 99% | fell back after 99% "
          "| test palindromes also seen in training |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (cell, T), ms in sorted(runs.items(), key=lambda kv: (kv[0][0] != "rnn", kv[0][1])):
        accs = [100 * m["test_acc"] for m in ms]
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        steps = [m["steps"] for m in ms]
        reached = sum((m["steps_to_99"] or -1) > 0 for m in ms)  # null (or -1 before 0.2): never
        fell = sum(m["collapsed"] for m in ms)
        seen = statistics.fmean(m["test_seen_in_training_frac"] for m in ms)
        name = "tanh RNN" if cell == "rnn" else cell.upper()
        print(f"| {name} | {T} | {statistics.fmean(accs):.1f} ± {spread:.1f} | {len(ms)} | "
              f"{min(steps)}–{max(steps)} | {reached}/{len(ms)} | {fell}/{reached} | "
              f"{seen:.0%} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
