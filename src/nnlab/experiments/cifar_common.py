"""What the CIFAR-10 experiments share: the data set-up (split or --final), evaluation with
flip test-time augmentation, and the figures of a finished run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from nnlab.config import option
from nnlab.data.cifar10 import Cifar, channel_stats, load_cifar10, stratified_split
from nnlab.device import DEVICES, PRECISIONS
from nnlab.engine import History
from nnlab.errors import ConfigError
from nnlab.plots import plot_confusion, plot_curves


@dataclass
class CifarOptions:
    """The flags every CIFAR experiment's Config has (its own fields come after these)."""

    data: str = option("", "CIFAR-10 source: torchvision root, image folder or .tar.gz "
                           "(default $NNLAB_DATA or ~/.cache/nnlab/cifar10)")
    val_size: int = option(5000, "validation images carved from train (stratified, fixed)")
    final: bool = option(False, "train on all of train, evaluate on the source's test split")
    device: str = option("auto", "cuda, then mps, then cpu", choices=DEVICES)
    precision: str = option("auto", "bf16 autocast or fp32; auto = bf16 on CUDA and on CPUs "
                                    "with native bf16", choices=PRECISIONS)
    seed: int = option(0, "seeds the weights, batch order and augmentation (not the split)")


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups: weight decay on weight matrices and kernels, none on
    biases and normalisation parameters (the usual practice); frozen parameters left out."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def make_ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (None when decay is
    0); call ``.update_parameters(model)`` after each step and evaluate ``.module``."""
    if decay <= 0:
        return None
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True)


@dataclass
class Splits:
    """x_*: (N, 3, 32, 32) uint8, y_*: (N,) int64. ``eval_name`` is 'val' or 'test'."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    eval_name: str
    classes: tuple[str, ...]
    mean: torch.Tensor  # (3,) of the training images, in [0, 1] units
    std: torch.Tensor


def make_splits(data_path: str, val_size: int, final: bool, seed: int = 0,
                limit: int | None = None) -> Splits:
    """Train and evaluation splits: a stratified validation split of train (fixed by ``seed``
    of the split, not of the run: every run sees the same validation images), or, with
    ``final``, all of train and the source's test split. ``limit`` keeps the first ``limit``
    training images of a class-balanced shuffle (quick runs)."""
    data: Cifar = load_cifar10(data_path or None)
    x, y = data.x_train, data.y_train
    if limit is not None and limit < len(y):
        keep, _ = stratified_split(y, len(y) - limit, seed=1)
        x, y = x[keep], y[keep]
    if final:
        if data.x_test is None:
            raise ConfigError(f"--final: {data.source} has no test split; evaluate on "
                              "validation (drop --final) or point --data at a source with one")
        xt, yt, xe, ye, name = x, y, data.x_test, data.y_test, "test"
    else:
        train_idx, val_idx = stratified_split(y, val_size, seed=0)
        xt, yt, xe, ye, name = x[train_idx], y[train_idx], x[val_idx], y[val_idx], "val"
    mean, std = channel_stats(xt)
    return Splits(xt, yt, xe, ye, name, data.classes, mean, std)


def limit_train(splits: Splits, n: int) -> Splits:
    """``splits`` with a class-balanced subset of n training images (fixed, seed 1); the
    held-out split and the normalisation statistics are unchanged, so results stay
    comparable with full-data runs."""
    if n >= len(splits.y_train):
        return splits
    keep, _ = stratified_split(splits.y_train, len(splits.y_train) - n, seed=1)
    return replace(splits, x_train=splits.x_train[keep], y_train=splits.y_train[keep])


TTA = ("none", "flip", "flip+translate")


@torch.no_grad()
def predict(model: nn.Module, batches, autocast, tta: str = "none"
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, classes) in fp32 and labels (N,) of a model in eval mode over ``batches``
    (x, y), averaged over the views ``tta`` names: the image; and its mirror ('flip'); and
    both shifted one pixel up-left and down-right ('flip+translate', six views in all)."""
    fmt = getattr(batches, "memory_format", torch.contiguous_format)
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for xb, yb in batches:
        views = [xb]
        if tta != "none":
            views.append(xb.flip(3))
        if tta == "flip+translate":
            pad = nn.functional.pad(xb, (1,) * 4, mode="reflect")
            shifted = [pad[:, :, :-2, :-2], pad[:, :, 2:, 2:]]
            views += shifted + [v.flip(3) for v in shifted]
        with autocast():
            out = sum(model(v.contiguous(memory_format=fmt)).float() for v in views)
        logits.append(out / len(views))
        labels.append(yb)
    model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def loss_acc(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (an exact fraction: 90 of 100 is 0.9, not 0.8999…)."""
    return (nn.functional.cross_entropy(logits, labels).item(),
            (logits.argmax(1) == labels).sum().item() / len(labels))


def confusion(logits: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes, n_classes) counts: row = true class, column = predicted class."""
    pred = logits.argmax(1)
    return torch.bincount(labels * n_classes + pred, minlength=n_classes ** 2).view(
        n_classes, n_classes).cpu()


def figures(history: History, logits: torch.Tensor, labels: torch.Tensor, splits: Splits,
            out_dir: Path, title: str, group: str = "run", suffix: str = "") -> None:
    """curves<suffix>.png (train vs val/test loss and accuracy by epoch) and
    confusion<suffix>.png."""
    plot_curves(history, out_dir / f"curves{suffix}.png", group=group,
                splits=("train", splits.eval_name), title=title)
    plot_confusion(confusion(logits, labels, len(splits.classes)).numpy(), splits.classes,
                   out_dir / f"confusion{suffix}.png",
                   title=f"{title}\n{splits.eval_name} ({len(labels)} images), "
                         f"accuracy {(logits.argmax(1) == labels).float().mean().item():.1%}")
