"""cifar-cnn and cifar-speedrun end to end on tiny fake data."""

import contextlib
import json

import pytest
import torch

from nnlab.cli import main
from nnlab.engine import History, launch
from nnlab.errors import ConfigError
from nnlab.experiments import cifar_cnn, cifar_speedrun


@pytest.mark.slow
def test_cnn_quick_both_optimizers_from_the_same_weights(learnable_cifar, nnlab_cache, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "cifar-cnn", "--quick", "--data", str(learnable_cifar), "--out",
                 str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "history.csv", "metrics.json", "curves.png", "curves-adam.png",
            "curves-sgd.png", "confusion-adam.png", "model-adam.pt", "model-sgd.pt",
            "history-adam.csv", "history-sgd.csv"} <= names
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("adam", "sgd"):
        assert {"val_acc", "val_acc_no_tta", "best_val_acc", "best_epoch", "min_val_loss_epoch",
                "train_acc", "wall_s", "images_per_s", "tta"} <= set(metrics[name])
        assert metrics[name]["tta"] == "none"  # the study has no TTA: both equal
        assert metrics[name]["val_acc"] == metrics[name]["val_acc_no_tta"]
    assert (metrics["adam"]["lr"], metrics["sgd"]["lr"]) == (1e-3, 1e-2)  # the study's own
    assert {"n_params", "data_s", "n_train", "n_val"} <= set(metrics)
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 and "optimizer" in rows[0]


@pytest.mark.slow
def test_cnn_learns_the_fake_classes(learnable_cifar, nnlab_cache, tmp_path):
    cfg = cifar_cnn.Config(optimizer="adam", epochs=3, batch_size=32, val_size=100,
                           data=str(learnable_cifar))
    metrics = launch(cifar_cnn.EXPERIMENT, cfg, tmp_path, progress=False)
    assert metrics["adam"]["val_acc"] >= 0.8  # chance is 0.1


@pytest.mark.slow
def test_speedrun_quick_records_milestones(learnable_cifar, nnlab_cache, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(learnable_cifar),
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"val_acc", "val_acc_no_tta", "train_acc", "n_params", "data_s", "wall_s",
            "time_to_90_s", "time_to_94_s"} <= set(metrics)
    assert metrics["tta"] == "flip+translate"
    assert {"curves.png", "confusion.png", "model.pt"} <= {p.name for p in out.iterdir()}


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "muon"])
def test_speedrun_learns(optimizer, learnable_cifar, nnlab_cache, tmp_path):
    # whiten_eps 1: the fake images' noise is white, pixel by pixel, so full whitening
    # (eps 5e-4, right for real images) would blow it up to the size of the colour signal.
    # 16 epochs (64 steps): at 10, Muon's seed 0 ended at 0.74 with one thread (1.00 with
    # two), still settling; at 16 seeds 0-3 end at 1.00 with one thread and with two.
    cfg = cifar_speedrun.Config(widths="16,32,32", epochs=16, batch_size=50, val_size=100,
                                whiten_eps=1.0, optimizer=optimizer, data=str(learnable_cifar))
    metrics = launch(cifar_speedrun.EXPERIMENT, cfg, tmp_path, progress=False)
    assert metrics["val_acc"] >= 0.8  # chance is 0.1
    rows = History.load_csv(tmp_path / "history.csv")
    assert {k: v for k, v in metrics.items() if k.startswith("time_to_")} == (
        cifar_speedrun.milestone_times(rows))
    assert (tmp_path / "time_to_accuracy.png").stat().st_size > 0


