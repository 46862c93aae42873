"""The training engine every experiment shares: one step, two drivers, one run lifecycle.

Its parts import torch; they are loaded when first used, so that a command which only reads
(``nnlab list``, ``--help``, the folder and config checks of :mod:`nnlab.engine.prepare`)
starts at once.
"""

import importlib
from typing import Any

_WHERE = {"History": "history", "TorchStep": "loop", "evaluate": "loop",
          "evaluate_numpy": "loop", "fit": "loop", "fit_numpy": "loop", "train_epochs": "loop",
          "train_steps": "loop", "Run": "run", "RunOptions": "run", "launch": "run"}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"nnlab.engine.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'nnlab.engine' has no attribute {name!r}")
