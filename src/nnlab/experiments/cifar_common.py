"""What the CIFAR-10 experiments share: their common flags, the data set-up (split or
--final, a training subset), evaluation with test-time augmentation, the end of a run
(final evaluation, saved model, figures) and ``nnlab eval`` of a saved run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nnlab.config import Options, option, resolve, validate
from nnlab.data.cifar10 import Cifar, channel_stats, load_cifar10, stratified_split
from nnlab.device import DEVICES, PRECISIONS, resolve_device
from nnlab.engine import History
from nnlab.errors import ConfigError
from nnlab.plots import plot_confusion, plot_curves

TTA = ("none", "flip", "flip+translate")
TTA_VIEWS = {"none": 1, "flip": 2, "flip+translate": 6}  # forward passes per image (predict)
EVAL_BATCH = 1000  # images per forward pass when evaluating (training runs and nnlab eval)


@dataclass
class CifarOptions(Options):
    """The flags every CIFAR experiment's Config has (its own fields come after these).
    ``flip``, ``translate`` and ``tta`` default to None: each experiment's ``RECIPES`` say
    what runs (``--help`` prints it)."""

    data: str = option("", "CIFAR-10: a torchvision root, an image folder or a .tar.gz of one",
                       shown="$NNLAB_DATA, else ~/.cache/nnlab/cifar10, downloaded by "
                             "torchvision on a machine that is online", metavar="PATH")
    val_size: int = option(5000, "validation images carved from train (stratified, fixed)",
                           gt=0, lt=50_000)
    final: bool = option(False, "train on all of train, evaluate on the source's test split")
    device: str = option("auto", "cuda, then mps, then cpu", choices=DEVICES)
    precision: str = option("auto", "bf16 autocast or fp32; auto = bf16 on CUDA and on CPUs "
                                    "with native bf16", choices=PRECISIONS)
    seed: int = option(0, "seeds the weights, batch order and augmentation (not the split)")
    train_limit: int = option(0, "train on a fixed class-balanced subset of this many images "
                              "(0 = all); validation unchanged. For quick pilots", ge=0)
    flip: bool | None = option(None, "random horizontal flips of the training images")
    translate: int | None = option(None, "random translation of the training images up to "
                                         "this many pixels (reflect padding)", ge=0, le=16)
    tta: str | None = option(None, "test-time augmentation of the final evaluation: none; "
                                   "flip (each image and its mirror); flip+translate (six "
                                   "views)", choices=TTA)
    image_size: int = option(32, "pixels a side every image is resized to when read (bicubic, "
                             "antialiased, as nnlab predict resizes); CIFAR-10's are 32",
                             ge=8, le=256)

    def check_common(self) -> None:
        validate(self)
        resolve_device(self.device)  # an absent device is an error now, not after loading

    def resolved(self):  # noqa: ANN201 - the subclass's Config
        """A copy with every None replaced by the recipe's value (see RECIPES)."""
        return resolve(self)


# --quick: defaults every CIFAR experiment takes first (a flag you give still wins)
QUICK = {"val_size": 100, "train_limit": 400}


def held_out(cfg: CifarOptions) -> str:
    """The split a CIFAR run reports: validation, or the source's test split with --final."""
    return "test" if cfg.final else "val"


