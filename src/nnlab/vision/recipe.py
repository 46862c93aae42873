"""nnlab's image-classifier loop as one public object, :class:`ImageRecipe`, with named hooks.

Every image experiment trains in it: nnlab's fast CNN, the study's VGG and the MLP, and a
model of your own in one file (:func:`image_classifier`). The whole loop is in this file, in
the order it runs: :meth:`ImageRecipe.train` sets up the splits (:func:`setup`), builds the
loaders and the network, trains each phase (:meth:`ImageRecipe._phase`) and ends it
(:func:`finish`: the final evaluation with TTA, the saved model, the figures); what differs
between experiments is in the hooks.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nnlab.config import resolve
from nnlab.data.cifar10 import Augment, Loader, Mix
from nnlab.device import autocast, resolve_device, resolve_precision
from nnlab.engine import History, TorchStep, distributed, train_epochs
from nnlab.engine.checkpoint import state_key
from nnlab.engine.files import read_json
from nnlab.errors import ConfigError, NnlabError
from nnlab.plots import plot_confusion, plot_curves
from nnlab.registry import Experiment
from nnlab.vision.options import EVAL_BATCH, QUICK, ImageOptions, held_out
from nnlab.vision.splits import Splits, make_splits, setup
from nnlab.vision.trained import load_trained

# --------------------------------------------------------------------------- what hooks return


@dataclass
class Batches:
    """How the training loader draws its batches (the :meth:`ImageRecipe.batches` hook):
    ``augment`` (flips, translations, cutout of every batch), ``alternate_flips`` (each image
    mirrored in every other epoch, airbench's flips), ``mix`` (mixup / cutmix), ``targets``
    (N, classes) soft targets in place of the labels (a teacher's), ``drop_last`` (a last
    partial batch is dropped)."""

    augment: Augment | None = None
    alternate_flips: bool = False
    mix: Mix | None = None
    targets: torch.Tensor | None = None
    drop_last: bool = True


@dataclass
class StepOptions:
    """What a training step does beyond the optimizer (the :meth:`ImageRecipe.step_options`
    hook): ``label_smoothing`` of the cross-entropy, ``ema`` (an averaged model, evaluated and
    saved instead of the weights), ``lookahead`` (slow weights synced every k steps)."""

    label_smoothing: float = 0.0
    ema: torch.optim.swa_utils.AveragedModel | None = None
    lookahead: Any = None


# --------------------------------------------------------------------------- building blocks


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


def smoothed_cross_entropy(label_smoothing: float = 0.0
                           ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss: cross-entropy in fp32 with ``label_smoothing``."""
    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    return loss_fn


Optimizer = Callable[[Any, nn.Module, int], tuple[torch.optim.Optimizer, Any]]


def one_cycle_sgd(cfg: Any, model: nn.Module, steps: int
                  ) -> tuple[torch.optim.Optimizer, Any]:
    """The default optimizer of :class:`ImageRecipe`: Nesterov SGD (momentum 0.9, weight
    decay on weights only) on a one-cycle schedule peaking at ``cfg.lr`` over ``steps``."""
    opt = torch.optim.SGD(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr,
                          momentum=0.9, nesterov=True)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)


# --------------------------------------------------------------------------- scoring, with TTA


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