def test_muon_takes_the_filters_and_sgd_the_rest():
    from nnlab.engine.muon import Chain, MatrixMuon
    from nnlab.models.cnn import SpeedrunNet

    model = SpeedrunNet((8, 16, 16))
    cfg = cifar_speedrun.Config(muon_lr=0.2)
    opt = cifar_speedrun.build_optimizer(cfg, model, lr=0.5)
    assert isinstance(opt, Chain)
    sgd, muon = opt.optimizers
    assert isinstance(muon, MatrixMuon) and muon.param_groups[0]["lr"] == 0.2
    filters = [p for p, _ in muon.pairs]
    rest = [p for g in sgd.param_groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(filters) == 6 and all(p.ndim == 4 for p in filters)  # two convs per group
    assert sorted(map(id, filters + rest)) == sorted(map(id, trainable))  # each exactly once
    assert id(model.head.weight) in map(id, rest)
    assert id(model.whiten.weight) not in map(id, rest + filters)  # frozen
    assert isinstance(cifar_speedrun.build_optimizer(
        cifar_speedrun.Config(optimizer="sgd"), model, 0.5), torch.optim.SGD)
    ruled = cifar_speedrun.build_optimizer(cifar_speedrun.Config(), model, 0.5, muon_lr=0.13)
    assert ruled.optimizers[1].param_groups[0]["lr"] == 0.13
    assert ruled.optimizers[1].param_groups[0]["ns_steps"] == 5
    three = cifar_speedrun.build_optimizer(cifar_speedrun.Config(muon_ns_steps=3), model, 0.5,
                                           muon_lr=0.13)
    assert three.optimizers[1].param_groups[0]["ns_steps"] == 3  # airbench's record's count


def test_muon_is_the_default_and_its_lr_follows_the_steps():
    cfg = cifar_speedrun.Config().resolved()
    assert cfg.optimizer == "muon" and cfg.muon_lr is None and cfg.warmup == 0.0
    assert cifar_speedrun.Config(optimizer="sgd").resolved().warmup == 0.2
    rule = cifar_speedrun.muon_lr_rule
    # the two points the rule was fitted on, within 3%, and fewer steps want a higher lr
    assert abs(rule(76) - 0.24) / 0.24 < 0.03 and abs(rule(1400) - 0.1) / 0.1 < 0.03
    assert rule(76) > rule(195) > rule(430) > rule(1400)


def test_sgd_with_a_muon_lr_is_refused():
    with pytest.raises(ConfigError, match="--muon-lr needs --optimizer muon"):
        cifar_speedrun.Config(optimizer="sgd", muon_lr=0.1)


@pytest.mark.parametrize("recorded, optimizer, muon_lr", [
    ({"muon_lr": 0.0, "warmup": 0.2}, "sgd", None), ({"muon_lr": 0.1, "warmup": 0.0}, "muon", 0.1),
])
def test_a_run_from_before_muon_was_the_default_keeps_its_optimizer(recorded, optimizer,
                                                                     muon_lr):
    from nnlab import experiments
    from nnlab.engine.prepare import config_from

    exp = experiments.get("cifar-speedrun")
    cfg = config_from(exp, {"experiment": "cifar-speedrun", "config_format": 2, **recorded})
    assert (cfg.optimizer, cfg.muon_lr, cfg.warmup) == (optimizer, muon_lr, recorded["warmup"])


def test_a_run_from_before_the_bn_eps_changed_keeps_airbenchs():
    """A speedrun recorded before format 4 ran BatchNorm with eps 1e-12: it resumes and is
    evaluated with it; a new run takes today's default."""
    from nnlab import experiments
    from nnlab.engine.prepare import config_from
    from nnlab.models.cnn import BN_EPS

    exp = experiments.get("cifar-speedrun")
    assert config_from(exp, {"experiment": "cifar-speedrun", "config_format": 3}).bn_eps == 1e-12
    assert config_from(exp, {"experiment": "cifar-speedrun", "config_format": 2}).bn_eps == 1e-12
    assert cifar_speedrun.Config().bn_eps == BN_EPS == 1e-2
    model = exp.build_model(cifar_speedrun.Config(widths=(8, 8, 8), bn_eps=1e-12), 10)
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-12}


def test_train_limit_keeps_the_validation_split(learnable_cifar, nnlab_cache):
    from nnlab.vision import limit_train, make_splits

    full = make_splits(str(learnable_cifar), 100, False)
    small = limit_train(full, 50)
    assert len(small.y_train) == 50 and torch.bincount(small.y_train).tolist() == [5] * 10
    assert torch.equal(small.x_eval, full.x_eval) and torch.equal(small.mean, full.mean)
    assert limit_train(full, 10_000) is full


def test_milestone_times_take_the_first_epoch_that_reaches_each():
    rows = [{"val_acc": a, "wall_s": t}
            for a, t in [(0.5, 10.0), (0.91, 20.0), (0.90, 30.0), (0.93, 40.0)]]
    assert cifar_speedrun.milestone_times(rows) == {
        "time_to_80_s": 20.0, "time_to_84_s": 20.0, "time_to_85_s": 20.0,
        "time_to_90_s": 20.0, "time_to_92_s": 40.0, "time_to_93_s": 40.0,
        "time_to_94_s": None}
    exact = [{"test_acc": 9 / 10, "wall_s": 5.0}]  # 0.9 exactly counts as reached
    assert cifar_speedrun.milestone_times(exact, "test")["time_to_90_s"] == 5.0


