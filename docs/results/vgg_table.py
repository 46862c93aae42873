"""The README's Part II table (and, with --figure, its curves) from a cifar-cnn run folder's
per-optimizer histories, finished or still running.

    python docs/results/vgg_table.py docs/results/cifar-cnn-study-100ep [--figure PNG]

Per optimizer: epochs so far, best validation accuracy and its epoch, the last epoch's, the
epoch of the lowest validation loss (where overfitting starts), and minutes per epoch (the
median over epochs, so the epochs slowed by other jobs on the machine count little).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from nnlab.engine import History
from nnlab.plots import plot_curves


def rows(run: Path) -> list[list[str]]:
    out = []
    for opt in ("adam", "sgd"):
        path = run / f"history-{opt}.csv"
        if not path.exists():
            continue
        h = History.load_csv(path)
        best_epoch, best_acc = h.best("val_acc")
        low_epoch, low_loss = h.best("val_loss", lowest=True)
        wall = h.column("wall_s")
        per_epoch = [b - a for a, b in zip([0.0, *wall], wall, strict=False)]
        out.append([opt, str(len(h)), f"{100 * best_acc:.1f}% ({best_epoch})",
                    f"{100 * h.last['val_acc']:.1f}%", f"{100 * h.last['train_acc']:.1f}%",
                    f"{low_epoch} ({low_loss:.3f})",
                    f"{statistics.median(per_epoch) / 60:.2f}"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    header = ["optimizer", "epochs", "best val acc (epoch)", "last val acc", "last train acc",
              "val loss lowest at epoch (value)", "minutes per epoch (median)"]
    print("| " + " | ".join(header) + " |")
    print("| --- | " + " | ".join("---:" for _ in header[1:]) + " |")
    for row in rows(args.run):
        print("| " + " | ".join(row) + " |")
    if args.figure:
        both = History()
        for opt in ("adam", "sgd"):
            if (args.run / f"history-{opt}.csv").exists():
                for r in History.load_csv(args.run / f"history-{opt}.csv"):
                    both.log(**{**r, "optimizer": opt})
        plot_curves(both, args.figure, group="optimizer", splits=("train", "val"),
                    title="VGGReduced, the study's setting (batch 64, Adam lr 1e-3, SGD lr "
                          "1e-2), from the same initial weights")


if __name__ == "__main__":
    main()
