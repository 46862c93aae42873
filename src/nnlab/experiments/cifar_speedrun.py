"""A compact CNN and recipe for time-to-accuracy on CIFAR-10 (Part II, past the study).

Built from public descriptions of the fastest known CIFAR-10 trainings ("How to train your
ResNet", airbench): a frozen 2x2 patch-whitening first layer fitted to the training images'
patch covariance, three conv groups (convs Dirac-initialised) with BatchNorm whose scales
stay 1, Nesterov SGD with a linear warm-up and linear decay (lr scaled with the batch size,
BatchNorm shifts at 64x), label smoothing, flips that
alternate between epochs plus small translations, an optional EMA of the weights, and flip /
translate test-time augmentation. Each run records the time to every validation milestone.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from nnlab.config import check_choice, check_positive, option, parse_sizes, save_json
from nnlab.data.cifar10 import Loader, translate
from nnlab.device import autocast, resolve_device, resolve_precision
from nnlab.engine import distributed, train_epochs
from nnlab.errors import ConfigError
from nnlab.experiments.cifar_common import (
    TTA,
    CifarOptions,
    figures,
    limit_train,
    loss_acc,
    make_ema,
    make_splits,
    predict,
    weight_decay_groups,
)
from nnlab.models.cnn import SpeedrunNet
from nnlab.plots import plot_time_to_accuracy

MILESTONES = (0.80, 0.85, 0.90, 0.92, 0.93, 0.94)  # 80 and 85: for CPU-sized runs


@dataclass
class Config(CifarOptions):
    widths: str = option("64,256,256", "channels of the three conv groups")
    epochs: int = option(10, "passes over the training split")
    batch_size: int = option(1024, "images per step")
    lr: float = option(0.75, "peak learning rate for a batch of 512 (scaled linearly)")
    bias_lr_scale: float = option(64.0, "BatchNorm shifts learn this many times faster (their "
                                  "weight decay divided by it, so all decay alike per step)")
    momentum: float = option(0.85, "Nesterov momentum")
    weight_decay: float = option(5e-5, "weight decay (L2, as SGD's weight_decay)")
    warmup: float = option(0.2, "fraction of steps warming up linearly; then linear decay to 0")
    label_smoothing: float = option(0.2, "label smoothing of the cross-entropy")
    translate: int = option(2, "random translation up to this many pixels (reflect padding)")
    whiten_eps: float = option(5e-4, "eigenvalue floor of the patch whitening")
    ema: float = option(0.0, "decay of an EMA of the weights that is evaluated; 0 = off")
    tta: str = option("flip+translate", "test-time augmentation",
                      choices=TTA)
    channels_last: bool = option(True, "NHWC memory layout (faster convolutions on CPUs)")
    init: str = option("dirac", "conv init: dirac (identity filters first) or default "
                       "(PyTorch's)", choices=("dirac", "default"))
    train_limit: int = option(0, "train on a fixed class-balanced subset of this many images "
                              "(0 = all); validation unchanged. For quick pilots")
    quick: bool = option(False, "smoke run in seconds: 500 images, narrow network, 2 epochs")

    def __post_init__(self) -> None:
        for name in ("tta", "device", "precision", "init"):
            check_choice(self, name)
        check_positive(self, "epochs", "batch_size", "lr", "bias_lr_scale", "val_size",
                       "whiten_eps")
        parse_sizes(self.widths)
        for name in ("momentum", "warmup", "label_smoothing", "ema"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1), "
                                  f"got {getattr(self, name)}")
        if self.train_limit < 0:
            raise ConfigError(f"--train-limit must be 0 (all) or positive, got {self.train_limit}")
        if not 0 <= self.translate <= 16:
            raise ConfigError(f"--translate must be between 0 and 16, got {self.translate}")
        resolve_device(self.device)


def _batches(loader: Loader, flips: torch.Tensor, pixels: int, gen: torch.Generator):
    """Epoch e's batches: image i mirrored when flips[i] xor (e odd), so every image is
    seen both ways in two consecutive epochs; then translated up to ``pixels``."""
    def epoch_batches(epoch: int):
        n = len(loader.y)
        order = torch.randperm(n, generator=gen).to(loader.y.device)
        for i in range(len(loader)):
            idx = order[i * loader.batch_size:(i + 1) * loader.batch_size]
            idx = idx[loader.rank::loader.world_size]  # this process's share under torchrun
            xb = (loader.x[idx].float() - loader.mean) / loader.std
            mirror = flips[idx] ^ bool(epoch % 2)
            xb = torch.where(mirror[:, None, None, None], xb.flip(3), xb)
            xb = translate(xb, pixels, loader.aug_gen)
            yield xb.contiguous(memory_format=loader.memory_format), loader.y[idx]
    return epoch_batches


def milestone_times(rows, split: str = "val") -> dict[str, float | None]:
    """{'time_to_90_s': ..., ...}: the ``since_start_s`` of the first row (epoch) whose
    ``<split>_acc`` reached each of MILESTONES; None for a milestone never reached."""
    times: dict[str, float | None] = {}
    for m in MILESTONES:
        reached = [r["since_start_s"] for r in rows if r[f"{split}_acc"] >= m]
        times[f"time_to_{round(m * 100)}_s"] = reached[0] if reached else None
    return times


def run(config: Config, out_dir: str | Path, progress: bool | None = None) -> dict:
    """Train once; write config.json, history.csv, metrics.json (accuracy, wall_s, time to
    each milestone), model.pt, curves.png, confusion.png, time_to_accuracy.png."""
    cfg = config
    dist, device = distributed.setup(resolve_device(cfg.device))
    precision = resolve_precision(cfg.precision, device)
    t_data = time.perf_counter()
    splits = make_splits(cfg.data, min(cfg.val_size, 100) if cfg.quick else cfg.val_size,
                         cfg.final, limit=500 if cfg.quick else None)
    if cfg.train_limit:
        splits = limit_train(splits, cfg.train_limit)
    data_s = time.perf_counter() - t_data
    widths = (16, 32, 32) if cfg.quick else parse_sizes(cfg.widths)
    epochs = min(cfg.epochs, 2) if cfg.quick else cfg.epochs
    batch = min(cfg.batch_size, 128) if cfg.quick else cfg.batch_size
    out_dir = Path(out_dir)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_json(out_dir / "config.json", cfg)

    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    train = Loader(splits.x_train, splits.y_train, batch, splits.mean, splits.std,
                   shuffle=True, drop_last=True, seed=cfg.seed, device=device,
                   memory_format=fmt, rank=dist.rank, world_size=dist.world_size)
    held = Loader(splits.x_eval, splits.y_eval, 1000, splits.mean, splits.std, device=device,
                  memory_format=fmt)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()  # wall_s: whitening init + training + TTA evaluation
    model = SpeedrunNet(widths, len(splits.classes), dirac=cfg.init == "dirac").to(device)
    n_fit = min(5000, len(train.y))
    model.init_whitening(((train.x[:n_fit].float() - train.mean) / train.std), cfg.whiten_eps)
    model = model.to(memory_format=fmt)
    flips = (torch.rand(len(train.y), generator=gen) < 0.5).to(device)

    steps = epochs * len(train)
    lr = cfg.lr * batch / 512
    weights, shifts = weight_decay_groups(model, cfg.weight_decay)
    shifts.update(lr=lr * cfg.bias_lr_scale, weight_decay=cfg.weight_decay / cfg.bias_lr_scale)
    opt = torch.optim.SGD([weights, shifts], lr=lr, momentum=cfg.momentum, nesterov=True)
    warm = max(1, int(cfg.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / (steps - warm)))
    ema = make_ema(model, cfg.ema)
    evaluated = ema.module if ema is not None else model

    def amp():
        return autocast(device, precision)

    ev = splits.eval_name

    def evaluate_all() -> dict[str, float]:  # per epoch, without TTA: the milestone clock
        loss, acc = loss_acc(*predict(evaluated, held, amp, "none"))
        return {f"{ev}_loss": loss, f"{ev}_acc": acc, "since_start_s": time.perf_counter() - t0}

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), y,
                                           label_smoothing=cfg.label_smoothing)

    history = train_epochs(
        distributed.wrap(model, dist, device), opt, _batches(train, flips, cfg.translate, gen),
        epochs, evaluate_all,
        loss_fn=loss_fn, scheduler=sched, autocast=amp,
        after_step=(lambda: ema.update_parameters(model)) if ema is not None else None,
        desc=f"cifar-speedrun seed {cfg.seed}", progress=progress if dist.is_main else False,
        history_path=out_dir / "history.csv" if dist.is_main else None)
    logits, labels = predict(evaluated, held, amp, cfg.tta)
    wall_s = time.perf_counter() - t0
    loss, acc = loss_acc(logits, labels)

    metrics: dict = {f"{ev}_acc": acc, f"{ev}_loss": loss,
                     f"{ev}_acc_no_tta": history.last[f"{ev}_acc"],
                     "wall_s": wall_s, "data_s": data_s, "epochs": epochs,
                     "images_per_s": sum(history.column("images_per_s")) / len(history),
                     "n_params": sum(p.numel() for p in model.parameters()),
                     "n_train": len(train.y), f"n_{ev}": len(labels),
                     "device": device.type, "precision": precision,
                     "world_size": dist.world_size}
    metrics.update(milestone_times(history, ev))
    if not dist.is_main:
        return metrics
    save_json(out_dir / "metrics.json", metrics)
    torch.save({"model": evaluated.state_dict(), "config": asdict(cfg)}, out_dir / "model.pt")
    title = f"speedrun net {widths}, {epochs} epochs, batch {batch}, seed {cfg.seed}"
    figures(history, logits, labels, splits, out_dir, title)
    plot_time_to_accuracy([out_dir / "history.csv"], out_dir / "time_to_accuracy.png",
                          MILESTONES, title=title)
    return metrics


def plot_seeds(out_dir: Path, runs: list[dict]) -> None:
    """time_to_accuracy.png: every seed's held-out accuracy against minutes since start."""
    plot_time_to_accuracy(sorted(Path(out_dir).glob("seed*/history.csv")),
                          Path(out_dir) / "time_to_accuracy.png", MILESTONES,
                          title=f"cifar-speedrun, {len(runs)} seeds")


def summarize(metrics: dict) -> str:
    ev = "test" if "test_acc" in metrics else "val"
    percents = [round(m * 100) for m in MILESTONES]
    times = ", ".join(f"{p}%: {metrics[f'time_to_{p}_s']:.0f} s"
                      if metrics.get(f"time_to_{p}_s") is not None else f"{p}%: not reached"
                      for p in percents)
    return (f"{ev}_acc {metrics[f'{ev}_acc']:.4f} with TTA ({metrics[f'{ev}_acc_no_tta']:.4f} "
            f"without), {metrics['epochs']} epochs in {metrics['wall_s']:.0f} s "
            f"({metrics['images_per_s']:.0f} images/s, {metrics['precision']} on "
            f"{metrics['device']}); time to {times}")
