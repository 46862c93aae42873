"""The strongest pure MLP we can train on CIFAR-10, beside the study's (Part I.3).

Pure means flattened pixels in and fully connected layers only: no convolutions, patches or
attention. Two recipes: ``study`` (a few ReLU layers with dropout, Adam, raw pixels: what the
study did) and ``best`` (ZCA-whitened pixels, wide BatchNorm/GELU layers, flips and
translations, AdamW with a one-cycle schedule, label smoothing, flip test-time augmentation).
Every recipe setting is a flag; a flag left at ``recipe`` (or -1) takes the recipe's value.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from nnlab.config import check_choice, check_positive, option, parse_sizes
from nnlab.data.cifar10 import Augment, Loader, fit_zca
from nnlab.engine import Run, TorchStep, distributed, train_epochs
from nnlab.errors import ConfigError
from nnlab.experiments.cifar_common import (
    EVAL_BATCH,
    CifarOptions,
    evaluate_saved,
    finish,
    loss_acc,
    make_ema,
    predict,
    run_facts,
    setup,
    weight_decay_groups,
)
from nnlab.models.mlp import ACTIVATIONS, BLOCKS, NORMS, ImageMLP
from nnlab.plots import plot_seed_curves

RECIPES: dict[str, dict] = {
    # The study's kind of network: a few hidden layers with dropout, Adam, no tricks.
    "study": dict(widths="1024,512,256", activation="relu", norm="none", block="plain",
                  expansion=4, dropout=0.2, optimizer="adam", lr=1e-3, weight_decay=0.0,
                  schedule="constant", warmup=0.0, epochs=20, batch_size=128,
                  label_smoothing=0.0, zca_eps=0.0, flip="off", translate=0, cutout=0,
                  ema=0.0, tta="off"),
    # Ours: see the README for how each ingredient was chosen and what it buys.
    "best": dict(widths="2048,2048,2048", activation="gelu", norm="batch", block="plain",
                 expansion=4, dropout=0.1, optimizer="adamw", lr=3e-3, weight_decay=0.05,
                 schedule="onecycle", warmup=0.25, epochs=28, batch_size=512,
                 label_smoothing=0.1, zca_eps=0.1, flip="on", translate=2, cutout=0,
                 ema=0.0, tta="on"),
}
R = "recipe"  # a string flag left at this value takes the recipe's setting


@dataclass
class Config(CifarOptions):
    recipe: str = option("best", "starting point for every flag left at 'recipe' or -1",
                         choices=tuple(RECIPES))
    widths: str = option(R, "hidden widths, comma-separated (e.g. 2048,2048,2048)")
    activation: str = option(R, "hidden activation", choices=(R, *ACTIVATIONS))
    norm: str = option(R, "normalisation after each hidden Linear", choices=(R, *NORMS))
    block: str = option(R, "plain layers, residual layers, or inverted-bottleneck blocks",
                        choices=(R, *BLOCKS))
    expansion: int = option(-1, "width multiplier inside a bottleneck block")
    dropout: float = option(-1.0, "dropout after each hidden activation")
    optimizer: str = option(R, "update rule", choices=(R, "adam", "adamw", "sgd"))
    lr: float = option(-1.0, "learning rate (the peak, with a schedule)")
    weight_decay: float = option(-1.0, "weight decay (decoupled for adamw)")
    schedule: str = option(R, "learning-rate schedule, stepped every batch",
                           choices=(R, "constant", "onecycle", "cosine"))
    warmup: float = option(-1.0, "fraction of training spent warming up (onecycle, cosine)")
    epochs: int = option(-1, "passes over the training split")
    batch_size: int = option(-1, "images per step")
    label_smoothing: float = option(-1.0, "label smoothing of the cross-entropy")
    zca_eps: float = option(-1.0, "ZCA whitening with this eigenvalue floor; 0 = per-channel "
                                  "normalisation only")
    flip: str = option(R, "random horizontal flips", choices=(R, "on", "off"))
    translate: int = option(-1, "random translation up to this many pixels (reflect padding)")
    cutout: int = option(-1, "cutout square side in pixels; 0 = off")
    ema: float = option(-1.0, "decay of an exponential moving average of the weights, "
                              "evaluated instead of the weights; 0 = off")
    tta: str = option(R, "average each image's logits with its mirror image's at evaluation",
                      choices=(R, "on", "off"))
    quick: bool = option(False, "smoke run in seconds: 400 images, network 64,64, 2 epochs, "
                                "batch 64 (flags you give still win)")

    QUICK = {**CifarOptions.QUICK, "widths": "64,64", "epochs": 2, "batch_size": 64}

    def __post_init__(self) -> None:
        check_choice(self, "recipe")
        self.check_common()
        self.resolved()  # every bad value is caught here, before a run folder is made

    def extendable(self) -> bool:
        """Whether --resume may raise --epochs: not when the schedule is tied to the length."""
        return self.resolved().schedule == "constant"

    def resolved(self) -> Config:
        """A copy with every 'recipe' / -1 setting replaced by the recipe's value, checked."""
        recipe = RECIPES[self.recipe]
        cfg = copy.copy(self)  # a plain copy: no __post_init__, so no recursion
        for f in fields(self):
            if f.name in recipe and getattr(self, f.name) in (R, -1, -1.0):
                setattr(cfg, f.name, recipe[f.name])
        parse_sizes(cfg.widths)
        for name in ("activation", "norm", "block", "optimizer", "schedule", "flip", "tta"):
            check_choice(cfg, name)
        check_positive(cfg, "val_size", "epochs", "batch_size", "lr", "expansion")
        for name in ("dropout", "label_smoothing", "warmup"):
            if not 0 <= getattr(cfg, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1), "
                                  f"got {getattr(cfg, name)}")
        if not 0 <= cfg.ema < 1:
            raise ConfigError(f"--ema must be in [0, 1), got {cfg.ema}")
        for name in ("weight_decay", "zca_eps", "translate", "cutout"):
            if getattr(cfg, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, "
                                  f"got {getattr(cfg, name)}")
        if cfg.translate > 16:
            raise ConfigError(f"--translate must be at most 16 pixels, got {cfg.translate}")
        return cfg


