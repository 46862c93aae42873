"""The strongest pure MLP we can train on CIFAR-10, beside the study's (Part I.3).

Pure means flattened pixels in and fully connected layers only: no convolutions, patches or
attention. Two recipes: ``study`` (a few ReLU layers with dropout, Adam, raw pixels: what the
study did) and ``best`` (ZCA-whitened pixels, wide BatchNorm/GELU layers, flips and
translations, AdamW with a one-cycle schedule, label smoothing, flip test-time augmentation).
Every recipe setting is a flag; a flag left at ``recipe`` (or -1) takes the recipe's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nnlab.config import LR_MAX, option, shown
from nnlab.data.cifar10 import Augment, Mix, fit_zca
from nnlab.errors import ConfigError
from nnlab.experiments import describe
from nnlab.experiments.cifar_common import (
    CifarOptions,
    cifar_summary,
    make_ema,
    weight_decay_groups,
)
from nnlab.experiments.classifier import ImageRecipe
from nnlab.experiments.distill import soft_targets
from nnlab.models.mlp import ACTIVATIONS, BLOCKS, NORMS, ImageMLP
from nnlab.plots import plot_seed_curves

RECIPES: dict[str, dict] = {
    # The study's kind of network: a few hidden layers with dropout, Adam, no tricks.
    "study": dict(widths=(1024, 512, 256), activation="relu", norm="none", block="plain",
                  expansion=4, dropout=0.2, optimizer="adam", lr=1e-3, weight_decay=0.0,
                  schedule="constant", warmup=0.0, epochs=20, batch_size=128,
                  label_smoothing=0.0, zca_eps=0.0, flip=False, translate=0, cutout=0,
                  mixup=0.0, cutmix=0.0, ema=0.0, drop_path=0.0, tta="none"),
    # Ours: see the docs (Part I.3) for how each ingredient was chosen and what it buys. Six
    # views at test time (flip+translate): +1.1 and +1.6 points over the two flip views on the
    # two sets of three trained models kept in docs/results/full-profile, for about a second.
    "best": dict(widths=(2048, 2048, 2048), activation="gelu", norm="batch", block="plain",
                 expansion=4, dropout=0.1, optimizer="adamw", lr=3e-3, weight_decay=0.05,
                 schedule="onecycle", warmup=0.25, epochs=28, batch_size=512,
                 label_smoothing=0.1, zca_eps=0.1, flip=True, translate=2, cutout=0,
                 mixup=0.0, cutmix=0.0, ema=0.0, drop_path=0.0, tta="flip+translate"),
}


@dataclass
class Config(CifarOptions):
    """Every field left at None takes the value of ``--recipe`` (see RECIPES)."""

    recipe: str = option("best", "starting point for every flag you do not give",
                         choices=tuple(RECIPES))
    widths: tuple[int, ...] | None = option(None, "hidden widths, comma-separated")
    activation: str | None = option(None, "hidden activation", choices=ACTIVATIONS)
    norm: str | None = option(None, "normalisation after each hidden Linear", choices=NORMS)
    block: str | None = option(None, "plain layers, residual layers, or inverted-bottleneck "
                                     "blocks", choices=BLOCKS)
    expansion: int | None = option(None, "width multiplier inside a bottleneck block", gt=0)
    dropout: float | None = option(None, "dropout after each hidden activation", ge=0, lt=1)
    optimizer: str | None = option(None, "update rule", choices=("adam", "adamw", "sgd"))
    lr: float | None = option(None, "learning rate (the peak, with a schedule)", gt=0,
                              le=LR_MAX)
    weight_decay: float | None = option(None, "weight decay (decoupled for adamw)", ge=0)
    schedule: str | None = option(None, "learning-rate schedule, stepped every batch",
                                  choices=("constant", "onecycle", "cosine"))
    warmup: float | None = option(None, "fraction of training spent warming up (onecycle, "
                                        "cosine)", ge=0, lt=1)
    epochs: int | None = option(None, "passes over the training split", gt=0)
    batch_size: int | None = option(None, "images per step", gt=0)
    label_smoothing: float | None = option(None, "label smoothing of the cross-entropy",
                                           ge=0, lt=1)
    zca_eps: float | None = option(None, "ZCA whitening with this eigenvalue floor; 0 = "
                                         "per-channel normalisation only", ge=0)
    cutout: int | None = option(None, "cutout square side in pixels; 0 = off", ge=0, le=32)
    mixup: float | None = option(None, "mixup's alpha: blend each training image and its "
                                       "label with another's, the weight drawn from "
                                       "Beta(alpha, alpha); 0 = off", ge=0)
    cutmix: float | None = option(None, "cutmix's alpha: paste a box of another training "
                                        "image, labels weighted by its area, drawn from "
                                        "Beta(alpha, alpha); 0 = off (with --mixup: one of "
                                        "the two per batch, at random)", ge=0)
    ema: float | None = option(None, "decay of an exponential moving average of the weights, "
                                     "evaluated instead of the weights; 0 = off", ge=0, lt=1)
    drop_path: float | None = option(None, "stochastic depth: in training, each image skips "
                                           "each residual block's body with this probability "
                                           "(needs --block residual or bottleneck); 0 = off",
                                     ge=0, lt=1)
    teacher: str = option("", "knowledge distillation: a finished image-classifier run's folder "
                              "(e.g. cifar-speedrun's, on the same split; a folder of runs is "
                              "an ensemble); train on a blend of each label and its predicted "
                              "probabilities (the train accuracy then counts agreement with "
                              "the blend's top class)", metavar="RUN_DIR")
    teacher_weight: float = option(1.0, "the teacher's share of each training target (with "
                                        "--teacher); the label has the rest", ge=0, le=1)
    teacher_temperature: float = option(1.0, "softmax temperature of the teacher's "
                                             "probabilities (with --teacher)", gt=0, le=100)

    RECIPES = RECIPES

    def __post_init__(self) -> None:
        self.check_common()
        if self.image_size > 32:  # its ZCA is a (3 S^2)^2 matrix: 600 MB at 64
            raise ConfigError(f"--image-size {self.image_size}: the MLP reads every pixel, and "
                              "its whitening grows with the square of their number; 32 at most")
        if self.drop_path and (self.block or RECIPES[self.recipe]["block"]) == "plain":
            raise ConfigError("--drop-path needs residual blocks: add --block residual "
                              "(or bottleneck)")
        if self.teacher:
            if self.mixup or self.cutmix:
                raise ConfigError("--teacher gives each image its own soft target; it does not "
                                  "combine with --mixup or --cutmix")


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
    teacher's soft targets (:mod:`nnlab.experiments.distill`)."""

    teacher_facts: dict = {}

    def build_model(self, cfg: Config, n_classes: int) -> ImageMLP:
        return build_model(cfg, n_classes)

    def loader_options(self, cfg: Config) -> dict:
        splits = self.splits
        zca = None
        if cfg.zca_eps > 0:
            zca = self.run.fitted("zca", lambda: fit_zca(
                ((splits.x_train.float() / 255 - splits.mean[:, None, None])
                 / splits.std[:, None, None]).flatten(1), cfg.zca_eps))
        targets = None
        if cfg.teacher:
            targets, self.teacher_facts = soft_targets(
                cfg.teacher, splits, cfg, self.run.device, self.run.autocast,
                cfg.teacher_weight, cfg.teacher_temperature)
        return {"augment": Augment(flip=cfg.flip, translate=cfg.translate, cutout=cfg.cutout),
                "mix": (Mix(cfg.mixup, cfg.cutmix, len(splits.classes))
                        if cfg.mixup or cfg.cutmix else None),
                "targets": targets, "both": {"zca": zca}}

    def optimizer(self, cfg: Config, model: ImageMLP, steps: int):  # noqa: ANN201
        return build_optimizer(cfg, model, steps)

    def extras(self, cfg: Config, model: ImageMLP, optimizer: torch.optim.Optimizer,
               steps: int) -> dict:
        return {"label_smoothing": cfg.label_smoothing, "ema": make_ema(model, cfg.ema)}

    def title(self, cfg: Config) -> str:
        taught = ", taught by a teacher" if cfg.teacher else ""
        return (f"pure MLP, recipe {cfg.recipe}: {shown(cfg.widths)}, {cfg.epochs} epochs"
                f"{taught}, seed {cfg.seed}")

    def finish(self, cfg: Config, metrics: dict, histories: dict) -> dict:
        return {**metrics, **self.teacher_facts}


RECIPE = Recipe("cifar-mlp")


def plot_seeds(out_dir: Path, runs: list[dict]) -> None:
    """curves_seeds.png: every seed's validation (or test) accuracy and loss by epoch."""
    plot_seed_curves(sorted(Path(out_dir).glob("seed*/history.csv")),
                     out_dir / "curves_seeds.png", title="cifar-mlp, every seed")


def summarize(metrics: dict) -> str:
    return cifar_summary(metrics)


EXPERIMENT = RECIPE.experiment(
    description=describe("cifar-mlp"), Config=Config, summarize=summarize,
    plot_seeds=plot_seeds,
    quick={"widths": (64, 64), "epochs": 2, "batch_size": 64},
    # --resume may raise --epochs only when the schedule is not tied to the length
    extendable=lambda config: config.resolved().schedule == "constant",
)