def plural(n: int, word: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def image_summary(m: dict[str, Any], facts: dict[str, Any] | None = None) -> str:
    """One line from an image run's metrics (``facts``: where device and precision are, when
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


# --------------------------------------------------------------------------- the recipe


class ImageRecipe:
    """nnlab's image-classifier loop: the split (or ``--final``) and its normalisation,
    loaders with batched augmentation (each process its share under torchrun), per-epoch
    evaluation without TTA, checkpoints and exact resume, the final evaluation with TTA, the
    saved model, curves and confusion matrix, and the facts every image run records.

    Subclass it and override the hooks; only :meth:`build_model` is required. A hook gets
    what it needs as arguments; while :meth:`train` runs, three attributes say the rest:
    ``self.run`` (the :class:`~nnlab.engine.Run`: device, deadline, notes), ``self.splits``
    (the :class:`~nnlab.vision.Splits`: ``classes``, ``x_train`` ...) and ``self.facts``, a
    dict of numbers any hook may add to the run's metrics (the one way hooks hand a result
    on; nothing else is kept on the recipe). nnlab's own image experiments
    (``cifar-speedrun``, ``cifar-cnn``, ``cifar-mlp``) are subclasses; a model of your own
    needs only :func:`image_classifier`."""

    name = "image classifier"
    phase_group = "phase"  # the history column that names a phase, when there are several
    run: Any = None  # the Run, while train() runs
    splits: Splits | None = None  # its data, while train() runs
    facts: dict[str, Any]  # numbers hooks add to the metrics, fresh for every run

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.facts = {}

    # ------------------------------------------------------------------ the hooks

    def build_model(self, cfg: Any, n_classes: int) -> nn.Module:
        """The untrained network: images (N, 3, S, S) normalised -> logits (N, n_classes),
        S = ``cfg.image_size``, ``n_classes`` from the data's class folders."""
        raise NotImplementedError(f"{type(self).__name__} defines no build_model")

    def optimizer(self, cfg: Any, model: nn.Module, steps: int
                  ) -> tuple[torch.optim.Optimizer, Any]:
        """(optimizer, scheduler stepped every batch or None) for ``steps`` optimizer steps;
        default :func:`one_cycle_sgd`."""
        return one_cycle_sgd(cfg, model, steps)

    def layout(self, cfg: Any) -> torch.memory_format:
        """The memory format of the network and its batches (``torch.channels_last`` is
        faster for convolutions on most CPUs)."""
        return torch.contiguous_format

    def batches(self, cfg: Any) -> Batches:
        """How the training loader draws batches; default: flips and translations as
        ``--flip`` and ``--translate`` say, the last partial batch dropped."""
        return Batches(augment=Augment(cfg.flip, cfg.translate)
                       if cfg.flip or cfg.translate else None)

    def whitening(self, cfg: Any) -> torch.Tensor | None:
        """A (3 S², 3 S²) matrix both loaders apply to every normalised, flattened image (the
        MLP's ZCA, fitted to ``self.splits.x_train``), kept in the saved model; default
        None."""
        return None

    def model_to_train(self, cfg: Any, model: nn.Module) -> nn.Module:
        """The network the run trains, given ``build_model``'s with its initial weights:
        that one by default; with ``--impl`` a student's network in its place, holding
        those weights (``nnlab eval`` and export rebuild ``build_model``'s and load what was
        trained into it)."""
        return model

    def prepare(self, cfg: Any, model: nn.Module, loader: Loader) -> None:
        """Set-up of the network from the training data before the first step (the fast
        CNN's whitening layer); ``loader.x`` (N, 3, S, S) uint8, ``loader.mean`` and
        ``loader.std`` its normalisation. Its time counts in ``wall_s``."""

    def phases(self, cfg: Any) -> dict[str, Any]:
        """{phase: config}: models trained one after the other from the same initial
        weights (the study's VGG: Adam, then SGD), each with its own history, model and
        figures (``history-<phase>.csv``, ``model-<phase>.pt``...). Default: one, unnamed."""
        return {"": cfg}

    def step_options(self, cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer,
                     steps: int) -> StepOptions:
        """What the step does beyond the optimizer; default: ``--label-smoothing``."""
        return StepOptions(label_smoothing=cfg.label_smoothing)

    def on_epoch_start(self, cfg: Any, model: nn.Module, epoch: int) -> None:
        """Run before epoch ``epoch``'s batches (0-based; again for the epoch a resumed run
        goes on from): change what trains, freeze a layer... Default: nothing."""

    def tta_weight(self, cfg: Any) -> float:
        """With ``--tta flip+translate``: the weight of the untranslated pair of views (each
        shifted pair has half the rest); default 1/3, all six views alike."""
        return 1 / 3

    def title(self, cfg: Any) -> str:
        """The figures' title."""
        return f"{self.name}, {cfg.epochs} epochs, batch {cfg.batch_size}"

    def finish(self, cfg: Any, metrics: dict[str, Any], histories: dict[str, History]
               ) -> dict[str, Any]:
        """The metrics to return, from the loop's (``metrics``, with ``self.facts`` in it;
        one block per phase when there are several) and each phase's history: add your own,
        draw more figures."""
        return metrics

    # ------------------------------------------------------------------ the loop

    def train(self, cfg: Any, run: Any) -> dict[str, Any]:  # a Config, a Run
        """Train; return the metrics (the same keys in every image experiment: see
        :func:`finish` and :func:`run_facts`)."""
        cfg = resolve(cfg)  # every "the recipe's value" filled in
        self.run, self.facts = run, {}
        try:
            return self._train(cfg, run)
        finally:
            self.run = self.splits = None  # the data is not kept past the run

    def _train(self, cfg: Any, run: Any) -> dict[str, Any]:
        splits = self.splits = setup(cfg, run)
        t = time.perf_counter()  # wall_s: set-up (ZCA, whitening), training, evaluation
        torch.manual_seed(cfg.seed)
        fmt = self.layout(cfg)
        zca = self.whitening(cfg)
        drawn = self.batches(cfg)

        def training_loader() -> Loader:  # one per phase: each draws the same batches
            return Loader(splits.x_train, splits.y_train, cfg.batch_size, splits.mean,
                          splits.std, shuffle=True, augment=drawn.augment, zca=zca,
                          drop_last=drawn.drop_last, seed=cfg.seed, device=run.device,
                          memory_format=fmt, rank=run.dist.rank,
                          world_size=run.dist.world_size,
                          alternate_flips=drawn.alternate_flips, mix=drawn.mix,
                          targets=drawn.targets)

        loader = training_loader()
        check_batches(loader, cfg.batch_size)
        held = Loader(splits.x_eval, splits.y_eval, EVAL_BATCH, splits.mean, splits.std,
                      zca=zca, device=run.device, memory_format=fmt)
        model = self.model_to_train(cfg, self.build_model(cfg, len(splits.classes)))
        model = model.to(run.device)
        self.prepare(cfg, model, loader)
        setup_s = run.fitted("setup_s", lambda: time.perf_counter() - t)
        phases = self.phases(cfg)
        metrics: dict[str, Any] = {}
        histories: dict[str, History] = {}
        together = History()
        for i, (phase, pcfg) in enumerate(phases.items()):
            net = (copy.deepcopy(model) if len(phases) > 1 else model).to(memory_format=fmt)
            loader = loader if i == 0 else training_loader()
            steps = pcfg.epochs * len(loader)
            opt, sched = self.optimizer(pcfg, net, steps)
            end, histories[phase] = self._phase(
                pcfg, net, opt, sched, loader, held, phase, setup_s,
                self.step_options(pcfg, net, opt, steps))
            if not phase:
                metrics.update(end)
                continue
            metrics[phase] = end
            together.extend(histories[phase])
            if run.main:
                together.to_csv(run.out / "history.csv")
        metrics.update(run_facts(run, splits, model))
        metrics.update(self.facts)
        return self.finish(cfg, metrics, histories)

    def _phase(self, cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any, loader: Loader, held: Loader, phase: str, setup_s: float,
               options: StepOptions) -> tuple[dict[str, Any], History]:
        """One model trained for ``cfg.epochs`` on ``loader``, evaluated on ``held`` after
        each epoch without TTA, then :func:`finish`."""
        run, splits = self.run, self.splits
        suffix = f"-{phase}" if phase else ""
        named = (lambda part: state_key(phase, part)) if phase else (lambda part: part)
        run.track(**{named("batch_order"): loader.gen, named("augmentation"): loader.aug_gen})
        evaluated = options.ema.module if options.ema is not None else model
        ev = splits.eval_name

        def evaluate_all() -> dict[str, float]:  # per epoch, without TTA: cheap, and the clock
            loss, acc = loss_acc(*predict(evaluated, held, run.autocast, "none"))
            return {f"{ev}_loss": loss, f"{ev}_acc": acc}

        def batches(epoch: int):  # noqa: ANN202 - an iterator of (x, y)
            self.on_epoch_start(cfg, model, epoch)
            return loader.epoch(epoch)

        step = TorchStep(distributed.wrap(model, run.dist, run.device), optimizer,
                         smoothed_cross_entropy(options.label_smoothing), scheduler,
                         run.autocast, ema=options.ema, lookahead=options.lookahead)
        group = self.phase_group if phase else "run"
        history = train_epochs(step, batches, cfg.epochs, evaluate_all, run=run,
                               phase=phase or "train", tags={group: phase} if phase else None,
                               desc=" ".join(filter(None, (self.name, phase,
                                                           f"seed {cfg.seed}"))),
                               wall_offset=setup_s,
                               history_path=run.out / f"history{suffix}.csv"
                               if run.main else None)
        if options.lookahead is not None:
            options.lookahead.sync()  # the final weights: the slow ones, caught up
        end = finish(run, evaluated, held, splits, history, cfg.tta, self.title(cfg),
                     suffix=suffix, group=group, tta_untranslated=self.tta_weight(cfg))
        return end, history

    # ------------------------------------------------------------------ nnlab eval

    def evaluate(self, run_dir: Path, cfg: Any, split: str, tta: str | None,
                 data: str | None, experiment: Experiment | None = None) -> dict[str, Any]:
        """``nnlab eval``: each saved model (one per phase) on ``split`` ('val' or 'test')
        with ``tta`` (default: the run's own), the data as the run saw it (its normalisation,
        and its whitening when it had one); keyed like metrics.json (``<phase>.<split>_acc``
        when there are phases)."""
        cfg = cfg.resolved()
        tta = tta or cfg.tta
        if split == "val" and cfg.final:
            raise ConfigError("this run trained on all of train (--final): evaluate it with "
                              "--split test")
        device = resolve_device("auto")
        precision = resolve_precision(cfg.precision, device)
        fmt = self.layout(cfg)
        splits = make_splits(data or cfg.data, cfg.val_size, final=split == "test",
                             image_size=cfg.image_size, asked="--split test")
        said = read_json(Path(run_dir) / "config.json").get("data_source")
        if isinstance(said, dict) and said.get("files") != splits.source["files"]:
            print(f"nnlab: warning: the data is not what this run trained on: "
                  f"{splits.source['path']} holds {splits.source['images']} images now, "
                  f"{said.get('path')} held {said.get('images')} (another file list)",
                  file=sys.stderr, flush=True)
        out: dict[str, Any] = {"tta": tta}
        for phase in self.phases(cfg):
            trained = load_trained(run_dir, f"model-{phase}" if phase else "model",
                                   experiment, phase=phase or "train")
            model = trained.net.to(device, memory_format=fmt)
            held = Loader(splits.x_eval, splits.y_eval, EVAL_BATCH, trained.data["mean"],
                          trained.data["std"], zca=trained.data.get("zca"), device=device,
                          memory_format=fmt)
            loss, acc = loss_acc(*predict(model, held, lambda: autocast(device, precision),
                                          tta, self.tta_weight(cfg)))
            scores = {f"{split}_acc": acc, f"{split}_loss": loss}
            if phase:
                out[phase] = scores
            else:
                out.update(scores)
        return out

    # ------------------------------------------------------------------ the record

    def experiment(self, description: str, Config: type,  # noqa: N803 - a class
                   summarize: Callable[[dict], str] = image_summary, **parts: Any
                   ) -> Experiment:
        """The :class:`~nnlab.experiments.Experiment` that trains in this recipe: ``nnlab
        run``, ``eval``, ``predict``, ``export`` and seeds. ``parts``: any other part of the
        record (``quick`` is added to every image run's quick defaults)."""
        if not isinstance(Config, type) or not issubclass(Config, ImageOptions):
            raise NnlabError(f"experiment {self.name!r}: its Config must subclass "
                             "nnlab.ImageOptions (or nnlab.ClassifierOptions)")
        if missing := [f for f in ("epochs", "batch_size") if f not in
                       Config.__dataclass_fields__]:
            raise NnlabError(f"experiment {self.name!r}: its Config has no {missing[0]!r} "
                             "field, which the loop needs: subclass nnlab.ClassifierOptions")
        record: dict[str, Any] = {}

        def evaluate(run_dir: Path, cfg: Any, split: str, tta: str | None,
                     data: str | None) -> dict:
            return self.evaluate(run_dir, cfg, split, tta, data, record.get("exp"))

        record["exp"] = Experiment(
            name=self.name, description=description, Config=Config, train=self.train,
            build_model=self.build_model, summarize=summarize, needs_cifar=True,
            held_out=held_out, resolve=ImageOptions.resolved,
            quick={**QUICK, **parts.pop("quick", {})}, **{"evaluate": evaluate, **parts})
        return record["exp"]


