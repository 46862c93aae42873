"""The one training step, the epoch and step drivers, evaluation, the NaN guard.

A *step* object does one optimisation step on a batch: :class:`TorchStep` for every
``nn.Module`` (autocast, loss, backward, gradient clipping, optimizer, scheduler, EMA) and
:class:`nnlab.numpy_nn.NumpyStep` for the from-scratch MLP. Two drivers call it:
:func:`train_epochs` (epochs of batches, a history row per epoch) and :func:`train_steps`
(a stream of batches, a row per evaluation). Given a :class:`~nnlab.engine.run.Run`, a
driver checkpoints, resumes exactly where a checkpoint left off (down to the batch inside an
epoch), stops cleanly on SIGINT/SIGTERM, logs to TensorBoard and shows progress; without
one it just trains. :func:`fit` and :func:`fit_numpy` are the epoch driver over in-memory
(x, y) for the two MLPs.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from nnlab.engine.checkpoint import state_key
from nnlab.engine.distributed import unwrap
from nnlab.engine.history import History
from nnlab.engine.progress import Progress
from nnlab.engine.run import PhaseState, durable
from nnlab.errors import Interrupted, TrainingDiverged
from nnlab.numpy_nn.modules import CrossEntropy
from nnlab.numpy_nn.step import NumpyStep

EvalSets = Mapping[str, tuple]  # name -> (x, y), e.g. {"test": (x_test, y_test)}


class TorchStep:
    """One optimisation step of a torch model on a batch (x, y).

    forward inside ``autocast()`` -> ``loss_fn(logits, y)`` (default cross-entropy) ->
    backward -> clip the gradients' global L2 norm to ``clip_norm`` (when given) ->
    ``optimizer.step()`` -> ``scheduler.step()`` (a per-step schedule) -> EMA update ->
    lookahead (`nnlab.engine.lookahead.Lookahead`).
    ``y`` is (B,) class indices, or (B, n_classes) soft labels (mixup, cutmix), whose largest
    weight counts as the label for the accuracy.
    Returns (loss x batch size, correct count) as 0-d tensors on the device: the drivers add
    them up there and synchronise once per epoch or evaluation, not once per batch.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 scheduler: Any = None,
                 autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
                 clip_norm: float | None = None,
                 ema: torch.optim.swa_utils.AveragedModel | None = None,
                 lookahead: Any = None) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn = loss_fn or nn.functional.cross_entropy
        self.autocast = autocast or contextlib.nullcontext
        self.clip_norm, self.ema, self.lookahead = clip_norm, ema, lookahead
        self.classes: int | None = None  # seen in the logits: what chance level means

    def train(self) -> None:
        self.model.train()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(unwrap(self.model))
        if self.lookahead is not None:
            self.lookahead.step()
        label = y if y.ndim == 1 else y.argmax(dim=1)  # soft labels (mixing): the largest
        self.classes = logits.shape[-1] if logits.ndim == 2 else None
        return (loss.detach().float() * len(y),
                (logits.detach().argmax(dim=1) == label).sum())

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def states(self) -> dict[str, Any]:
        """What a checkpoint must hold to continue this step exactly."""
        return {"model": unwrap(self.model), "optimizer": self.optimizer,
                "scheduler": self.scheduler, "ema": self.ema, "lookahead": self.lookahead}


# --------------------------------------------------------------------------- drivers


def _history_fits(rows: list[dict], unit: str, position: int, done: bool) -> bool:
    """Whether a phase's history can be what a driver logged up to ``position``: a row per
    epoch (or per evaluation, at most one a step), each numbered in order by its ``unit``
    and holding only numbers and text, and at least one row once the phase is done."""
    marks = [row.get(unit) for row in rows]
    if not all(isinstance(m, int) and not isinstance(m, bool) for m in marks) or \
            marks != sorted(set(marks)) or (marks and not 0 < marks[-1] <= position):
        return False
    if not all(isinstance(v, int | float | str | None) and isinstance(k, str)
               for row in rows for k, v in row.items()):
        return False
    if unit == "epoch" and marks != list(range(1, position + 1)):
        return False
    return bool(rows) or not (done and position)


