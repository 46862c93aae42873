import numpy as np
import pytest

from nnlab.data.toy import make_toy
from nnlab.errors import ConfigError


@pytest.mark.parametrize("name, n_classes", [("moons", 2), ("circles", 2), ("blobs", 3)])
def test_split_sizes_standardised_and_seeded(name, n_classes):
    data = make_toy(name, n_samples=500, seed=4)
    assert data.x_train.shape == (400, 2) and data.x_test.shape == (100, 2)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.n_classes == n_classes
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-4)
    # stratified: each class has its share of the test split
    assert np.bincount(data.y_test).min() >= 100 // n_classes - 1
    again = make_toy(name, n_samples=500, seed=4)
    np.testing.assert_array_equal(data.x_test, again.x_test)
    other = make_toy(name, n_samples=500, seed=5)
    assert not np.array_equal(data.x_test, other.x_test)


def test_noise_changes_the_points():
    a, b = make_toy("moons", noise=0.0), make_toy("moons", noise=0.3)
    assert not np.allclose(a.x_train, b.x_train)


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown dataset 'spirals'"):
        make_toy("spirals")


@pytest.mark.parametrize("name", ["moons", "circles", "blobs"])
def test_the_validation_draw_is_the_same_distribution_apart_from_train_and_test(name):
    """A sweep tunes on x_val, a fresh draw (blobs: around the same centres), as many points
    as the test split, standardised with the train statistics; train and test are as before."""
    data = make_toy(name, n_samples=600, seed=3)
    assert data.x_val.shape == data.x_test.shape and data.x_val.dtype == np.float32
    assert not set(map(tuple, data.x_val.tolist())) & set(map(tuple, data.x_train.tolist()))
    for k in range(data.n_classes):  # each class's points where the training ones are
        assert np.linalg.norm(data.x_val[data.y_val == k].mean(0)
                              - data.x_train[data.y_train == k].mean(0)) < 0.3
