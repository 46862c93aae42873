"""Convolutional networks: the study's reduced VGG, and the compact speedrun network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class VGGReduced(nn.Module):
    """The study's CNN: five blocks of conv 3x3 (stride 1, padding 1) -> BatchNorm -> ReLU ->
    max-pool 2x2 with 32, 64, 128, 256, 512 channels (32x32 in, 1x1 out), then flatten ->
    [dropout] -> Linear(512, 128) -> ReLU -> [dropout] -> Linear(128, n_classes).
    ``dropout`` 0 (the default, as in the study's listing) leaves the dropouts out."""

    WIDTHS = (32, 64, 128, 256, 512)

    def __init__(self, n_channels: int = 3, n_classes: int = 10, dropout: float = 0.0) -> None:
        """``self.features``: an ``nn.Sequential`` of the five blocks' layers in order (conv,
        BatchNorm, ReLU, max-pool for each width of ``WIDTHS``); ``self.classifier``: an
        ``nn.Sequential`` of flatten, [dropout], Linear(512, 128), ReLU, [dropout],
        Linear(128, n_classes)."""
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = n_channels
        for width in self.WIDTHS:
            layers += [nn.Conv2d(fan_in, width, 3, stride=1, padding=1), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            fan_in = width
        self.features = nn.Sequential(*layers)

        def drop() -> list[nn.Module]:
            return [nn.Dropout(dropout)] if dropout > 0 else []

        self.classifier = nn.Sequential(nn.Flatten(), *drop(), nn.Linear(fan_in, 128),
                                        nn.ReLU(inplace=True), *drop(),
                                        nn.Linear(128, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, n_channels, 32, 32) -> logits (N, n_classes)."""
        return self.classifier(self.features(x))


# --------------------------------------------------------------------------- speedrun


def patch_whitening(x: torch.Tensor, patch: int = 2, eps: float = 5e-4) -> torch.Tensor:
    """Conv weights (2 * 3 * patch**2, 3, patch, patch) that whiten the patch x patch patches
    of images x (N, 3, H, W): the covariance's eigenvectors scaled by 1 / sqrt(eigenvalue +
    eps), each filter also negated (so a ReLU-like activation after it loses nothing)."""
    c = x.shape[1]
    patches = x.unfold(2, patch, 1).unfold(3, patch, 1)  # (N, C, H', W', p, p)
    patches = patches.transpose(1, 3).reshape(-1, c * patch * patch).double()
    patches = patches - patches.mean(0)
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).flip(0)
    filters = filters.reshape(-1, c, patch, patch).float()
    return torch.cat([filters, -filters])


# BatchNorm's eps in the speedrun net. airbench's 1e-12 scales a channel that barely varies
# (flat-background grey images: a background that max-pooling makes constant, copied on by
# the Dirac filters) up by as much as 1e6, and its gradients with it: such runs learnt
# nothing, with a held-out loss of 1e2-1e10 (in bf16 even where fp32 coped). 1e-2 caps the
# gain at 10x; on CIFAR-10 every channel varies far more than that (docs: the fast CNN).
BN_EPS = 1e-2


class FrozenScaleBN(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1 (only the shift learns), as fast CIFAR recipes use."""

    def __init__(self, width: int, momentum: float = 0.6, eps: float = BN_EPS) -> None:
        super().__init__(width, momentum=momentum, eps=eps)
        self.weight.requires_grad_(False)


def conv3x3(fan_in: int, width: int, dirac: bool = True) -> nn.Conv2d:
    """A 3x3 'same' conv without bias. With ``dirac`` its first min(fan_in, width) filters
    start as the identity and the rest as PyTorch's default: signals pass through a fresh
    network unchanged, which trains much faster in short runs (see the docs' ablation)."""
    conv = nn.Conv2d(fan_in, width, 3, padding="same", bias=False)
    if dirac:
        with torch.no_grad():
            nn.init.dirac_(conv.weight[:fan_in])
    return conv


class ConvGroup(nn.Module):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU."""

    def __init__(self, fan_in: int, width: int, dirac: bool = True, bn_eps: float = BN_EPS
                 ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            conv3x3(fan_in, width, dirac), nn.MaxPool2d(2), FrozenScaleBN(width, eps=bn_eps),
            nn.GELU(), conv3x3(width, width, dirac), FrozenScaleBN(width, eps=bn_eps),
            nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SpeedrunNet(nn.Module):
    """A frozen 2x2 patch-whitening conv (``whiten``, set by :meth:`init_whitening`), GELU,
    three conv groups of ``widths`` (convs Dirac-initialised unless ``dirac`` is False), a
    global max-pool and a scaled linear head. x: (N, 3, 32, 32) -> logits (N, n_classes)."""

    def __init__(self, widths: Sequence[int] = (64, 256, 256), n_classes: int = 10,
                 patch: int = 2, head_scale: float = 1 / 9, dirac: bool = True,
                 bn_eps: float = BN_EPS) -> None:
        super().__init__()
        n_whiten = 2 * 3 * patch * patch
        self.whiten = nn.Conv2d(3, n_whiten, patch, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        groups, fan_in = [], n_whiten
        for width in widths:
            groups.append(ConvGroup(fan_in, width, dirac, bn_eps))
            fan_in = width
        self.groups = nn.Sequential(*groups)
        self.head = nn.Linear(fan_in, n_classes, bias=False)
        self.head_scale = head_scale

    @torch.no_grad()
    def init_whitening(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Fit the whitening filters to training images x (N, 3, 32, 32), normalised."""
        self.whiten.weight.copy_(patch_whitening(x.float(), self.whiten.kernel_size[0], eps))
        self.whiten.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.whiten(x))
        x = self.groups(x)
        x = torch.amax(x, dim=(2, 3))
        return self.head(x) * self.head_scale
