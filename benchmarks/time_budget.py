"""What ``--time-budget`` costs and whether its runs end inside their budgets.

    python benchmarks/time_budget.py                       # the probe: cost of each size
    python benchmarks/time_budget.py --run 5m,10m,20m --data PATH --out DIR
    python benchmarks/time_budget.py --run 5m,10m --busy --data PATH --out DIR

Without ``--run``: the probe of every size of ``nnlab run cifar-speedrun`` on this machine,
as ``--time-budget`` runs it (seconds it took, predicted seconds per epoch and once-only), and
what each budget of 5, 10, 20 and 40 minutes would plan. With ``--run``: one
``nnlab run cifar-speedrun --time-budget B --out DIR/B`` after another, each timed as a whole
process from outside (interpreter start-up, imports, data loading, the probe, training, the
final evaluation and the figures), beside its plan and the accuracy it reached. Run nothing
else meanwhile, unless on purpose: ``--busy`` keeps one core busy with a spinning process for
each whole run (probe included), a user's busy laptop, and names its folders ``B-busy``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from nnlab.device import cpu_has_native_bf16, cpu_name
from nnlab.engine.budget import choose, parse_budget
from nnlab.experiments import cifar_speedrun
from nnlab.study.tables import Table, markdown

PLANNED = ("5m", "10m", "20m", "40m")


def probe_table() -> tuple[Table, dict]:
    cfg = cifar_speedrun.Config()
    costs, rows = {}, []
    for size in cifar_speedrun.BUDGET_SIZES:
        cost = costs[size.name] = cifar_speedrun.probe(cfg, size)
        rows.append([size.name, ",".join(map(str, size.fields["widths"])),
                     str(size.fields["batch_size"]), f"{cost.probe_s:.2f}",
                     f"{cost.epoch_s:.1f}", f"{cost.fixed_s:.1f}"])
    total = sum(c.probe_s for c in costs.values())
    rows.append(["all", "", "", f"{total:.2f}", "", ""])
    return Table(["size", "widths", "batch", "probe s", "s per epoch", "once-only s"],
                 rows), costs


def plans_table(costs: dict, spent_s: float) -> Table:
    rows = []
    for text in PLANNED:
        size, epochs, seconds, acc, _ = choose(parse_budget(text), spent_s,
                                               cifar_speedrun.BUDGET_SIZES, costs)
        rows.append([text, size.name, str(epochs), f"{seconds:.0f}",
                     f"{100 * acc:.1f}%" if acc is not None else "—"])
    return Table(["budget", "size", "epochs", "predicted s", "expected val acc (TTA)"], rows)


def run_budgets(budgets: list[str], data: str, out: Path, busy: bool = False) -> Table:
    rows = []
    for text in budgets:
        folder = out / (f"{text}-busy" if busy else text)
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            t = time.perf_counter()
            # the run's own lines to stderr: stdout holds the caption and the table alone
            subprocess.run([sys.executable, "-m", "nnlab", "run", "cifar-speedrun",
                            "--time-budget", text, "--data", data, "--out", str(folder),
                            "--overwrite"], check=True, stdout=sys.stderr)
            whole = time.perf_counter() - t
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        metrics = json.loads((folder / "metrics.json").read_text())
        plan = json.loads((folder / "config.json").read_text())["time_budget"]
        budget = plan["budget_s"]
        expected = plan["predicted_acc"]
        rows.append([folder.name, f"{plan['size']}, {plan['epochs']} epochs",
                     f"{plan['predicted_s']:.0f}", f"{whole:.0f}", f"{whole / budget:.3f}",
                     f"{100 * expected:.1f}%" if expected is not None else "—",
                     f"{100 * metrics['val_acc']:.1f}%",
                     "yes" if metrics["time_budget"]["stopped_early"] else "no"])
        print(f"{text}: {whole:.0f} s, {100 * metrics['val_acc']:.1f}%", file=sys.stderr)
    return Table(["budget", "plan", "predicted s", "whole process s", "/ budget",
                  "expected", "val acc (TTA)", "stopped early"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="", metavar="B[,B...]", help="budgets to run, e.g. 5m,10m")
    ap.add_argument("--data", default="", metavar="PATH", help="CIFAR-10, for --run")
    ap.add_argument("--out", type=Path, default=Path("runs/time-budget"), metavar="DIR")
    ap.add_argument("--busy", action="store_true",
                    help="with --run: one core kept busy by a spinning process the whole time")
    args = ap.parse_args()
    print(f"{cpu_name()}, native bf16: {cpu_has_native_bf16()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}\n")
    if args.run:
        print(markdown(run_budgets(args.run.split(","), args.data, args.out, args.busy)))
        return
    t = time.perf_counter()
    probes, costs = probe_table()
    print(f"The probe ({time.perf_counter() - t:.1f} s for all sizes):\n")
    print(markdown(probes))
    print("\nWhat each budget plans here (10 s spent before the probe ends):\n")
    print(markdown(plans_table(costs, spent_s=10.0)))


if __name__ == "__main__":
    main()
