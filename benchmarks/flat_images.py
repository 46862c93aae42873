"""The fast CNN on images unlike CIFAR-10's photographs, in bf16 and fp32.

    python benchmarks/flat_images.py --out DIR [--quick]

Writes two image folders of grey images on flat black backgrounds into DIR:

* ``digits``: scikit-learn's 1,797 handwritten digits (8 x 8, 16 grey levels), upscaled to
  32 x 32 RGB PNGs (bicubic), one folder per class; 1,437 for training and 360 for testing
  (stratified, seed 0);
* ``bars``: a white 2 x 16 bar on black whose row block is the class (10 classes, jittered by
  a pixel or two), 24 training and 8 test images a class: sparser than any digit.

Then runs ``nnlab run cifar-speedrun --data FOLDER --final --widths 32,64,64 --batch-size
128 --epochs 10`` (bars: batch 48, 12 epochs) in bf16 and in fp32, with BatchNorm's eps at
nnlab's default and at airbench's 1e-12 (nnlab's before it), each into ``DIR/runs/<name>``,
and prints their table (``nnlab.study.tables.precision``; the docs build it again from a copy of
``DIR/runs`` under ``docs/results``). bf16 is asked for explicitly: on a CPU without native
bf16 it is emulated, slower, but these sets are small.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nnlab.device import cpu_has_native_bf16, cpu_name
from nnlab.study.tables import flag_pairs, markdown, precision

DIGITS = ["--final", "--widths", "32,64,64", "--batch-size", "128", "--epochs", "10"]
BARS = ["--final", "--widths", "32,64,64", "--batch-size", "48", "--epochs", "12"]
RUNS = [  # (name, data, flags)
    ("digits-bf16", "digits", [*DIGITS, "--precision", "bf16"]),
    ("digits-fp32", "digits", [*DIGITS, "--precision", "fp32"]),
    ("digits-bf16-sgd", "digits", [*DIGITS, "--precision", "bf16", "--optimizer", "sgd"]),
    ("digits-bf16-no-flip", "digits", [*DIGITS, "--precision", "bf16", "--no-flip"]),
    ("digits-bf16-bn-eps-1e-12", "digits", [*DIGITS, "--precision", "bf16", "--bn-eps", "1e-12"]),
    ("digits-fp32-bn-eps-1e-12", "digits", [*DIGITS, "--precision", "fp32", "--bn-eps", "1e-12"]),
    ("bars-bf16", "bars", [*BARS, "--precision", "bf16"]),
    ("bars-fp32", "bars", [*BARS, "--precision", "fp32"]),
    ("bars-bf16-bn-eps-1e-12", "bars", [*BARS, "--precision", "bf16", "--bn-eps", "1e-12"]),
    ("bars-fp32-bn-eps-1e-12", "bars", [*BARS, "--precision", "fp32", "--bn-eps", "1e-12"]),
]


def write_digits(root: Path) -> Path:
    """scikit-learn's digits as ROOT/{train,test}/<digit>/NNNN.png, 32 x 32 RGB."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = (digits.images / 16 * 255).round().astype(np.uint8)  # (1797, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, digits.target, test_size=360, random_state=0, stratify=digits.target)
    for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        for i, (image, label) in enumerate(zip(xs, ys, strict=True)):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).resize((32, 32), Image.Resampling.BICUBIC).convert(
                "RGB").save(folder / f"{i:04d}.png")
    return root


def write_bars(root: Path, train: int = 24, test: int = 8) -> Path:
    """ROOT/{train,test}/<k>/NNNN.png: a white bar in row block k on black, 32 x 32 RGB."""
    for split, per_class, seed in (("train", train, 0), ("test", test, 1)):
        rng = np.random.default_rng(seed)
        for k in range(10):
            folder = root / split / str(k)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = np.zeros((32, 32), np.uint8)
                top, left = 1 + 3 * k + int(rng.integers(0, 2)), int(rng.integers(2, 10))
                pixels[top:top + 2, left:left + 16] = 255
                Image.fromarray(pixels).convert("RGB").save(folder / f"{i:04d}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where data and runs go")
    parser.add_argument("--quick", action="store_true",
                        help="two epochs each (a smoke run of this script)")
    args = parser.parse_args()
    data = {"digits": args.out / "digits", "bars": args.out / "bars"}
    if not data["digits"].exists():
        write_digits(data["digits"])
    if not data["bars"].exists():
        write_bars(data["bars"])
    folders, stopped = [], []
    for name, which, flags in RUNS:
        out = args.out / "runs" / name
        if args.quick:
            flags = [*flags, "--epochs", "2"]
        if (out / "metrics.json").exists():
            folders.append(out)
            continue
        done = subprocess.run([sys.executable, "-m", "nnlab", "run", "cifar-speedrun",
                               "--data", str(data[which]), *flags, "--out", str(out),
                               "--overwrite"], check=False, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if (out / "config.json").exists():
            folders.append(out)  # finished, or stopped after some epochs: in the table
        else:  # stopped before its first epoch ended: nnlab left no folder, so its line
            why = done.stderr.strip().splitlines()[-1].split(": ", 3)[-1]
            stopped.append((name, which, flags, why))
    table = precision(*folders, base="digits-bf16")
    for name, which, flags, why in stopped:
        given = dict(flag_pairs(["run", *flags]))
        change = " ".join(f"{k} {v}" for k, v in given.items()
                          if k != "--precision" and (k, v) not in flag_pairs(["run", *DIGITS]))
        table.rows.append([name, which, given["--precision"], f"`{change}`",
                           f"stopped: {why}", "—", "—", "—", "—"])
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16: bf16 emulated"
    print(f"{cpu_name()}, {bf16}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; cifar-speedrun on grey images, flat black backgrounds\n")
    print(markdown(table))


if __name__ == "__main__":
    main()
