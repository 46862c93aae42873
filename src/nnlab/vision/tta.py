"""Scoring a classifier: logits over batches with test-time augmentation, loss, accuracy and
the confusion matrix."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

import torch
from torch import nn


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
            autocast: Callable[[], AbstractContextManager], tta: str = "none",
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
