"""fit / evaluate: epochs of mini-batches, a per-epoch history, a progress bar, a NaN guard.

One epoch driver (:func:`run_epochs`) serves both implementations; :func:`fit` trains a torch
``nn.Module`` and :func:`fit_numpy` the from-scratch NumPy MLP, each supplying only what one
epoch of training and one evaluation mean for it. Data is passed whole, in memory; an epoch
is a permutation sliced into batches.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nnlab.engine.history import History
from nnlab.errors import TrainingDiverged
from nnlab.numpy_nn.modules import CrossEntropy

EvalSets = Mapping[str, tuple]  # name -> (x, y), e.g. {"test": (x_test, y_test)}


def run_epochs(
    train_epoch: Callable[[int], tuple[float, float]],
    evaluate_all: Callable[[], dict[str, float]],
    epochs: int,
    desc: str = "train",
    progress: bool | None = None,
    tags: Mapping[str, str] | None = None,
    history_path: str | Path | None = None,
) -> History:
    """Call ``train_epoch(epoch) -> (mean loss, accuracy)`` then ``evaluate_all()`` per epoch.

    Each history row: the tags, ``epoch`` (from 1), ``train_loss``, ``train_acc`` (running
    means over the epoch's batches), the evaluation's metrics and ``wall_s`` (cumulative seconds
    of training and evaluation); saved to ``history_path`` after every epoch when given.
    ``progress=None`` shows the bar only on a terminal.
    Raises TrainingDiverged, naming the epoch, if the training loss is NaN or infinite.
    """
    history = History()
    t0 = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc=desc, leave=False, dynamic_ncols=True,
               disable=None if progress is None else not progress)  # None: only on a tty
    for epoch in bar:
        loss, acc = train_epoch(epoch)
        if not math.isfinite(loss):
            bar.close()
            raise TrainingDiverged(
                f"{desc}: training loss became {loss} at epoch {epoch}; try a lower learning rate"
            )
        metrics = evaluate_all()
        row = {**(tags or {}), "epoch": epoch, "train_loss": loss, "train_acc": acc, **metrics,
               "wall_s": time.perf_counter() - t0}
        history.log(**row)
        if history_path is not None:
            history.to_csv(history_path)
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.endswith(("loss", "acc"))},
                        refresh=False)
    bar.close()
    return history


# --------------------------------------------------------------------------- PyTorch


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096,
    loss_fn: Callable | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on x (N, ...) with labels y (N,), in eval mode."""
    loss_fn = loss_fn or nn.functional.cross_entropy
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=y.device)
    correct = torch.zeros((), device=y.device, dtype=torch.long)
    for i in range(0, len(y), batch_size):
        logits = model(x[i:i + batch_size])
        yb = y[i:i + batch_size]
        loss_sum += loss_fn(logits, yb, reduction="sum").float()
        correct += (logits.argmax(dim=1) == yb).sum()
    model.train(was_training)
    return loss_sum.item() / len(y), correct.item() / len(y)


def train_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    epochs: int,
    evaluate_all: Callable[[], dict[str, float]] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    after_step: Callable[[], None] | None = None,
    desc: str = "torch",
    progress: bool | None = None,
    tags: Mapping[str, str] | None = None,
    history_path: str | Path | None = None,
) -> History:
    """Train ``model`` for ``epochs`` on the batches of ``batches(epoch)`` (x, y).

    Per batch: forward (inside ``autocast()`` when given), ``loss_fn(logits, y)`` (default
    cross-entropy), backward, ``optimizer.step()``, then ``scheduler.step()`` (a per-step
    schedule) and ``after_step()`` (e.g. an EMA update). Per epoch a history row as in
    :func:`run_epochs`, plus ``lr`` (at the epoch's end) and ``images_per_s`` (training
    throughput, evaluation excluded); with ``history_path`` the history is saved every epoch.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    autocast = autocast or contextlib.nullcontext
    extra: dict[str, float] = {}

    def train_epoch(epoch: int) -> tuple[float, float]:
        model.train()
        t0 = time.perf_counter()
        loss_sum = correct = None
        n = 0
        for xb, yb in batches(epoch):
            with autocast():
                logits = model(xb)
                loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step()
            # Sums stay on the device: one sync per epoch, not one per batch.
            batch_loss = loss.detach().float() * len(yb)
            batch_correct = (logits.detach().argmax(dim=1) == yb).sum()
            loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
            correct = batch_correct if correct is None else correct + batch_correct
            n += len(yb)
        if n == 0:
            return float("nan"), float("nan")
        loss_value, acc = loss_sum.item() / n, correct.item() / n
        extra["lr"] = optimizer.param_groups[0]["lr"]
        extra["images_per_s"] = n / (time.perf_counter() - t0)
        return loss_value, acc

    def evaluate_with_extra() -> dict[str, float]:
        return {**extra, **(evaluate_all() if evaluate_all is not None else {})}

    return run_epochs(train_epoch, evaluate_with_extra, epochs, desc, progress, tags,
                      history_path)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int,
    eval_sets: EvalSets | None = None,
    seed: int = 0,
    desc: str = "torch",
    progress: bool | None = None,
    tags: Mapping[str, str] | None = None,
) -> History:
    """Train ``model`` with cross-entropy on (x, y) for ``epochs``; evaluate on ``eval_sets``.

    x: (N, ...) float tensor, y: (N,) int64 class labels, both on the model's device.
    Batch order comes from a torch.Generator seeded with ``seed``; a batch size >= N is full
    batch. Returns the History (see :func:`train_epochs`).
    """
    n = len(y)
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(n, generator=gen).to(y.device)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            yield x[idx], y[idx]

    def evaluate_all() -> dict[str, float]:
        out = {}
        for name, (xe, ye) in (eval_sets or {}).items():
            out[f"{name}_loss"], out[f"{name}_acc"] = evaluate(model, xe, ye)
        return out

    return train_epochs(model, optimizer, batches, epochs, evaluate_all, desc=desc,
                        progress=progress, tags=tags)


# --------------------------------------------------------------------------- NumPy


def evaluate_numpy(
    model, x: np.ndarray, y: np.ndarray, batch_size: int = 4096
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a NumPy MLP on x (N, D) with labels y (N,)."""
    ce = CrossEntropy()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        probs = model.forward(x[i:i + batch_size])
        yb = y[i:i + batch_size]
        loss_sum += ce.forward(probs, yb) * len(yb)
        correct += int((probs.argmax(axis=1) == yb).sum())
    return loss_sum / len(y), correct / len(y)


