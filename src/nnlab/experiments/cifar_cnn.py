"""The study's reduced VGG on CIFAR-10, trained with Adam and with SGD (Part II).

The study's setting is the default: 100 epochs, batch 64, Adam lr 1e-3 or SGD lr 1e-2 with no
momentum, no augmentation, no schedule. ``--optimizer both`` trains Adam, then SGD, from the
same initial weights and draws them on shared axes. Augmentation (flips, translations), SGD
momentum, a cosine schedule and dropout are flags for the improved setting.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from nnlab.data.cifar10 import Augment
from nnlab.engine import History
from nnlab.experiments.configs.cifar_cnn import QUICK, STUDY_LR, Config
from nnlab.experiments.impl import in_place_of
from nnlab.experiments.impl import load as load_impl
from nnlab.models.cnn import VGGReduced
from nnlab.plots import plot_curves
from nnlab.registry import describe
from nnlab.vision import Batches, ImageRecipe, StepOptions, image_summary


class Recipe(ImageRecipe):
    """The study's VGG in nnlab's image-classifier loop: one phase per optimizer, each from
    the same initial weights, every batch kept (no partial batch dropped), no label
    smoothing; for both, curves.png on shared axes and history.csv with a row per
    optimizer and epoch."""

    phase_group = "optimizer"

    def build_model(self, cfg: Config, n_classes: int) -> VGGReduced:
        return VGGReduced(3, n_classes, cfg.dropout)

    def model_to_train(self, cfg: Config, model: VGGReduced) -> torch.nn.Module:
        if not cfg.impl:
            return model
        mine = load_impl(cfg.impl, self.run, {"cnn_model.py": ("VGGReduced",)})["cnn_model.py"]
        return in_place_of(model, lambda: mine.VGGReduced(3, model.classifier[-1].out_features,
                                                          cfg.dropout), cfg.impl, "cnn_model.py")

    def layout(self, cfg: Config) -> torch.memory_format:
        return torch.channels_last if cfg.channels_last else torch.contiguous_format

    def batches(self, cfg: Config) -> Batches:
        return Batches(augment=Augment(flip=cfg.flip, translate=cfg.translate)
                       if cfg.flip or cfg.translate else None, drop_last=False)

    def phases(self, cfg: Config) -> dict[str, Config]:
        names = ("adam", "sgd") if cfg.optimizer == "both" else (cfg.optimizer,)
        return {name: replace(cfg, optimizer=name) for name in names}

    def optimizer(self, cfg: Config, model: VGGReduced, steps: int):  # noqa: ANN201
        lr = study_lr(cfg)
        if cfg.optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum,
                                  weight_decay=cfg.weight_decay)
        return opt, (torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
                     if cfg.schedule == "cosine" else None)

    def step_options(self, cfg: Config, model: VGGReduced, optimizer: torch.optim.Optimizer,
                     steps: int) -> StepOptions:
        return StepOptions()  # the study's plain cross-entropy

    def title(self, cfg: Config) -> str:
        return (f"VGGReduced, {cfg.optimizer} lr {study_lr(cfg):g}, batch {cfg.batch_size}, "
                f"{cfg.epochs} epochs")

    def finish(self, cfg: Config, metrics: dict, histories: dict) -> dict:
        for name in histories:  # config.json's lr is null when each takes the study's own
            metrics[name]["lr"] = study_lr(replace(cfg, optimizer=name))
        if self.run.main and len(histories) > 1:
            together = History()
            for h in histories.values():
                together.extend(h)
            plot_curves(together, self.run.out / "curves.png", group="optimizer",
                        splits=("train", self.splits.eval_name),
                        title=f"VGGReduced: Adam vs SGD from the same initial weights "
                              f"(batch {cfg.batch_size})")
        return metrics


def study_lr(cfg: Config) -> float:
    """The learning rate of a one-optimizer config: the given one, else the study's."""
    return STUDY_LR[cfg.optimizer] if cfg.lr is None else cfg.lr


RECIPE = Recipe("cifar-cnn")


def summarize(metrics: dict) -> str:
    return "\n".join(f"{name}: {image_summary(metrics[name], metrics)}"
                     for name in ("adam", "sgd") if name in metrics)


EXPERIMENT = RECIPE.experiment(
    description=describe("cifar-cnn"), Config=Config, summarize=summarize,
    quick=QUICK,
    # --resume may raise --epochs only when the schedule is not tied to the length
    extendable=lambda config: config.schedule == "constant",
)
