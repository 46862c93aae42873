"""`make bench` runs the benchmark scripts; the quick ones run here, so a change that breaks
one fails a test rather than the next person's `make bench`."""

import json
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


def test_the_mlp_benchmark_times_dropout_off_beside_each_precision_asked():
    out = _bench("benchmarks/cifar_mlp.py", "--recipe", "study", "--precisions", "fp32",
                 "--without-dropout", "--batch-size", "8", "--budget-s", "0.05", "--rounds", "1")
    modes = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert modes == ["mode", "---", "fp32", "fp32 dropout 0"]
    assert "| vs fp32 |" in out


def test_the_muon_rule_benchmark_reads_its_sweep():
    out = _bench("benchmarks/muon_lr_rule.py")
    assert "the best lr swept is" in out and "x the rule's" in out


@pytest.mark.slow
def test_the_muon_rule_is_rebuilt_by_two_sweeps(learnable_cifar, nnlab_cache, tmp_path):
    """--refit: a grid sweep of --muon-lr at a short and a long run, then the power law
    through their best lrs (tiny runs on fake images: the mechanism, not the rule)."""
    tiny = "--widths 8,8,8 --val-size 100 --batch-size 50 --train-limit 200"
    out = _bench("benchmarks/muon_lr_rule.py", "--refit", str(tmp_path / "refit"), "--data",
                 str(learnable_cifar), "--lrs", "0.05,0.3", "--short", f"{tiny} --epochs 1",
                 "--long", f"{tiny} --epochs 3")
    assert "short: 4 steps, best --muon-lr" in out and "long: 12 steps" in out
    assert "the refit rule: lr = " in out and (tmp_path / "refit" / "rule.png").is_file()
    for length in ("short", "long"):
        best = json.loads((tmp_path / "refit" / length / "best.json").read_text())
        assert best["complete"] == 2 and best["pruned"] == 0  # no pruning: every lr ran out


def test_the_airbench_pair_table_reads_the_run_folder_the_ports_log_and_the_outside_times(
        tmp_path):
    from nnlab.study.tables import airbench_pair, anchor_epochs

    log = "\n".join([  # as airbench94_muon_cpu.py prints them
        "data: 45000 train, 5000 test images (1.2s to load); precision bf16, threads 1",
        "|  run     |  epoch  |  train_loss  |  train_acc  |  val_acc  |  tta_val_acc  |"
        "  total_time_seconds  |  wall_seconds  |",
        "|       0  |      0  |      1.2  |     0.6  |   0.8800  |               |"
        "             210.5  |       212.0  |",
        "|       0  |      1  |      1.0  |     0.7  |   0.9010  |               |"
        "             420.0  |       421.5  |",
        "|          |   eval  |      1.0  |     0.7  |   0.9010  |       0.9100  |"
        "             450.0  |       451.5  |",
        json.dumps({"tta_test_acc": 0.91, "test_acc_no_tta": 0.901, "total_seconds": 452.0,
                    "precision": "fp32", "threads": 1})])
    assert anchor_epochs(log) == [{"val_acc": 0.88, "wall_s": 210.5},
                                  {"val_acc": 0.901, "wall_s": 420.0}]
    (tmp_path / "airbench94_muon_cpu-seed0.log").write_text(log)
    run = tmp_path / "nnlab-beside-airbench94_muon_cpu-seed0"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"widths": [64, 256, 256], "epochs": 10,
                                                 "provenance": {"cpu": "Some CPU", "threads": 1}}))
    (run / "metrics.json").write_text(json.dumps({"val_acc": 0.9123, "val_acc_no_tta": 0.9001}))
    (run / "history.csv").write_text("epoch,val_acc,wall_s\n1,0.85,100.0\n2,0.895,200.0\n"
                                     "3,0.9001,300.0\n")
    (tmp_path / "pair.json").write_text(json.dumps([{  # absolute paths as an older version wrote
        "seed": 0, "anchor": "airbench94_muon_cpu.py", "nnlab_folder": str(run),
        "anchor_log": "/elsewhere/airbench94_muon_cpu-seed0.log",
        "nnlab": {"process_s": 900.0}, "anchor_result": {"process_s": 1000.0}}]))
    table = airbench_pair(tmp_path)
    assert table.rows[0][:8] == ["nnlab cifar-speedrun, [64, 256, 256], 10 ep.", "0", "91.23%",
                                 "90.01%", "900", "0.90", "200", "300"]
    assert table.rows[0][8:] == ["fp32, one thread each", "Some CPU"]
    assert table.rows[1][:8] == ["airbench94_muon_cpu", "0", "91.00%", "90.10%", "1,000",
                                 "1.00", "420", "420"]
    alone = tmp_path / "alone"  # --port-only: the port's row, no ratio, the benchmark's CPU
    alone.mkdir()
    (alone / "airbench94_cpu-seed0.log").write_text(log)
    (alone / "pair.json").write_text(json.dumps([{
        "seed": 0, "anchor": "airbench94_cpu.py", "anchor_log": "airbench94_cpu-seed0.log",
        "anchor_result": {"process_s": 1100.0}}]))
    (alone / "machine.json").write_text(json.dumps({"cpu": "Other CPU", "native_bf16": True}))
    rows = airbench_pair(tmp_path, alone).rows
    assert len(rows) == 3 and rows[2][:6] == ["airbench94_cpu (--port-only)", "0", "91.00%",
                                              "90.10%", "1,100", "—"]
    assert rows[2][8:] == ["fp32, 1 thread, no nnlab beside it",
                           "Other CPU, native bf16"]
    # a second seed: each side gets a mean row, its time ratio the ratio of the means
    (tmp_path / "airbench94_muon_cpu-seed1.log").write_text(log.replace("0.91,", "0.93,"))
    seed1 = tmp_path / "nnlab-beside-airbench94_muon_cpu-seed1"
    seed1.mkdir()
    for f in ("config.json", "history.csv"):
        (seed1 / f).write_text((run / f).read_text())
    (seed1 / "metrics.json").write_text(json.dumps({"val_acc": 0.9223, "val_acc_no_tta": 0.8999}))
    pairs = json.loads((tmp_path / "pair.json").read_text())
    pairs.append({"seed": 1, "anchor": "airbench94_muon_cpu.py", "nnlab_folder": seed1.name,
                  "anchor_log": "airbench94_muon_cpu-seed1.log", "nnlab": {"process_s": 700.0},
                  "anchor_result": {"process_s": 1000.0}})
    (tmp_path / "pair.json").write_text(json.dumps(pairs))
    rows = airbench_pair(tmp_path).rows
    assert len(rows) == 6 and [r[1] for r in rows[:4]] == ["0", "0", "1", "1"]
    assert rows[4][:6] == ["**nnlab cifar-speedrun, [64, 256, 256], 10 ep., mean**", "0, 1",
                           "91.73% ± 0.71%", "90.00% ± 0.01%", "800 ± 141", "**0.80**"]
    assert rows[5][:6] == ["**airbench94_muon_cpu, mean**", "0, 1", "92.00% ± 1.41%",
                           "90.10% ± 0.00%", "1,000 ± 0", "**1.00**"]


