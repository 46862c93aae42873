"""The image classifier's one home: its flags (:class:`ImageOptions`, :class:`ClassifierOptions`),
its splits, the loop with its named hooks (:class:`ImageRecipe`, :func:`image_classifier`),
scoring with test-time augmentation (:func:`predict`) and a trained run opened from its folder
(:func:`load_trained`). A user's image model plugs in here; nnlab's CIFAR experiments are
subclasses of the recipe.

The parts that need torch are loaded when first used: a Config's flags
(:mod:`nnlab.vision.options`) are read by ``nnlab run NAME --help`` without it.
"""

import importlib
from typing import Any

_WHERE = {
    "EVAL_BATCH": "options", "QUICK": "options", "TTA": "options", "TTA_VIEWS": "options",
    "ClassifierOptions": "options", "ImageOptions": "options",
    "Batches": "recipe", "ImageRecipe": "recipe", "StepOptions": "recipe",
    "image_classifier": "recipe", "image_summary": "recipe", "make_ema": "recipe",
    "one_cycle_sgd": "recipe", "smoothed_cross_entropy": "recipe",
    "weight_decay_groups": "recipe",
    "Splits": "splits", "limit_train": "splits", "make_splits": "splits",
    "default_val_size": "splits",
    "Trained": "trained", "load_trained": "trained", "model_names": "trained",
    "loss_acc": "recipe", "predict": "recipe", "setup": "splits",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"nnlab.vision.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'nnlab.vision' has no attribute {name!r}")
