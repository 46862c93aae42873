"""The toy experiment: both implementations learn, agree, and write every file."""

import json

import pytest

from nnlab.cli import main
from nnlab.engine import launch
from nnlab.experiments import toy
from nnlab.experiments.toy import Config

FILES = {"config.json", "history.csv", "metrics.json", "dataset.png", "curves.png", "boundary.png"}
IMPL_KEYS = {"train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss", "wall_s"}


@pytest.mark.slow
def test_adam_reaches_97_percent_on_moons(tmp_path):
    metrics = launch(toy.EXPERIMENT, Config(dataset="moons", noise=0.1, optimizer="adam", lr=0.01,
                                 epochs=300), tmp_path, progress=False)
    assert metrics["numpy"]["test_acc"] >= 0.97
    assert metrics["torch"]["test_acc"] >= 0.97


@pytest.mark.slow
def test_study_sgd_defaults_agree_within_one_point(tmp_path):
    # the study's SGD
    metrics = launch(toy.EXPERIMENT, Config(dataset="moons"), tmp_path, progress=False)
    for split in ("train_acc", "test_acc"):
        assert abs(metrics["numpy"][split] - metrics["torch"][split]) <= 0.01
    # from identical weights on identical full batches the losses track each other closely
    assert metrics["numpy"]["train_loss"] == pytest.approx(metrics["torch"]["train_loss"], rel=1e-3)


def test_cli_run_writes_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "toy", "--epochs", "5", "--n-samples", "120", "--out", str(out)]) == 0
    assert FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["numpy"]) == IMPL_KEYS and set(metrics["torch"]) == IMPL_KEYS
    assert metrics["time_ratio_numpy_over_torch"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 5 and config["hidden"] == [20]
    assert (out / "history.csv").read_text().count("\n") == 1 + 2 * 5  # header + 2 impls x 5
    printed = capsys.readouterr().out
    assert "numpy" in printed and "times as long as PyTorch" in printed
    # the hand-written gradients, checked at the initial weights, are exact
    check = metrics["gradient_check"]
    assert set(check["params"]) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}
    assert check["max_vs_differences"] < 1e-5 and check["max_vs_autograd"] < 1e-10
    assert "against centred differences" in printed


def test_gradient_check_catches_a_wrong_backward(monkeypatch):
    """The check has teeth: a ReLU whose backward lets every gradient through fails it."""
    import numpy as np

    from nnlab.numpy_nn import MLP as NumpyMLP
    from nnlab.numpy_nn.modules import ReLU

    model = NumpyMLP(2, (16,), 3, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 2)), rng.integers(0, 3, size=16)
    good = toy.gradient_check(model.state_dict(), 2, (16,), 3, x, y)
    monkeypatch.setattr(ReLU, "backward", lambda self, dout: dout)
    bad = toy.gradient_check(model.state_dict(), 2, (16,), 3, x, y)
    assert good["max_vs_differences"] < 1e-5 and good["max_vs_autograd"] < 1e-10
    assert bad["max_vs_differences"] > 1e-2 and bad["max_vs_autograd"] > 1e-2
    assert bad["params"]["net.2.weight"]["vs_autograd"] < 1e-10  # the layer after it is right


@pytest.mark.slow
def test_quick_all_datasets_one_folder_each(tmp_path):
    assert main(["run", "toy", "--quick", "--dataset", "all", "--optimizer", "adam",
                 "--hidden", "8,8", "--out", str(tmp_path / "r")]) == 0
    for name in ("moons", "circles", "blobs"):
        assert FILES <= {p.name for p in (tmp_path / "r" / name).iterdir()}
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert set(metrics) == {"moons", "circles", "blobs"}


@pytest.mark.parametrize("argv, exit_code, message", [
    (["run", "nope"], 2, "invalid choice: 'nope'"),
    (["run", "toy", "--bogus", "1"], 2, "unrecognized arguments: --bogus"),
    (["run", "toy", "--dataset", "spirals"], 2, "invalid choice: 'spirals'"),
    (["run", "toy", "--lr", "0"], 1, "--lr must be > 0"),
    (["run", "toy", "--lr", "-0.001"], 1, "--lr must be > 0"),
    (["run", "toy", "--epochs", "0"], 1, "--epochs must be > 0"),
    (["run", "toy", "--batch-size", "-5"], 1, "--batch-size must be > 0"),
    (["run", "toy", "--hidden", "20,0"], 2, "positive integers"),
    (["run", "toy", "--hidden", "twenty"], 2, "positive integers"),
    (["run", "toy", "--hidden", "2.5"], 2, "positive integers"),
    (["run", "toy", "--epochs", "ten"], 2, "invalid int value"),
])
def test_bad_input_one_line_and_nonzero_exit(argv, exit_code, message, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse exits by itself
        code = e.code
    err = capsys.readouterr().err
    assert code == exit_code
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_existing_out_folder_is_never_overwritten_without_flag(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["run", "toy", "--epochs", "2", "--n-samples", "60", "--out", str(out)]
    assert main(argv) == 0  # an earlier run
    earlier = (out / "metrics.json").read_text()
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "is not empty" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "metrics.json").read_text() == earlier
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["numpy"]


def test_list_names_every_experiment(capsys):
    assert main(["list"]) == 0
    assert capsys.readouterr().out.startswith("toy ")


@pytest.mark.slow
def test_seeds_run_each_seed_and_report_mean_and_std(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "toy", "--quick", "--seeds", "2", "--seed", "5", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"seed5", "seed6", "config.json", "metrics.json",
                                               ".nnlab.lock"}
    per_seed = [json.loads((out / s / "metrics.json").read_text()) for s in ("seed5", "seed6")]
    summary = json.loads((out / "metrics.json").read_text())
    accs = [m["numpy"]["test_acc"] for m in per_seed]
    assert summary["numpy.test_acc_mean"] == pytest.approx(sum(accs) / 2)
    assert summary["numpy.test_acc_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5)
    assert "mean ± std" in capsys.readouterr().out


@pytest.mark.slow
def test_seeds_in_parallel_processes_match_sequential(tmp_path):
    base = ["run", "toy", "--quick", "--seeds", "2"]
    assert main([*base, "--out", str(tmp_path / "seq")]) == 0
    assert main([*base, "--jobs", "2", "--out", str(tmp_path / "par")]) == 0
    seq, par = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("seq", "par"))
    assert par["numpy.test_acc_mean"] == seq["numpy.test_acc_mean"]
    assert par["torch.train_loss_mean"] == pytest.approx(seq["torch.train_loss_mean"], rel=1e-5)
