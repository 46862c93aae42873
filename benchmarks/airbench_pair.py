"""nnlab's fast CNN beside the public airbench records, side by side on the same split.

    python benchmarks/airbench_pair.py --data PATH --anchors DIR --out DIR \\
        [--anchor airbench94_muon_cpu.py] [--seeds 1] [--precision auto] [-- NNLAB FLAGS...]

DIR (``--anchors``) holds CPU ports of the airbench scripts (``airbench94_muon_cpu.py``,
``airbench94_cpu.py``: measuring instruments, run from where they are, never copied into
nnlab). nnlab's own 45,000/5,000 split is written to ``OUT/split.npz`` (the validation images
as the ports' test split), so nnlab's ``val_acc`` and a port's ``tta_test_acc`` score the
same 5,000 images. For each seed, ``nnlab run cifar-speedrun`` (``OMP_NUM_THREADS=1``) and
each port (``--threads 1``) run at the same time, one core each, so both see the same
machine; each is timed as a whole process from outside. Flags after ``--`` go to
``nnlab run`` (``-- --widths 32,64,64 --batch-size 256``). Prints a Markdown table: accuracy
with and without TTA, the whole process's seconds and their ratio to the port's, and the
seconds each took to reach 89% and 90% without TTA (from nnlab's history.csv and the port's
per-epoch lines; both count from before the whitening fit, data loading excluded). Its run
folders, the ports' logs and ``pair.json`` (the outside timings) stay in OUT; the table is
``nnlab.study.tables.airbench_pair``, which ``python -m nnlab.docs`` builds again from a copy of OUT
under ``docs/results``.

Full-width runs take hours per core on a CPU without native bf16; ``--train-limit N
--epochs E --val-size V`` (passed to both sides) make a smoke run. ``--per-epoch`` prints
instead each side's training seconds per epoch and their ratio (``make bench`` runs it on
10,000 images, 3 epochs, when ``NNLAB_DATA`` and ``ANCHORS`` name the data and the ports).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nnlab.device import cpu_has_native_bf16, cpu_name, resolve_precision
from nnlab.engine.checkpoint import read_json
from nnlab.engine.history import History
from nnlab.study.tables import Table, airbench_pair, anchor_epochs, markdown


def write_split(data: str, out: Path, val_size: int = 5000) -> Path:
    """nnlab's split as the ports read it: x_train, y_train, x_test (= validation), y_test."""
    from nnlab.vision import make_splits

    splits = make_splits(data, val_size, final=False)
    path = out / "split.npz"
    np.savez(path, x_train=splits.x_train.numpy(), y_train=splits.y_train.numpy(),
             x_test=splits.x_eval.numpy(), y_test=splits.y_eval.numpy())
    return path


def run_pair(args: argparse.Namespace, split: Path, anchor: str, seed: int,
             nnlab_flags: list[str]) -> dict:
    """nnlab and one port, started together, one thread each; both timed from outside.
    With ``--port-only`` the port runs without nnlab beside it (nnlab's side measured in
    another pair)."""
    folder = args.out / f"nnlab-beside-{Path(anchor).stem}-seed{seed}"
    smoke = (["--train-limit", str(args.train_limit)] if args.train_limit else [])
    nn_cmd = [sys.executable, "-m", "nnlab", "run", "cifar-speedrun", "--data", args.data,
              "--seed", str(seed), "--precision", args.precision, "--out", str(folder),
              "--overwrite", "--val-size", str(args.val_size), *smoke,
              *(["--epochs", str(args.epochs)] if args.epochs else []), *nnlab_flags]
    precision = resolve_precision(args.precision, __import__("torch").device("cpu"))
    an_cmd = [sys.executable, str(args.anchors / anchor), "--npz", str(split), "--precision",
              precision, "--threads", "1", "--seed", str(seed), *smoke,
              *(["--epochs", str(args.epochs)] if args.epochs else [])]
    log = args.out / f"{Path(anchor).stem}-seed{seed}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    with open(log, "w") as out:
        procs = {"anchor": subprocess.Popen(an_cmd, stdout=out, cwd=args.anchors)}
        if not args.port_only:
            procs["nnlab"] = subprocess.Popen(nn_cmd, env=env, stdout=subprocess.DEVNULL)
        ends = {}
        while len(ends) < len(procs):
            for name, p in procs.items():
                if name not in ends and p.poll() is not None:
                    if p.returncode != 0:
                        for other in procs.values():
                            other.kill()
                        sys.exit(f"{name} failed (exit {p.returncode}): "
                                 f"{' '.join(nn_cmd if name == 'nnlab' else an_cmd)}")
                    ends[name] = time.perf_counter() - t
            time.sleep(0.5)
    return {"seed": seed, "anchor": anchor, "anchor_log": log.name,
            "anchor_result": {"process_s": ends["anchor"]},
            **({} if args.port_only else {"nnlab_folder": folder.name,
                                          "nnlab": {"process_s": ends["nnlab"]}})}


