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
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from nnlab.config import check_choice, check_positive, option, parse_sizes, save_json
from nnlab.data.cifar10 import Augment, Loader, fit_zca
from nnlab.device import autocast, resolve_device, resolve_precision
from nnlab.engine import History, distributed, train_epochs
from nnlab.errors import ConfigError
from nnlab.experiments.cifar_common import (
    CifarOptions,
    figures,
    loss_acc,
    make_ema,
    make_splits,
    predict,
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
    quick: bool = option(False, "smoke run in seconds: 500 images, tiny network, 2 epochs")

    def __post_init__(self) -> None:
        for name in ("recipe", "device", "precision"):
            check_choice(self, name)
        resolve_device(self.device)  # an absent device is an error now, not after loading
        self.resolved()  # every bad value is caught here, before a run folder is made

    def resolved(self) -> Config:
        """A copy with every 'recipe' / -1 setting replaced by the recipe's value, checked."""
        recipe = RECIPES[self.recipe]
        cfg = copy.copy(self)  # a plain copy: no __post_init__, so no recursion
        for f in fields(self):
            if f.name in recipe and getattr(self, f.name) in (R, -1, -1.0):
                setattr(cfg, f.name, recipe[f.name])
        parse_sizes(cfg.widths)
        if cfg.quick:
            cfg.widths = "64,64" if cfg.block != "bottleneck" else "64"
            cfg.epochs, cfg.batch_size = min(cfg.epochs, 2), min(cfg.batch_size, 64)
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


def run(config: Config, out_dir: str | Path, progress: bool | None = None) -> dict:
    """Train one MLP; write config.json, history.csv, metrics.json, model.pt, curves.png
    and confusion.png in ``out_dir``; return the metrics (``val_acc`` or ``test_acc``)."""
    cfg = config.resolved()
    dist, device = distributed.setup(resolve_device(cfg.device))
    precision = resolve_precision(cfg.precision, device)
    t_data = time.perf_counter()  # the data first: a bad source leaves no run folder behind
    splits = make_splits(cfg.data, min(cfg.val_size, 100) if cfg.quick else cfg.val_size,
                         cfg.final, limit=500 if cfg.quick else None)
    data_s = time.perf_counter() - t_data
    out_dir = Path(out_dir)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_json(out_dir / "config.json", cfg)

    t0 = time.perf_counter()  # wall_s: whitening, training and evaluation; loading excluded
    torch.manual_seed(cfg.seed)
    zca = None
    if cfg.zca_eps > 0:
        xn = ((splits.x_train.float() / 255 - splits.mean[:, None, None])
              / splits.std[:, None, None]).flatten(1)
        zca = fit_zca(xn, cfg.zca_eps)
        del xn
    augment = Augment(flip=cfg.flip == "on", translate=cfg.translate, cutout=cfg.cutout)
    train = Loader(splits.x_train, splits.y_train, cfg.batch_size, splits.mean, splits.std,
                   shuffle=True, augment=augment, zca=zca, drop_last=True, seed=cfg.seed,
                   device=device, rank=dist.rank, world_size=dist.world_size)
    held = Loader(splits.x_eval, splits.y_eval, 1000, splits.mean, splits.std, zca=zca,
                  device=device)
    model = build_model(cfg, len(splits.classes)).to(device)
    steps = cfg.epochs * len(train)
    optimizer, scheduler = _optimizer(cfg, model, steps)
    ema = make_ema(model, cfg.ema)
    evaluated = ema.module if ema is not None else model

    def amp():
        return autocast(device, precision)

    def evaluate_all() -> dict[str, float]:  # per epoch: no TTA, to keep epochs cheap
        loss, acc = loss_acc(*predict(evaluated, held, amp, "none"))
        return {f"{splits.eval_name}_loss": loss, f"{splits.eval_name}_acc": acc}

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), y,
                                           label_smoothing=cfg.label_smoothing)

    history: History = train_epochs(
        distributed.wrap(model, dist, device), optimizer, lambda epoch: train, cfg.epochs,
        evaluate_all, loss_fn=loss_fn,
        scheduler=scheduler, autocast=amp,
        after_step=(lambda: ema.update_parameters(model)) if ema is not None else None,
        desc=f"cifar-mlp {cfg.recipe} seed {cfg.seed}",
        progress=progress if dist.is_main else False,
        history_path=out_dir / "history.csv" if dist.is_main else None)
    logits, labels = predict(evaluated, held, amp, "flip" if cfg.tta == "on" else "none")
    wall_s = time.perf_counter() - t0
    loss, acc = loss_acc(logits, labels)
    plain_acc = history.last[f"{splits.eval_name}_acc"]  # the last epoch's, without TTA

    name = splits.eval_name
    last = history.last
    metrics = {
        f"{name}_acc": acc, f"{name}_loss": loss, f"{name}_acc_no_tta": plain_acc,
        "train_acc": last["train_acc"], "train_loss": last["train_loss"],
        f"best_epoch_{name}_acc": max(history.column(f"{name}_acc")),
        "epochs": cfg.epochs, "wall_s": wall_s, "data_s": data_s,
        "images_per_s": sum(history.column("images_per_s")) / len(history),
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_train": len(splits.y_train), f"n_{name}": len(labels),
        "device": device.type, "precision": precision, "world_size": dist.world_size,
    }
    if not dist.is_main:
        return metrics
    save_json(out_dir / "metrics.json", metrics)
    torch.save({"model": evaluated.state_dict(), "config": asdict(cfg),
                "classes": splits.classes, "mean": splits.mean, "std": splits.std,
                "zca": zca}, out_dir / "model.pt")
    title = (f"pure MLP, recipe {cfg.recipe}: {cfg.widths}, {cfg.epochs} epochs, "
             f"seed {cfg.seed}")
    figures(history, logits, labels, splits, out_dir, title)
    return metrics


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
