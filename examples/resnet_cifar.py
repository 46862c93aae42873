"""A ResNet-18 on CIFAR-10 or any image folder, a new experiment in one file:

    nnlab run examples/resnet_cifar.py --epochs 1 --data PATH

It takes every image experiment's flags (--data, --final, --train-limit, --tta, --seeds...) and
nnlab's classifier loop does the rest: the split, augmentation, checkpoints and exact resume,
TTA, the saved model, figures, nnlab eval / predict / export, and several processes under
torchrun. It imports only nnlab: the model is all it brings.
"""

from dataclasses import dataclass

import torch
from torch import nn

import nnlab


class Block(nn.Module):
    """Two 3x3 convs and a shortcut: (B, c_in, H, W) -> (B, c_out, H / stride, W / stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def resnet18(width: int = 64, classes: int = 10) -> nn.Module:
    """A 3x3 stem, four stages of two blocks (width x 1, 2, 4, 8), global pooling, a Linear."""
    layers = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    for i, c in enumerate(width * m for m in (1, 2, 4, 8)):
        layers += [Block(c // 2 if i else c, c, 2 if i else 1), Block(c, c)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8 * width, classes))


@dataclass
class Config(nnlab.ClassifierOptions):  # --epochs, --batch-size, --lr ... come with it
    width: int = nnlab.option(64, "channels of the first stage (doubled at each of the others)",
                              gt=0)
    RECIPES = {"resnet": {"flip": True, "translate": 4, "tta": "flip"}}  # for the None flags


EXPERIMENT = nnlab.image_classifier(
    name="resnet-cifar", description="a ResNet-18 on CIFAR-10 (an example in one file)",
    Config=Config, build_model=lambda cfg, n_classes: resnet18(cfg.width, n_classes),
    quick={"width": 8, "epochs": 2, "batch_size": 64})
