"""The strongest pure MLP we can train on CIFAR-10, beside the study's (Part I.3).

Pure means flattened pixels in and fully connected layers only: no convolutions, patches or
attention. Two recipes: ``study`` (a few ReLU layers with dropout, Adam, raw pixels: what the
study did) and ``best`` (ZCA-whitened pixels, wide BatchNorm/GELU layers, flips and
translations, AdamW with a one-cycle schedule, label smoothing, flip test-time augmentation).
Every recipe setting is a flag; a flag left at ``recipe`` (or -1) takes the recipe's value.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nnlab.config import shown
from nnlab.data.cifar10 import Augment, Mix, fit_zca
from nnlab.experiments.configs.cifar_mlp import QUICK, Config
from nnlab.experiments.distill import soft_targets
from nnlab.models.mlp import ImageMLP
from nnlab.plots import plot_seed_curves
from nnlab.registry import describe
from nnlab.vision import (
    Batches,
    ImageRecipe,
    StepOptions,
    image_summary,
    make_ema,
    weight_decay_groups,
)


def build_model(cfg: Config, n_classes: int = 10) -> ImageMLP:
    return ImageMLP(3 * cfg.image_size ** 2, cfg.widths, n_classes, cfg.activation, cfg.norm,
                    cfg.dropout, cfg.block, cfg.expansion, cfg.drop_path)


def build_optimizer(cfg: Config, model: nn.Module, steps: int):
    groups = weight_decay_groups(model, cfg.weight_decay)
    # One fused kernel per Adam step instead of a dozen passes over the 14.7 M weights: the
    # optimizer was a third of the best recipe's step time on a 2-core CPU (see the docs'
    # roofline table).
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)
    else:
        opt = torch.optim.Adam(groups, lr=cfg.lr, fused=fused)
    if cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=steps, pct_start=max(cfg.warmup, 1e-3),
            anneal_strategy="cos", cycle_momentum=False)
    elif cfg.schedule == "cosine":
        warm = max(1, int(cfg.warmup * steps))
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, 1e-3, 1.0, warm),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps - warm))], [warm])
    else:
        sched = None
    return opt, sched


class Recipe(ImageRecipe):
    """The MLP in nnlab's image-classifier loop: ZCA whitening fitted to the training
    images (both loaders whiten), cutout, mixup and cutmix when asked, the optimizer and
    schedule of :func:`build_optimizer`, an EMA when asked; with ``--teacher``, the
    teacher's soft targets (:mod:`nnlab.experiments.distill`) and its facts in the
    metrics."""

    def build_model(self, cfg: Config, n_classes: int) -> ImageMLP:
        return build_model(cfg, n_classes)

    def whitening(self, cfg: Config) -> torch.Tensor | None:
        if cfg.zca_eps <= 0:
            return None
        splits = self.splits
        return self.run.fitted("zca", lambda: fit_zca(
            ((splits.x_train.float() / 255 - splits.mean[:, None, None])
             / splits.std[:, None, None]).flatten(1), cfg.zca_eps))

    def batches(self, cfg: Config) -> Batches:
        targets = None
        if cfg.teacher:
            targets, facts = soft_targets(cfg.teacher, self.splits, cfg, self.run.device,
                                          self.run.autocast, cfg.teacher_weight,
                                          cfg.teacher_temperature)
            self.facts.update(facts)
        return Batches(augment=Augment(flip=cfg.flip, translate=cfg.translate,
                                       cutout=cfg.cutout, crop=cfg.crop),
                       mix=(Mix(cfg.mixup, cfg.cutmix, len(self.splits.classes))
                            if cfg.mixup or cfg.cutmix else None), targets=targets)

    def optimizer(self, cfg: Config, model: ImageMLP, steps: int):  # noqa: ANN201
        return build_optimizer(cfg, model, steps)

    def step_options(self, cfg: Config, model: ImageMLP, optimizer: torch.optim.Optimizer,
                     steps: int) -> StepOptions:
        return StepOptions(label_smoothing=cfg.label_smoothing, ema=make_ema(model, cfg.ema))

    def title(self, cfg: Config) -> str:
        taught = ", taught by a teacher" if cfg.teacher else ""
        return (f"pure MLP, recipe {cfg.recipe}: {shown(cfg.widths)}, {cfg.epochs} epochs"
                f"{taught}, seed {cfg.seed}")


RECIPE = Recipe("cifar-mlp")


def plot_seeds(out_dir: Path, runs: list[dict]) -> None:
    """curves_seeds.png: every seed's validation (or test) accuracy and loss by epoch."""
    plot_seed_curves(sorted(Path(out_dir).glob("seed*/history.csv")),
                     out_dir / "curves_seeds.png", title="cifar-mlp, every seed")


def summarize(metrics: dict) -> str:
    return image_summary(metrics)


EXPERIMENT = RECIPE.experiment(
    description=describe("cifar-mlp"), Config=Config, summarize=summarize,
    plot_seeds=plot_seeds,
    quick=QUICK,
    # --resume may raise --epochs only when the schedule is not tied to the length
    extendable=lambda config: config.resolved().schedule == "constant",
)
