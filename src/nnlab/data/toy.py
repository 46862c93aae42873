"""The study's 2-D toy datasets (scikit-learn's make_moons, make_circles, make_blobs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import make_blobs, make_circles, make_moons
from sklearn.model_selection import train_test_split

from nnlab.errors import ConfigError

TOY_DATASETS = ("moons", "circles", "blobs")
VAL_SEED = 1_000_003  # the validation draw's seed, offset from the data's


@dataclass
class ToyData:
    """Standardised features and integer labels.

    x_train: (N_train, 2) float32, y_train: (N_train,) int64; likewise x_test, y_test, and
    x_val, y_val: a fresh draw of the same distribution (as many points as the test split),
    for tuning without touching the test split. ``mean`` and ``std`` (2,) are the train
    statistics used to standardise every split.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def make_toy(
    name: str,
    n_samples: int = 1000,
    noise: float = 0.1,
    test_size: float = 0.2,
    seed: int = 0,
    circles_factor: float = 0.5,
    blobs_centers: int = 3,
    blobs_std: float = 1.0,
) -> ToyData:
    """Draw a toy dataset and split it (stratified, seeded) into train and test.

    ``noise`` is the Gaussian noise of moons and circles; blobs are set by ``blobs_centers`` and
    ``blobs_std`` (scikit-learn's defaults). Features are standardised with train statistics.
    """
    def draw(n: int, state: int, centers=blobs_centers):  # noqa: ANN001, ANN202
        if name == "moons":
            return make_moons(n, noise=noise, random_state=state)
        if name == "circles":
            return make_circles(n, noise=noise, factor=circles_factor, random_state=state)
        return make_blobs(n, centers=centers, cluster_std=blobs_std, random_state=state,
                          return_centers=True)

    if name not in TOY_DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(TOY_DATASETS)}")
    x, y, *centers = draw(n_samples, seed)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    # validation: the same distribution (blobs: the same centres), drawn apart from the rest
    x_va, y_va, *_ = draw(len(y_te), seed + VAL_SEED, *centers)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    return ToyData(
        name=name,
        x_train=((x_tr - mean) / std).astype(np.float32),
        y_train=y_tr.astype(np.int64),
        x_test=((x_te - mean) / std).astype(np.float32),
        y_test=y_te.astype(np.int64),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        x_val=((x_va - mean) / std).astype(np.float32),
        y_val=y_va.astype(np.int64),
    )
