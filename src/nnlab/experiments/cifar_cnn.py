"""The study's reduced VGG on CIFAR-10, trained with Adam and with SGD (Part II).

The study's setting is the default: 100 epochs, batch 64, Adam lr 1e-3 or SGD lr 1e-2 with no
momentum, no augmentation, no schedule. ``--optimizer both`` trains Adam, then SGD, from the
same initial weights and draws them on shared axes. Augmentation (flips, translations), SGD
momentum, a cosine schedule and dropout are flags for the improved setting.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from nnlab.config import check_choice, check_positive, option, save_json
from nnlab.data.cifar10 import Augment, Loader
from nnlab.device import autocast, resolve_device, resolve_precision
from nnlab.engine import History, distributed, train_epochs
from nnlab.errors import ConfigError
from nnlab.experiments.cifar_common import CifarOptions, figures, loss_acc, make_splits, predict
from nnlab.models.cnn import VGGReduced
from nnlab.plots import plot_curves

STUDY_LR = {"adam": 1e-3, "sgd": 1e-2}


@dataclass
class Config(CifarOptions):
    optimizer: str = option("both", "adam, sgd, or both from the same initial weights",
                            choices=("adam", "sgd", "both"))
    epochs: int = option(100, "passes over the training split (the study: 100)")
    batch_size: int = option(64, "images per step (the study: 64)")
    lr: float = option(-1.0, "learning rate; -1 = the study's (adam 1e-3, sgd 1e-2)")
    momentum: float = option(0.0, "SGD momentum (the study: 0)")
    weight_decay: float = option(0.0, "weight decay (L2, as torch.optim adds it)")
    schedule: str = option("constant", "learning-rate schedule, stepped every batch",
                           choices=("constant", "cosine"))
    dropout: float = option(0.0, "dropout before each Linear (the study's listing: none)")
    flip: bool = option(False, "random horizontal flips")
    translate: int = option(0, "random translation up to this many pixels (reflect padding)")
    tta: bool = option(False, "average logits over each image and its mirror image at eval")
    channels_last: bool = option(True, "NHWC memory layout (faster convolutions on CPUs)")
    quick: bool = option(False, "smoke run in seconds: 500 images, 2 epochs")

    def __post_init__(self) -> None:
        for name in ("optimizer", "schedule", "device", "precision"):
            check_choice(self, name)
        check_positive(self, "epochs", "batch_size", "val_size")
        if self.lr != -1.0 and not self.lr > 0:
            raise ConfigError(f"--lr must be > 0 (or -1 for the study's), got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.translate <= 16:
            raise ConfigError(f"--translate must be between 0 and 16, got {self.translate}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        resolve_device(self.device)


def run(config: Config, out_dir: str | Path, progress: bool | None = None) -> dict:
    """Train VGGReduced with each optimizer asked for; write config.json, history-<opt>.csv
    (written every epoch while it trains), history.csv (a row per optimizer and epoch),
    metrics.json (one block per optimizer), model-<opt>.pt, curves-<opt>.png,
    confusion-<opt>.png and, for both, curves.png on shared axes."""
    cfg = config
    dist, device = distributed.setup(resolve_device(cfg.device))
    precision = resolve_precision(cfg.precision, device)
    splits = make_splits(cfg.data, min(cfg.val_size, 100) if cfg.quick else cfg.val_size,
                         cfg.final, limit=500 if cfg.quick else None)
    epochs = min(cfg.epochs, 2) if cfg.quick else cfg.epochs
    out_dir = Path(out_dir)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_json(out_dir / "config.json", cfg)

    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    augment = (Augment(flip=cfg.flip, translate=cfg.translate)
               if cfg.flip or cfg.translate else None)
    held = Loader(splits.x_eval, splits.y_eval, 500, splits.mean, splits.std, device=device,
                  memory_format=fmt)
    torch.manual_seed(cfg.seed)
    initial = VGGReduced(3, len(splits.classes), cfg.dropout)  # shared by both optimizers
    names = ("adam", "sgd") if cfg.optimizer == "both" else (cfg.optimizer,)
    history, metrics = History(), {}
    ev = splits.eval_name
    for name in names:
        model = copy.deepcopy(initial).to(device, memory_format=fmt)
        lr = STUDY_LR[name] if cfg.lr == -1.0 else cfg.lr
        if name == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum,
                                  weight_decay=cfg.weight_decay)
        train = Loader(splits.x_train, splits.y_train, cfg.batch_size, splits.mean,
                       splits.std, shuffle=True, augment=augment, seed=cfg.seed,
                       device=device, memory_format=fmt, rank=dist.rank,
                       world_size=dist.world_size)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(train))
                 if cfg.schedule == "cosine" else None)

        def amp():
            return autocast(device, precision)

        def evaluate_all(model: nn.Module = model) -> dict[str, float]:
            loss, acc = loss_acc(*predict(model, held, amp, "none"))
            return {f"{ev}_loss": loss, f"{ev}_acc": acc}

        t0 = time.perf_counter()
        h = train_epochs(distributed.wrap(model, dist, device), opt,
                         lambda epoch, train=train: train, epochs, evaluate_all,
                         scheduler=sched, autocast=amp, desc=f"cifar-cnn {name}",
                         progress=progress if dist.is_main else False,
                         tags={"optimizer": name},  # saved every epoch: long runs
                         history_path=out_dir / f"history-{name}.csv" if dist.is_main else None)
        logits, labels = predict(model, held, amp, "flip" if cfg.tta else "none")
        wall_s = time.perf_counter() - t0
        history.extend(h)
        accs = h.column(f"{ev}_acc")
        best = max(range(len(accs)), key=accs.__getitem__)
        loss, acc = loss_acc(logits, labels)
        metrics[name] = {
            f"final_{ev}_acc": acc, f"final_{ev}_loss": loss, f"best_{ev}_acc": accs[best],
            "best_epoch": best + 1, "train_acc": h.last["train_acc"], "epochs": epochs,
            "wall_s": wall_s,
            "images_per_s": sum(h.column("images_per_s")) / len(h),
        }
        if not dist.is_main:
            continue
        history.to_csv(out_dir / "history.csv")
        torch.save({"model": model.state_dict(), "config": asdict(cfg)},
                   out_dir / f"model-{name}.pt")
        sub = History([r for r in history if r["optimizer"] == name])
        figures(sub, logits, labels, splits, out_dir,
                f"VGGReduced, {name} lr {lr:g}, batch {cfg.batch_size}, {epochs} epochs",
                group="optimizer", suffix=f"-{name}")
    metrics.update(precision=precision, device=device.type,
                   n_params=sum(p.numel() for p in initial.parameters()),
                   n_train=len(splits.y_train), **{f"n_{ev}": len(splits.y_eval)},
                   world_size=dist.world_size)
    if not dist.is_main:
        return metrics
    save_json(out_dir / "metrics.json", metrics)
    if len(names) > 1:
        plot_curves(history, out_dir / "curves.png", group="optimizer", splits=("train", ev),
                    title=f"VGGReduced: Adam vs SGD from the same initial weights "
                          f"(batch {cfg.batch_size})")
    return metrics


def summarize(metrics: dict) -> str:
    ev = "test" if "n_test" in metrics else "val"
    lines = []
    for name in ("adam", "sgd"):
        if name in metrics:
            m = metrics[name]
            lines.append(f"{name}: final {ev}_acc {m[f'final_{ev}_acc']:.4f}, best "
                         f"{m[f'best_{ev}_acc']:.4f} at epoch {m['best_epoch']}, "
                         f"{m['epochs']} epochs in {m['wall_s']:.0f} s "
                         f"({m['images_per_s']:.0f} images/s)")
    return "\n".join(lines)
