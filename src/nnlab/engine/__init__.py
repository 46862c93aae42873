"""The training loop every experiment shares."""

from nnlab.engine.history import History
from nnlab.engine.loop import (
    evaluate,
    evaluate_numpy,
    fit,
    fit_numpy,
    train_epochs,
    train_steps,
)

__all__ = ["History", "fit", "fit_numpy", "evaluate", "evaluate_numpy", "train_epochs",
           "train_steps"]
