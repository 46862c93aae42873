"""How often a reader following one image run through nnlab's image-classifier loop enters
each of its files: from the recipe's ``train`` to its return, the loop's own functions in
the order they first run, with every call into a file and every return to one counted as
entering it (a function already read is not read again; the engine, the data and an
experiment's hooks are passed through).

    python benchmarks/loop_walk.py --data PATH [--experiment NAME] [--files src/nnlab/vision]

Prints one line per file: how many times it was entered. ``--files``: the folder or files
that make up the loop (before nnlab.vision it was experiments/classifier.py and
experiments/cifar_common.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def walk(files: list[Path], data: str, experiment: str = "cifar-mlp") -> list[str]:
    """The files entered, in order, while ``experiment --quick`` trains."""
    import nnlab

    loop = {str(f.resolve()) for f in files}
    seen: set = set()
    stack: list[str] = []  # the loop's frames being read (files)
    skipped = [0]  # depth inside a function already read
    active: list = []  # the recipe's train frame, while it runs
    entered: list[str] = []

    def note() -> None:
        here = stack[-1] if stack else None
        if here is not None and (not entered or entered[-1] != here):
            entered.append(here)

    def profile(frame, event, arg):  # noqa: ANN001, ANN202 - sys.setprofile's hook
        if event not in ("call", "return"):
            return
        code = frame.f_code
        if code.co_filename not in loop:
            return
        if not active:
            if event == "call" and code.co_name == "train":
                active.append(frame)
            else:
                return
        elif event == "return" and frame is active[0]:
            active.clear()
        if event == "call":
            if skipped[0] or code in seen:
                skipped[0] += 1
                return
            seen.add(code)
            stack.append(code.co_filename)
        else:
            if skipped[0]:
                skipped[0] -= 1
                return
            stack.pop()
        note()

    with tempfile.TemporaryDirectory() as tmp:
        sys.setprofile(profile)
        try:
            nnlab.run(experiment, quick=True, data=data, out=Path(tmp) / "run",
                      progress=False)
        finally:
            sys.setprofile(None)
    return entered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 (or an image folder)")
    parser.add_argument("--experiment", default="cifar-mlp",
                        help="the image experiment to follow (default: cifar-mlp)")
    parser.add_argument("--files", nargs="+", type=Path,
                        default=[Path(__file__).resolve().parents[1] / "src/nnlab/vision"])
    args = parser.parse_args()
    files = [p for f in args.files for p in (sorted(f.glob("*.py")) if f.is_dir() else [f])]
    entered = walk(files, args.data, args.experiment)
    print(f"{args.experiment} --quick, from the recipe's train to its return:")
    root = Path(__file__).resolve().parents[1]
    for f in files:
        name = str(f.resolve())
        shown = f.resolve().relative_to(root) if f.resolve().is_relative_to(root) else f
        print(f"{shown}: entered {entered.count(name)} times")
    print(f"in all: {len(entered)} entries into {len(set(entered))} files")


if __name__ == "__main__":
    main()
