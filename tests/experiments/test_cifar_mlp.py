"""cifar-mlp end to end on tiny fake data: files, split naming, learning, recipes, errors."""

import json

import pytest
import torch

from nnlab.cli import main
from nnlab.engine import launch
from nnlab.experiments import cifar_mlp
from nnlab.experiments.cifar_mlp import Config, build_model
from nnlab.experiments.configs.cifar_mlp import RECIPES

FILES = {"config.json", "history.csv", "metrics.json", "model.pt", "curves.png", "confusion.png"}


@pytest.mark.slow
def test_quick_run_writes_every_file_and_names_the_split(learnable_cifar, nnlab_cache, tmp_path,
                                                          capsys):
    out = tmp_path / "run"
    assert main(["run", "cifar-mlp", "--quick", "--data", str(learnable_cifar), "--out",
                 str(out)]) == 0
    assert FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert "val_acc" in metrics and "test_acc" not in metrics  # no validation called test
    assert metrics["n_val"] == 100 and metrics["n_train"] == 200 and metrics["wall_s"] > 0
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
            "images_per_s", "wall_s"} <= set(header)
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == "long" and config["zca_eps"] == RECIPES["long"]["zca_eps"] == 0.3
    assert "val_acc" in capsys.readouterr().out


@pytest.mark.slow
def test_final_trains_on_all_of_train_and_reports_test(learnable_cifar, nnlab_cache, tmp_path):
    metrics = launch(cifar_mlp.EXPERIMENT, Config(**cifar_mlp.EXPERIMENT.quick, final=True,
                                       data=str(learnable_cifar)), tmp_path, progress=False)
    assert "test_acc" in metrics and "val_acc" not in metrics
    assert metrics["n_test"] == 100 and metrics["n_train"] == 300
    # nothing is chosen on the test split: no best epoch, no minimum loss
    assert not any(k.startswith(("best", "min")) for k in metrics)


def test_final_without_a_test_split_is_one_line(tmp_path, nnlab_cache, capsys):
    from fakes import make_cifar_folder

    root = make_cifar_folder(tmp_path / "d", per_class=2, splits=("train",))
    out = tmp_path / "run"
    assert main(["run", "cifar-mlp", "--quick", "--final", "--data", str(root), "--out",
                 str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()  # after the decoding notices:
    assert [ln for ln in lines if ln.startswith("nnlab: error:")] == lines[-1:]
    assert "has no test split" in lines[-1] and "Traceback" not in "".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["long", "best", "study"])
def test_each_recipe_learns_the_fake_classes(recipe, learnable_cifar, nnlab_cache, tmp_path):
    # No ZCA here: fitted on 200 images of 3,072 pixels, whitening makes the images outside
    # its span look unlike any it saw (train 100%, val at chance); on CIFAR it is fitted on
    # 45,000 (see test_zca_* in tests/data for the whitening itself).
    cfg = Config(recipe=recipe, data=str(learnable_cifar), val_size=100, widths="128,128",
                 epochs=8, batch_size=32, zca_eps=0.0)
    metrics = launch(cifar_mlp.EXPERIMENT, cfg, tmp_path, progress=False)
    assert metrics["val_acc"] >= 0.8  # chance is 0.1


@pytest.mark.slow
def test_mixup_and_cutmix_train_on_soft_labels_and_still_learn(learnable_cifar, nnlab_cache,
                                                               tmp_path):
    cfg = Config(data=str(learnable_cifar), val_size=100, widths="128,128", epochs=8,
                 batch_size=32, zca_eps=0.0, mixup=0.4, cutmix=1.0)
    metrics = launch(cifar_mlp.EXPERIMENT, cfg, tmp_path, progress=False)
    assert metrics["val_acc"] >= 0.8  # chance is 0.1
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["mixup"] == 0.4 and config["cutmix"] == 1.0


def test_flags_override_the_recipe_and_sentinels_take_it():
    cfg = Config(recipe="study", dropout=0.3, flip=True).resolved()
    assert cfg.dropout == 0.3 and cfg.flip is True
    assert cfg.optimizer == "adam" and cfg.widths == RECIPES["study"]["widths"] == (1024, 512,
                                                                                   256)
    assert Config().resolved().optimizer == "adamw" and Config().resolved().tta == "flip+translate"
    assert Config(recipe="study").resolved().tta == "none"


@pytest.mark.parametrize("argv, message", [
    (["--dropout", "1.5"], "--dropout must be < 1, got 1.5"),
    (["--translate", "40"], "--translate must be <= 16, got 40"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "mps"],
     "--device"),
    (["--lr", "-2"], "--lr must be > 0, got -2.0"),
    (["--mixup", "-1"], "--mixup must be >= 0, got -1.0"),
    (["--seed", "-1"], "--seed must be between 0 and"),
    (["--drop-path", "0.2"], "--drop-path needs residual blocks: add --block residual"),
    (["--block", "residual", "--drop-path", "1"], "--drop-path must be < 1, got 1.0"),
])
def test_bad_values_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "cifar-mlp", "--quick", *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and message in err
    assert not out.exists()


