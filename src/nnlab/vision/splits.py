"""The images a run trains and is scored on: a stratified validation split carved from the
source's training images (or, with ``--final``, all of them and the source's test split),
a class-balanced training subset for pilots, and :func:`setup`, which makes them for a run
and keeps what ``nnlab eval`` needs of them in its data state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from nnlab.data.cifar10 import Cifar, channel_stats, fingerprint, load_cifar10, stratified_split
from nnlab.errors import ConfigError


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
    source: dict = field(default_factory=dict)  # the data's path, size and file-list hash


VAL_FRACTION, VAL_MOST = 10, 5000


def default_val_size(n_train: int) -> int:
    """``--val-size 0``: a tenth of the training images, at most 5,000 (CIFAR-10's 50,000:
    5,000, the split every documented CIFAR result used)."""
    return min(VAL_MOST, n_train // VAL_FRACTION)


def make_splits(data_path: str, val_size: int, final: bool, image_size: int = 32,
                asked: str = "--final") -> Splits:
    """Train and evaluation splits: a stratified validation split of train (fixed: every
    run sees the same validation images; ``val_size`` 0: :func:`default_val_size`), or,
    with ``final``, all of train and the source's test split; every image ``image_size``
    pixels a side. ``asked``: the flag that asked for the test split, for the message when
    there is none."""
    data: Cifar = load_cifar10(data_path or None, image_size=image_size)
    x, y = data.x_train, data.y_train
    if final:
        if data.x_test is None:
            drop = "--split val" if asked != "--final" else "drop --final"
            raise ConfigError(f"{asked}: {data.source} has no test split; evaluate on "
                              f"validation ({drop}) or point --data at a source with one")
        xt, yt, xe, ye, name = x, y, data.x_test, data.y_test, "test"
    else:
        train_idx, val_idx = stratified_split(y, val_size or default_val_size(len(y)), seed=0)
        xt, yt, xe, ye, name = x[train_idx], y[train_idx], x[val_idx], y[val_idx], "val"
    mean, std = channel_stats(xt)
    return Splits(xt, yt, xe, ye, name, data.classes, mean, std, fingerprint(data_path, data))


def limit_train(splits: Splits, n: int) -> Splits:
    """``splits`` with a class-balanced subset of n training images (fixed, seed 1); the
    held-out split and the normalisation statistics are unchanged, so results stay
    comparable with full-data runs."""
    if n >= len(splits.y_train):
        return splits
    keep, _ = stratified_split(splits.y_train, len(splits.y_train) - n, seed=1)
    return replace(splits, x_train=splits.x_train[keep], y_train=splits.y_train[keep])


def setup(cfg: Any, run: Any) -> Splits:
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
    run.record(classes=list(splits.classes), data_source=splits.source)  # config.json too
    run.fitted("data_s", lambda: time.perf_counter() - t)
    return splits
