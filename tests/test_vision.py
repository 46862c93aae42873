"""What the CIFAR experiments share: EMA weights are the ones evaluated and saved, flips
alternate so each image is seen both ways, flip TTA on a mirror-symmetric model changes
nothing, and one metrics schema."""

import contextlib

import pytest
import torch

from nnlab.data.cifar10 import Loader
from nnlab.engine import checkpoint, launch
from nnlab.experiments import cifar_cnn, cifar_mlp, cifar_speedrun
from nnlab.vision import image_summary, predict


def _weights(path, key=None) -> dict[str, torch.Tensor]:
    state = checkpoint.load(path)
    state = state["model"] if key is None else state["state"][key]
    return {k.removeprefix("module."): v for k, v in state.items() if k != "n_averaged"}


@pytest.mark.slow
@pytest.mark.parametrize("ema", [0.0, 0.5])
def test_the_ema_weights_are_evaluated_and_saved(ema, learnable_cifar, nnlab_cache, tmp_path):
    cfg = cifar_speedrun.Config(**cifar_speedrun.EXPERIMENT.quick, ema=ema,
                                data=str(learnable_cifar))
    launch(cifar_speedrun.EXPERIMENT, cfg, tmp_path, progress=False)
    newest = sorted(tmp_path.glob("checkpoint-*.pt"))[-1]  # the state after the last step
    saved, raw = _weights(tmp_path / "model.pt"), _weights(newest, "train.model")
    same = all(torch.equal(saved[k], raw[k]) for k in raw)
    if ema == 0:
        assert same
    else:
        averaged = _weights(newest, "train.ema")
        assert not same and all(torch.equal(saved[k], averaged[k]) for k in raw)


def test_flips_alternate_so_each_image_is_seen_both_ways_in_two_epochs():
    n = 24
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    loader = Loader(x, torch.arange(n), 5, torch.zeros(3), torch.full((3,), 1 / 255),
                    shuffle=True, drop_last=True, alternate_flips=True)
    mirrored: dict[int, list[bool]] = {}
    for epoch in (0, 1):
        for xb, yb in loader.epoch(epoch):
            for image, i in zip(xb, yb.tolist(), strict=True):
                original = x[i].float()
                assert torch.equal(image, original) or torch.equal(image, original.flip(2))
                mirrored.setdefault(i, []).append(torch.equal(image, original.flip(2)))
    # 4 batches of 5 = 20 of 24 images per epoch (drop_last): those seen in both epochs
    twice = {i: m for i, m in mirrored.items() if len(m) == 2}
    assert len(twice) >= 16 and all(m[0] != m[1] for m in twice.values())
    assert any(m[0] for m in twice.values()) and any(not m[0] for m in twice.values())
    plain = Loader(x, torch.arange(n), 5, torch.zeros(3), torch.full((3,), 1 / 255),
                   shuffle=True, drop_last=True)  # --no-flip
    assert all(torch.equal(xb, x[yb].float()) for xb, yb in plain.epoch(1))


class _Mirrored(torch.nn.Module):
    """A model whose output is the same for an image and its mirror (symmetric=True): a
    convolution with left-right symmetric kernels, then average pooling."""

    def __init__(self, symmetric: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 10, 3, padding=1)
        if symmetric:
            with torch.no_grad():
                self.conv.weight.copy_((self.conv.weight + self.conv.weight.flip(3)) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3))


@pytest.mark.parametrize("symmetric", [True, False])
def test_flip_tta_equals_no_tta_exactly_when_the_model_is_mirror_symmetric(symmetric):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    loader = Loader(x, torch.randint(0, 10, (16,)), 8, torch.zeros(3), torch.ones(3))
    model = _Mirrored(symmetric)
    plain, _ = predict(model, loader, contextlib.nullcontext, "none")
    flipped, _ = predict(model, loader, contextlib.nullcontext, "flip")
    assert torch.allclose(plain, flipped, atol=1e-5) == symmetric


@pytest.mark.slow
def test_every_cifar_experiment_reports_the_same_keys(learnable_cifar, nnlab_cache, tmp_path):
    keys = {"train_acc", "train_loss", "val_acc", "val_loss", "val_acc_no_tta",
            "val_loss_no_tta", "tta", "epochs", "wall_s", "images_per_s", "best_val_acc",
            "best_epoch", "min_val_loss", "min_val_loss_epoch"}
    facts = {"n_params", "n_train", "n_val", "data_s", "device", "precision", "world_size"}
    for module in (cifar_mlp, cifar_speedrun, cifar_cnn):
        cfg = module.Config(**module.EXPERIMENT.quick, data=str(learnable_cifar),
                            **({"optimizer": "adam"} if module is cifar_cnn else {}))
        m = launch(module.EXPERIMENT, cfg, tmp_path / module.__name__, progress=False)
        block = m["adam"] if module is cifar_cnn else m
        assert keys <= set(block) and facts <= set(m), module.__name__
        line = image_summary(block, m)
        assert "2 epochs" in line and "1 epochs" not in line


def test_the_summary_says_what_tta_it_used():
    m = {"val_acc": 0.5, "val_acc_no_tta": 0.4, "tta": "none", "train_acc": 0.9, "epochs": 1,
         "wall_s": 3.0, "images_per_s": 100.0, "precision": "fp32", "device": "cpu"}
    line = image_summary(m)
    assert "TTA" not in line and "1 epoch in" in line
    assert "with flip TTA (0.4000 without)" in image_summary({**m, "tta": "flip"})


def test_translate_tta_weights_the_untranslated_views_as_asked():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    loader = Loader(x, torch.randint(0, 10, (8,)), 8, torch.zeros(3), torch.ones(3))
    model = _Mirrored(symmetric=False)
    xb = next(iter(loader))[0]
    pad = torch.nn.functional.pad(xb, (1,) * 4, mode="reflect")
    views = [xb, xb.flip(3), pad[:, :, :-2, :-2], pad[:, :, 2:, 2:],
             pad[:, :, :-2, :-2].flip(3), pad[:, :, 2:, 2:].flip(3)]
    with torch.no_grad():
        out = [model(v) for v in views]
    alike, _ = predict(model, loader, contextlib.nullcontext, "flip+translate")
    torch.testing.assert_close(alike, sum(out) / 6)
    half, _ = predict(model, loader, contextlib.nullcontext, "flip+translate", 0.5)
    torch.testing.assert_close(half, (out[0] + out[1]) / 4 + sum(out[2:]) / 8)
    only, _ = predict(model, loader, contextlib.nullcontext, "flip+translate", 1.0)
    torch.testing.assert_close(only, predict(model, loader, contextlib.nullcontext, "flip")[0])