def build_model(cfg: Config, n_classes: int = 10) -> ImageMLP:
    return ImageMLP(3 * 32 * 32, parse_sizes(cfg.widths), n_classes, cfg.activation, cfg.norm,
                    cfg.dropout, cfg.block, cfg.expansion)


def _optimizer(cfg: Config, model: nn.Module, steps: int):
    groups = weight_decay_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
    else:
        opt = torch.optim.Adam(groups, lr=cfg.lr)
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


def train(cfg: Config, run: Run) -> dict:
    """Train one MLP; write history.csv (every epoch), model.pt, curves.png and
    confusion.png in the run folder; return the metrics (``val_acc`` or ``test_acc``)."""
    cfg = cfg.resolved()
    splits = setup(cfg, run)
    t = time.perf_counter()  # wall_s: whitening, training and evaluation; loading excluded
    torch.manual_seed(cfg.seed)
    zca = None
    if cfg.zca_eps > 0:
        zca = run.fitted("zca", lambda: fit_zca(
            ((splits.x_train.float() / 255 - splits.mean[:, None, None])
             / splits.std[:, None, None]).flatten(1), cfg.zca_eps))
    setup_s = run.fitted("setup_s", lambda: time.perf_counter() - t)
    augment = Augment(flip=cfg.flip == "on", translate=cfg.translate, cutout=cfg.cutout)
    train_loader = Loader(splits.x_train, splits.y_train, cfg.batch_size, splits.mean,
                          splits.std, shuffle=True, augment=augment, zca=zca, drop_last=True,
                          seed=cfg.seed, device=run.device, rank=run.dist.rank,
                          world_size=run.dist.world_size)
    held = Loader(splits.x_eval, splits.y_eval, EVAL_BATCH, splits.mean, splits.std, zca=zca,
                  device=run.device)
    model = build_model(cfg, len(splits.classes)).to(run.device)
    optimizer, scheduler = _optimizer(cfg, model, cfg.epochs * len(train_loader))
    ema = make_ema(model, cfg.ema)
    evaluated = ema.module if ema is not None else model
    run.track(batch_order=train_loader.gen, augmentation=train_loader.aug_gen)
    ev = splits.eval_name

    def evaluate_all() -> dict[str, float]:  # per epoch: no TTA, to keep epochs cheap
        loss, acc = loss_acc(*predict(evaluated, held, run.autocast, "none"))
        return {f"{ev}_loss": loss, f"{ev}_acc": acc}

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), y,
                                           label_smoothing=cfg.label_smoothing)

    step = TorchStep(distributed.wrap(model, run.dist, run.device), optimizer, loss_fn,
                     scheduler, run.autocast, ema=ema)
    history = train_epochs(step, lambda epoch: train_loader, cfg.epochs, evaluate_all, run=run,
                           desc=f"cifar-mlp {cfg.recipe} seed {cfg.seed}",
                           history_path=run.out / "history.csv" if run.main else None,
                           wall_offset=setup_s)
    title = (f"pure MLP, recipe {cfg.recipe}: {cfg.widths}, {cfg.epochs} epochs, "
             f"seed {cfg.seed}")
    end = finish(run, evaluated, held, splits, history, "flip" if cfg.tta == "on" else "none",
                 title)
    return {**end, f"{ev}_acc_no_tta": history.last[f"{ev}_acc"],  # the last epoch's
            f"best_epoch_{ev}_acc": max(history.column(f"{ev}_acc")), "epochs": cfg.epochs,
            **run_facts(run, splits, model)}


def eval_run(run_dir: Path, cfg: Config, split: str, tta: str | None,
             data: str | None) -> dict:
    """``nnlab eval``: the saved model's loss and accuracy on ``split``, with ``tta``
    (default: the run's own, flip or none)."""
    cfg = cfg.resolved()
    tta = tta or ("flip" if cfg.tta == "on" else "none")
    loss, acc = evaluate_saved(run_dir, cfg, lambda: build_model(cfg), "model", "train",
                               split, tta, data)
    return {f"{split}_acc": acc, f"{split}_loss": loss, "tta": tta}


def plot_seeds(out_dir: Path, runs: list[dict]) -> None:
    """curves_seeds.png: every seed's validation (or test) accuracy and loss by epoch."""
    plot_seed_curves(sorted(Path(out_dir).glob("seed*/history.csv")),
                     out_dir / "curves_seeds.png", title="cifar-mlp, every seed")


def summarize(metrics: dict) -> str:
    name = "test" if "test_acc" in metrics else "val"
    return (f"{name}_acc {metrics[f'{name}_acc']:.4f} (without flip TTA "
            f"{metrics[f'{name}_acc_no_tta']:.4f}), train_acc {metrics['train_acc']:.4f}, "
            f"{metrics['epochs']} epochs in {metrics['wall_s']:.0f} s "
            f"({metrics['images_per_s']:.0f} images/s, {metrics['precision']} on "
            f"{metrics['device']})")
