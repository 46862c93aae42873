"""The study's report: claim checks on crafted runs (agreeing and disagreeing), a tiny
`reproduce --profile` end to end with its resume, and the page in a real headless browser."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from nnlab.cli import main
from nnlab.engine.history import History
from nnlab.study import claims, layout, render, report, sections


def _history(column: str, values: list[float], **extra) -> History:
    return History([{"epoch": i + 1, column: v, **{k: vs[i] for k, vs in extra.items()}}
                    for i, v in enumerate(values)])


# --------------------------------------------------------------------------- claims


def test_adam_faster_agrees_and_disagrees():
    fast, slow = [0.6, 0.78, 0.80], [0.3, 0.5, 0.80]
    agrees = claims.claim_adam_faster(_history("val_acc", fast), _history("val_acc", slow), "val")
    assert agrees.verdict == "agrees" and "Adam 2, SGD 3" in agrees.evidence
    disagrees = claims.claim_adam_faster(_history("val_acc", slow), _history("val_acc", fast),
                                         "val")
    assert disagrees.verdict == "disagrees" and "Adam 3, SGD 2" in disagrees.evidence


def test_rnn_fails_beyond_10_every_verdict():
    fails = {"rnn": {5: [1.0, 1.0], 10: [1.0, 0.995], 20: [0.12, 0.15], 40: [0.1, 0.11]}}
    claim = claims.claim_rnn_fails_beyond_10(fails)
    assert claim.verdict == "agrees" and "up to T = 10" in claim.evidence
    # The quick profile's case: below 99% from T = 15 on, but far above chance there.
    degrades = {"rnn": {4: [1.0], 10: [1.0], 15: [0.904], 20: [0.953]}}
    claim = claims.claim_rnn_fails_beyond_10(degrades)
    assert claim.verdict == "partly agrees"
    assert "90.4% at T = 15, 95.3% at T = 20" in claim.evidence and "none of them" in \
        claim.evidence
    # The 10,000-step sweep's case: solved to 15, then between chance and 99%.
    mixed = {"rnn": {15: [1.0] * 3, 20: [1.0, 0.205, 0.2], 40: [0.246, 0.266, 0.625]}}
    assert claims.claim_rnn_fails_beyond_10(mixed).verdict == "partly agrees"
    holds_longer = {"rnn": {5: [1.0], 10: [1.0], 20: [1.0], 40: [0.5]}, "lstm": {40: [1.0]}}
    claim = claims.claim_rnn_fails_beyond_10(holds_longer)
    assert claim.verdict == "disagrees" and "the LSTM solves up to T = 40" in claim.evidence
    assert claims.claim_rnn_fails_beyond_10({"rnn": {4: [0.2]}}).verdict == "cannot tell"
    assert claims.claim_rnn_fails_beyond_10({"rnn": {4: [1.0]}}).verdict == "cannot tell"


def test_mlp_overfits_agrees_and_disagrees():
    over = _history("train_acc", [0.6, 0.8, 0.95], val_acc=[0.5, 0.55, 0.54],
                    val_loss=[1.4, 1.3, 1.5])
    assert claims.claim_mlp_overfits(over, "val").verdict == "agrees"
    under = _history("train_acc", [0.4, 0.5, 0.55], val_acc=[0.4, 0.5, 0.54],
                     val_loss=[1.6, 1.4, 1.3])
    assert claims.claim_mlp_overfits(under, "val").verdict == "disagrees"


def test_pytorch_faster_and_stabler_verdicts():
    same = {"moons": History([{"impl": i, "epoch": 1, "train_loss": 0.5}
                              for i in ("numpy", "torch")])}
    assert claims.claim_pytorch_faster_and_stabler(
        {"moons": {"time_ratio_numpy_over_torch": 0.4}}, same).verdict == "disagrees"
    assert claims.claim_pytorch_faster_and_stabler(
        {"moons": {"time_ratio_numpy_over_torch": 2.0}}, same).verdict == "partly agrees"


def _crafted_cnn(folder, adam: list[float], sgd: list[float]) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"experiment": "cifar-cnn", "provenance": {
        "command": "nnlab run cifar-cnn", "cpu": "crafted CPU", "threads": 2}}))
    metrics = {}
    for name, accs in (("adam", adam), ("sgd", sgd)):
        History([{"optimizer": name, "epoch": i + 1, "train_acc": a, "val_acc": a,
                  "val_loss": 1 - a, "wall_s": 60.0 * (i + 1)} for i, a in enumerate(accs)]
                ).to_csv(folder / f"history-{name}.csv")
        metrics[name] = {"best_val_acc": max(accs), "best_epoch": accs.index(max(accs)) + 1,
                         "val_acc": accs[-1], "lr": {"adam": 1e-3, "sgd": 1e-2}[name]}
    (folder / "metrics.json").write_text(json.dumps({**metrics, "n_val": 10}))


@pytest.mark.parametrize("adam, sgd, verdict", [
    ([0.6, 0.78, 0.80], [0.3, 0.5, 0.80], "agrees"),
    ([0.3, 0.5, 0.80], [0.6, 0.78, 0.80], "disagrees"),
])
def test_report_of_crafted_runs_says_whether_they_agree(tmp_path, adam, sgd, verdict):
    _crafted_cnn(tmp_path / "runs" / "cifar-cnn", adam, sgd)
    page = report.build(tmp_path / "runs")
    md = (page.parent / "index.md").read_text()
    assert f'"Adam converges faster than SGD"** — this run **{verdict}**' in md
    assert "| adam | 0.001 | 3 | 80.0% (3) | 80.0% | 80.0% | 3 (0.200) | 1.00 |" in md  # median
    assert "crafted CPU" in md and "Not run yet" in md  # provenance; the missing parts said
    html = page.read_text()
    assert f"this run <strong>{verdict}</strong>" in html


def test_report_without_any_finished_part_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no finished run folder" in err


# --------------------------------------------------------------------------- reproduce


@pytest.fixture
def tiny_profile(monkeypatch, learnable_cifar):
    import nnlab.study.reproduce

    parts = [("toy", ["toy", "--quick", "--dataset", "all"], "toy", 0.1),
             ("cifar-mlp", ["cifar-mlp", "--quick"], "mlp", 0.1),
             ("cifar-cnn", ["cifar-cnn", "--quick"], "cnn", 0.1),
             ("palindrome", ["palindrome", "--quick", "--cell", "rnn,lstm", "--lengths",
                             "4,5"], "palindromes", 0.1)]
    monkeypatch.setitem(nnlab.study.reproduce.PROFILE_RUNS, "quick", parts)
    return learnable_cifar


@pytest.mark.slow
def test_tiny_profile_end_to_end_then_its_report(tiny_profile, nnlab_cache, tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["reproduce", "--profile", "quick", "--data", str(tiny_profile), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 parts into" in printed and "[4/4] palindrome: ran" in printed
    parts = ("toy", "cifar-mlp", "cifar-cnn", "palindrome")
    assert all((out / p / "metrics.json").exists() for p in parts)
    seconds = json.loads((out / "profile.json").read_text())["seconds"]
    assert sorted(seconds) == sorted(parts) and all(s > 0 for s in seconds.values())
    assert f"measured: {sum(seconds.values()) / 60:.1f} min for 4 finished parts" in printed
    assert main(["reproduce", "--profile", "quick", "--out", str(out), "--data",
                 str(tiny_profile)]) == 0
    printed = capsys.readouterr().out
    assert "[1/4] toy: done" in printed  # nothing run twice
    assert "about 0 min of it still to run" in printed  # the plan knows what is done
    assert json.loads((out / "profile.json").read_text())["seconds"] == seconds  # kept
    assert main(["reproduce", "--profile", "quick", "--out", str(out), "--data",
                 str(tiny_profile), "--only", "toy", "--force", "toy"]) == 0
    assert "[1/1] toy: ran" in capsys.readouterr().out
    again = json.loads((out / "profile.json").read_text())["seconds"]
    assert again["toy"] != seconds["toy"] and again["palindrome"] == seconds["palindrome"]
    assert len(json.loads((out / "profile.json").read_text())["parts"]) == 4
    assert main(["report", str(out)]) == 0
    md = (out / "report" / "index.md").read_text()
    assert "The 4 parts took " in md and "palindrome " in md
    for title in ("Part I —", "Part I.3", "Part II", "Part III"):
        assert f"## {title}" in md
    assert md.count("**The study:") == 4 and "Profile **quick**" in md
    assert "`nnlab run palindrome --quick --cell rnn,lstm --lengths 4,5`" in md
    assert md.index("| tanh RNN | 5 |") < md.index("| LSTM | 4 |")  # the study's cell first
    # nnlab's additions: the toy runs' gradient checks, and a line for the full profile's parts
    additions = md.split("## nnlab's additions")[1]
    errors = re.findall(r"\| (moons|circles|blobs) \| (\S+) \| (\S+) \|", additions)
    assert [e[0] for e in errors] == ["moons", "circles", "blobs"]
    assert all(float(d) < 1e-5 and float(a) < 1e-10 for _, d, a in errors)
    assert "figures/toy-moons-boundary.png" in additions
    assert ("Not in this profile: `cifar-speedrun-cpu`, `cifar-speedrun-cpu-muon`, "
            "`palindrome-long-rnn`") in additions


def test_report_shows_the_full_profiles_additions(tmp_path):
    """The speedrun's seeds summary (a milestone two of three seeds reached) and a long-memory
    run, crafted, in the additions' tables."""
    runs = tmp_path / "runs"
    speedrun, lstm = runs / "cifar-speedrun-cpu", runs / "palindrome-long-lstm"
    for folder, metrics in (
            (speedrun, {"n_seeds": 3, "val_acc_n": 3, "val_acc_mean": 0.845,
                        "val_acc_std": 0.003, "wall_s_n": 3, "wall_s_mean": 338.0,
                        "wall_s_std": 46.0, "time_to_80_s_n": 3, "time_to_80_s_mean": 242.0,
                        "time_to_80_s_std": 40.0, "time_to_84_s_n": 2,
                        "time_to_84_s_mean": 300.0, "time_to_84_s_std": 10.0}),
            (lstm, {"cell": "lstm", "T": 1000, "test_acc": 0.995, "steps": 4000,
                    "wall_s_to_99": 512.4, "wall_s": 900.0})):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"provenance": {"cpu": "crafted CPU"}}))
        (folder / "metrics.json").write_text(json.dumps(metrics))
    _crafted_cnn(runs / "cifar-cnn", [0.6, 0.8], [0.5, 0.8])  # a study part: the report's need
    page = report.build(runs)
    additions = (page.parent / "index.md").read_text().split("## nnlab's additions")[1]
    assert ("| cifar-speedrun-cpu | ?, ? ep., SGD | 3 | 84.5% ± 0.3% | — | 338 ± 46 | 242 ± 40 "
            "| 300 ± 10 (2 of 3) | — |") in additions
    assert ("| cifar-speedrun-cpu | nnlab run cifar-speedrun --optimizer sgd --widths 32,64,64"
            in additions)
    assert ("| palindrome-long-lstm | LSTM | ? | 1000 | — | 99.50% | 4,000 | 512 | 900 |"
            in additions)
    assert "| palindrome-long-lstm | nnlab run palindrome --recipe long --cell lstm" in additions
    assert "Gradients proven exact" not in additions  # no toy run here
    assert ("Not in this profile: `cifar-speedrun-cpu-muon`, `palindrome-long-rnn`, "
            "`palindrome-push-rnn`") in additions
    assert "additions" in page.read_text()