@pytest.mark.parametrize("name, argv, code, flag", [
    ("cifar-cnn", ["--momentum", "1.5"], 1, "--momentum"),
    ("cifar-cnn", ["--translate", "-1"], 1, "--translate"),
    ("cifar-cnn", ["--lr", "inf"], 1, "--lr"),
    ("cifar-speedrun", ["--widths", "0,4"], 2, "--widths"),  # not sizes: argparse's syntax
    ("cifar-speedrun", ["--widths", "abc"], 2, "--widths"),
    ("cifar-speedrun", ["--epochs", "0"], 1, "--epochs"),
    ("cifar-speedrun", ["--train-limit", "-5"], 1, "--train-limit"),
    ("cifar-mlp", ["--lr", "nan"], 1, "--lr"),
    ("cifar-mlp", ["--tta", "on"], 2, "--tta"),  # the old on/off spelling is gone
])
def test_bad_values_are_one_line(name, argv, code, flag, tmp_path, capsys):
    assert main(["run", name, "--quick", *argv, "--out", str(tmp_path / "run")]) == code \
        if code == 1 else _exit_code(["run", name, "--quick", *argv]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and not (tmp_path / "run").exists()


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code


def test_tta_views_keep_shapes():
    from nnlab.data.cifar10 import Loader, channel_stats
    from nnlab.models.cnn import SpeedrunNet
    from nnlab.vision import predict

    x = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (20,))
    loader = Loader(x, y, 8, *channel_stats(x))
    logits, labels = predict(SpeedrunNet((8, 8, 8)), loader,
                                                contextlib.nullcontext,
                                                "flip+translate")
    assert logits.shape == (20, 10) and torch.equal(labels, y)


@pytest.mark.slow
@pytest.mark.parametrize("epochs_trained", [0, 1])
def test_the_whitening_bias_trains_only_in_the_first_epochs_when_asked(
        epochs_trained, learnable_cifar, nnlab_cache, tmp_path):
    cfg = cifar_speedrun.Config(**{**cifar_speedrun.EXPERIMENT.quick, "epochs": 3},
                                whiten_bias_epochs=epochs_trained, data=str(learnable_cifar))
    launch(cifar_speedrun.EXPERIMENT, cfg, tmp_path, progress=False)
    # the newest two checkpoints are kept: after epoch 2 and after epoch 3
    after_2 = torch.load(sorted(tmp_path.glob("checkpoint-*.pt"))[0],
                         weights_only=False)["state"]["train.model"]
    final = torch.load(tmp_path / "model.pt", weights_only=False)["model"]
    assert not torch.equal(after_2["groups.0.net.0.weight"], final["groups.0.net.0.weight"])
    frozen = torch.equal(after_2["whiten.bias"], final["whiten.bias"])
    assert frozen == (epochs_trained == 1)


def test_the_budget_table_is_what_its_run_folders_measured():
    """Every accuracy --time-budget plans with is a run folder's under docs/results, made by
    the default recipe (Muon, no warm-up) at that size and number of epochs, on the
    45,000/5,000 split; the mean over seeds where the folder holds several."""
    from pathlib import Path

    results = Path(__file__).resolve().parents[2] / "docs" / "results"
    sources = cifar_speedrun.SIZE_SOURCES
    for size in cifar_speedrun.BUDGET_SIZES:
        for epochs, acc in size.accuracy.items():
            folder = results / sources[size.name, epochs]
            metrics = json.loads((folder / "metrics.json").read_text())
            config = json.loads((folder / "config.json").read_text())
            measured = metrics.get("val_acc_mean", metrics.get("val_acc"))
            assert acc == round(measured, 4), (size.name, epochs)
            assert config["epochs"] == epochs and not config["final"]
            assert tuple(config["widths"]) == size.fields["widths"]
            assert config["batch_size"] == size.fields["batch_size"]
            assert config.get("optimizer", "muon" if config["muon_lr"] else "sgd") == "muon"
            assert config["warmup"] == 0 and config["val_size"] == 5000
            assert config["train_limit"] == 0 and config["tta"] == "flip+translate"
    assert set(sources) == {(s.name, e) for s in cifar_speedrun.BUDGET_SIZES
                            for e in s.accuracy}


@pytest.mark.slow
def test_speedrun_with_a_time_budget_probes_plans_and_records(learnable_cifar, nnlab_cache,
                                                             tmp_path, capsys, fake_clock,
                                                             monkeypatch):
    monkeypatch.setattr(cifar_speedrun, "timed", lambda fn, repeats=2, warmup=1: 1e-4)
    out = tmp_path / "run"
    budget = fake_clock() + 60
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(learnable_cifar),
                 "--widths", "16,32,32", "--val-size", "20",  # 280 images: a batch of 256
                 "--time-budget", f"{budget:.0f}s",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "probed this machine in" in err and "plan: tiny (--widths 16,32,32" in err
    config = json.loads((out / "config.json").read_text())
    plan = config["time_budget"]
    # one batch an epoch, well under a second: as many epochs as the table allows
    assert plan["size"] == "tiny" and config["epochs"] == plan["epochs"] == 30
    assert config["batch_size"] == 256 and [c["size"] for c in plan["considered"]] == ["tiny"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["time_budget"]["process_s"] <= budget
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 30


def test_speedrun_of_a_single_step_runs(learnable_cifar, nnlab_cache, tmp_path):
    # one batch in all (280 images, batch 256, one epoch): the linear decay has no length
    # after Muon's zero warm-up; it once divided by zero there
    out = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(learnable_cifar),
                 "--val-size", "20", "--batch-size", "256", "--epochs", "1", "--widths",
                 "8,16,16", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
