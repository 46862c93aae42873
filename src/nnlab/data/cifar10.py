"""CIFAR-10, decoded once to uint8 tensors and cached; splits; an in-memory batch loader.

Sources (``load_cifar10(path)``; default ``$NNLAB_DATA`` or ``~/.cache/nnlab/cifar10``):
  * the official release, through ``torchvision.datasets.CIFAR10`` (its checksums checked);
    downloaded only when CIFAR-10 is asked for by name (no path, or ``cifar10``), and only
    into a folder that is missing, empty or holds torchvision's own files;
  * a folder of class folders, ``ROOT/<class>/*``: a fixed, stratified test split (a tenth,
    at most 10,000) is carved from it, the rest is the training split;
  * an image-folder root, ``ROOT/train/<class>/*`` and, when present, ``ROOT/test/<class>/*``;
  * a ``.tar.gz`` of either folder (read in place, nothing extracted).
Decoded images are cached in one file per source in ``$NNLAB_CACHE`` (``~/.cache/nnlab``),
keyed by the source's path, sizes and modification times, so a changed source is read again;
the cache loads in well under a second (50,000 images: 0.2 s here, against 34 s to decode).

Everything after loading is tensor ops on whole batches: no per-sample Python, no PIL.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from nnlab.data.images import ImageError, read_image, resize
from nnlab.engine.checkpoint import save_atomic
from nnlab.errors import NnlabError, WriteFailed

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp"}


class DataError(NnlabError):
    """A dataset that cannot be read: missing, empty, corrupt or inconsistent."""


@dataclass
class Cifar:
    """x_*: (N, 3, S, S) uint8 (S: the image size asked for, 32 by default), y_*: (N,) int64;
    x_test/y_test are None without a test split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    classes: tuple[str, ...]
    source: str


def default_root() -> Path:
    """$NNLAB_DATA, else ~/.cache/nnlab/cifar10; an empty NNLAB_DATA counts as unset (it
    would otherwise name the current folder)."""
    return Path(os.environ.get("NNLAB_DATA") or Path.home() / ".cache" / "nnlab" / "cifar10")


# --------------------------------------------------------------------------- loading


def load_cifar10(path: str | Path | None = None, cache_dir: str | Path | None = None,
                 download: bool = True, image_size: int = 32) -> Cifar:
    """Load CIFAR-10 (or any image folder) from any supported source, through the cache,
    every image ``image_size`` pixels a side (resized as :func:`nnlab.data.images.resize`
    does where it has another size). Raises DataError with one clear line on a missing path,
    an empty or missing class folder, an unreadable image, train and test with different
    classes, or a torchvision root that fails its checksums."""
    named = is_named(path)  # CIFAR-10 by name: it may download
    root = source_root(path)
    if not root.exists() and not named:
        raise DataError(f"--data {root}: no such file or folder")
    # The cache lives apart from the source, which may be read-only (like ../shared/data).
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(
        os.environ.get("NNLAB_CACHE", Path.home() / ".cache" / "nnlab"))
    if root.is_file():
        if not root.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise DataError(f"--data {root}: expected a folder or a .tar.gz of one")
        return _cached(root, cache_dir, lambda: _read_tar(root, image_size), image_size)
    if (root / "train").is_dir():
        return _cached(root, cache_dir, lambda: _read_image_folder(root, image_size),
                       image_size)
    if _class_folders(root):
        return _cached(root, cache_dir, lambda: _read_class_folders(root, image_size),
                       image_size)
    if (root / TORCHVISION_FOLDER).is_dir():  # a torchvision root: read, never downloaded
        return _resized(_read_torchvision(root, False), image_size)
    if named and (not root.exists() or all(p.name in TORCHVISION_FILES
                                             for p in root.iterdir())):
        # CIFAR-10 by name, into a folder that holds nothing else: torchvision may download
        return _resized(_read_torchvision(root, download), image_size)
    raise DataError(f"--data {root}: {_found(root)}; it takes a folder of class folders "
                    "(DIR/<class>/*.jpg), DIR/train/<class>/* (and DIR/test/<class>/*), a "
                    ".tar.gz of either, or a torchvision CIFAR-10 root")


NAMED = "cifar10"  # --data cifar10: the official release, downloaded when missing


def is_named(path: str | Path | None) -> bool:
    """No path, or ``cifar10``: CIFAR-10 asked for by name."""
    return path is None or str(path) in ("", NAMED)