def _crafted_rest(runs) -> dict[str, dict]:
    """Some of the full profile's other parts, crafted: one of each kind the report shows."""
    crafted = {
        "toy-sgd": {"n_seeds": 3, "moons.numpy.test_acc_mean": 0.892,
                    "moons.numpy.test_acc_std": 0.006, "moons.torch.test_acc_mean": 0.891,
                    "moons.torch.test_acc_std": 0.005,
                    "moons.time_ratio_numpy_over_torch_mean": 0.44,
                    "moons.time_ratio_numpy_over_torch_std": 0.02},
        "cifar-mlp-best": {"n_seeds": 3, "val_acc_mean": 0.7295, "val_acc_std": 0.0028,
                           "val_acc_no_tta_mean": 0.712, "val_acc_no_tta_std": 0.003,
                           "train_acc_mean": 0.8735, "train_acc_std": 0.0003, "epochs": 38.0,
                           "wall_s_mean": 395.6, "wall_s_std": 46.5},
        "cifar-cnn-study-10ep": {"adam": {"val_acc": 0.741, "best_val_acc": 0.752,
                                          "best_epoch": 8, "wall_s": 1200.0},
                                 "sgd": {"val_acc": 0.655, "best_val_acc": 0.655,
                                         "best_epoch": 10, "wall_s": 1100.0}},
        "speedrun-ablation-full": {"val_acc": 0.791, "val_acc_no_tta": 0.78, "wall_s": 150.0},
        "speedrun-ablation-default-init": {"val_acc": 0.760, "val_acc_no_tta": 0.75,
                                           "wall_s": 151.0},
        "palindrome-ablation-full": {"cell": "rnn", "T": 60, "test_acc": 1.0,
                                     "steps_to_99": 650, "wall_s": 80.0},
        "palindrome-ablation-none": {"cell": "rnn", "T": 60, "test_acc": 0.102,
                                     "steps_to_99": None, "wall_s": 70.0},
        "palindrome-study": {"n_seeds": 3, "rnn-T5.test_acc_mean": 1.0,
                             "rnn-T5.test_acc_std": 0.0, "rnn-T40.test_acc_mean": 0.31,
                             "rnn-T40.test_acc_std": 0.04, "lstm-T5.test_acc_mean": 1.0,
                             "lstm-T5.test_acc_std": 0.0, "lstm-T40.test_acc_mean": 0.1,
                             "lstm-T40.test_acc_std": 0.01},
    }
    for name, metrics in crafted.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "config.json").write_text(
            json.dumps({"provenance": {"cpu": "crafted CPU", "threads": 2}}))
        (runs / name / "metrics.json").write_text(json.dumps(metrics))
    return crafted


