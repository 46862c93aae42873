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
