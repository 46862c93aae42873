"""Experiments: each module has a ``Config`` dataclass, ``run(config, out_dir) -> metrics`` and
``summarize(metrics) -> str``."""

from __future__ import annotations

import importlib
from types import ModuleType

# CLI name -> (module, one-line description). An experiment added here gets `nnlab run NAME`
# with a flag per Config field. Descriptions live here so `nnlab list` imports no torch.
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "toy": ("nnlab.experiments.toy",
            "NumPy MLP vs PyTorch MLP on moons/circles/blobs, from the same weights (Part I.1-2)"),
    "cifar-mlp": ("nnlab.experiments.cifar_mlp",
                  "the strongest pure MLP on CIFAR-10 (recipe best) beside the study's "
                  "(recipe study) (Part I.3)"),
    "cifar-cnn": ("nnlab.experiments.cifar_cnn",
                  "the study's reduced VGG on CIFAR-10, Adam vs SGD from the same weights "
                  "(Part II)"),
    "cifar-speedrun": ("nnlab.experiments.cifar_speedrun",
                       "a compact CNN and recipe for time-to-accuracy on CIFAR-10 "
                       "(patch whitening, Nesterov SGD, TTA)"),
    "palindrome": ("nnlab.experiments.palindrome",
                   "hand-written RNN/LSTM/GRU recalling a palindrome's first digit, by length T "
                   "(Part III)"),
}


def load(name: str) -> ModuleType:
    return importlib.import_module(EXPERIMENTS[name][0])


def describe(name: str) -> str:
    return EXPERIMENTS[name][1]