def source_root(path: str | Path | None) -> Path:
    """Where ``load_cifar10(path)`` reads: the path given, or the default root."""
    return default_root() if is_named(path) else Path(path).expanduser()


def fingerprint(path: str | Path | None, data: Cifar) -> dict:
    """What a run records of the data it read: the source's absolute path, its image count
    and classes, and a short hash of its file list (names and sizes; a .tar.gz or a
    torchvision root: its files' names and sizes), so a later reader can tell whether the
    folder changed."""
    root = source_root(path).resolve()
    h = hashlib.sha1()
    if root.is_file():
        h.update(f"{root.name}:{root.stat().st_size}".encode())
    elif root.is_dir():
        for dirpath, dirnames, filenames in sorted(os.walk(root)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                h.update(f"{rel}:{os.stat(os.path.join(dirpath, name)).st_size}\n".encode())
    images = len(data.y_train) + (len(data.y_test) if data.y_test is not None else 0)
    return {"path": str(root), "images": images, "classes": len(data.classes),
            "files": h.hexdigest()[:12]}
TORCHVISION_FOLDER = "cifar-10-batches-py"
TORCHVISION_FILES = {TORCHVISION_FOLDER, "cifar-10-python.tar.gz"}
TEST_FRACTION, TEST_MOST = 10, 10_000  # a folder of class folders: its carved test split


def _images_in(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.iterdir()) if f.is_file()
            and f.suffix.lower() in IMAGE_SUFFIXES]


def _class_folders(root: Path) -> list[Path]:
    """The subfolders of ``root`` that hold images (a folder of class folders)."""
    if not root.is_dir():
        return []
    return [d for d in sorted(root.iterdir()) if d.is_dir() and _images_in(d)]


def _found(root: Path) -> str:
    """What a folder nnlab cannot read holds, in a few words."""
    entries = sorted(root.iterdir())
    if not entries:
        return "an empty folder"
    images = [e for e in entries if e.is_file() and e.suffix.lower() in IMAGE_SUFFIXES]
    folders = [e for e in entries if e.is_dir()]
    said = []
    if images:
        said.append(f"{len(images)} images with no class folder")
    if folders:
        names = ", ".join(f.name for f in folders[:3]) + (", ..." if len(folders) > 3 else "")
        said.append(f"{len(folders)} folders without images ({names})")
    others = len(entries) - len(images) - len(folders)
    if others:
        said.append(f"{others} other files")
    return "it holds " + " and ".join(said)


