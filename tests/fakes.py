"""Tiny fake datasets for tests (nothing is downloaded)."""

import numpy as np
from PIL import Image

from nnlab.data.cifar10 import CLASSES


def make_cifar_folder(root, per_class=3, splits=("train", "test"), classes=CLASSES, fmt="png",
                      learnable=False):
    """ROOT/<split>/<class>/NNNN.<fmt>, 32x32 RGB. ``learnable``: each class has its own
    mean colour under noise, so a network can tell classes apart; otherwise uniform noise."""
    rng = np.random.default_rng(0)
    for split in splits:
        for k, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                if learnable:  # a class is a colour: unchanged by flips and shifts
                    colour = np.array([30 + 100 * (k % 3), 30 + 100 * (k // 3 % 3),
                                       230 - 100 * (k // 5)])  # 10 distinct colours
                    pixels = np.clip(colour + rng.integers(-40, 41, (32, 32, 3)), 0, 255)
                    pixels = pixels.astype(np.uint8)
                else:
                    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i:04d}.{fmt}")
    return root