@pytest.mark.parametrize("block, widths", [("plain", "32,16"), ("residual", "32,32"),
                                           ("bottleneck", "32,32")])
def test_model_shapes_and_nothing_but_fully_connected_layers(block, widths):
    """A pure MLP: every layer is a Linear, a norm, an activation, dropout (or stochastic
    depth), flatten or identity; no convolution, no patch layer sharing its weights."""
    from torchvision.ops import StochasticDepth

    allowed = (torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.LayerNorm, torch.nn.GELU,
               torch.nn.ReLU, torch.nn.SiLU, torch.nn.Dropout, torch.nn.Flatten,
               torch.nn.Identity, StochasticDepth)
    model = build_model(Config(block=block, widths=widths, expansion=2, drop_path=0.1 if
                               block != "plain" else 0.0).resolved())
    assert model(torch.randn(5, 3, 32, 32)).shape == (5, 10)
    leaves = [m for m in model.modules() if not list(m.children())]
    assert leaves and all(isinstance(m, allowed) for m in leaves), {type(m) for m in leaves}
    linears = [m for m in leaves if isinstance(m, torch.nn.Linear)]
    assert linears[0].in_features == 3 * 32 * 32  # the first layer sees every pixel at once


class _Ones(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)


@pytest.mark.parametrize("block", ["residual", "bottleneck"])
def test_drop_path_skips_whole_residual_bodies_in_training_only(block):
    # The last block, its body replaced by one whose output is 1 everywhere: each row of
    # x + drop(body(x)) - x is either all 0 (skipped) or all 1 / (1 - p) (kept and rescaled);
    # in eval it is body(x).
    p = 0.5
    model = build_model(Config(block=block, widths="16,16", expansion=2, norm="none",
                               drop_path=p).resolved())
    blocks = [m for m in model.modules() if type(m).__name__ == "_Residual"]
    assert blocks, "no residual block to drop"
    res = blocks[-1]
    res.body = _Ones()
    x = torch.randn(400, 16)
    torch.manual_seed(0)
    res.train()
    added = res(x) - x
    row = added[:, :1]
    assert torch.allclose(added, row.expand_as(added), atol=1e-6)  # per image, not per unit
    assert set(torch.unique(row.round(decimals=4)).tolist()) == {0.0, 1 / (1 - p)}
    assert 0.4 < (row == 0).float().mean() < 0.6
    res.eval()
    assert torch.allclose(res(x) - x, torch.ones_like(x), atol=1e-6)


def test_no_drop_path_leaves_the_blocks_deterministic():
    model = build_model(Config(block="residual", widths="16,16", dropout=0.0)
                        .resolved()).train()
    x = torch.randn(8, 3, 32, 32)
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert torch.equal(a, model(x))