def _resized(data: Cifar, size: int) -> Cifar:
    """``data`` with every image ``size`` pixels a side (the torchvision release is 32)."""
    if data.x_train.shape[-1] == size:
        return data

    def each(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        return torch.from_numpy(np.stack([resize(im, size) for im in
                                          x.permute(0, 2, 3, 1).numpy()])).permute(
            0, 3, 1, 2).contiguous()

    return Cifar(each(data.x_train), data.y_train, each(data.x_test), data.y_test,
                 data.classes, data.source)


def _fingerprint(root: Path) -> str:
    """Path, sizes and modification times of the source: cheap to compute, changes with it."""
    h = hashlib.sha1(str(root.resolve()).encode())
    if root.is_file():
        st = root.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        for dirpath, dirnames, filenames in sorted(os.walk(root)):
            dirnames[:] = sorted(dirnames)
            for name in sorted(filenames):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _cached(root: Path, cache_dir: Path, read, image_size: int = 32) -> Cifar:
    sized = "" if image_size == 32 else f"-{image_size}px"  # 32: the names caches had
    cache = cache_dir / f"cifar10-{_fingerprint(root)}{sized}.pt"
    if cache.exists():
        try:
            return Cifar(**torch.load(cache, weights_only=True))
        except Exception:  # a truncated or foreign cache file: read the source again
            cache.unlink(missing_ok=True)
    t = time.perf_counter()
    print(f"nnlab: decoding the images of {root} (the first time only: it is cached in "
          f"{cache_dir})...", file=sys.stderr, flush=True)
    data = read()
    print(f"nnlab: decoded {len(data.y_train)} training images in "
          f"{time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_atomic(data.__dict__, cache)  # an interrupted save never leaves a half file
    except (OSError, WriteFailed) as e:  # a read-only or full disk: run without a cache
        print(f"nnlab: warning: CIFAR-10 not cached ({e}); it is decoded again next time",
              file=sys.stderr, flush=True)
    return data


IMAGE_SIZE = 32  # the side images are resized to when read, unless a run asks for another


def _decode(blob: bytes, name: str, size: int = IMAGE_SIZE) -> np.ndarray:
    """An image file's bytes as (size, size, 3) uint8 RGB: read as :mod:`nnlab.data.images`
    says, and resized (bicubic, antialiased) when it has another size, as ``nnlab predict``
    does."""
    try:
        return resize(read_image(blob, name), size)
    except ImageError as e:
        raise DataError(str(e)) from None


def _stack(images: dict[str, list[tuple[str, np.ndarray]]], classes: tuple[str, ...],
           split: str, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    for c in classes:
        if not images.get(c):
            raise DataError(f"{where}: class folder {split}/{c} is missing or has no images")
    xs, ys = [], []
    for label, c in enumerate(classes):
        for _, arr in sorted(images[c], key=lambda item: item[0]):
            xs.append(arr)
            ys.append(label)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    return x, torch.tensor(ys, dtype=torch.long)


def _assemble(images: dict[str, dict[str, list]], where: str) -> Cifar:
    if not images.get("train"):
        raise DataError(f"{where}: no train/<class>/ folders with images found")
    classes = tuple(sorted(images["train"]))
    if len(classes) < 2:
        raise DataError(f"{where}: train/ holds {len(classes)} class folder; a classifier "
                        "needs at least 2")
    if "test" in images and set(images["test"]) != set(classes):
        diff = sorted(set(images["test"]) ^ set(classes))
        raise DataError(f"{where}: train and test have different classes ({', '.join(diff)})")
    if set(classes) == set(CLASSES):
        classes = CLASSES  # the official label order, not alphabetical
    x_train, y_train = _stack(images["train"], classes, "train", where)
    x_test = y_test = None
    if "test" in images:
        x_test, y_test = _stack(images["test"], classes, "test", where)
    return Cifar(x_train, y_train, x_test, y_test, classes, where)


def _read_image_folder(root: Path, size: int = IMAGE_SIZE) -> Cifar:
    images: dict[str, dict[str, list]] = {}
    for split in ("train", "test"):
        if not (root / split).is_dir():
            continue
        images[split] = {}
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            files = [f for f in sorted(class_dir.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
            images[split][class_dir.name] = [(f.name, _decode(f.read_bytes(), str(f), size))
                                             for f in files]
        if not images[split]:
            raise DataError(f"{root / split}: no class folders")
    return _assemble(images, str(root))


def _carve_test(images: dict[str, list], where: str) -> dict[str, dict[str, list]]:
    """A folder of class folders as train and test: a tenth of every class's images (at most
    10,000 in all), chosen by a fixed seed from the sorted file names, is the test split."""
    total = sum(len(v) for v in images.values())
    n_test = min(TEST_MOST, total // TEST_FRACTION)
    if n_test < len(images):
        raise DataError(f"{where}: {total} images in {len(images)} classes; a test split "
                        f"of a tenth needs at least {TEST_FRACTION} images per class")
    gen = torch.Generator().manual_seed(2)
    train: dict[str, list] = {}
    test: dict[str, list] = {}
    for c in sorted(images):
        items = sorted(images[c], key=lambda item: item[0])
        k = max(1, round(n_test * len(items) / total))
        if k >= len(items):
            raise DataError(f"{where}: class {c} has {len(items)} images, too few to give "
                            "the test split its share and still train")
        order = torch.randperm(len(items), generator=gen).tolist()
        test[c] = [items[i] for i in order[:k]]
        train[c] = [items[i] for i in order[k:]]
    return {"train": train, "test": test}


def _read_class_folders(root: Path, size: int = IMAGE_SIZE) -> Cifar:
    folders = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if empty := [d.name for d in folders if not _images_in(d)]:
        raise DataError(f"{root}: class folder {empty[0]} has no images")
    images = {d.name: [(f.name, _decode(f.read_bytes(), str(f), size)) for f in _images_in(d)]
              for d in folders}
    return _assemble(_carve_test(images, str(root)), str(root))


def _read_tar(path: Path, size: int = IMAGE_SIZE) -> Cifar:
    images: dict[str, dict[str, list]] = {}
    flat: dict[str, list] = {}  # <class>/<file> (with or without a top folder)
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isdir() and len(parts) >= 2 and parts[-2] in ("train", "test"):
                    images.setdefault(parts[-2], {}).setdefault(parts[-1], [])  # even empty
                    continue
                if member.isdir() or len(parts) < 2 or \
                        PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                blob = tar.extractfile(member).read()
                image = _decode(blob, f"{path}:{member.name}", size)
                if len(parts) >= 3 and parts[-3] in ("train", "test"):  # .../<split>/<class>/
                    split, cls, name = parts[-3:]
                    images.setdefault(split, {}).setdefault(cls, []).append((name, image))
                else:
                    flat.setdefault(parts[-2], []).append((parts[-1], image))
    except (tarfile.TarError, EOFError, OSError) as e:
        first = str(e).splitlines()[0].rstrip(":") if str(e) else e.__class__.__name__
        raise DataError(f"{path}: not a readable .tar.gz ({first})") from None
    if not images and flat:
        images = _carve_test(flat, str(path))
    return _assemble(images, str(path))


def _read_torchvision(root: Path, download: bool) -> Cifar:
    from torchvision.datasets import CIFAR10  # a second or two to import: only to read one

    has_batches = (root / "cifar-10-batches-py").is_dir()
    try:
        train = CIFAR10(str(root), train=True, download=download and not has_batches)
        test = CIFAR10(str(root), train=False, download=False)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted."
        what = "fails its checksum check" if has_batches else "is not there"
        raise DataError(f"CIFAR-10 at {root} {what} ({e}); pass --data PATH to an image "
                        "folder or a .tar.gz of one") from None
    except OSError as e:  # offline, or the download broke off
        raise DataError(f"no CIFAR-10 at {root} and the download failed ({e}); pass --data "
                        "PATH to an image folder or a .tar.gz of one") from None

    def tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                torch.tensor(ds.targets, dtype=torch.long))

    return Cifar(*tensors(train), *tensors(test), CLASSES, f"torchvision:{root}")


# --------------------------------------------------------------------------- splits


def stratified_split(y: torch.Tensor, val_size: int, seed: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) with ``val_size`` examples taken evenly from every class, fixed by
    ``seed``. y: (N,) labels. The remainder of val_size / n_classes goes to the first classes."""
    classes = torch.unique(y)
    if not 0 < val_size < len(y):
        raise DataError(f"--val-size must be between 1 and {len(y) - 1}, got {val_size}")
    gen = torch.Generator().manual_seed(seed)
    base, extra = divmod(val_size, len(classes))
    val_parts, train_parts = [], []
    for i, c in enumerate(classes):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = base + (1 if i < extra else 0)
        if k >= len(idx):
            raise DataError(f"--val-size {val_size} takes {k} images of class {int(c)}, which "
                            f"has {len(idx)}: none would be left to train on; lower it "
                            f"(0: a tenth of the images)")
        val_parts.append(idx[:k])
        train_parts.append(idx[k:])
    return torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values


# --------------------------------------------------------------------------- batches


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (3,) of uint8 images x (N, 3, H, W), in [0, 1] units."""
    xf = x.float().div_(255)
    return xf.mean(dim=(0, 2, 3)), xf.std(dim=(0, 2, 3))


def fit_zca(x: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """ZCA whitening matrix W (D, D) for flattened, normalised images x (N, D):
    W = U diag(1 / sqrt(s + eps)) U^T from the covariance's eigendecomposition, so x W has
    (near) identity covariance and stays as close to x as whitening allows. ``eps`` keeps the
    smallest directions (pixel noise) from being blown up."""
    x = x - x.mean(dim=0)
    n, d = x.shape
    if n < d:  # fewer images than dimensions (quick runs): a thin SVD is exact and cheap
        xd = x.double().numpy()
        lam, u = np.linalg.eigh(xd @ xd.T)  # the (n, n) Gram matrix: eigenvalues sv**2
        keep = lam > lam.max() * 1e-10
        vt = (u[:, keep] / np.sqrt(lam[keep])).T @ xd  # (k, D) right singular vectors
        scale = 1 / np.sqrt(lam[keep] / n + eps) - 1 / np.sqrt(eps)
        # Directions outside the data's span have variance 0: scaled by 1/sqrt(eps).
        w = (vt.T * scale) @ vt + np.eye(d) / np.sqrt(eps)
        return torch.from_numpy(w).float()
    cov = (x.T.double() @ x.double()) / n
    # NumPy's eigh (LAPACK through OpenBLAS): 4x faster than torch.linalg.eigh at D=3072 here.
    s, U = np.linalg.eigh(cov.numpy())
    return torch.from_numpy((U / np.sqrt(s.clip(min=0) + eps)) @ U.T).float()


def flip(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of x (B, C, H, W) left-right with probability 1/2."""
    mask = torch.rand(len(x), generator=gen, device="cpu").to(x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def translate(x: torch.Tensor, pixels: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image of x (B, C, H, W) by up to ``pixels`` in each direction, filling the
    border by reflection: reflect-pad the batch, then gather one random crop per image."""
    if pixels <= 0:
        return x
    B, C, H, W = x.shape
    padded = torch.nn.functional.pad(x, (pixels,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, B), generator=gen, device="cpu").to(x.device)
    rows = (dy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(W, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    b = torch.arange(B, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[b, c, rows, cols]


def cutout(x: torch.Tensor, size: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """Zero one random size x size square (centre anywhere, clipped at the border) per image."""
    if size <= 0:
        return x
    B, _, H, W = x.shape
    cy, cx = (torch.randint(0, n, (B,), generator=gen, device="cpu").to(x.device)
              for n in (H, W))
    y0, x0 = (cy - size // 2)[:, None], (cx - size // 2)[:, None]  # (B, 1) top-left corners
    ys, xs = torch.arange(H, device=x.device), torch.arange(W, device=x.device)
    in_y = (ys >= y0) & (ys < y0 + size)  # (B, H)
    in_x = (xs >= x0) & (xs < x0 + size)  # (B, W)
    hole = in_y[:, :, None] & in_x[:, None, :]  # (B, H, W)
    return x.masked_fill(hole[:, None], 0)


def resized_crop(x: torch.Tensor, min_area: float, gen: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Random-resized crops of a whole batch x (B, C, H, W), each resized back to H x W.

    Each image gets its own crop: an area fraction uniform in [min_area, 1], an aspect ratio
    log-uniform in [3/4, 4/3] (the side clipped to the image), a position uniform among those
    that fit; bilinear resampling of one batched ``grid_sample`` (reflection at the border).
    ``min_area`` >= 1 returns x unchanged.
    """
    if min_area >= 1:
        return x
    B = len(x)
    area, log_ratio, px, py = torch.rand(4, B, generator=gen, device="cpu")
    area = min_area + (1 - min_area) * area
    ratio = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * log_ratio)
    sx, sy = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
    theta = torch.zeros(B, 2, 3)  # output coordinates in [-1, 1] -> input coordinates
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    theta[:, 0, 2], theta[:, 1, 2] = (1 - sx) * (2 * px - 1), (1 - sy) * (2 * py - 1)
    grid = torch.nn.functional.affine_grid(theta.to(x.device, x.dtype), list(x.shape),
                                           align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                                           align_corners=False)


@dataclass
class Augment:
    """Whole-batch training augmentation: flip, random-resized crop (the smallest area
    fraction; 1 = off), translate (pixels), cutout (square side)."""

    flip: bool = True
    translate: int = 2
    cutout: int = 0
    crop: float = 1.0

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        if self.flip:
            x = flip(x, gen)
        if self.crop < 1:  # drawn only when on: the other draws stay those of earlier runs
            x = resized_crop(x, self.crop, gen)
        x = translate(x, self.translate, gen)
        return cutout(x, self.cutout, gen)


@dataclass
class Mix:
    """Whole-batch mixing of images and labels: mixup (each image blended with its
    neighbour in the batch) and cutmix (a box pasted from it), torchvision's ``v2.MixUp`` and
    ``v2.CutMix``. ``mixup``/``cutmix``: the Beta(α, α) concentration the mixing weight is
    drawn from, 0 = off; with both on, each batch gets one of the two, chosen at random.

    ``mix(x, y, gen)``: x (B, C, H, W) float, y (B,) int64 -> mixed x (B, C, H, W) and soft
    labels (B, n_classes) float32 whose rows sum to 1 (each class weighted by its share of
    the image). The randomness is a seed drawn from ``gen`` per batch, so a resumed run mixes
    exactly as an uninterrupted one.
    """

    mixup: float = 0.0
    cutmix: float = 0.0
    n_classes: int = 10

    def __post_init__(self) -> None:
        from torchvision.transforms import v2  # a few seconds to import; only when mixing

        parts = ([v2.MixUp(alpha=self.mixup, num_classes=self.n_classes)] if self.mixup else []
                 ) + ([v2.CutMix(alpha=self.cutmix, num_classes=self.n_classes)]
                      if self.cutmix else [])
        if not parts:
            raise ValueError("Mix: give mixup or cutmix a positive alpha")
        self._mix = parts[0] if len(parts) == 1 else v2.RandomChoice(parts)

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        seed = int(torch.randint(2**62, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):  # torchvision draws from the global generator
            torch.manual_seed(seed)
            return self._mix(x, y)


class Loader:
    """Batches of a split held whole in memory on ``device``.

    x: (N, 3, 32, 32) uint8, y: (N,). Each pass draws a permutation (when ``shuffle``) and
    slices it; a batch is normalised with ``mean``/``std`` (3,), augmented when ``augment`` is
    given, and put in ``memory_format``. With ``zca`` (3072, 3072) the whole split is
    normalised and whitened once, up front, and kept as float32 (N x 12 KiB): whitening every
    batch would cost more than an MLP's first layer. Under torchrun, ``rank``/``world_size``
    give each process its share of every batch (the batch size stays the global one).
    With ``alternate_flips`` each image gets a fixed coin (drawn once): in even epochs it is
    mirrored when its coin says so, in odd epochs when it does not, so every image is seen
    both ways in two consecutive epochs (airbench's flips); ``augment`` then adds the rest,
    and ``mix`` (a :class:`Mix`) mixes the augmented batch. ``targets`` (N, n_classes)
    float32, rows summing to 1 (a teacher's soft targets), are yielded instead of ``y``.
    ``epoch(e)`` yields epoch e's batches (iterating the loader is ``epoch(0)``):
    (x (B, 3, 32, 32) float32, y (B,) int64; with ``mix`` or ``targets``, y (B, n_classes)
    float32).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, mean: torch.Tensor,
                 std: torch.Tensor, shuffle: bool = False, augment: Augment | None = None,
                 zca: torch.Tensor | None = None, drop_last: bool = False, seed: int = 0,
                 device: str | torch.device = "cpu",
                 memory_format: torch.memory_format = torch.contiguous_format,
                 rank: int = 0, world_size: int = 1, alternate_flips: bool = False,
                 mix: Mix | None = None, targets: torch.Tensor | None = None) -> None:
        self.y = y.to(device)
        if targets is not None and (targets.shape[0] != len(y) or mix is not None):
            raise ValueError("Loader: targets need one row per image, and no mix")
        self.targets = targets.to(device) if targets is not None else None
        self.mix = mix
        self.mean = mean.to(device)[None, :, None, None] * 255
        self.std = std.to(device)[None, :, None, None] * 255
        self.whitened = zca is not None
        if zca is not None:  # whiten before augmenting: a shifted whitened image stays whitened
            zca = zca.to(device)
            out = torch.empty(x.shape, dtype=torch.float32, device=device)
            for i in range(0, len(x), 4096):
                xb = (x[i:i + 4096].to(device).float() - self.mean) / self.std
                out[i:i + 4096] = (xb.flatten(1) @ zca).view_as(xb)
            self.x = out
        else:
            self.x = x.to(device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.drop_last, self.memory_format = drop_last, memory_format
        # Every process draws the same permutation and keeps its share of each batch
        # (rank::world_size); augmentation draws from a generator of its own per process.
        self.rank, self.world_size = rank, world_size
        self.gen = torch.Generator().manual_seed(seed)
        self.aug_gen = (self.gen if world_size == 1 and not alternate_flips
                        else torch.Generator().manual_seed(
                            seed + 7919 * (rank + 1) * (world_size > 1)))
        # the coins come first from the batch-order generator: (N,) bool, on the device
        self.flips = ((torch.rand(len(y), generator=self.gen) < 0.5).to(device)
                      if alternate_flips else None)

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = (torch.randperm(n, generator=self.gen).to(self.y.device) if self.shuffle
                 else torch.arange(n, device=self.y.device))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            idx = idx[self.rank::self.world_size]
            xb = self.x[idx]
            if not self.whitened:
                xb = (xb.float() - self.mean) / self.std
            if self.flips is not None:
                mirror = self.flips[idx] ^ bool(epoch % 2)
                xb = torch.where(mirror[:, None, None, None], xb.flip(3), xb)
            if self.augment is not None:
                xb = self.augment(xb, self.aug_gen)
            yb = self.y[idx] if self.targets is None else self.targets[idx]
            if self.mix is not None:
                xb, yb = self.mix(xb, yb, self.aug_gen)
            yield xb.contiguous(memory_format=self.memory_format), yb
