"""A compact CNN and recipe for time-to-accuracy on CIFAR-10 (Part II, past the study).

Built from public descriptions of the fastest known CIFAR-10 trainings ("How to train your
ResNet", airbench): a frozen 2x2 patch-whitening first layer fitted to the training images'
patch covariance, three conv groups (convs Dirac-initialised) with BatchNorm whose scales
stay 1, Muon for the conv filters (its lr from the planned number of steps, ``muon_lr_rule``)
and Nesterov SGD for the rest, on a linear decay (``--optimizer sgd``: Nesterov SGD for all,
with a linear warm-up; lr scaled with the batch size, BatchNorm shifts at 64x), label
smoothing, flips that alternate between epochs plus small translations, an optional EMA of
the weights, and flip / translate test-time augmentation. Each run records the time to every
validation milestone.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from nnlab.data.cifar10 import CLASSES, Augment, Loader
from nnlab.device import autocast, resolve_device, resolve_precision
from nnlab.engine.budget import Budget, Cost, Size, timed
from nnlab.engine.lookahead import Lookahead
from nnlab.engine.muon import Chain, MatrixMuon
from nnlab.errors import NnlabError
from nnlab.experiments.configs.cifar_speedrun import QUICK, RULE_A, RULE_B, Config, muon_lr_rule
from nnlab.models.cnn import SpeedrunNet
from nnlab.plots import plot_time_to_accuracy
from nnlab.registry import describe
from nnlab.vision import (
    TTA_VIEWS,
    Batches,
    ImageRecipe,
    StepOptions,
    default_val_size,
    image_summary,
    limit_train,
    make_ema,
    make_splits,
    smoothed_cross_entropy,
    weight_decay_groups,
)

MILESTONES = (0.80, 0.84, 0.85, 0.90, 0.92, 0.93, 0.94)  # 80-85: for CPU-sized runs


def build_optimizer(cfg: Config, model: SpeedrunNet, lr: float,
                    muon_lr: float | None = None) -> torch.optim.Optimizer:
    """Nesterov SGD (BatchNorm shifts at ``bias_lr_scale`` x ``lr``); with ``--optimizer muon``
    the conv filters go to Muon instead at ``muon_lr`` (default: the config's), the two
    chained as one optimizer."""
    muon_lr = cfg.muon_lr if muon_lr is None else muon_lr
    if cfg.optimizer == "muon" and muon_lr is None:
        raise ValueError("build_optimizer: Muon needs a learning rate (muon_lr_rule(steps))")
    weights, shifts = weight_decay_groups(model, cfg.weight_decay)
    shifts.update(lr=lr * cfg.bias_lr_scale, weight_decay=cfg.weight_decay / cfg.bias_lr_scale)
    filters = [p for p in weights["params"] if p.ndim == 4] if cfg.optimizer == "muon" else []
    if filters:
        weights["params"] = [p for p in weights["params"] if p.ndim != 4]
    sgd = torch.optim.SGD([weights, shifts], lr=lr, momentum=cfg.momentum, nesterov=True)
    if not filters:
        return sgd
    # No weight decay on the filters: their norm is pinned, so decay would do nothing.
    muon = MatrixMuon(filters, normalize=True, lr=muon_lr, momentum=cfg.muon_momentum,
                      nesterov=True, weight_decay=0.0, ns_steps=cfg.muon_ns_steps)
    return Chain(sgd, muon)


def warm_then_decay(progress: float, warm: float, first: float = 0.0) -> float:
    """The learning-rate factor at ``progress`` (0 to 1) of a run: up linearly over the first
    ``warm`` of it (from ``first``), then down linearly to 0 at its end."""
    if progress < warm:
        return min(1.0, (progress + first) / warm)
    return max(0.0, (1 - progress) / max(1 - warm, 1e-9))


def milestone_times(rows, split: str = "val",
                    milestones: Sequence[float] = MILESTONES) -> dict[str, float | None]:
    """{'time_to_90_s': ..., ...}: the ``wall_s`` (seconds since the run's clock started,
    whitening included) of the first row (epoch) whose ``<split>_acc`` reached each of
    ``milestones``; None for a milestone never reached."""
    times: dict[str, float | None] = {}
    for m in milestones:
        reached = [r["wall_s"] for r in rows if r[f"{split}_acc"] >= m]
        times[f"time_to_{round(m * 100)}_s"] = reached[0] if reached else None
    return times


def layout(cfg: Config) -> torch.memory_format:
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


class Recipe(ImageRecipe):
    """The fast CNN in nnlab's image-classifier loop: flips that alternate between epochs
    plus translations, channels_last, the whitening layer fitted to the training images,
    Muon (lr from the rule) with Nesterov SGD on a warm-up and linear decay keyed to the
    steps, or to the time budget's deadline; EMA and lookahead when asked; time to every
    milestone in the metrics and time_to_accuracy.png."""

    def build_model(self, cfg: Config, n_classes: int) -> SpeedrunNet:
        return SpeedrunNet(cfg.widths, n_classes, dirac=cfg.init == "dirac", bn_eps=cfg.bn_eps)

    def layout(self, cfg: Config) -> torch.memory_format:
        return layout(cfg)

    def batches(self, cfg: Config) -> Batches:
        # Flips alternate between epochs (each image seen both ways in two), then translations.
        return Batches(augment=Augment(flip=False, translate=cfg.translate),
                       alternate_flips=cfg.flip)

    def prepare(self, cfg: Config, model: SpeedrunNet, loader: Loader) -> None:
        n_fit = min(5000, len(loader.y))
        model.init_whitening(((loader.x[:n_fit].float() - loader.mean) / loader.std),
                             cfg.whiten_eps)
        if cfg.compile:  # in place: the saved weights keep their names
            model.compile()

    def optimizer(self, cfg: Config, model: SpeedrunNet, steps: int):  # noqa: ANN201
        run = self.run
        lr = cfg.lr * cfg.batch_size / 512
        muon_lr = None
        if cfg.optimizer == "muon":
            muon_lr = cfg.muon_lr if cfg.muon_lr is not None else muon_lr_rule(steps)
            self.facts["muon_lr"] = muon_lr  # in the metrics: the lr the rule chose
            run.note(f"Muon for the conv filters at lr {muon_lr:g}"
                     + (" (given)" if cfg.muon_lr is not None else
                        f" (the rule {RULE_A:g} x steps^-{RULE_B:g}, for {steps} steps)"))
        opt = build_optimizer(cfg, model, lr, muon_lr)
        warm = max(1, int(cfg.warmup * steps))
        if run.deadline is None:  # the schedule of the planned steps, step by step
            return opt, torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: (s + 1) / warm if s < warm
                else max(0.0, (steps - s) / max(1, steps - warm)))
        # a time budget: the same shape over what the budget leaves, ending at its deadline
        return opt, torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warm_then_decay(run.schedule_progress(s, steps), warm / steps,
                                           1 / steps))

    def step_options(self, cfg: Config, model: SpeedrunNet, optimizer: torch.optim.Optimizer,
                     steps: int) -> StepOptions:
        return StepOptions(label_smoothing=cfg.label_smoothing, ema=make_ema(model, cfg.ema),
                           lookahead=(Lookahead(model, cfg.lookahead_k, cfg.lookahead,
                                                total_steps=steps) if cfg.lookahead else None))

    def on_epoch_start(self, cfg: Config, model: SpeedrunNet, epoch: int) -> None:
        # the whitening bias trains in the first epochs only, when asked
        train = not cfg.whiten_bias_epochs or epoch < cfg.whiten_bias_epochs
        model.whiten.bias.requires_grad_(train)
        if not train:
            model.whiten.bias.grad = None  # SGD skips a parameter without a gradient

    def tta_weight(self, cfg: Config) -> float:
        return cfg.tta_untranslated

    def title(self, cfg: Config) -> str:
        return (f"speedrun net {cfg.widths}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
                f"seed {cfg.seed}")

    def finish(self, cfg: Config, metrics: dict, histories: dict) -> dict:
        history = histories[""]
        if self.run.main:
            ran = f"; stopped by the time budget after {len(history)}" \
                if self.run.stopped_by_budget else ""
            plot_time_to_accuracy([self.run.out / "history.csv"],
                                  self.run.out / "time_to_accuracy.png", MILESTONES,
                                  title=self.title(cfg) + ran)
        return {**metrics, **milestone_times(history, self.splits.eval_name)}


RECIPE = Recipe("cifar-speedrun")


# --time-budget: the sizes it chooses from, with the validation accuracy (TTA) measured after
# runs of so many epochs with the default recipe (Muon, the rule's lr) on the 45,000/5,000
# split. Each number is the run folder's under docs/results/ (SIZE_SOURCES; a test checks
# them); a size is planned only from its fewest measured epochs on.
BUDGET_SIZES = (
    Size("tiny", {"widths": (16, 32, 32), "batch_size": 256}, {3: 0.7926, 10: 0.835}),
    Size("cpu", {"widths": (32, 64, 64), "batch_size": 256},
         {3: 0.837, 7: 0.8613, 8: 0.864, 14: 0.8732}),
    Size("full", {"widths": (64, 256, 256), "batch_size": 1024}, {10: 0.9042}),
)
SIZE_SOURCES = {  # (size, epochs) -> run folder under docs/results
    ("tiny", 3): "speedrun-budget-table/tiny-3", ("tiny", 10): "speedrun-budget-table/tiny-10",
    ("cpu", 3): "speedrun-budget-table/cpu-3", ("cpu", 7): "full-profile/cifar-speedrun-cpu-muon",
    ("cpu", 8): "speedrun-cpu-muon-8ep/muon", ("cpu", 14): "speedrun-budget-table/cpu-14",
    ("full", 10): "speedrun-full-muon/muon",
}
FIXED_S = 6.0  # loading the cached data, figures, model.pt: measured on a 2-core EPYC


@functools.cache
def _counts(data: str, val_size: int, final: bool, train_limit: int, image_size: int
            ) -> tuple[int, int, tuple[str, ...]]:
    try:  # decoded once and cached: the run reuses it
        splits = make_splits(data, val_size, final, image_size)
    except NnlabError:  # no data at hand (a benchmark's probe): CIFAR-10's sizes
        val_size = val_size or default_val_size(50_000)
        n_train = 50_000 if final else 50_000 - val_size
        return min(n_train, train_limit or n_train), 10_000 if final else val_size, CLASSES
    if train_limit:
        splits = limit_train(splits, train_limit)
    return len(splits.y_train), len(splits.y_eval), splits.classes


def data_counts(cfg: Config) -> tuple[int, int, tuple[str, ...]]:
    """(training images, held-out images, classes) of the data a run of ``cfg`` reads: what
    an epoch of the budget's probe costs is this data's (CIFAR-10's where none can be read:
    the run then says why in its own line)."""
    return _counts(cfg.data, cfg.val_size, cfg.final, cfg.train_limit, cfg.image_size)


def budget_caveat(cfg: Config) -> str | None:
    """The plan's accuracy comes from CIFAR-10 runs: on other data, say so."""
    n_train, _, classes = data_counts(cfg)
    if set(classes) == set(CLASSES):
        return None
    return (f"the expected accuracy was measured on CIFAR-10; on this data ({n_train:,} "
            f"training images, {len(classes)} classes) only the time is a prediction")


def budget_sizes(cfg: Config) -> list[Size]:
    """The measured sizes; on data smaller than a size's batch (a few hundred images of your
    own), its batch is cut to the largest power of two that fits, so an epoch has a step."""
    n_train = data_counts(cfg)[0]
    batch = 2 ** max(0, n_train.bit_length() - 1)
    return [size if size.fields["batch_size"] <= n_train else
            replace(size, fields={**size.fields, "batch_size": batch})
            for size in BUDGET_SIZES]


def probe(cfg: Config, size: Size) -> Cost:
    """What one epoch of ``size`` costs on this machine, from a few steps on random images
    of the run's batch size (at most 128: a larger batch is costed per image): a forward
    and backward pass, the optimizer's step, the loader's augmentation, and the evaluation's
    forward passes (every epoch: plain; at the end: the TTA's views)."""
    t0 = time.perf_counter()
    cfg = dataclasses.replace(cfg, **size.fields).resolved()
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    n_train, n_eval, _ = data_counts(cfg)  # this data's, not CIFAR-10's
    b = min(cfg.batch_size, 128)
    fmt = layout(cfg)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8,
                           generator=gen)
    labels = torch.randint(0, 10, (b,), generator=gen)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    loader = Loader(images, labels, b, mean, std, shuffle=True,
                    augment=Augment(flip=False, translate=cfg.translate), drop_last=True,
                    device=device, memory_format=fmt, alternate_flips=cfg.flip)
    x, y = next(iter(loader.epoch(1)))
    model = SpeedrunNet(cfg.widths, 10, dirac=cfg.init == "dirac", bn_eps=cfg.bn_eps).to(device)
    model.init_whitening((images.float() - 127.5) / 64, cfg.whiten_eps)
    model = model.to(memory_format=fmt)
    opt = build_optimizer(cfg, model, 0.01, 0.01 if cfg.optimizer == "muon" else None)
    loss_fn = smoothed_cross_entropy(cfg.label_smoothing)

    def forward_backward() -> None:
        opt.zero_grad(set_to_none=False)
        with autocast(device, precision):
            loss = loss_fn(model(x), y)
        loss.backward()

    def forward() -> None:
        with torch.no_grad(), autocast(device, precision):
            model(x)

    def sync(fn):  # noqa: ANN001, ANN202 - wait for the device, so the time is the work's
        def call() -> None:
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        return call

    model.train()
    per_image = timed(sync(forward_backward)) / b
    per_step = timed(sync(opt.step), warmup=0)
    per_image += timed(lambda: list(loader.epoch(2))) / b
    model.eval()
    per_view = timed(sync(forward), warmup=0) / b
    views = TTA_VIEWS[cfg.tta]
    steps = n_train // cfg.batch_size
    epoch_s = n_train * per_image + steps * per_step + n_eval * per_view
    return Cost(epoch_s=epoch_s, fixed_s=FIXED_S + views * n_eval * per_view,
                probe_s=time.perf_counter() - t0)


def plot_seeds(out_dir: Path, runs: list[dict]) -> None:
    """time_to_accuracy.png: every seed's held-out accuracy against minutes since start."""
    plot_time_to_accuracy(sorted(Path(out_dir).glob("seed*/history.csv")),
                          Path(out_dir) / "time_to_accuracy.png", MILESTONES,
                          title=f"cifar-speedrun, {len(runs)} seeds")


def summarize(metrics: dict) -> str:
    percents = [round(m * 100) for m in MILESTONES]
    times = ", ".join(f"{p}%: {metrics[f'time_to_{p}_s']:.0f} s"
                      if metrics.get(f"time_to_{p}_s") is not None else f"{p}%: not reached"
                      for p in percents)
    return f"{image_summary(metrics)}; time to {times}"


EXPERIMENT = RECIPE.experiment(
    description=describe("cifar-speedrun"), Config=Config, summarize=summarize,
    plot_seeds=plot_seeds,
    quick=QUICK,
    extendable=lambda config: False,  # the lr warms up and decays to 0 over the planned steps
    budget=Budget(budget_sizes, probe, caveat=budget_caveat),
)
