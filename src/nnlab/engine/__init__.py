"""The training engine every experiment shares: one step, two drivers, one run lifecycle."""

from nnlab.engine.history import History
from nnlab.engine.loop import (
    TorchStep,
    evaluate,
    evaluate_numpy,
    fit,
    fit_numpy,
    train_epochs,
    train_steps,
)
from nnlab.engine.run import Run, RunOptions, launch

__all__ = ["History", "TorchStep", "fit", "fit_numpy", "evaluate", "evaluate_numpy",
           "train_epochs", "train_steps", "Run", "RunOptions", "launch"]