def test_the_per_epoch_speed_of_nnlab_and_the_port_skips_the_first_epoch(tmp_path):
    """airbench_pair.py --per-epoch: nnlab's training seconds per epoch (from its
    throughput) beside the port's (from its epoch lines), medians past the first epoch."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pair", ROOT / "benchmarks/airbench_pair.py")
    pair = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pair)
    run = tmp_path / "nnlab"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"n_train": 1000}))
    (run / "history.csv").write_text("epoch,images_per_s,wall_s\n1,50,30\n2,100,45\n"
                                     "3,125,60\n4,100,75\n")
    (tmp_path / "port.log").write_text("\n".join(
        f"|  0  |  {e}  |  1.0  |  0.5  |  0.8  |    |  {w}  |  {w + 1}  |"
        for e, w in ((0, 30.0), (1, 42.0), (2, 54.0), (3, 68.0))))
    table = pair.epoch_times(tmp_path, [{"seed": 0, "nnlab_folder": "nnlab",
                                         "anchor_log": "port.log"}])
    assert table.rows == [["0", "10.0", "12.0", "0.83"]]  # medians of 10, 8, 10 and 12, 12, 14



def test_the_mlp_shapes_benchmark_costs_each_shape_beside_the_first():
    out = _bench("benchmarks/mlp_shapes.py", "--shapes", "16,16@8", "32@16", "--epochs", "4",
                 "2", "--budget-s", "0.05", "--rounds", "1")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")]
    assert [r[0].strip() for r in rows[2:]] == ["16,16", "32"]
    assert rows[2][-1].strip() == "1.00"  # the first shape against itself
    assert float(rows[3][-1]) > 0


ANCHORS = ROOT.parent / "shared" / "anchors"


@pytest.mark.skipif(not (ANCHORS / "airbench94_muon_cpu.py").is_file(),
                    reason="the airbench ports are not beside this checkout")
def test_the_compile_benchmark_times_and_profiles_nnlab_and_the_port_side_by_side():
    out = _bench("benchmarks/speedrun_compile.py", "--anchors", str(ANCHORS), "--widths",
                 "8,8,8", "--batches", "8,8", "--no-compile", "--profile", "--profile-steps",
                 "1", "--budget-s", "0.05", "--rounds", "1")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")]
    assert [(r[0].strip(), r[1].strip()) for r in rows[2:4]] == [("nnlab", "eager"),
                                                                 ("port", "eager")]
    assert "Where an eager step's time goes" in out
    profiled = rows[rows.index(next(r for r in rows if "nnlab operator" in r[0])) + 2:]
    assert len(profiled) >= 5 and all(float(r[1]) > 0 and float(r[3]) > 0 for r in profiled)


def test_the_compile_benchmark_says_when_the_port_is_missing(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/speedrun_compile.py", "--anchors",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "no airbench94_muon_cpu.py in" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_gpu_check_runs_its_cpu_dry_run_and_prints_its_table(tmp_path):
    """No CUDA here: one line says so, then every row runs on the CPU at tiny sizes."""
    out = _bench("benchmarks/gpu_check.py", "--dry-run", "--out", str(tmp_path / "check"))
    assert out.splitlines()[0].startswith(("no CUDA device here", "--dry-run"))
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()
            if line.startswith("| ") and not line.startswith(("| check", "| ---"))}
    assert list(rows) == ["device", "bf16 autocast", "CUDA tests", "speedrun eager",
                          "speedrun compiled", "MLP", "DDP, 1 process (Gloo)"]
    assert "failed" not in out
    assert "val_acc" in rows["speedrun eager"] and "val_acc" in rows["MLP"]
    assert "world size 1" in rows["DDP, 1 process (Gloo)"]