def test_report_shows_the_full_profiles_other_results(tmp_path):
    """Every other README result the full profile ran gets a row (seeds summaries, one-run
    nesting, ablations against their whole recipe, a sweep's T table) and its source."""
    runs = tmp_path / "runs"
    crafted = _crafted_rest(runs)
    timed = ["cifar-cnn", *crafted]
    (runs / "profile.json").write_text(json.dumps({
        "profile": "full", "parts": [{"name": n, "argv": [n]} for n in timed],
        "seconds": {n: 60.0 for n in timed}}))
    _crafted_cnn(runs / "cifar-cnn", [0.6, 0.8], [0.5, 0.8])  # a study part: the report's need
    md = (report.build(runs).parent / "index.md").read_text()
    assert "- [The full profile's other results](#rest)" in md
    rest = md.split("## The full profile's other results")[1]
    for row in (
            "| toy-sgd | ?, lr ?, ? epochs | moons | 3 | 89.2% ± 0.6% | 89.1% ± 0.5% | "
            "0.44 ± 0.02 |",
            "| cifar-mlp-best | ?, ? | 3 | 73.0% ± 0.3% | 71.2% ± 0.3% | 87.4% ± 0.0% | 38 | "
            "396 ± 46 |",
            "| cifar-cnn-study-10ep | the study's setting | adam | 74.1% | 75.2% | 8 | 1,200 |",
            "| cifar-cnn-study-10ep | the study's setting | sgd | 65.5% | 65.5% | 10 | 1,100 |",
            "| speedrun-ablation-full | — | 79.1% | — | 78.0% | 150 |",
            "| speedrun-ablation-default-init | — | 76.0% | -3.1 points | 75.0% | 151 |",
            "| palindrome-ablation-none | — | 10.2% | -89.8 points | never | 70 |",
            "| cell | T = 5 | T = 40 |", "| tanh RNN | 100.0% ± 0.0% | 31.0% ± 4.0% |",
            "| LSTM | 100.0% ± 0.0% | 10.0% ± 1.0% |",
            "| palindrome-study | nnlab run palindrome --cell rnn,lstm --lengths "
            "5,10,15,20,30,40 --steps 3000 --seeds 3 --jobs 3 | "):
        assert row in rest, row
    assert rest.count("crafted CPU, 2 threads") == len(crafted)
    assert rest.count(" | 1 min 0 s |") == len(crafted)  # each part's measured time
    assert ("The 9 parts took 9 min 0 s of wall time (every invocation that worked on them "
            "summed): cifar-cnn 1 min 0 s, and the 8 others 8 min 0 s") in md
    additions = md.split("## nnlab's additions")[1].split("## The full")[0]
    assert "Not finished yet: `cifar-speedrun-cpu`" in additions  # a full profile under way