# A run is stopped when its training loss stays at chance (within CHANCE_MARGIN of ln C) while
# a held-out loss is over EXPLODED times chance: no classifier that learnt anything is that
# sure and that wrong (the bf16 failure on flat-background images: test loss 1e8-1e10).
CHANCE_MARGIN = 0.98
EXPLODED = 100.0


class _Driver:
    """What both drivers share: the phase's history and position (restored on resume),
    the clock, checkpoints, signals, progress and TensorBoard."""

    def __init__(self, run, phase: str, step, total: int, unit: str, tags, desc: str | None,
                 history_path, progress: bool | None, wall_offset: float = 0.0) -> None:
        run = self.run = durable(run)  # a stand-in where there is no run
        self.phase, self.total, self.unit = phase, total, unit
        self.step = step
        self.hopeless = 0  # evaluations in a row no better than chance with an exploded loss
        self.tags = dict(tags or {})
        self.history_path = history_path
        self.desc = desc or phase
        record = run.phase(phase) or PhaseState(wall_s=wall_offset)
        self.history = History(list(record.history))
        self.position, self.stopped, self.wall0 = record.position, record.stopped, record.wall_s
        self.partial: dict | None = None
        if not _history_fits(self.history.rows, unit, self.position, self.done):
            raise run.refuse_checkpoint(f"damaged checkpoint: phase {phase!r}'s history does "
                                        f"not fit its position ({unit} {self.position})")
        run.track(**{state_key(phase, k): v for k, v in step.states().items()})
        run.restore()
        if not self.done:
            run.restore_rng()
            self.partial = run.resume_position(phase)
            if self.partial is not None and self.partial.get("sums") is None:
                self.partial = None
        if progress is None:
            progress = run.progress
        self.bar = None if self.done else Progress(total, self.desc, unit, self.position,
                                                   progress)
        self.t0 = time.perf_counter()
        self.paused = 0.0  # seconds spent writing checkpoints: not training time

    @property
    def done(self) -> bool:
        return self.stopped or self.position >= self.total

    def elapsed(self) -> float:
        """Seconds of training and evaluation, across resumes (checkpoint writes excluded)."""
        return self.wall0 + time.perf_counter() - self.t0 - self.paused

    def save(self, batch: int = 0, sums: tuple | None = None,
             generator_states: dict | None = None) -> None:
        t = time.perf_counter()
        self.run.record_phase(self.phase, PhaseState(list(self.history.rows), self.position,
                                                     self.stopped, self.elapsed()))
        self.run.checkpoint({"phase": self.phase, "position": self.position, "batch": batch,
                             "sums": sums}, generator_states)
        self.paused += time.perf_counter() - t

    def log(self, row: dict) -> None:
        self.history.log(**row)
        if self.history_path is not None:
            self.history.to_csv(self.history_path)
        else:  # the experiment keeps none: the run's history.csv
            self.run.record_history(self.phase, self.history.rows)
        self.run.log_row(row, self.unit, "/".join(map(str, self.tags.values())))
        self.bar.update(row[self.unit], row)

    def signal(self) -> int | None:
        return self.run.stop_requested()

    def interrupt(self, signum: int, where: str, **save: Any) -> NoReturn:
        self.save(**save)
        self.bar.close()
        raise Interrupted(signum, f"{self.desc}: {where}")

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        try:
            with self.run.training():
                yield
        finally:
            self.bar.close()

    def halt(self, where: str) -> bool:
        """Stop (``stopped``) when the run's watcher asked to after the row just logged (a
        sweep's pruner: this trial does worse than the others did by here)."""
        if self.run.halted is None or self.stopped:
            return False
        self.stopped = True
        self.run.note(f"{self.desc}: stopped at {where}: {self.run.halted}")
        self.run.record(halted=f"{where}: {self.run.halted}")  # config.json says why
        return True

    def late(self, where: str, ahead: float = 0.0) -> bool:
        """Stop (``stopped``) when the run's time budget ends within ``ahead`` seconds: the
        machine is slower than its probe said. Every rank decides alike (torchrun runs have
        no budget)."""
        if not self.run.out_of_time(ahead):
            return False
        self.stopped = True
        self.run.stopped_by_budget(where)
        self.run.note(f"{self.desc}: the time budget ends: stopped at {where} ({self.total} "
                      f"{self.unit}s planned)")
        return True

    def no_better_than_chance(self, row: dict, where: str) -> TrainingDiverged | None:
        """The error that stops a run whose training loss is still at chance level (ln of the
        number of classes) while its held-out loss has exploded (over :data:`EXPLODED` times
        chance), two evaluations in a row; None while it is learning, or merely not yet (a
        hard task may sit at chance for long: that is a result, and goes on)."""
        classes = getattr(self.step, "classes", None)
        held = [v for k, v in row.items() if k.endswith("_loss") and k != "train_loss"
                and isinstance(v, int | float)]
        if not classes or classes < 2 or not held:
            return None
        chance = math.log(classes)
        worst = max(held)
        hopeless = row["train_loss"] >= CHANCE_MARGIN * chance and not worst <= EXPLODED * chance
        self.hopeless = self.hopeless + 1 if hopeless else 0
        if self.hopeless < 2:
            return None
        self.bar.close()
        return TrainingDiverged(
            f"{self.desc}: training is no better than chance {where} (training loss "
            f"{row['train_loss']:.3f}, chance ln {classes} = {chance:.3f}) and the held-out "
            f"loss has exploded to {worst:.3g}: stopped, its checkpoints kept. If it ran in "
            "bf16, try --precision fp32; else a lower learning rate")

    def diverged(self, loss: float, where: str, hint: str) -> TrainingDiverged:
        self.bar.close()
        return TrainingDiverged(f"{self.desc}: training loss became {loss} {where}; {hint}")



