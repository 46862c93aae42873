"""A ResNet-18 on CIFAR-10, a new experiment in one file: nnlab run examples/resnet_cifar.py
--epochs 1 --data PATH. It takes every CIFAR experiment's flags (--data, --train-limit, --final,
--tta...); the engine gives it checkpoints, exact resume, --seeds, progress and nnlab eval."""

from dataclasses import dataclass

import torch
from torch import nn

from nnlab import option
from nnlab.data.cifar10 import Augment, Loader
from nnlab.experiments import cifar_common as cifar


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
class Config(cifar.CifarOptions):
    width: int = option(64, "channels of the first stage (doubled at each of the others)", gt=0)
    epochs: int = option(10, "passes over the training split", gt=0)
    batch_size: int = option(256, "images per step", gt=0)
    lr: float = option(0.1, "peak learning rate (Nesterov SGD, one-cycle schedule)", gt=0, le=10)
    weight_decay: float = option(5e-4, "weight decay on weights (not on BatchNorm)", ge=0)
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy", ge=0, lt=1)
    RECIPES = {"resnet": {"flip": True, "translate": 4, "tta": "flip"}}  # for the None flags

    def __post_init__(self) -> None:
        self.check_common()


def train(cfg: Config, run) -> dict:  # noqa: ANN001 - an nnlab.engine.Run
    splits = cifar.setup(cfg, run)  # the split, --train-limit, normalisation: as every CIFAR run
    loader = Loader(splits.x_train, splits.y_train, cfg.batch_size, splits.mean, splits.std,
                    shuffle=True, drop_last=True, augment=Augment(cfg.flip, cfg.translate),
                    seed=cfg.seed, device=run.device, rank=run.dist.rank,
                    world_size=run.dist.world_size)
    held = Loader(splits.x_eval, splits.y_eval, cifar.EVAL_BATCH, splits.mean, splits.std,
                  device=run.device)
    torch.manual_seed(cfg.seed)
    model = resnet18(cfg.width, len(splits.classes)).to(run.device)
    opt = torch.optim.SGD(cifar.weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr,
                          momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, cfg.epochs * len(loader))
    metrics, _ = cifar.train_classifier(
        run, splits, model, opt, loader, held, epochs=cfg.epochs, tta=cfg.tta,
        title=f"ResNet-18 (width {cfg.width}), {cfg.epochs} epochs", scheduler=sched,
        label_smoothing=cfg.label_smoothing, desc=f"resnet-cifar seed {cfg.seed}")
    return {**metrics, **cifar.run_facts(run, splits, model)}


EXPERIMENT = cifar.cifar_experiment(
    name="resnet-cifar", description="a ResNet-18 on CIFAR-10 (an example in one file)",
    Config=Config, train=train, summarize=cifar.cifar_summary,
    build_model=lambda cfg, n_classes: resnet18(cfg.width, n_classes),  # eval, export
    quick={**cifar.QUICK, "width": 8, "epochs": 2, "batch_size": 64},
    extendable=lambda cfg: False)  # the one-cycle schedule is planned for --epochs