def fit_numpy(
    model,
    optimizer,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    eval_sets: EvalSets | None = None,
    seed: int = 0,
    desc: str = "numpy",
    progress: bool | None = None,
    tags: Mapping[str, str] | None = None,
) -> History:
    """:func:`fit` for the from-scratch MLP: ``model.forward`` gives probabilities,
    ``model.backward(dL/dprobs)`` fills the grads, ``optimizer.step()`` applies them.

    x: (N, D) float array, y: (N,) int labels.
    """
    n = len(y)
    rng = np.random.default_rng(seed)
    ce = CrossEntropy()

    def train_epoch(epoch: int) -> tuple[float, float]:
        perm = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            probs = model.forward(xb)
            loss = ce.forward(probs, yb)
            model.backward(ce.backward())
            optimizer.step()
            loss_sum += loss * len(idx)
            correct += int((probs.argmax(axis=1) == yb).sum())
        return loss_sum / n, correct / n

    def evaluate_all() -> dict[str, float]:
        out = {}
        for name, (xe, ye) in (eval_sets or {}).items():
            out[f"{name}_loss"], out[f"{name}_acc"] = evaluate_numpy(model, xe, ye)
        return out

    return run_epochs(train_epoch, evaluate_all, epochs, desc, progress, tags)


# --------------------------------------------------------------------------- step-based


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    eval_every: int,
    evaluate_all: Callable[[], dict[str, float]],
    on_eval: Callable[[dict], bool] | None = None,
    clip_norm: float | None = None,
    desc: str = "train",
    progress: bool | None = None,
    time_limit_s: float | None = None,
    history_path: str | Path | None = None,
) -> History:
    """Train for up to ``steps`` steps on batches from ``next_batch(step)`` (x, y), with
    cross-entropy; every ``eval_every`` steps log a row and call ``on_eval(row)``, which may
    return True to stop early (or stop when ``time_limit_s`` has passed).

    Row: ``step``, ``train_loss`` and ``train_acc`` (means over the interval's batches),
    the evaluation's metrics, ``wall_s``; with ``history_path`` the history is saved there at
    every evaluation, so a long run can be watched (and survives an interrupt). Gradients are
    clipped to ``clip_norm`` (global L2 norm, after backward, before the step) when given.
    Raises TrainingDiverged on NaN/inf loss.
    """
    history = History()
    t0 = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(range(1, steps + 1), desc=desc, leave=False, dynamic_ncols=True,
               disable=None if progress is None else not progress)
    for step in bar:
        model.train()
        x, y = next_batch(step)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm:
            nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += int((logits.detach().argmax(dim=1) == y).sum())
        seen += len(y)
        if not math.isfinite(loss_sum):
            bar.close()
            raise TrainingDiverged(f"{desc}: training loss became {loss.item()} at step {step}; "
                                   "try a lower learning rate or gradient clipping")
        out_of_time = time_limit_s is not None and time.perf_counter() - t0 > time_limit_s
        if step % eval_every == 0 or step == steps or out_of_time:
            row = {"step": step, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                   **evaluate_all(), "wall_s": time.perf_counter() - t0}
            history.log(**row)
            if history_path is not None:
                history.to_csv(history_path)
            bar.set_postfix({k: f"{v:.3f}" if isinstance(v, float) else v
                             for k, v in row.items() if k != "step"}, refresh=False)
            loss_sum, correct, seen = 0.0, 0, 0
            if (on_eval is not None and on_eval(row)) or out_of_time:
                break
    bar.close()
    return history