# --------------------------------------------------------------------------- the loop's steps


def check_batches(loader: Loader, batch_size: int) -> None:
    """A training loader that drops its last partial batch must still have one batch."""
    if len(loader) == 0:
        raise ConfigError(f"--batch-size {batch_size} is more than the {len(loader.y)} "
                          "training images; lower it (or raise --train-limit)")


def finish(run: Any, model: nn.Module, held: Loader, splits: Splits, history: History,
           tta: str, title: str, suffix: str = "", group: str = "run",
           tta_untranslated: float = 1 / 3) -> dict[str, Any]:
    """The end of an image run: the final evaluation with ``tta`` on the held-out split, the
    saved model ``model<suffix>.pt``, ``curves<suffix>.png`` and ``confusion<suffix>.png``.

    Returns the metrics every image experiment reports, under the same names:
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
        figures(history, logits, labels, splits, run.out, title, group=group, suffix=suffix)
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


def run_facts(run: Any, splits: Splits, model: nn.Module) -> dict[str, Any]:
    """Sizes and where it ran: the same keys in every image experiment's metrics."""
    ev = splits.eval_name
    return {"n_params": sum(p.numel() for p in model.parameters()),
            "n_train": len(splits.y_train), f"n_{ev}": len(splits.y_eval),
            "data_s": run.data["data_s"], "device": run.device.type,
            "precision": run.precision, "world_size": run.dist.world_size}