def main() -> None:
    argv = sys.argv[1:]
    nnlab_flags = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="CIFAR-10 (as nnlab run --data takes it)")
    ap.add_argument("--anchors", type=Path, required=True, help="folder of the airbench ports")
    ap.add_argument("--anchor", default="airbench94_muon_cpu.py",
                    help="port(s) to run beside nnlab, comma-separated")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--port-only", action="store_true",
                    help="run the port(s) alone, one thread, without nnlab beside them")
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--train-limit", type=int, default=0, help="smoke runs: N training images")
    ap.add_argument("--epochs", type=int, default=0, help="smoke runs: epochs for both")
    ap.add_argument("--val-size", type=int, default=5000,
                    help="validation images (smoke runs: fewer make the evaluations quicker)")
    ap.add_argument("--per-epoch", action="store_true",
                    help="print each side's training seconds per epoch and their ratio "
                         "instead of the accuracy table (make bench: a speed regression shows)")
    args = ap.parse_args(argv)
    args.out = args.out.resolve()  # the ports run from their own folder
    args.anchors = args.anchors.resolve()
    anchors = args.anchor.split(",")
    for a in anchors:
        if not (args.anchors / a).is_file():
            sys.exit(f"--anchors {args.anchors}: no {a} there")
    args.out.mkdir(parents=True, exist_ok=True)
    split = write_split(args.data, args.out, args.val_size)
    pairs = [run_pair(args, split, a, seed, nnlab_flags)
             for seed in range(args.seeds) for a in anchors]
    (args.out / "pair.json").write_text(json.dumps(pairs, indent=1))
    (args.out / "machine.json").write_text(json.dumps({
        "cpu": cpu_name(), "native_bf16": cpu_has_native_bf16(),
        "torch": __import__("torch").__version__}))
    how = "the port alone, one thread" if args.port_only else "one thread each, side by side"
    print(f"{cpu_name()}, native bf16: {cpu_has_native_bf16()}, {how}; nnlab flags: "
          f"{' '.join(nnlab_flags) or '(defaults)'}\n")
    if args.per_epoch:
        print(markdown(epoch_times(args.out, pairs)))
        return
    print(markdown(airbench_pair(args.out)))


def epoch_times(out: Path, pairs: list[dict]) -> Table:
    """Seconds of training per epoch (evaluations excluded), nnlab's from its history's
    throughput, the port's from its per-epoch lines; the median over epochs after the first
    (which pays for warm-up), and their ratio."""
    import statistics

    rows = []
    for pair in pairs:
        history = History.load_csv(out / pair["nnlab_folder"] / "history.csv")
        n_train = read_json(out / pair["nnlab_folder"] / "metrics.json")["n_train"]
        ours = [n_train / r["images_per_s"] for r in history][1:] or [0.0]
        walls = [r["wall_s"] for r in anchor_epochs((out / pair["anchor_log"]).read_text())]
        theirs = [b - a for a, b in zip(walls, walls[1:], strict=False)] or walls
        a, b = statistics.median(ours), statistics.median(theirs)
        rows.append([str(pair["seed"]), f"{a:.1f}", f"{b:.1f}", f"{a / b:.2f}"])
    return Table(["seed", "nnlab s/epoch", "port s/epoch", "nnlab / port"], rows)


if __name__ == "__main__":
    main()