def train_epochs(
    step,
    batches: Callable[[int], Iterable[tuple[Any, Any]]],
    epochs: int,
    evaluate_all: Callable[[], dict[str, float]] | None = None,
    *,
    run=None,
    phase: str = "train",
    tags: Mapping[str, str] | None = None,
    desc: str | None = None,
    history_path: str | Path | None = None,
    progress: bool | None = None,
    wall_offset: float = 0.0,
) -> History:
    """Train with ``step`` (`TorchStep` or NumpyStep) on ``batches(epoch)`` (x, y),
    epochs 1..``epochs``; after each, ``evaluate_all()`` and a history row.

    Row: the tags, ``epoch``, ``train_loss`` and ``train_acc`` (means over the epoch's
    batches, weighted by batch size), ``lr`` (at the epoch's end), ``images_per_s`` (training
    throughput, evaluation excluded), the evaluation's metrics, and ``wall_s`` (cumulative
    seconds of training and evaluation, from ``wall_offset``, across resumes). With
    ``history_path`` the history is saved after every epoch.

    With ``run``: the step's state and ``phase``'s history are restored from the run's
    checkpoint, a checkpoint is written every ``run.options.checkpoint_every`` epochs and at
    the end, and a signal stops it after the current batch (checkpointed mid-epoch: on resume
    the epoch's batches are drawn again from the generators' state at its start and the done
    ones skipped, so the result is the same as an uninterrupted run's). ``batches`` must draw
    its randomness only from generators given to ``run.track``.
    With a time budget (``run.deadline``) it stops at the deadline, inside an epoch if need
    be, keeping what it trained (a schedule keyed to the budget, ``run.schedule_progress``,
    has ended there).
    Raises TrainingDiverged, naming the epoch, if the training loss is NaN or infinite.
    """
    d = _Driver(run, phase, step, epochs, "epoch", tags, desc, history_path, progress,
                wall_offset)
    if d.done:
        return d.history
    every = d.run.checkpoint_every
    with d.training():
        for epoch in range(d.position + 1, epochs + 1):
            snapshot = d.run.generator_states()  # the generators at the epoch's start
            skip, sums = 0, (0.0, 0, 0, 0.0)
            if d.partial is not None:
                skip, sums, d.partial = d.partial["batch"], d.partial["sums"], None
            loss_sum, correct, n, train_s = sums
            step.train()
            t = time.perf_counter()
            for i, (xb, yb) in enumerate(batches(epoch)):
                if i < skip:  # done before the interruption: drawn again, not trained on
                    continue
                batch_loss, batch_correct = step(xb, yb)
                loss_sum, correct, n = loss_sum + batch_loss, correct + batch_correct, n + len(yb)
                if signum := d.signal():
                    d.interrupt(signum, f"epoch {epoch}, batch {i + 1}", batch=i + 1,
                                sums=(float(loss_sum), int(correct), n,
                                      train_s + time.perf_counter() - t),
                                generator_states=snapshot)
                if d.late(f"epoch {epoch}, batch {i + 1}"):
                    break
            train_s += time.perf_counter() - t
            loss = float(loss_sum) / n if n else float("nan")
            if not math.isfinite(loss):
                raise d.diverged(loss, f"at epoch {epoch}", "try a lower learning rate")
            row = {**d.tags, "epoch": epoch, "train_loss": loss, "train_acc": int(correct) / n,
                   "lr": step.lr, "images_per_s": n / train_s,
                   **(evaluate_all() if evaluate_all is not None else {}),
                   "wall_s": d.elapsed()}
            d.position = epoch
            d.log(row)
            if (error := d.no_better_than_chance(row, f"at epoch {epoch}")) is not None:
                d.save()
                raise error
            if not d.stopped and epoch < epochs:  # the deadline passed during the evaluation
                d.halt(f"the end of epoch {epoch}") or d.late(f"the end of epoch {epoch}")
            signum = d.signal()
            if epoch % every == 0 or epoch == epochs or signum or d.stopped:
                d.save()
            if signum:
                d.interrupt(signum, f"after epoch {epoch}")
            if d.stopped:
                break
    return d.history


