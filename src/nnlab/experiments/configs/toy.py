"""The flags of ``toy`` (Part I.1-2), torch-free: ``nnlab run toy --help`` reads them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnlab.config import LR_MAX, Options, option, validate
from nnlab.data.toy import TOY_DATASETS
from nnlab.errors import ConfigError

MAX_CLASSES = 3  # blobs


GRADCHECK_WRONG = 1e-4  # a relative error above this: the backward is wrong (right: ~1e-7)


def gradient_error(check: dict) -> float:
    """A toy run's ``gradient_check`` (metrics.json): its largest relative error, against
    centred differences or autograd; above :data:`GRADCHECK_WRONG` the backward is wrong."""
    return max(check.get("max_vs_differences", 0.0), check.get("max_vs_autograd", 0.0))


@dataclass
class Config(Options):
    dataset: str = option("moons", "toy set; 'all' runs each in its own sub-folder",
                          choices=(*TOY_DATASETS, "all"))
    n_samples: int = option(1000, "points drawn in all, train and test together", gt=0,
                            le=10_000_000)
    noise: float = option(0.1, "std of the Gaussian noise of moons and circles", ge=0)
    test_size: float = option(0.2, "fraction held out as the test split (stratified)",
                              gt=0, lt=1)
    hidden: tuple[int, ...] = option((20,), "hidden layer widths, comma-separated (e.g. 512,512)")
    optimizer: str = option("sgd", "update rule, the same in both implementations",
                            choices=("sgd", "adam"))
    lr: float = option(0.01, "learning rate", gt=0, le=LR_MAX)
    momentum: float = option(0.0, "SGD momentum (ignored by adam)", ge=0, lt=1)
    epochs: int = option(1000, "passes over the training set", gt=0)
    batch_size: int = option(1000, "examples per step; at least the train size = full batch",
                             gt=0)
    seed: int = option(0, "seeds the data, the shared initial weights and the batch order")
    impl: str = option("", "your code in place of nnlab's: a folder nnlab course init wrote "
                           "and you completed; its modules.py, and numpy_mlp.py and "
                           "pytorch_mlp.py where they are there; the same data, initial "
                           "weights and curves", metavar="DIR", code=True)

    def __post_init__(self) -> None:
        validate(self)
        # A stratified split needs every class (blobs has 3) in both splits.
        n_test = math.ceil(self.test_size * self.n_samples)
        if min(n_test, self.n_samples - n_test) < MAX_CLASSES:
            raise ConfigError(f"--n-samples {self.n_samples} with --test-size {self.test_size:g}"
                              f" leaves {n_test} test and {self.n_samples - n_test} training "
                              f"points; each split needs at least {MAX_CLASSES}")


# --quick: the defaults it takes first (a flag you give still wins)
QUICK = {"n_samples": 200, "epochs": 20}
