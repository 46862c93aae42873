"""Shared test fixtures: tiny fake CIFAR-10 image folders (nothing is downloaded)."""

import pytest
from fakes import make_cifar_folder


@pytest.fixture
def nnlab_cache(tmp_path, monkeypatch):
    """Decoded-data cache in a temp folder, never the user's ~/.cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NNLAB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def learnable_cifar(tmp_path_factory):
    """A learnable fake CIFAR-10 image folder: 30 train and 10 test images per class."""
    root = tmp_path_factory.mktemp("cifar")
    make_cifar_folder(root, per_class=30, splits=("train",), learnable=True)
    rng_root = root / "test"
    make_cifar_folder(root / "tmp", per_class=10, splits=("test",), learnable=True)
    (root / "tmp" / "test").rename(rng_root)
    (root / "tmp").rmdir()
    return root


@pytest.fixture
def chromium() -> str:
    """The headless browser the page tests drive: skipped where it is not installed, a
    failure on CI (.ci/run installs Debian's chromium package)."""
    import os
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("chromium is not installed here (apt-get install chromium); CI installs it")