def cifar_experiment(layout: Callable[[Any], torch.memory_format] | None = None,
                     **parts: Any):  # noqa: ANN201 - an Experiment
    """The record of a CIFAR experiment: CIFAR-10 data, a device and precision, its held-out
    split from --final, recipes resolved before the run folder records them, and, given
    ``build_model``, ``nnlab eval`` of its ``model.pt`` (:func:`evaluation`, in ``layout``)
    unless ``evaluate`` says otherwise."""
    from nnlab.experiments import Experiment

    if parts.get("build_model") is not None and "evaluate" not in parts:
        parts["evaluate"] = evaluation(parts["build_model"], layout)
    return Experiment(needs_cifar=True, held_out=held_out,
                      resolve=CifarOptions.resolved, **parts)


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
    """x_*: (N, 3, S, S) uint8, y_*: (N,) int64. ``eval_name`` is 'val' or 'test'."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    eval_name: str
    classes: tuple[str, ...]
    mean: torch.Tensor  # (3,) of the training images, in [0, 1] units
    std: torch.Tensor


def make_splits(data_path: str, val_size: int, final: bool, image_size: int = 32) -> Splits:
    """Train and evaluation splits: a stratified validation split of train (fixed: every
    run sees the same validation images), or, with ``final``, all of train and the source's
    test split; every image ``image_size`` pixels a side."""
    data: Cifar = load_cifar10(data_path or None, image_size=image_size)
    x, y = data.x_train, data.y_train
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


def setup(cfg: CifarOptions, run) -> Splits:
    """The splits a run trains and evaluates on (``--train-limit`` applied); the
    normalisation statistics and class names go into the run's data state (checkpoints and
    the saved model), for ``nnlab eval``."""
    t = time.perf_counter()
    splits = make_splits(cfg.data, cfg.val_size, cfg.final, cfg.image_size)
    if cfg.train_limit:
        splits = limit_train(splits, cfg.train_limit)
    run.fitted("mean", lambda: splits.mean)
    run.fitted("std", lambda: splits.std)
    run.fitted("classes", lambda: splits.classes)
    run.fitted("image_size", lambda: cfg.image_size)  # what predict resizes images to
    run.record(classes=list(splits.classes))  # config.json names them too
    run.fitted("data_s", lambda: time.perf_counter() - t)
    return splits


@torch.no_grad()
def predict(model: nn.Module, batches, autocast, tta: str = "none",
            untranslated: float = 1 / 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, classes) in fp32 and labels (N,) of a model in eval mode over ``batches``
    (x, y), averaged over the views ``tta`` names: the image; and its mirror ('flip'); and
    both shifted one pixel up-left and down-right ('flip+translate', six views in all).
    With 'flip+translate' the untranslated pair weighs ``untranslated`` and each shifted pair
    half the rest (1/3: all six views alike)."""
    fmt = getattr(batches, "memory_format", torch.contiguous_format)
    was_training = model.training
    model.eval()
    logits, labels = [], []

    def mean_logits(views: list[torch.Tensor]) -> torch.Tensor:
        with autocast():
            out = sum(model(v.contiguous(memory_format=fmt)).float() for v in views)
        return out / len(views)

    for xb, yb in batches:
        views = [xb, xb.flip(3)] if tta != "none" else [xb]
        out = mean_logits(views)
        if tta == "flip+translate":
            pad = nn.functional.pad(xb, (1,) * 4, mode="reflect")
            shifted = [pad[:, :, :-2, :-2], pad[:, :, 2:, 2:]]
            out = (untranslated * out
                   + (1 - untranslated) * mean_logits(shifted + [v.flip(3) for v in shifted]))
        logits.append(out)
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


def finish(run, model: nn.Module, held, splits: Splits, history: History, tta: str,
           title: str, suffix: str = "", group: str = "run",
           tta_untranslated: float = 1 / 3) -> dict[str, Any]:
    """The end of a CIFAR run: the final evaluation with ``tta`` on the held-out split, the
    saved model ``model<suffix>.pt``, ``curves<suffix>.png`` and ``confusion<suffix>.png``.

    Returns the metrics every CIFAR experiment reports, under the same names:
    ``train_acc``/``train_loss`` (the last epoch's), ``<split>_acc``/``<split>_loss`` (final
    weights, with ``tta``), the same without TTA as ``<split>_acc_no_tta`` and
    ``<split>_loss_no_tta``, ``tta``, ``epochs``, ``wall_s`` and ``images_per_s``; on the
    validation split also ``best_val_acc`` with its ``best_epoch`` and ``min_val_loss`` with
    its ``min_val_loss_epoch`` (where overfitting starts). Nothing is selected on the test
    split."""
    t = time.perf_counter()
    logits, labels = predict(model, held, run.autocast, tta, tta_untranslated)
    loss, acc = loss_acc(logits, labels)
    ev = splits.eval_name
    if run.stopped_by_budget:  # the figures say what ran, not what was planned
        title += f"\nstopped by the time budget after {plural(len(history), 'epoch')}"
    run.save_model(f"model{suffix}", model.state_dict())
    if run.main:
        figures(history, logits, labels, splits, run.out, title,
                group=group, suffix=suffix)
    last = history.last  # the last epoch's evaluation: the final weights, without TTA
    metrics: dict[str, Any] = {
        "train_acc": last["train_acc"], "train_loss": last["train_loss"],
        f"{ev}_acc": acc, f"{ev}_loss": loss,
        f"{ev}_acc_no_tta": last[f"{ev}_acc"], f"{ev}_loss_no_tta": last[f"{ev}_loss"],
        "tta": tta, "epochs": len(history),
        "wall_s": last["wall_s"] + time.perf_counter() - t,
        "images_per_s": sum(history.column("images_per_s")) / len(history)}
    if ev == "val":
        best_epoch, best_val_acc = history.best("val_acc")
        low_epoch, min_val_loss = history.best("val_loss", lowest=True)
        metrics.update(best_val_acc=best_val_acc, best_epoch=best_epoch,
                       min_val_loss=min_val_loss, min_val_loss_epoch=low_epoch)
    return metrics


