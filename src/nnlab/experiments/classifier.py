"""nnlab's image-classifier loop as one public object, :class:`ImageRecipe`, with hooks.

Every image experiment trains in it: nnlab's fast CNN, the study's VGG and the MLP, and a
model of your own in one file (:func:`image_classifier`). The loop is in
:meth:`ImageRecipe.train`, in view; what differs between experiments is in the hooks.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nnlab.config import option
from nnlab.engine import History, TorchStep, distributed, train_epochs
from nnlab.engine.checkpoint import state_key
from nnlab.experiments.cifar_common import (
    EVAL_BATCH,
    QUICK,
    CifarOptions,
    Splits,
    check_batches,
    cifar_experiment,
    cifar_summary,
    finish,
    loss_acc,
    predict,
    run_facts,
    setup,
    smoothed_cross_entropy,
    weight_decay_groups,
)


@dataclass
class ImageOptions(CifarOptions):
    """The flags of an image classifier of your own, on CIFAR-10 or any image folder: every
    CIFAR experiment's (``--data``, ``--final``, ``--train-limit``, ``--tta``...) and the
    loop's. Subclass it with your model's fields; its ``RECIPES`` give flip, translate and
    TTA (override them as the example does)."""

    epochs: int = option(10, "passes over the training split", gt=0)
    batch_size: int = option(256, "images per step", gt=0)
    lr: float = option(0.1, "peak learning rate (default optimizer: Nesterov SGD, one-cycle)",
                       gt=0, le=10)
    weight_decay: float = option(5e-4, "weight decay on weights (not biases or normalisation)",
                                 ge=0)
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy", ge=0, lt=1)
    RECIPES = {"default": {"flip": True, "translate": 2, "tta": "flip"}}

    def __post_init__(self) -> None:
        self.check_common()


Optimizer = Callable[[Any, nn.Module, int], tuple[torch.optim.Optimizer, Any]]


def one_cycle_sgd(cfg: ImageOptions, model: nn.Module, steps: int
                  ) -> tuple[torch.optim.Optimizer, Any]:
    """The default optimizer of :class:`ImageRecipe`: Nesterov SGD (momentum 0.9, weight
    decay on weights only) on a one-cycle schedule peaking at ``cfg.lr`` over ``steps``."""
    opt = torch.optim.SGD(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr,
                          momentum=0.9, nesterov=True)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)


class ImageRecipe:
    """nnlab's image-classifier loop: the split (or ``--final``) and its normalisation,
    loaders with batched augmentation (each process its share under torchrun), per-epoch
    evaluation without TTA, checkpoints and exact resume, the final evaluation with TTA, the
    saved model, curves and confusion matrix, and the facts every image run records.

    Subclass it and override the hooks; only :meth:`build_model` is required. While
    :meth:`train` runs, ``self.run`` is the :class:`~nnlab.engine.Run` (its device, deadline,
    notes) and ``self.splits`` the data (``classes``, ``x_train`` ...). nnlab's own image
    experiments (``cifar-speedrun``, ``cifar-cnn``, ``cifar-mlp``) are subclasses; a model of
    your own needs only :func:`image_classifier`."""

    name = "image classifier"
    phase_group = "phase"  # the history column that names a phase, when there are several

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

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

    def loader_options(self, cfg: Any) -> dict[str, Any]:
        """Keyword arguments of the training loader (:class:`~nnlab.data.cifar10.Loader`)
        beyond its data: ``augment``, ``alternate_flips``, ``mix``, ``drop_last`` (default
        True); and of both loaders, under the key ``both``: ``zca``."""
        from nnlab.data.cifar10 import Augment

        return {"augment": Augment(cfg.flip, cfg.translate)
                if cfg.flip or cfg.translate else None}

    def prepare(self, cfg: Any, model: nn.Module, loader: Any) -> None:
        """Set-up of the network from the training data before the first step (the fast
        CNN's whitening layer); ``loader.x`` (N, 3, S, S) uint8, ``loader.mean`` and
        ``loader.std`` its normalisation. Its time counts in ``wall_s``."""

    def phases(self, cfg: Any) -> dict[str, Any]:
        """{phase: config}: models trained one after the other from the same initial
        weights (the study's VGG: Adam, then SGD), each with its own history, model and
        figures (``history-<phase>.csv``, ``model-<phase>.pt``...). Default: one, unnamed."""
        return {"": cfg}

    def extras(self, cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer,
               steps: int) -> dict[str, Any]:
        """What the step does beyond the optimizer: ``label_smoothing``, ``ema`` (an
        averaged model, evaluated and saved), ``lookahead``, ``on_epoch(e)`` (run before
        epoch e's batches), ``tta_untranslated`` (the weight of the untranslated views)."""
        return {"label_smoothing": cfg.label_smoothing}

    def title(self, cfg: Any) -> str:
        """The figures' title."""
        return f"{self.name}, {cfg.epochs} epochs, batch {cfg.batch_size}"

    def finish(self, cfg: Any, metrics: dict[str, Any], histories: dict[str, History]
               ) -> dict[str, Any]:
        """The metrics to return, from the loop's (``metrics``; one block per phase when
        there are several) and each phase's history: add your own, draw more figures."""
        return metrics

    # ------------------------------------------------------------------ the loop

    def train(self, cfg: Any, run: Any) -> dict[str, Any]:  # a Config, a Run
        """Train; return the metrics (the same keys in every image experiment: see
        :func:`~nnlab.experiments.cifar_common.finish` and
        :func:`~nnlab.experiments.cifar_common.run_facts`)."""
        return copy.copy(self)._train(cfg.resolved(), run)  # a copy holds this run's state

    def _train(self, cfg: Any, run: Any) -> dict[str, Any]:
        from nnlab.data.cifar10 import Loader

        self.run = run
        splits = self.splits = setup(cfg, run)
        t = time.perf_counter()  # wall_s: set-up (ZCA, whitening), training, evaluation
        torch.manual_seed(cfg.seed)
        fmt = self.layout(cfg)
        options = self.loader_options(cfg)
        both = options.pop("both", {})

        def training_loader() -> Loader:  # one per phase: each draws the same batches
            return Loader(splits.x_train, splits.y_train, cfg.batch_size, splits.mean,
                          splits.std, seed=cfg.seed, device=run.device, memory_format=fmt,
                          rank=run.dist.rank, world_size=run.dist.world_size,
                          **{"shuffle": True, "drop_last": True, **options}, **both)

        loader = training_loader()
        check_batches(loader, cfg.batch_size)
        held = Loader(splits.x_eval, splits.y_eval, EVAL_BATCH, splits.mean, splits.std,
                      device=run.device, memory_format=fmt, **both)
        model = self.build_model(cfg, len(splits.classes)).to(run.device)
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
                **self.extras(pcfg, net, opt, steps))
            if not phase:
                metrics.update(end)
                continue
            metrics[phase] = end
            together.extend(histories[phase])
            if run.main:
                together.to_csv(run.out / "history.csv")
        metrics.update(run_facts(run, splits, model))
        return self.finish(cfg, metrics, histories)

    def _phase(self, cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any, loader: Any, held: Any, phase: str, setup_s: float, *,
               label_smoothing: float = 0.0, ema: Any = None, lookahead: Any = None,
               on_epoch: Callable[[int], None] | None = None,
               tta_untranslated: float = 1 / 3) -> tuple[dict[str, Any], History]:
        """One model trained for ``cfg.epochs`` on ``loader``, evaluated on ``held`` after
        each epoch without TTA, then :func:`~nnlab.experiments.cifar_common.finish`."""
        run, splits = self.run, self.splits
        suffix = f"-{phase}" if phase else ""
        named = (lambda part: state_key(phase, part)) if phase else (lambda part: part)
        run.track(**{named("batch_order"): loader.gen, named("augmentation"): loader.aug_gen})
        evaluated = ema.module if ema is not None else model
        ev = splits.eval_name

        def evaluate_all() -> dict[str, float]:  # per epoch, without TTA: cheap, and the clock
            loss, acc = loss_acc(*predict(evaluated, held, run.autocast, "none"))
            return {f"{ev}_loss": loss, f"{ev}_acc": acc}

        def batches(epoch: int):  # noqa: ANN202 - an iterator of (x, y)
            if on_epoch is not None:
                on_epoch(epoch)
            return loader.epoch(epoch)

        step = TorchStep(distributed.wrap(model, run.dist, run.device), optimizer,
                         smoothed_cross_entropy(label_smoothing), scheduler, run.autocast,
                         ema=ema, lookahead=lookahead)
        group = self.phase_group if phase else "run"
        history = train_epochs(step, batches, cfg.epochs, evaluate_all, run=run,
                               phase=phase or "train", tags={group: phase} if phase else None,
                               desc=" ".join(filter(None, (self.name, phase,
                                                           f"seed {cfg.seed}"))),
                               wall_offset=setup_s,
                               history_path=run.out / f"history{suffix}.csv"
                               if run.main else None)
        if lookahead is not None:
            lookahead.sync()  # the final weights: the slow ones, caught up with the last steps
        end = finish(run, evaluated, held, splits, history, cfg.tta, self.title(cfg),
                     suffix=suffix, group=group, tta_untranslated=tta_untranslated)
        return end, history

    # ------------------------------------------------------------------ the record

    def experiment(self, description: str, Config: type,  # noqa: N803 - a class
                   summarize: Callable[[dict], str] = cifar_summary, **parts: Any
                   ):  # noqa: ANN206 - an Experiment
        """The :class:`~nnlab.experiments.Experiment` that trains in this recipe: ``nnlab
        run``, ``eval``, ``predict``, ``export`` and seeds. ``parts``: any other part of the
        record (``quick`` is added to every image run's quick defaults)."""
        return cifar_experiment(name=self.name, description=description, Config=Config,
                                train=self.train, build_model=self.build_model,
                                layout=self.layout, summarize=summarize,
                                quick={**QUICK, **parts.pop("quick", {})}, **parts)


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
                     optimizer: Optimizer = one_cycle_sgd, **parts: Any):  # noqa: ANN201
    """The :class:`~nnlab.experiments.Experiment` of your image classifier (``nnlab run
    FILE.py``, a plugin, ``nnlab.run``), trained in :class:`ImageRecipe`: ``Config``
    subclasses :class:`ImageOptions`, ``build_model(config, n_classes)`` makes the network,
    ``optimizer(config, model, steps)`` (optional) its optimizer and schedule. ``parts``: any
    other part of the record (``quick`` is added to every image run's quick defaults;
    ``extendable`` defaults to False, as a schedule planned for ``--epochs`` cannot grow).
    For more hooks (layout, augmentation, set-up, phases, EMA...), subclass
    :class:`ImageRecipe` and call its :meth:`~ImageRecipe.experiment`."""
    parts.setdefault("extendable", lambda config: False)
    return _Given(name, build_model, optimizer).experiment(description, Config, **parts)


__all__ = ["ImageOptions", "ImageRecipe", "image_classifier", "one_cycle_sgd", "Splits"]
