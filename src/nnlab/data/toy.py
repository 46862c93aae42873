"""The study's 2-D toy datasets (scikit-learn's make_moons, make_circles, make_blobs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import make_blobs, make_circles, make_moons
from sklearn.model_selection import train_test_split

from nnlab.errors import ConfigError

TOY_DATASETS = ("moons", "circles", "blobs")


@dataclass
class ToyData:
    """Standardised features and integer labels.

    x_train: (N_train, 2) float32, y_train: (N_train,) int64; likewise x_test, y_test.
    ``mean`` and ``std`` (2,) are the train statistics used to standardise both splits.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray

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
    if name == "moons":
        x, y = make_moons(n_samples, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = make_circles(n_samples, noise=noise, factor=circles_factor, random_state=seed)
    elif name == "blobs":
        x, y = make_blobs(n_samples, centers=blobs_centers, cluster_std=blobs_std,
                          random_state=seed)
    else:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(TOY_DATASETS)}")
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    return ToyData(
        name=name,
        x_train=((x_tr - mean) / std).astype(np.float32),
        y_train=y_tr.astype(np.int64),
        x_test=((x_te - mean) / std).astype(np.float32),
        y_test=y_te.astype(np.int64),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
    )