# --------------------------------------------------------------------------- your own model


class _Given(ImageRecipe):
    """A recipe made of functions (:func:`image_classifier`)."""

    def __init__(self, name: str, build_model: Callable[[Any, int], nn.Module],
                 optimizer: Optimizer) -> None:
        super().__init__(name)
        self._build, self._optimizer = build_model, optimizer

    def build_model(self, cfg: Any, n_classes: int) -> nn.Module:
        return self._build(cfg, n_classes)

    def optimizer(self, cfg: Any, model: nn.Module, steps: int
                  ) -> tuple[torch.optim.Optimizer, Any]:
        return self._optimizer(cfg, model, steps)


def image_classifier(name: str, description: str, Config: type,  # noqa: N803 - a class
                     build_model: Callable[[Any, int], nn.Module],
                     optimizer: Optimizer = one_cycle_sgd, **parts: Any) -> Experiment:
    """The :class:`~nnlab.experiments.Experiment` of your image classifier (``nnlab run
    FILE.py``, a plugin, ``nnlab.run``), trained in :class:`ImageRecipe`: ``Config``
    subclasses :class:`~nnlab.vision.ClassifierOptions`, ``build_model(config, n_classes)``
    makes the network, ``optimizer(config, model, steps)`` (optional) its optimizer and
    schedule. ``parts``: any other part of the record (``quick`` is added to every image
    run's quick defaults; ``extendable`` defaults to False, as a schedule planned for
    ``--epochs`` cannot grow). For more hooks (layout, augmentation, set-up, phases, EMA,
    an epoch hook...), subclass :class:`ImageRecipe` and call its
    :meth:`~ImageRecipe.experiment`."""
    parts.setdefault("extendable", lambda config: False)
    return _Given(name, build_model, optimizer).experiment(description, Config, **parts)
