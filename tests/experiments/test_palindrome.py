"""The palindrome experiment end to end, its learning, and its bad inputs."""

import json

import pytest

from nnlab.cli import main
from nnlab.engine import launch
from nnlab.experiments import palindrome
from nnlab.experiments.palindrome import Config

FILES = {"config.json", "history.csv", "metrics.json", "curves.png"}


def test_quick_run_writes_every_file(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "palindrome", "--quick", "--out", str(out)]) == 0
    assert FILES <= {p.name for p in out.iterdir()}
    m = json.loads((out / "metrics.json").read_text())
    assert m["T"] == 5 and m["cell"] == "rnn"
    # the reported accuracy is the saved (best) model's on the test set, as nnlab eval finds
    assert main(["eval", str(out)]) == 0
    assert json.loads((out / "eval-test.json").read_text())["test_acc"] == m["test_acc"]
    assert m["log10_distinct_palindromes"] == 3.0 and m["test_seen_in_training_frac"] > 0.9
    assert "test_acc" in capsys.readouterr().out


def test_a_milestone_never_reached_is_null(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "palindrome", "--quick", "--steps", "10", "--eval-every", "5",
                 "--out", str(out)]) == 0  # 10 steps: far from 99%
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps_to_99"] is None and m["wall_s_to_99"] is None
    assert m["collapse_step"] is None and m["collapsed"] == 0
    assert "never reached 99%" in capsys.readouterr().out


@pytest.mark.slow
def test_sweep_one_folder_per_cell_and_T_plus_figure(tmp_path):
    cfg = Config(**{**palindrome.EXPERIMENT.quick, "cell": "rnn,lstm", "lengths": (3, 4)})
    metrics = launch(palindrome.EXPERIMENT, cfg, tmp_path, progress=False)
    assert set(metrics) == {"rnn-T3", "rnn-T4", "lstm-T3", "lstm-T4"}
    for name in metrics:
        assert FILES <= {p.name for p in (tmp_path / name).iterdir()}
    assert (tmp_path / "acc_vs_T.png").exists()


def test_lengths_with_one_T_runs_that_T(tmp_path):
    """--lengths 3 is T = 3 (it once ran the default T = 5 and recorded lengths [3])."""
    out = tmp_path / "r"
    assert main(["run", "palindrome", "--quick", "--lengths", "3", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["T"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["length"] == 3 and not config["lengths"]


@pytest.mark.slow
def test_seeds_draw_the_accuracy_vs_T_figure(tmp_path):
    out = tmp_path / "r"
    assert main(["run", "palindrome", "--quick", "--lengths", "3,4", "--seeds", "2",
                 "--out", str(out)]) == 0
    assert (out / "acc_vs_T.png").exists()
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_seeds"] == 2 and "rnn-T4.test_acc_mean" in summary


@pytest.mark.slow
def test_study_rnn_learns_short_palindromes(tmp_path):
    """T = 4: the study's RNN reaches 100% and early stopping ends the run well before 10,000
    steps (100 distinct palindromes, so 'held-out' cannot mean unseen here)."""
    m = launch(palindrome.EXPERIMENT, Config(length=4, hidden=32, steps=3000, eval_every=50,
                                  eval_size=1000), tmp_path, progress=False)
    assert m["test_acc"] == 1.0 and m["steps"] < 3000 and m["steps_to_99"] > 0


@pytest.mark.slow
def test_long_recipe_curriculum_reaches_the_target_length(tmp_path):
    cfg = Config(recipe="long", length=20, hidden=32, lr=1e-3, steps=3000, eval_every=25,
                 eval_size=1000, curriculum_start=5, curriculum_growth=2.0)
    m = launch(palindrome.EXPERIMENT, cfg, tmp_path, progress=False)
    assert m["reached_T"] == 20 and m["test_acc"] >= 0.99
    Ts = [row.split(",")[3] for row in (tmp_path / "history.csv").read_text().splitlines()[1:]]
    assert Ts[0] == "5" and Ts[-1] == "20"  # the curriculum really started short


@pytest.mark.parametrize("argv, message", [
    (["--cell", "transformer"], "--cell takes rnn, lstm or gru"),
    (["--length", "1"], "--length must be >= 2"),
    (["--lengths", "5,1"], "--lengths: palindrome length T must be >= 2"),
    (["--lengths", "5,100000"], "T must be at most 10000"),
    (["--steps", "0"], "--steps must be > 0"),
    (["--hidden", "-4"], "--hidden must be > 0"),
    (["--curriculum-growth", "1"], "--curriculum-growth must be > 1"),
    (["--cell", "lstm", "--init", "orthogonal"], "--init orthogonal is for --cell rnn alone"),
])
def test_bad_values_one_line_exit_1(argv, message, capsys, tmp_path):
    assert main(["run", "palindrome", *argv, "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