def test_report_never_clears_a_folder_that_is_not_its_own(tmp_path, capsys):
    """--out at a folder of the user's (one with figures/ of its own) is refused in one line
    and nothing in it is touched; the report's own folder is rebuilt in place."""
    runs = tmp_path / "runs"
    _crafted_cnn(runs / "cifar-cnn", [0.6, 0.8], [0.5, 0.8])
    theirs = tmp_path / "docs"
    (theirs / "figures").mkdir(parents=True)
    (theirs / "figures" / "keep.png").write_bytes(b"mine")
    assert main(["report", str(runs), "--out", str(theirs)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no nnlab report" in err
    assert (theirs / "figures" / "keep.png").read_bytes() == b"mine"
    assert sorted(p.name for p in theirs.iterdir()) == ["figures"]
    for _ in range(2):  # the second build replaces the first
        assert main(["report", str(runs), "--out", str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / "index.html").exists()


def test_a_toy_run_without_a_gradient_check_says_how_to_get_one(tmp_path):
    """A toy run older than the recorded gradient check gets a line, not a silent gap."""
    toy = tmp_path / "toy"
    toy.mkdir()
    (toy / "metrics.json").write_text(json.dumps({"moons": {"numpy": {}, "torch": {}}}))
    blocks = sections.additions(tmp_path, {}, layout.SPEEDRUNS, layout.LONG_MEMORY).blocks
    texts = [b.markdown for b in blocks if isinstance(b, render.Text)]
    assert any("made before nnlab recorded its gradient check" in t and "--force toy" in t
               for t in texts)
    assert not any(isinstance(b, report.Table) for b in blocks)


@pytest.mark.slow
def test_a_part_another_profile_made_is_not_taken_for_this_ones(tiny_profile, tmp_path,
                                                                 capsys, monkeypatch):
    """quick's preview run in a folder is never counted as the study's: one line, exit 1,
    the folder untouched; --force replaces it and the record follows."""
    import nnlab.study.reproduce

    out = tmp_path / "study"
    assert main(["reproduce", "--profile", "quick", "--only", "toy", "--out", str(out)]) == 0
    metrics = (out / "toy" / "metrics.json").read_text()
    capsys.readouterr()
    longer = ["toy", "--quick", "--dataset", "moons", "--epochs", "3"]
    monkeypatch.setitem(nnlab.study.reproduce.PROFILE_RUNS, "quick",
                        [("toy", longer, "toy", 0.1)])
    assert main(["reproduce", "--profile", "quick", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "made by another command, nnlab run toy --quick --dataset all" in captured.out
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "--force toy" in err and "holds a run of" in err
    assert (out / "toy" / "metrics.json").read_text() == metrics  # nothing lost
    assert main(["reproduce", "--profile", "quick", "--out", str(out), "--force", "toy"]) == 0
    assert json.loads((out / "profile.json").read_text())["made_by"] == {"toy": longer}
    assert json.loads((out / "toy" / "config.json").read_text())["epochs"] == 3
    assert main(["reproduce", "--profile", "quick", "--out", str(out)]) == 0  # now its own
    assert "[1/1] toy: done" in capsys.readouterr().out


def test_the_plan_counts_what_a_started_part_has_already_cost(tmp_path, capsys, monkeypatch):
    import nnlab.study.reproduce

    monkeypatch.setitem(nnlab.study.reproduce.PROFILE_RUNS, "quick", [
        ("toy", ["toy", "--quick"], "toy", 10.0),
        ("palindrome", ["palindrome", "--quick"], "palindromes", 20.0)])
    out = tmp_path / "study"
    (out / "toy").mkdir(parents=True)
    (out / "toy" / "config.json").write_text("{}")  # started, 4 of its 10 minutes spent
    (out / "profile.json").write_text(json.dumps({"profile": "quick", "seconds": {"toy": 240}}))
    assert main(["reproduce", "--profile", "quick", "--out", str(out), "--list"]) == 0
    printed = capsys.readouterr().out
    assert "about 30 min on a 2-core CPU" in printed
    assert "about 26 min of it still to run" in printed
    assert "toy                      toy [to resume]" in printed


@pytest.mark.parametrize("native", [True, False])
def test_the_full_plan_uses_the_measured_minutes_on_a_cpu_like_the_one_that_measured_them(
        native, tmp_path, capsys, monkeypatch):
    import nnlab.device
    from nnlab.study.reproduce import FULL_MINUTES_NATIVE_BF16, PROFILE_RUNS

    monkeypatch.setattr(nnlab.device, "cpu_has_native_bf16", lambda: native)
    out = tmp_path / "full"
    assert main(["reproduce", "--profile", "full", "--out", str(out), "--list"]) == 0
    printed = capsys.readouterr().out
    minutes = {n: FULL_MINUTES_NATIVE_BF16.get(n, m) if native else m
               for n, _, _, m in PROFILE_RUNS["full"]}
    assert f"about {sum(minutes.values()):.0f} min on a 2-core CPU" in printed
    assert ("like this CPU" in printed) == native
    assert f"[~{minutes['cifar-speedrun-cpu']:g} min]" in printed
    # Every part beyond the study has a measured time.
    beyond = {n for n, *_ in PROFILE_RUNS["full"]} - {n for n, *_ in PROFILE_RUNS["study"]}
    assert set(FULL_MINUTES_NATIVE_BF16) == beyond


@pytest.mark.slow
def test_without_cifar_the_cifar_parts_are_skipped_with_a_line(tiny_profile, nnlab_cache,
                                                               tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path / "no-cifar-here"))
    out = tmp_path / "study"
    assert main(["reproduce", "--profile", "quick", "--only", "toy,cifar-cnn", "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[2/2] cifar-cnn: skipped, no CIFAR-10" in printed and "NNLAB_DATA" in printed
    assert (out / "toy" / "metrics.json").exists() and not (out / "cifar-cnn").exists()


def test_profile_errors_are_one_line(capsys):
    assert main(["reproduce", "--profile", "quick", "--only", "toy,nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown part 'nope'" in err


@pytest.mark.slow
def test_quick_profile_resumes_after_a_kill(tmp_path):
    """The real quick profile's first part (the toy study setting), killed part-way, then the
    same command again: it resumes the part and finishes it."""
    out = tmp_path / "study"
    argv = [sys.executable, "-m", "nnlab", "reproduce", "--profile", "quick", "--only", "toy",
            "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not list((out / "toy").glob("*/checkpoint-*.pt")):
        assert proc.poll() is None and time.monotonic() - t0 < 120, proc.stderr.read()[-800:]
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "toy" / "metrics.json").exists()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-800:]
    assert "[1/1] toy: resumed" in done.stdout
    assert (out / "toy" / "metrics.json").exists()
    assert json.loads((out / "profile.json").read_text())["seconds"]["toy"] > 0


# --------------------------------------------------------------------------- the page


CHECK = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.type)), true);
const consoleError = console.error;
console.error = (...a) => { window.__errors.push(a.join(" ")); consoleError(...a); };
window.addEventListener("load", () => {
  const vw = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter(el => !el.parentElement.closest(".scroll") && !el.closest(".lightbox"))
    .filter(el => el.getBoundingClientRect().right > vw + 1).map(el => el.tagName);
  const images = [...document.images].filter(i => !i.closest(".lightbox"));
  const result = {vw, images: images.length, broken: images.filter(i => !(i.naturalWidth > 0))
    .length, wide, errors: window.__errors};
  parent.postMessage(JSON.stringify(result), "*");
});
</script>"""

# Headless Chromium will not make its window narrower than 500 px, so the page is loaded in a
# 390-px-wide frame (a phone's width): media queries and layout see 390 px there.
HARNESS = """<!doctype html><html><body style="margin:0">
<iframe src="checked.html" style="width:390px;height:844px;border:0"></iframe>
<script>window.addEventListener("message", e => document.body.insertAdjacentHTML(
  "beforeend", "<pre id=browser-check>" + e.data + "</pre>"));</script></body></html>"""


@pytest.mark.slow
def test_report_page_in_a_headless_browser_at_phone_width(tmp_path, capsys, chromium):
    browser = chromium
    out = tmp_path / "study"
    assert main(["run", "toy", "--quick", "--dataset", "all", "--out", str(out / "toy")]) == 0
    assert main(["run", "palindrome", "--quick", "--lengths", "4,5", "--cell", "rnn,lstm",
                 "--out", str(out / "palindrome")]) == 0
    _crafted_cnn(out / "cifar-cnn", [0.6, 0.78, 0.80], [0.3, 0.5, 0.80])
    _crafted_rest(out)  # the full profile's wide tables (commands, machines) must scroll too
    page = report.build(out)
    assert '<section id="rest">' in page.read_text()
    checked = page.with_name("checked.html")
    checked.write_text(page.read_text().replace("<head>", "<head>" + CHECK, 1))
    harness = page.with_name("harness.html")
    harness.write_text(HARNESS)
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--allow-file-access-from-files", "--window-size=500,900",
              "--virtual-time-budget=10000"]
    dom = subprocess.run([*common, "--dump-dom", harness.as_uri()], capture_output=True,
                         text=True, timeout=120)
    found = dom.stdout.split("<pre id=\"browser-check\">")[-1].split("</pre>")[0]
    result = json.loads(found.replace("&quot;", '"'))
    assert result["vw"] == 390 and result["images"] >= 8
    assert result["broken"] == 0 and result["wide"] == [] and result["errors"] == []
    artefacts = os.environ.get("NNLAB_TEST_ARTIFACTS", str(tmp_path / "artifacts"))
    os.makedirs(artefacts, exist_ok=True)
    shot = os.path.join(artefacts, "report-390px.png")
    subprocess.run([*common, f"--screenshot={shot}", harness.as_uri()], capture_output=True,
                   timeout=120)
    assert os.path.getsize(shot) > 10_000


def test_the_html_escapes_what_the_runs_hold_and_renders_the_little_markdown():
    """Texts come from run folders (commands, paths): markup in them is shown, never run."""
    html = str(render.inline_html("a **bold** `<b>code</b>` <script>x</script> *it* & more"))
    assert html == ("a <strong>bold</strong> <code>&lt;b&gt;code&lt;/b&gt;</code> "
                    "&lt;script&gt;x&lt;/script&gt; <em>it</em> &amp; more")


def test_the_plan_warns_when_other_processes_keep_the_cores_busy(monkeypatch, capsys):
    import nnlab.device
    from nnlab.study.reproduce import warn_if_busy

    monkeypatch.setattr(nnlab.device, "busy_cores", lambda: 1.4)
    warn_if_busy()
    out = capsys.readouterr().out
    assert "other processes keep about 1.4 of this machine's" in out and "longer" in out
    for quiet in (0.1, None):  # idle, or no /proc/stat to read
        monkeypatch.setattr(nnlab.device, "busy_cores", lambda quiet=quiet: quiet)
        warn_if_busy()
        assert capsys.readouterr().out == ""


def test_busy_cores_reads_the_machine():
    import os

    from nnlab.device import busy_cores

    busy = busy_cores(0.05)
    if not os.path.exists("/proc/stat"):
        assert busy is None
    else:
        assert 0.0 <= busy <= (os.cpu_count() or 1)


def test_an_ablation_row_shows_the_flags_that_differ_from_the_base_but_not_where_it_was_written(
        tmp_path):
    from nnlab.study.tables import ablation

    def run(name: str, flags: str, acc: float) -> None:
        folder = tmp_path / name
        folder.mkdir()
        command = f"nnlab run cifar-mlp --epochs 12 {flags} --out runs/{name}".split()
        (folder / "config.json").write_text(json.dumps({"provenance": {"command":
                                                                       " ".join(command)}}))
        (folder / "metrics.json").write_text(json.dumps({"val_acc": acc, "val_acc_no_tta": acc,
                                                         "train_acc": 0.8, "wall_s": 100.0}))

    run("base", "", 0.70)
    run("wider", "--widths 4096,2048", 0.715)
    table = ablation(tmp_path / "base", tmp_path / "wider", base="base")
    assert [row[:4] for row in table.rows] == [["base", "—", "70.0%", "—"],
                                               ["wider", "`--widths 4096,2048`", "71.5%",
                                                "+1.5 points"]]
    assert "train acc" not in table.header
    with_train = ablation(tmp_path / "base", base="base", train="yes")
    assert with_train.header[-2:] == ["train acc", "wall s"]
    assert with_train.rows[0][-2:] == ["80.0%", "100"]


def test_report_walks_nested_run_folders_and_says_what_it_left_out(tmp_path, capsys):
    """`nnlab run NAME` writes runs/NAME/TIMESTAMP: the report finds runs at any depth, each
    once (a run's own sub-runs are its), and names each folder it left out, with why."""
    runs = tmp_path / "runs"
    made = [runs / "palindrome" / "20261203-103003", runs / "palindrome" / "20261203-110000",
            runs / "mine" / "lengths" / "sweep"]
    for out in made[:2]:
        assert main(["run", "palindrome", "--quick", "--out", str(out)]) == 0
    assert main(["run", "palindrome", "--quick", "--lengths", "3,4", "--out",
                 str(made[2])]) == 0
    unfinished = runs / "toy" / "20261203-120000"
    assert main(["run", "toy", "--quick", "--out", str(unfinished)]) == 0
    (unfinished / "metrics.json").unlink()
    capsys.readouterr()
    assert main(["report", str(runs)]) == 0
    err = capsys.readouterr().err
    html = (runs / "report" / "index.html").read_text()
    for out in made:
        assert f"{out.relative_to(runs)}: palindrome" in html
    assert "rnn-T3: palindrome" not in html  # the sweep's sub-runs are in its section
    assert f"{unfinished}: left out of the report: not finished (no metrics.json)" in err


def test_a_run_made_with_launch_is_a_whole_run(tmp_path, capsys):
    """nnlab.launch (the documented way to train your own model) gives a run folder with
    history.csv and curves like the built-in ones, and the report says what it is."""
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "your_own_model.py"
    namespace = runpy.run_path(str(example))  # its Config and train, not its __main__
    import nnlab

    out = tmp_path / "runs" / "mine"
    nnlab.launch(namespace["train"], namespace["Config"](epochs=4), out, name="mine",
                 progress=False)
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,train_acc") and len(rows) == 5
    assert (out / "curves.png").stat().st_size > 0
    assert main(["report", str(tmp_path / "runs")]) == 0
    html = (tmp_path / "runs" / "report" / "index.html").read_text()
    assert "an experiment defined in Python code and run with nnlab.launch" in html
