"""A recipe of your own: nnlab's image-classifier loop, subclassed, with two named hooks.

    nnlab run examples/frozen_stem.py --epochs 6 --freeze-after 2 --data PATH

A small CNN whose first convolution (the stem) trains for ``--freeze-after`` epochs and is
then frozen (``on_epoch_start``: the hook that runs before each epoch, again on resume), and
whose evaluated weights are an exponential moving average of the trained ones
(``step_options``). Everything else (split, augmentation, checkpoints, TTA, the saved
model, figures, nnlab eval / predict / export) is the loop's.
"""

from dataclasses import dataclass

import torch
from torch import nn

import nnlab
from nnlab.vision import StepOptions, make_ema


def small_cnn(width: int, classes: int) -> nn.Sequential:
    """(N, 3, S, S) -> (N, classes): a 3x3 stem, two conv-BN-ReLU-pool stages, a Linear."""
    def stage(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),  # the stem
                         *stage(width, 2 * width), *stage(2 * width, 4 * width),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, classes))


@dataclass
class Config(nnlab.ClassifierOptions):
    width: int = nnlab.option(32, "channels of the stem (doubled at each stage)", gt=0)
    freeze_after: int = nnlab.option(2, "epochs the stem trains for before it is frozen; "
                                        "0 = it trains throughout", ge=0)
    ema: float = nnlab.option(0.99, "decay of the averaged weights that are evaluated; 0 = off",
                              ge=0, lt=1)


class FrozenStem(nnlab.ImageRecipe):
    def build_model(self, cfg: Config, n_classes: int) -> nn.Module:
        return small_cnn(cfg.width, n_classes)

    def step_options(self, cfg: Config, model: nn.Module, optimizer: torch.optim.Optimizer,
                     steps: int) -> StepOptions:
        return StepOptions(label_smoothing=cfg.label_smoothing, ema=make_ema(model, cfg.ema))

    def on_epoch_start(self, cfg: Config, model: nn.Module, epoch: int) -> None:
        trains = not cfg.freeze_after or epoch < cfg.freeze_after
        for p in model[0].parameters():
            p.requires_grad_(trains)
            if not trains:
                p.grad = None  # SGD skips a parameter without a gradient


EXPERIMENT = FrozenStem("frozen-stem").experiment(
    description="a small CNN whose stem is frozen after a few epochs (a recipe subclassed)",
    Config=Config, quick={"width": 8, "epochs": 3, "freeze_after": 1, "batch_size": 64},
    extendable=lambda config: False)  # the one-cycle schedule is planned for --epochs
