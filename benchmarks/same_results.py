"""Whether a change moved any result: the same runs made before and after it, compared.

    python benchmarks/same_results.py --make DIR [--data PATH]    # the runs, into DIR
    python benchmarks/same_results.py BEFORE AFTER                 # compare two such DIRs

``--make`` runs seven short image runs (each CIFAR experiment's ``--quick``, a small
fast-CNN run with an EMA, the VGG with SGD, a cosine schedule and flips, the MLP's study
recipe, and ``examples/resnet_cifar.py``); make them once on the code before a change and
once after. The comparison prints, per run, whether ``metrics.json`` (times aside), the
history's columns (times aside) and every tensor of every ``model*.pt`` are identical.
Exit 1 when one differs.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

RUNS = {
    "speed-quick": ["cifar-speedrun", "--quick"],
    "speed-small": ["cifar-speedrun", "--train-limit", "2000", "--val-size", "500", "--epochs",
                    "2", "--widths", "16,32,32", "--batch-size", "256", "--ema", "0.9"],
    "cnn-quick": ["cifar-cnn", "--quick"],
    "cnn-sgd": ["cifar-cnn", "--quick", "--optimizer", "sgd", "--schedule", "cosine", "--flip"],
    "mlp-quick": ["cifar-mlp", "--quick"],
    "mlp-study": ["cifar-mlp", "--quick", "--recipe", "study", "--widths", "64,64", "--epochs",
                  "2"],
    "resnet": ["examples/resnet_cifar.py", "--quick"],
}
TIMES = ("wall_s", "images_per_s", "data_s", "setup_s", "_s")  # keys that measure time


def make(out: Path, data: str | None) -> None:
    for name, argv in RUNS.items():
        cmd = [sys.executable, "-m", "nnlab", "run", *argv, "--out", str(out / name),
               "--overwrite", *(["--data", data] if data else [])]
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _timeless(d: object) -> object:
    if isinstance(d, dict):
        return {k: _timeless(v) for k, v in d.items() if not k.endswith(TIMES)}
    return d


def _columns(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if not k.endswith(TIMES)}
                for row in csv.DictReader(f)]


def same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    ma, mb = wa.get("model", wa), wb.get("model", wb)
    return ma.keys() == mb.keys() and all(
        torch.equal(ma[k], mb[k]) for k in ma if torch.is_tensor(ma[k]))


def compare(before: Path, after: Path) -> bool:
    same_all = True
    for run in sorted(p.name for p in before.iterdir() if p.is_dir()):
        a, b = before / run, after / run
        metrics = _timeless(json.loads((a / "metrics.json").read_text())) == \
            _timeless(json.loads((b / "metrics.json").read_text()))
        histories = all(_columns(h) == _columns(b / h.name) for h in a.glob("history*.csv"))
        weights = all(same_weights(m, b / m.name) for m in a.glob("model*.pt"))
        same = metrics and histories and weights
        same_all &= same
        print(f"{run}: metrics {'same' if metrics else 'DIFFER'}, histories "
              f"{'same' if histories else 'DIFFER'}, weights {'same' if weights else 'DIFFER'}")
    return same_all


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path, metavar="BEFORE AFTER")
    ap.add_argument("--make", type=Path, default=None, metavar="DIR")
    ap.add_argument("--data", default=None, metavar="PATH")
    args = ap.parse_args()
    if args.make is not None:
        return make(args.make, args.data)
    if len(args.folders) != 2:
        sys.exit("give two folders made by --make (before and after a change), or --make DIR")
    sys.exit(0 if compare(*args.folders) else 1)


if __name__ == "__main__":
    main()
