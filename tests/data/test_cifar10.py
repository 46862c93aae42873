"""CIFAR-10 loading from every source format, its errors, splits and batch augmentation.
Every dataset here is a tiny fake made in a temp folder; nothing is downloaded."""

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import make_cifar_folder
from PIL import Image

from nnlab.data.cifar10 import (
    CLASSES,
    Augment,
    DataError,
    Loader,
    Mix,
    channel_stats,
    cutout,
    fit_zca,
    load_cifar10,
    resized_crop,
    stratified_split,
    translate,
)


def test_image_folder_official_label_order_and_shapes(tmp_path):
    data = load_cifar10(make_cifar_folder(tmp_path / "cf"), cache_dir=tmp_path / "cache")
    assert data.classes == CLASSES
    assert data.x_train.shape == (30, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert data.y_train.tolist() == [c for c in range(10) for _ in range(3)]
    assert data.x_test.shape == (30, 3, 32, 32)
    # pixels survive exactly (PNG is lossless)
    first = np.array(Image.open(tmp_path / "cf/train/airplane/0000.png"))
    assert torch.equal(data.x_train[0], torch.from_numpy(first).permute(2, 0, 1))


def test_tar_gz_equals_folder_and_train_only_has_no_test(tmp_path):
    root = make_cifar_folder(tmp_path / "cf", splits=("train",), fmt="jpg")
    with tarfile.open(tmp_path / "cf.tar.gz", "w:gz") as tar:
        tar.add(root / "train", arcname="train")
    from_tar = load_cifar10(tmp_path / "cf.tar.gz", cache_dir=tmp_path / "c1")
    from_dir = load_cifar10(root, cache_dir=tmp_path / "c2")
    assert torch.equal(from_tar.x_train, from_dir.x_train)
    assert torch.equal(from_tar.y_train, from_dir.y_train)
    assert from_tar.x_test is None


def test_cache_is_used_and_refreshed_when_the_source_changes(tmp_path):
    root = make_cifar_folder(tmp_path / "cf", classes=("a", "b"), per_class=2)
    cache = tmp_path / "cache"
    load_cifar10(root, cache_dir=cache)
    assert len(list(cache.glob("*.pt"))) == 1
    again = load_cifar10(root, cache_dir=cache)  # from the cache
    assert again.classes == ("a", "b") and len(list(cache.glob("*.pt"))) == 1
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train/a/0009.png")
    changed = load_cifar10(root, cache_dir=cache)
    assert len(changed.y_train) == 5 and len(list(cache.glob("*.pt"))) == 2


def test_default_path_comes_from_nnlab_data(tmp_path, monkeypatch):
    root = make_cifar_folder(tmp_path / "cf", classes=("a", "b"), per_class=1)
    monkeypatch.setenv("NNLAB_DATA", str(root))
    assert load_cifar10(cache_dir=tmp_path / "c").classes == ("a", "b")


def test_an_empty_nnlab_data_counts_as_unset(monkeypatch):
    from nnlab.data.cifar10 import default_root

    monkeypatch.setenv("NNLAB_DATA", "")
    assert default_root() == Path.home() / ".cache" / "nnlab" / "cifar10"


@pytest.mark.parametrize("breakage, message", [
    ("missing", "no such file or folder"),
    ("empty_class", "train/cat is missing or has no images"),
    ("bad_image", "0000.png: not an image nnlab can read"),
    ("class_sets", "train and test have different classes (extra)"),
    ("one_class", "train/ holds 1 class folder; a classifier needs at least 2"),
    ("not_tar", "expected a folder or a .tar.gz"),
    ("bad_tar", "not a readable .tar.gz"),
])
def test_bad_sources_are_one_clear_error(tmp_path, breakage, message):
    root = make_cifar_folder(tmp_path / "cf", classes=("cat", "dog"), per_class=1)
    target = root
    if breakage == "missing":
        target = tmp_path / "nowhere"
    elif breakage == "empty_class":
        (root / "train/cat/0000.png").unlink()
    elif breakage == "bad_image":
        (root / "train/dog/0000.png").write_bytes(b"not an image")
    elif breakage == "class_sets":
        (root / "test/extra").mkdir()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "test/extra/0.png")
    elif breakage == "one_class":
        import shutil

        for split in ("train", "test"):
            shutil.rmtree(root / split / "dog")
    elif breakage == "not_tar":
        target = tmp_path / "data.zip"
        target.write_bytes(b"PK")
    elif breakage == "bad_tar":
        target = tmp_path / "data.tar.gz"
        target.write_bytes(b"garbage")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_cifar10(target, cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_torchvision_root_failing_checksum(tmp_path):
    batches = tmp_path / "tv" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (batches / name).write_bytes(b"corrupt")
    with pytest.raises(DataError, match="fails its checksum check"):
        load_cifar10(tmp_path / "tv", download=False)


def test_stratified_split_is_even_fixed_and_disjoint():
    y = torch.arange(10).repeat_interleave(50)
    tr, va = stratified_split(y, 100, seed=0)
    assert len(va) == 100 and len(tr) == 400
    assert torch.bincount(y[va]).tolist() == [10] * 10
    assert not set(tr.tolist()) & set(va.tolist())
    assert torch.equal(va, stratified_split(y, 100, seed=0)[1])
    assert not torch.equal(va, stratified_split(y, 100, seed=1)[1])
    with pytest.raises(DataError, match="--val-size"):
        stratified_split(y, 500)


def test_translate_moves_content_and_reflects_border():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    out = translate(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2,) * 4, mode="reflect")
    for i in range(2):  # every output is one 6x6 window of the reflect-padded image
        windows = [padded[i, :, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_resized_crops_magnify_a_window_of_each_image():
    """A ramp along x: a crop of area fraction a keeps a window sx wide and stretches it over
    the image, so each output row rises by sx per pixel of the input's 1 (sx <= 1, and below
    1 whenever the crop is narrower than the image); values stay within the input's range."""
    ramp = torch.arange(32, dtype=torch.float32).expand(256, 3, 32, 32).contiguous()
    out = resized_crop(ramp, 0.25, torch.Generator().manual_seed(0))
    assert out.shape == ramp.shape
    assert out.min() >= 0 and out.max() <= 31
    slope = (out[:, 0, :, 1:] - out[:, 0, :, :-1]).mean(dim=(1, 2))  # (256,) per image
    assert (slope <= 1 + 1e-4).all() and slope.mean() < 0.85 and slope.min() > 0.4
    assert len(torch.unique(slope.round(decimals=3))) > 100  # a crop of its own per image
    assert torch.equal(resized_crop(ramp, 1.0), ramp)  # 1: off


def test_cutout_zeroes_one_square_per_image():
    x = torch.ones(64, 3, 32, 32)
    out = cutout(x, 8, torch.Generator().manual_seed(0))
    zeros = (out[:, 0] == 0).sum(dim=(1, 2))
    assert zeros.max() == 64 and zeros.min() >= 16  # a full 8x8, or clipped at a corner
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)  # same hole in every channel


def test_loader_normalises_and_covers_the_split_once_per_pass():
    x = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(50)
    mean, std = channel_stats(x)
    loader = Loader(x, y, batch_size=16, mean=mean, std=std, shuffle=True,
                    augment=Augment(flip=True, translate=2, cutout=4))
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(50))
    plain = torch.cat([b[0] for b in Loader(x, y, 64, mean, std)])
    assert plain.mean().abs() < 0.05 and (plain.std() - 1).abs() < 0.05


