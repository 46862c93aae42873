"""`make bench` runs the benchmark scripts; the quick ones run here, so a change that breaks
one fails a test rather than the next person's `make bench`."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_the_time_budget_benchmark_prints_the_probe_and_the_plans():
    out = _bench("benchmarks/time_budget.py")
    assert out.splitlines()[0].endswith(f"threads, torch {__import__('torch').__version__}")
    probe = [line for line in out.splitlines() if line.startswith("| ")]
    sizes = {line.split("|")[1].strip() for line in probe}
    assert {"tiny", "cpu", "full", "all", "5m", "10m", "20m", "40m"} <= sizes
    assert "The probe (" in out and "What each budget plans here" in out


def test_the_muon_rule_benchmark_reads_its_sweep():
    out = _bench("benchmarks/muon_lr_rule.py")
    assert "the best lr swept is" in out and "x the rule's" in out


def test_the_airbench_pair_reads_a_ports_epochs_and_tabulates_a_pair():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import airbench_pair
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    log = "\n".join([  # as airbench94_muon_cpu.py prints them
        "data: 45000 train, 5000 test images (1.2s to load); precision bf16, threads 1",
        "|  run     |  epoch  |  train_loss  |  train_acc  |  val_acc  |  tta_val_acc  |"
        "  total_time_seconds  |  wall_seconds  |",
        "|       0  |      0  |      1.2  |     0.6  |   0.8800  |               |"
        "             210.5  |       212.0  |",
        "|       0  |      1  |      1.0  |     0.7  |   0.9010  |               |"
        "             420.0  |       421.5  |",
        "|          |   eval  |      1.0  |     0.7  |   0.9010  |       0.9100  |"
        "             450.0  |       451.5  |"])
    rows = airbench_pair.anchor_epochs(log)
    assert rows == [(0.88, 210.5), (0.901, 420.0)]
    assert airbench_pair.time_to(rows, 0.89) == 420.0 and airbench_pair.time_to(rows, 0.95) is None
    pair = {"seed": 0, "anchor": "airbench94_muon_cpu.py",
            "nnlab": {"tta": 0.915, "no_tta": 0.905, "process_s": 900.0, "s_to_89": 500.0,
                      "s_to_90": 700.0},
            "anchor_result": {"tta": 0.91, "no_tta": 0.901, "process_s": 1000.0,
                              "s_to_89": 420.0, "s_to_90": 420.0}}
    table = airbench_pair.table([pair])
    assert table.rows[0][4:] == ["900", "0.90", "500", "700"]
    assert table.rows[1][0] == "airbench94_muon_cpu" and table.rows[1][5] == "1.00"