def train_steps(
    step,
    next_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    eval_every: int,
    evaluate_all: Callable[[], dict[str, float]],
    on_eval: Callable[[dict], bool] | None = None,
    *,
    run=None,
    phase: str = "train",
    time_limit_s: float | None = None,
    desc: str | None = None,
    history_path: str | Path | None = None,
    progress: bool | None = None,
) -> History:
    """Train with ``step`` for up to ``steps`` steps on ``next_batch(step)`` (x, y); every
    ``eval_every`` steps (and at the last) log a row and call ``on_eval(row)``, which may
    return True to stop early; stop too once ``time_limit_s`` seconds of training have passed.

    Row: ``step``, ``train_loss`` and ``train_acc`` (means over the interval's batches), the
    evaluation's metrics, ``wall_s``. With ``run``: checkpoints every
    ``run.options.checkpoint_every`` evaluations and at the end, exact resume, signals, as in
    :func:`train_epochs` (``next_batch`` must draw only from tracked generators, and state
    that ``on_eval`` keeps must be tracked too). Raises TrainingDiverged on a NaN/inf loss.
    """
    d = _Driver(run, phase, step, steps, "step", None, desc, history_path, progress)
    if d.done:
        return d.history
    every = d.run.checkpoint_every
    loss_sum, correct, seen = (d.partial["sums"] if d.partial is not None else (0.0, 0, 0))
    with d.training():
        for s in range(d.position + 1, steps + 1):
            step.train()
            x, y = next_batch(s)
            batch_loss, batch_correct = step(x, y)
            loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(y)
            d.position = s
            out_of_time = time_limit_s is not None and d.elapsed() > time_limit_s
            if s % eval_every == 0 or s == steps or out_of_time:
                loss = float(loss_sum) / seen
                if not math.isfinite(loss):
                    raise d.diverged(loss, f"by step {s}",
                                     "try a lower learning rate or gradient clipping")
                row = {"step": s, "train_loss": loss, "train_acc": int(correct) / seen,
                       **evaluate_all(), "wall_s": d.elapsed()}
                d.log(row)
                if (error := d.no_better_than_chance(row, f"by step {s}")) is not None:
                    d.save()
                    raise error
                loss_sum, correct, seen = 0.0, 0, 0
                d.stopped = bool(on_eval is not None and on_eval(row)) or out_of_time
                if not d.stopped and s < steps:
                    d.halt(f"step {s}")
                signum = d.signal()
                if (s // eval_every) % every == 0 or d.done or signum:
                    d.save()
                if signum and not d.done:
                    d.interrupt(signum, f"after step {s}")
                if d.stopped:
                    break
            elif signum := d.signal():
                d.interrupt(signum, f"step {s}",
                            sums=(float(loss_sum), int(correct), seen))
    return d.history


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


def _fit(step, x, y, epochs: int, batch_size: int, eval_sets: EvalSets | None,
         score: Callable, generator, permutation: Callable[[], Any], **driver: Any) -> History:
    """The epoch driver over in-memory (x, y): each epoch a permutation (drawn from the
    tracked ``generator``) sliced into batches; after it, ``score(x, y)`` -> (loss, acc) on
    every eval set."""
    if driver.get("run") is not None:
        driver["run"].track(**{f"{driver.get('phase', 'train')}.batch_order": generator})

    def batches(epoch: int) -> Iterator[tuple[Any, Any]]:
        perm = permutation()
        for i in range(0, len(y), batch_size):
            idx = perm[i:i + batch_size]
            yield x[idx], y[idx]

    def evaluate_all() -> dict[str, float]:
        out = {}
        for name, (xe, ye) in (eval_sets or {}).items():
            out[f"{name}_loss"], out[f"{name}_acc"] = score(xe, ye)
        return out

    return train_epochs(step, batches, epochs, evaluate_all, **driver)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int,
    eval_sets: EvalSets | None = None,
    seed: int = 0,
    **driver: Any,
) -> History:
    """Train ``model`` with cross-entropy on (x, y) for ``epochs``; evaluate on ``eval_sets``.

    x: (N, ...) float tensor, y: (N,) int64 class labels, both on the model's device.
    Batch order comes from a torch.Generator seeded with ``seed``; a batch size >= N is full
    batch. ``driver``: :func:`train_epochs`'s keywords (run, phase, tags, desc, progress...).
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return _fit(TorchStep(model, optimizer), x, y, epochs, batch_size, eval_sets,
                lambda xe, ye: evaluate(model, xe, ye), gen,
                lambda: torch.randperm(len(y), generator=gen).to(y.device), **driver)


# --------------------------------------------------------------------------- NumPy


def evaluate_numpy(
    model, x: np.ndarray, y: np.ndarray, batch_size: int = 4096
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a NumPy MLP on x (N, D) with labels y (N,) (its
    own kind of loss: :meth:`~nnlab.numpy_nn.MLP.criterion`)."""
    ce = model.criterion() if hasattr(model, "criterion") else CrossEntropy()
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
    clip_norm: float | None = None,
    **driver: Any,
) -> History:
    """:func:`fit` for the from-scratch MLP, through the same epoch driver with a
    :class:`~nnlab.numpy_nn.NumpyStep`. x: (N, D) float array, y: (N,) int labels."""
    rng = np.random.default_rng(seed)
    return _fit(NumpyStep(model, optimizer, clip_norm), x, y, epochs, batch_size, eval_sets,
                lambda xe, ye: evaluate_numpy(model, xe, ye), rng,
                lambda: rng.permutation(len(y)), **driver)