def _other(soft: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's own label weight, and which image the rest of its label came from."""
    own = soft[torch.arange(len(y)), y]
    rest = soft.clone()
    rest[torch.arange(len(y)), y] = 0
    where = {int(c): i for i, c in enumerate(y)}  # every class once in the batch
    return own, torch.tensor([where[int(c)] if w > 0 else i
                              for i, (w, c) in enumerate(zip(*rest.max(dim=1), strict=True))])


def test_mixup_blends_each_image_with_another_by_its_label_weights():
    x, y = torch.randn(10, 3, 8, 8), torch.randperm(10)
    out, soft = Mix(mixup=1.0)(x, y, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and soft.shape == (10, 10)
    assert torch.allclose(soft.sum(dim=1), torch.ones(10))
    own, j = _other(soft, y)
    assert 0 < own.min() < 1 and (j != torch.arange(10)).all()
    assert torch.allclose(out, own[:, None, None, None] * x
                          + (1 - own[:, None, None, None]) * x[j], atol=1e-6)


def test_cutmix_pastes_a_box_whose_area_is_the_other_labels_weight():
    x, y = torch.randn(10, 3, 16, 16), torch.randperm(10)
    gen = torch.Generator().manual_seed(1)
    draws = [Mix(cutmix=1.0)(x, y, gen) for _ in range(5)]
    for out, soft in draws:
        own, j = _other(soft, y)
        mine = (out == x).all(dim=1)  # (B, H, W): pixels still the image's own
        theirs = (out == x[j]).all(dim=1)
        assert (mine | theirs).all()
        assert torch.allclose(mine.float().mean(dim=(1, 2)), own, atol=1e-6)
    assert any(d[1].max() < 1 for d in draws)  # some draw pasted a box


def test_mixing_repeats_from_the_generators_state_and_the_loader_yields_soft_labels():
    x, y = torch.randn(10, 3, 8, 8), torch.randperm(10)
    mix = Mix(mixup=0.4, cutmix=1.0)
    a, b = (mix(x, y, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    gen = torch.Generator().manual_seed(3)
    first, second = mix(x, y, gen), mix(x, y, gen)
    assert torch.equal(first[1], a[1]) and not torch.equal(second[1], first[1])
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    mean, std = channel_stats(images)
    xb, yb = next(iter(Loader(images, labels, 16, mean, std, shuffle=True, mix=mix)))
    assert xb.shape == (16, 3, 32, 32) and yb.shape == (16, 10) and yb.dtype == torch.float32


def test_zca_whitens():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 12, generator=gen) @ torch.randn(12, 12, generator=gen)
    W = fit_zca(x, eps=1e-6)
    xw = (x - x.mean(0)) @ W
    cov = xw.T @ xw / len(xw)
    torch.testing.assert_close(cov, torch.eye(12), atol=1e-3, rtol=0)


def test_zca_with_fewer_images_than_pixels_matches_the_covariance_route():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 50, generator=gen) * torch.linspace(0.1, 3, 50)
    W = fit_zca(x, eps=0.1)  # n < D: the Gram-matrix route
    xc = (x - x.mean(0)).double()
    s, U = torch.linalg.eigh(xc.T @ xc / len(x))
    expected = (U / torch.sqrt(s.clamp_min(0) + 0.1)) @ U.T
    torch.testing.assert_close(W.double(), expected, atol=1e-5, rtol=0)


def test_images_of_any_size_and_mode_are_read_as_32_by_32_rgb(tmp_path):
    """scikit-learn's digits as 8 x 8 grey PNGs, and larger RGBA ones: resized when read
    (bicubic, as nnlab predict resizes), classes from the folder names."""
    from sklearn.datasets import load_digits

    from nnlab.data.images import resize

    digits = load_digits()
    root = tmp_path / "digits"
    for i in range(40):
        label = str(digits.target[i])
        (root / "train" / label).mkdir(parents=True, exist_ok=True)
        grey = (digits.images[i] / 16 * 255).astype(np.uint8)  # (8, 8)
        Image.fromarray(grey).save(root / "train" / label / f"{i:04d}.png")
    big = Image.new("RGBA", (100, 60), (255, 0, 0, 255))
    (root / "train" / "red").mkdir()
    big.save(root / "train" / "red" / "0.png")
    data = load_cifar10(root, cache_dir=tmp_path / "cache")
    assert data.classes == (*sorted({str(d) for d in digits.target[:40]}), "red")
    assert tuple(data.x_train.shape[1:]) == (3, 32, 32)
    first = (digits.images[0] / 16 * 255).astype(np.uint8)
    expected = resize(np.repeat(first[..., None], 3, axis=2), 32)
    at = data.classes.index(str(digits.target[0]))
    assert torch.equal(data.x_train[data.y_train == at][0].permute(1, 2, 0),
                       torch.from_numpy(expected.copy()))
    assert data.x_train[-1][:, 10, 10].tolist() == [255, 0, 0]
