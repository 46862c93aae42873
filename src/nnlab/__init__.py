"""nnlab: the MLP, CNN and RNN of a classic deep-learning study, from scratch and in PyTorch.

The Python API (the CLI's twin):

* :func:`run` — run an experiment by name, ``.py`` file or record; returns its metrics.
* :func:`launch` — train your own ``train(config, run)`` with durable runs.
* :func:`load` — a finished run's trained classifier, with ``.predict(images, top_k=3)``.
* :func:`sweep` — search an experiment's flags with Optuna (``nnlab sweep``'s twin).
* :class:`Experiment` — the record that makes an experiment (``nnlab run``, ``eval``,
  seeds, plugins); :func:`option` declares a Config field and its flag; :class:`Options`
  is the base a Config may subclass (recipes, format migration, the checks).
* :func:`image_classifier` and :class:`ClassifierOptions` — your own image model on nnlab's
  classifier loop (CIFAR-10 or any image folder), as one Experiment; :class:`ImageRecipe`
  — that loop, with its named hooks (nnlab's own image experiments are subclasses);
  :class:`ImageOptions` — the flags every image experiment has (:mod:`nnlab.vision`).
* :func:`train_epochs` and :class:`TorchStep` — the engine's epoch driver and training step.
* :class:`NnlabError`, :class:`ConfigError` — what a user can cause; the message is one line.
"""

from typing import Any

from nnlab.api import launch, load, run
from nnlab.config import Options, option
from nnlab.errors import ConfigError, NnlabError
from nnlab.experiments import Experiment

__version__ = "0.1.0"
__all__ = ["run", "launch", "load", "sweep", "Experiment", "option", "Options", "train_epochs",
           "TorchStep", "image_classifier", "ImageOptions", "ClassifierOptions", "ImageRecipe",
           "NnlabError",
           "ConfigError", "__version__"]


def __getattr__(name: str) -> Any:  # the engine imports torch: only when it is asked for
    if name in ("train_epochs", "TorchStep"):
        from nnlab.engine import loop

        return getattr(loop, name)
    if name == "sweep":
        from nnlab.sweeps import sweep

        return sweep
    if name in ("image_classifier", "ImageRecipe"):
        from nnlab import vision

        return getattr(vision, name)
    if name in ("ImageOptions", "ClassifierOptions"):  # no torch: a Config's base
        from nnlab.vision import options

        return getattr(options, name)
    raise AttributeError(f"module 'nnlab' has no attribute {name!r}")
