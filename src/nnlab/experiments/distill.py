"""Soft targets from a trained image classifier: knowledge distillation with a teacher.

``--teacher RUN_DIR`` (cifar-mlp) trains the network on a blend of each training image's
label and a finished run's predicted class probabilities for it, computed once before
training (the teacher sees each image and its mirror; a folder of several runs, such as a
run's seeds, is an ensemble: their probabilities are averaged). The teacher must not have
trained on the images the student is scored on: with a validation split, its accuracy on
them is measured and must match what its own run recorded for its held-out images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nnlab.engine.files import read_json
from nnlab.errors import ConfigError, NnlabError
from nnlab.vision import load_trained

BATCH = 500
_MADE: dict[tuple, tuple[torch.Tensor, dict[str, float]]] = {}  # the seeds of one command share
LEAK_TOLERANCE = 0.005  # a teacher scoring more than this above its own record saw the images


def teacher_folders(teacher: str | Path) -> list[Path]:
    """The folders of the finished runs a ``--teacher`` names: the run itself, or each
    folder in it that holds a model (a run's seeds, a benchmark's runs); one ConfigError when
    there is none."""
    root = Path(teacher)
    if not root.is_dir():
        raise ConfigError(f"--teacher {teacher}: no such folder; give a finished run's folder")
    folders = [root] if (root / "model.pt").is_file() else sorted(
        p.parent for p in root.glob("*/model.pt"))
    if not folders:
        raise ConfigError(f"--teacher {teacher}: no model.pt there or in its subfolders; "
                          "give a finished run's folder")
    return folders


def load_teacher(folder: Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any],
                                        dict[str, Any]]:
    """(network in eval mode, its data state, its Config as a dict, its metrics.json)."""
    try:
        trained = load_trained(folder, "model")
    except NnlabError as e:
        raise ConfigError(f"--teacher {folder}: {e}") from None
    metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else {}
    return trained.net, trained.data, dataclasses.asdict(trained.config), metrics


def _probabilities(net: nn.Module, data: dict[str, Any], x: torch.Tensor,
                   autocast: Callable, temperature: float, device: torch.device,
                   flip: bool = True) -> torch.Tensor:
    """(N, C) softmax(logits / temperature) of ``x`` (N, 3, S, S) uint8; with ``flip``
    the logits are averaged over the image and its mirror."""
    mean = data["mean"].to(device)[None, :, None, None]
    std = data["std"].to(device)[None, :, None, None]
    zca = data.get("zca")
    out = []
    with torch.no_grad():
        for i in range(0, len(x), BATCH):
            xb = (x[i:i + BATCH].to(device).float() / 255 - mean) / std
            if zca is not None:
                xb = (xb.flatten(1) @ zca.to(device)).view_as(xb)
            with autocast():
                logits = net(xb).float()
                if flip:
                    logits = (logits + net(xb.flip(3)).float()) / 2
            out.append(torch.softmax(logits / temperature, dim=1))
    return torch.cat(out)


def soft_targets(teacher: str, splits: Any, cfg: Any, device: torch.device,
                 autocast: Callable, weight: float, temperature: float
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """The training targets (N, C) float32, each row ``(1 - weight) * one_hot(label) +
    weight * p_teacher`` (rows sum to 1), and facts for the metrics: the teacher's accuracy
    (no TTA, its first seed) on the evaluation split and its top-1 agreement with the
    training labels. ``splits``: the student's (:class:`~nnlab.vision.Splits`);
    computed once per process for the same teacher, split and settings (a run's seeds)."""
    folders = teacher_folders(teacher)
    key = (tuple(str(f.resolve()) for f in folders), splits.eval_name, len(splits.y_train),
           int(splits.y_train.sum()), cfg.image_size, weight, temperature, str(device))
    if key not in _MADE:
        _MADE.clear()  # one teacher's targets at a time
        _MADE[key] = _soft_targets(teacher, folders, splits, cfg, device, autocast, weight,
                                   temperature)
    return _MADE[key]


def _soft_targets(teacher: str, folders: list[Path], splits: Any, cfg: Any,
                  device: torch.device, autocast: Callable, weight: float,
                  temperature: float) -> tuple[torch.Tensor, dict[str, float]]:
    probs, held_acc = 0.0, None
    for folder in folders:
        net, data, tcfg, metrics = load_teacher(folder)
        net = net.to(device)
        if tuple(data["classes"]) != tuple(splits.classes):
            raise ConfigError(f"--teacher {teacher}: its classes ({', '.join(data['classes'])}"
                              f") are not this data's ({', '.join(splits.classes)})")
        if tcfg.get("image_size", 32) != cfg.image_size:
            raise ConfigError(f"--teacher {teacher}: it was trained on {tcfg['image_size']}-"
                              f"pixel images, this run uses {cfg.image_size}")
        if splits.eval_name == "val":
            if tcfg.get("final"):
                raise ConfigError(f"--teacher {teacher}: it trained with --final, on this "
                                  "run's validation images; its targets would leak them "
                                  "(use a teacher trained without --final)")
            acc = (_probabilities(net, data, splits.x_eval, autocast, 1.0, device, flip=False)
                   .argmax(1).cpu() == splits.y_eval).float().mean().item()
            recorded = metrics.get("val_acc_no_tta", metrics.get("val_acc"))
            if recorded is None:
                raise ConfigError(f"--teacher {folder}: its metrics.json records no validation "
                                  "accuracy; give a finished run without --final")
            if acc > recorded + LEAK_TOLERANCE:
                raise ConfigError(
                    f"--teacher {folder}: it scores {acc:.1%} on this run's validation images "
                    f"but {recorded:.1%} on its own: it trained on some of them (another "
                    "--data, --val-size or --train-limit?), and its targets would leak them")
            held_acc = acc if held_acc is None else held_acc
        probs = probs + _probabilities(net, data, splits.x_train, autocast, temperature,
                                       device).cpu()
    probs = probs / len(folders)
    onehot = nn.functional.one_hot(splits.y_train, len(splits.classes)).float()
    facts = {"teacher_models": float(len(folders)),
             "teacher_train_agreement": (probs.argmax(1) == splits.y_train).float().mean()
             .item()}
    if held_acc is not None:
        facts[f"teacher_{splits.eval_name}_acc"] = held_acc
    return (1 - weight) * onehot + weight * probs, facts
