"""The study's reduced VGG on CIFAR-10, trained with Adam and with SGD (Part II).

The study's setting is the default: 100 epochs, batch 64, Adam lr 1e-3 or SGD lr 1e-2 with no
momentum, no augmentation, no schedule. ``--optimizer both`` trains Adam, then SGD, from the
same initial weights and draws them on shared axes. Augmentation (flips, translations), SGD
momentum, a cosine schedule and dropout are flags for the improved setting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from nnlab.config import LR_MAX, option
from nnlab.data.cifar10 import Augment
from nnlab.engine import History
from nnlab.errors import ConfigError
from nnlab.experiments import describe
from nnlab.experiments.cifar_common import CifarOptions, cifar_summary, evaluate_saved
from nnlab.experiments.classifier import ImageRecipe
from nnlab.models.cnn import VGGReduced
from nnlab.plots import plot_curves

STUDY_LR = {"adam": 1e-3, "sgd": 1e-2}


@dataclass
class Config(CifarOptions):
    optimizer: str = option("both", "adam, sgd, or both from the same initial weights",
                            choices=("adam", "sgd", "both"))
    epochs: int = option(100, "passes over the training split (the study: 100)", gt=0)
    batch_size: int = option(64, "images per step (the study: 64)", gt=0)
    lr: float | None = option(None, "learning rate", gt=0, le=LR_MAX,
                              shown="the study's: adam 0.001, sgd 0.01")
    momentum: float = option(0.0, "SGD momentum (the study: 0)", ge=0, lt=1)
    weight_decay: float = option(0.0, "weight decay (L2, as torch.optim adds it)", ge=0)
    schedule: str = option("constant", "learning-rate schedule, stepped every batch",
                           choices=("constant", "cosine"))
    dropout: float = option(0.0, "dropout before each Linear (the study's listing: none)",
                            ge=0, lt=1)
    channels_last: bool = option(True, "NHWC memory layout (faster convolutions on CPUs)")

    RECIPES = {"study": {"flip": False, "translate": 0, "tta": "none"}}  # no augmentation

    def __post_init__(self) -> None:
        self.check_common()
        if self.image_size != 32:  # five max-pools take 32 x 32 to the 1 x 1 its head reads
            raise ConfigError(f"--image-size {self.image_size}: the study's VGG takes 32 x 32 "
                              "images; cifar-speedrun or your own model take other sizes")


class Recipe(ImageRecipe):
    """The study's VGG in nnlab's image-classifier loop: one phase per optimizer, each from
    the same initial weights, every batch kept (no partial batch dropped), no label
    smoothing; for both, curves.png on shared axes and history.csv with a row per
    optimizer and epoch."""

    phase_group = "optimizer"

    def build_model(self, cfg: Config, n_classes: int) -> VGGReduced:
        return VGGReduced(3, n_classes, cfg.dropout)

    def layout(self, cfg: Config) -> torch.memory_format:
        return torch.channels_last if cfg.channels_last else torch.contiguous_format

    def loader_options(self, cfg: Config) -> dict:
        return {"augment": (Augment(flip=cfg.flip, translate=cfg.translate)
                            if cfg.flip or cfg.translate else None), "drop_last": False}

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

    def extras(self, cfg: Config, model: VGGReduced, optimizer: torch.optim.Optimizer,
               steps: int) -> dict:
        return {}

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


def eval_run(run_dir: Path, cfg: Config, split: str, tta: str | None,
             data: str | None) -> dict:
    """``nnlab eval``: each optimizer's saved model on ``split`` with ``tta`` (default: the
    run's own), keyed like metrics.json (``<optimizer>.<split>_acc``)."""
    cfg = cfg.resolved()
    tta = tta or cfg.tta
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    names = ("adam", "sgd") if cfg.optimizer == "both" else (cfg.optimizer,)
    out: dict = {"tta": tta}
    for name in names:
        loss, acc = evaluate_saved(run_dir, cfg, lambda n: VGGReduced(3, n, cfg.dropout),
                                   f"model-{name}", name, split, tta, data, fmt)
        out[name] = {f"{split}_acc": acc, f"{split}_loss": loss}
    return out


def summarize(metrics: dict) -> str:
    return "\n".join(f"{name}: {cifar_summary(metrics[name], metrics)}"
                     for name in ("adam", "sgd") if name in metrics)


EXPERIMENT = RECIPE.experiment(
    description=describe("cifar-cnn"), Config=Config, summarize=summarize, evaluate=eval_run,
    quick={"epochs": 2},
    # --resume may raise --epochs only when the schedule is not tied to the length
    extendable=lambda config: config.schedule == "constant",
)
