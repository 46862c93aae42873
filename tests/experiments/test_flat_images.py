"""Images unlike CIFAR-10's photographs (flat black backgrounds, white strokes: digits,
documents) train in bf16 and in fp32; a run that learns nothing while its held-out loss
explodes is stopped in one line, not reported as a result."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnlab.cli import main
from nnlab.device import cpu_has_native_bf16


def _flat_folder(root: Path, per_class: int, split: str, seed: int) -> Path:
    """ROOT/<split>/<k>/NNNN.png, 32 x 32 grey images: a white bar whose row block is the
    class (k = 0..9), jittered by a pixel or two, on an exactly black background."""
    rng = np.random.default_rng(seed)
    for k in range(10):
        (root / split / str(k)).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.zeros((32, 32), np.uint8)
            top = 1 + 3 * k + int(rng.integers(0, 2))
            left = int(rng.integers(2, 10))
            pixels[top:top + 2, left:left + 16] = 255
            Image.fromarray(pixels).convert("RGB").save(root / split / str(k) / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def flat_images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flat")
    _flat_folder(root, 24, "train", seed=0)
    return _flat_folder(root, 8, "test", seed=1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_flat_background_images_train_in_bf16_and_fp32(precision, flat_images, nnlab_cache,
                                                       tmp_path):
    if precision == "bf16" and not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX-512-BF16 or AMX): bf16 is emulated "
                    "there, 10-20x slower, and auto picks fp32")
    out = tmp_path / precision
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(flat_images), "--final",
                 "--epochs", "12", "--batch-size", "48", "--precision", precision,
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_acc"] >= 0.8  # chance is 0.1
    assert json.loads((out / "config.json").read_text())["provenance"]["precision"] == precision


EXPERIMENT_THAT_FAILS = '''
"""A classifier that is at chance while it trains and absurdly sure and wrong when it is
evaluated: what bf16 did to flat-background images on one CPU (test loss 1e10)."""
from dataclasses import dataclass

import torch

import nnlab


@dataclass
class Config:
    epochs: int = nnlab.option(6, "epochs", gt=0)


class AtChance(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(10))

    def forward(self, x):
        if self.training:  # uniform: the loss is ln 10 whatever the labels
            return self.w.expand(len(x), 10) * 0
        return torch.randn(len(x), 10, generator=torch.Generator().manual_seed(0)) * 1e6


def train(config, run):
    model = AtChance()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 3), torch.arange(64) % 10
    step = nnlab.TorchStep(model, opt)
    run.track(model=model, optimizer=opt)

    def evaluate_all():
        model.eval()
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(model(x), y).item()
        return {"val_loss": loss}

    nnlab.train_epochs(step, lambda epoch: [(x, y)], config.epochs, evaluate_all, run=run)
    return {"val_loss": evaluate_all()["val_loss"]}


EXPERIMENT = nnlab.Experiment(name="at-chance", description="learns nothing", Config=Config,
                              train=train)
'''


def test_a_run_that_learns_nothing_and_explodes_stops_in_one_line(tmp_path, capsys):
    path = tmp_path / "at_chance.py"
    path.write_text(EXPERIMENT_THAT_FAILS)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("nnlab: error:")]) == 1
    assert err[-1].startswith("nnlab: error: train: training is no better than chance at "
                              "epoch 2 (training loss 2.303, chance ln 10 = 2.303) and the "
                              "held-out loss has exploded to ")
    assert "try --precision fp32" in err[-1]
    assert not (out / "metrics.json").exists()  # not a result
    assert list(out.glob("checkpoint-*.pt"))  # kept


def test_a_task_merely_at_chance_goes_on(tmp_path):
    """The study's RNN at long palindromes sits at chance for its whole run: a result, not a
    failure, so nothing stops it (its held-out loss stays near chance)."""
    out = tmp_path / "rnn"
    assert main(["run", "palindrome", "--quick", "--length", "30", "--steps", "100",
                 "--eval-every", "20", "--patience", "1000", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_acc"] < 0.3 and metrics["steps"] == 100


def test_a_time_budget_on_other_images_costs_their_epochs_and_says_what_it_predicts(
        flat_images, learnable_cifar, nnlab_cache, tmp_path, capsys, fake_clock):
    """--time-budget on a user's folder: the probe's epoch is this data's (240 images, not
    CIFAR-10's 50,000), and the plan says its accuracy was measured on CIFAR-10."""
    from nnlab.experiments import cifar_speedrun as sr

    flat = sr.Config(data=str(flat_images), final=True)
    assert sr.data_counts(flat) == (240, 80, tuple(str(k) for k in range(10)))
    assert "measured on CIFAR-10; on this data (240 training images, 10 classes)" in \
        sr.budget_caveat(flat)
    assert sr.budget_caveat(sr.Config(data=str(learnable_cifar), val_size=100)) is None
    tiny = sr.BUDGET_SIZES[0]  # batch 256: the probe times batches of 128
    with pytest.MonkeyPatch.context() as m:  # every timing 1 s: the counts show through
        m.setattr(sr, "timed", lambda fn, repeats=2, warmup=1: 1.0)
        cost = sr.probe(sr.Config(data=str(flat_images), final=True, **tiny.fields), tiny)
    per_image, per_view = 2 / 128, 1 / 128  # a step and the loader, per image; a view
    assert cost.epoch_s == pytest.approx(240 * per_image + 240 // 256 + 80 * per_view)
    out = tmp_path / "run"
    budget = f"{fake_clock() + 90:.0f}s"  # 90 s after what the (fake) process has used
    assert main(["run", "cifar-speedrun", "--time-budget", budget, "--data", str(flat_images),
                 "--final", "--out", str(out)]) == 0
    assert "note: the expected accuracy was measured on CIFAR-10" in capsys.readouterr().err
    assert "caveat" in json.loads((out / "config.json").read_text())["time_budget"]
