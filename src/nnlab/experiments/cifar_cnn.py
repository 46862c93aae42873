"""The study's reduced VGG on CIFAR-10, trained with Adam and with SGD (Part II).

The study's setting is the default: 100 epochs, batch 64, Adam lr 1e-3 or SGD lr 1e-2 with no
momentum, no augmentation, no schedule. ``--optimizer both`` trains Adam, then SGD, from the
same initial weights and draws them on shared axes. Augmentation (flips, translations), SGD
momentum, a cosine schedule and dropout are flags for the improved setting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from nnlab.config import LR_MAX, option
from nnlab.data.cifar10 import Augment, Loader
from nnlab.engine import History, Run
from nnlab.errors import ConfigError
from nnlab.experiments import describe
from nnlab.experiments.cifar_common import (
    EVAL_BATCH,
    QUICK,
    CifarOptions,
    cifar_experiment,
    cifar_summary,
    evaluate_saved,
    run_facts,
    setup,
    train_classifier,
)
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


def train(cfg: Config, run: Run) -> dict:
    """Train VGGReduced with each optimizer asked for, one phase each; write
    history-<opt>.csv (every epoch while it trains), history.csv (a row per optimizer and
    epoch), model-<opt>.pt, curves-<opt>.png, confusion-<opt>.png and, for both,
    curves.png on shared axes. Metrics: one block per optimizer."""
    cfg = cfg.resolved()
    splits = setup(cfg, run)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    augment = (Augment(flip=cfg.flip, translate=cfg.translate)
               if cfg.flip or cfg.translate else None)
    held = Loader(splits.x_eval, splits.y_eval, EVAL_BATCH, splits.mean, splits.std,
                  device=run.device, memory_format=fmt)
    torch.manual_seed(cfg.seed)
    initial = VGGReduced(3, len(splits.classes), cfg.dropout)  # shared by both optimizers
    names = ("adam", "sgd") if cfg.optimizer == "both" else (cfg.optimizer,)
    history, metrics = History(), {}
    ev = splits.eval_name
    for name in names:
        model = copy.deepcopy(initial).to(run.device, memory_format=fmt)
        lr = STUDY_LR[name] if cfg.lr is None else cfg.lr
        if name == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum,
                                  weight_decay=cfg.weight_decay)
        loader = Loader(splits.x_train, splits.y_train, cfg.batch_size, splits.mean,
                        splits.std, shuffle=True, augment=augment, seed=cfg.seed,
                        device=run.device, memory_format=fmt, rank=run.dist.rank,
                        world_size=run.dist.world_size)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * len(loader))
                 if cfg.schedule == "cosine" else None)
        metrics[name], h = train_classifier(
            run, splits, model, opt, loader, held, epochs=cfg.epochs, tta=cfg.tta,
            title=f"VGGReduced, {name} lr {lr:g}, batch {cfg.batch_size}, {cfg.epochs} epochs",
            scheduler=sched, phase=name, group="optimizer", desc=f"cifar-cnn {name}")
        history.extend(h)
        if run.main:
            history.to_csv(run.out / "history.csv")
        metrics[name]["lr"] = lr  # config.json's lr is null when each takes the study's own
    metrics.update(run_facts(run, splits, initial))
    if run.main and len(names) > 1:
        plot_curves(history, run.out / "curves.png", group="optimizer", splits=("train", ev),
                    title=f"VGGReduced: Adam vs SGD from the same initial weights "
                          f"(batch {cfg.batch_size})")
    return metrics


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


EXPERIMENT = cifar_experiment(
    name="cifar-cnn", description=describe("cifar-cnn"),
    Config=Config, train=train, summarize=summarize, evaluate=eval_run,
    build_model=lambda cfg, n_classes: VGGReduced(3, n_classes, cfg.dropout),  # model-*.pt
    quick={**QUICK, "epochs": 2},
    # --resume may raise --epochs only when the schedule is not tied to the length
    extendable=lambda config: config.schedule == "constant",
)