def smoothed_cross_entropy(label_smoothing: float = 0.0
                           ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss: cross-entropy in fp32 with ``label_smoothing``."""
    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    return loss_fn


def run_facts(run, splits: Splits, model: nn.Module) -> dict[str, Any]:
    """Sizes and where it ran: the same keys in every CIFAR experiment's metrics."""
    ev = splits.eval_name
    return {"n_params": sum(p.numel() for p in model.parameters()),
            "n_train": len(splits.y_train), f"n_{ev}": len(splits.y_eval),
            "data_s": run.data["data_s"], "device": run.device.type,
            "precision": run.precision, "world_size": run.dist.world_size}


def check_batches(loader, batch_size: int) -> None:
    """A training loader that drops its last partial batch must still have one batch."""
    if len(loader) == 0:
        raise ConfigError(f"--batch-size {batch_size} is more than the {len(loader.y)} "
                          "training images; lower it (or raise --train-limit)")


def plural(n: int, word: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def cifar_summary(m: dict[str, Any], facts: dict[str, Any] | None = None) -> str:
    """One line from a CIFAR run's metrics (``facts``: where device and precision are, when
    not in ``m``)."""
    facts = facts or m
    ev = "test" if "test_acc" in m else "val"
    tta = m.get("tta", "none")
    line = f"{ev}_acc {m[f'{ev}_acc']:.4f}"
    if tta != "none":
        line += f" with {tta} TTA ({m[f'{ev}_acc_no_tta']:.4f} without)"
    if "best_val_acc" in m:
        line += f", best {m['best_val_acc']:.4f} at epoch {m['best_epoch']}"
    return (f"{line}, train_acc {m['train_acc']:.4f}, {plural(m['epochs'], 'epoch')} in "
            f"{m['wall_s']:.0f} s ({m['images_per_s']:.0f} images/s, {facts['precision']} on "
            f"{facts['device']})")


# --------------------------------------------------------------------------- nnlab eval


def evaluate_saved(run_dir: Path, cfg: CifarOptions, build: Callable[[int], nn.Module],
                   name: str, phase: str, split: str, tta: str, data: str | None,
                   memory_format: torch.memory_format = torch.contiguous_format
                   ) -> tuple[float, float]:
    """Loss and accuracy of a saved CIFAR model on ``split`` ('val' or 'test') with ``tta``;
    the data as the run saw it (its normalisation, and its ZCA when it had one).
    ``build(n_classes)`` makes the untrained network for the run's classes."""
    from nnlab.data.cifar10 import Loader
    from nnlab.device import autocast, resolve_precision
    from nnlab.engine.checkpoint import check_image_state, load_weights, saved_model

    if split == "val" and cfg.final:
        raise ConfigError("this run trained on all of train (--final): evaluate it with "
                          "--split test")
    weights, state = saved_model(run_dir, name, phase)
    check_image_state(state, run_dir)
    device = resolve_device("auto")
    precision = resolve_precision(cfg.precision, device)
    splits = make_splits(data or cfg.data, cfg.val_size, final=split == "test",
                         image_size=cfg.image_size)
    model = load_weights(lambda: build(len(state["classes"])), weights, run_dir)
    model.to(device, memory_format=memory_format)
    held = Loader(splits.x_eval, splits.y_eval, EVAL_BATCH, state["mean"], state["std"],
                  zca=state.get("zca"), device=device, memory_format=memory_format)
    logits, labels = predict(model, held, lambda: autocast(device, precision), tta,
                             getattr(cfg, "tta_untranslated", 1 / 3))
    return loss_acc(logits, labels)


def evaluation(build: Callable[[Any, int], nn.Module],
               layout: Callable[[Any], torch.memory_format] | None = None
               ) -> Callable[..., dict]:
    """The ``evaluate`` part of the record of a CIFAR experiment that saves one ``model.pt``:
    ``build(config, n_classes)`` makes the untrained network, ``layout(config)`` its memory
    format.
    Scores the saved model on ``split`` with ``tta`` (default: the run's own)."""
    def evaluate(run_dir: Path, cfg: CifarOptions, split: str, tta: str | None,
                 data: str | None) -> dict:
        tta = tta or cfg.tta
        fmt = layout(cfg) if layout is not None else torch.contiguous_format
        loss, acc = evaluate_saved(run_dir, cfg, lambda n: build(cfg, n), "model", "train",
                                   split, tta, data, fmt)
        return {f"{split}_acc": acc, f"{split}_loss": loss, "tta": tta}
    return evaluate
