"""The study's MLP as a PyTorch module."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import StochasticDepth


class MLP(nn.Module):
    """Linear -> ReLU -> ... -> Linear, returning logits (the softmax lives in the loss).

    Its ``net`` is laid out like :class:`nnlab.numpy_nn.MLP`'s layers, so the two exchange
    state dicts key for key.
    """

    def __init__(self, n_inputs: int, n_hidden: Sequence[int], n_classes: int) -> None:
        """``n_hidden``: the hidden widths. ``self.net`` is an ``nn.Sequential`` of
        Linear(n_inputs, n_hidden[0]), ReLU, ..., Linear(n_hidden[-1], n_classes): a ReLU
        after every Linear but the last."""
        super().__init__()
        sizes = [n_inputs, *n_hidden, n_classes]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, n_inputs) -> logits (N, n_classes)."""
        return self.net(x)


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
NORMS = ("batch", "layer", "none")
BLOCKS = ("plain", "residual", "bottleneck")


def _norm(kind: str, width: int) -> nn.Module:
    return {"batch": lambda: nn.BatchNorm1d(width), "layer": lambda: nn.LayerNorm(width),
            "none": nn.Identity}[kind]()


class _Residual(nn.Module):
    """x + body(x); with ``drop_path`` > 0, training drops the body for each sample with that
    probability and scales the kept ones by 1 / (1 - drop_path) (stochastic depth)."""

    def __init__(self, body: nn.Module, drop_path: float = 0.0) -> None:
        super().__init__()
        self.body = body
        self.drop = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.body(x))


class ImageMLP(nn.Module):
    """A pure MLP for images: flatten, then fully connected layers only.

    ``widths`` are the hidden widths. ``block='plain'``: each hidden layer is
    Linear -> norm -> activation -> dropout. ``'residual'``: the same, and a layer whose width
    equals the previous one adds its input back (x + layer(x)). ``'bottleneck'``: a stem
    Linear(in, widths[0]) -> norm -> activation, then one pre-norm inverted-bottleneck block
    per width, x + Linear(w*expansion, w)(dropout(act(Linear(w, w*expansion)(norm(x))))),
    all widths equal (the block design of Bachmann et al. 2023). Then Linear(last, n_classes).
    ``drop_path`` > 0 adds stochastic depth to every residual block (Huang et al. 2016): in
    training each sample skips each block's body with that probability.
    """

    def __init__(self, n_inputs: int, widths: Sequence[int], n_classes: int,
                 activation: str = "gelu", norm: str = "batch", dropout: float = 0.0,
                 block: str = "plain", expansion: int = 4, drop_path: float = 0.0) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = [nn.Flatten()]
        if block == "bottleneck":
            w = widths[0]
            if any(v != w for v in widths):
                raise ValueError(f"bottleneck blocks need equal widths, got {tuple(widths)}")
            layers += [nn.Linear(n_inputs, w), _norm(norm, w), act()]
            for _ in widths:
                layers.append(_Residual(nn.Sequential(
                    _norm(norm, w), nn.Linear(w, w * expansion), act(), nn.Dropout(dropout),
                    nn.Linear(w * expansion, w)), drop_path))
            fan_in = w
        else:
            fan_in = n_inputs
            for w in widths:
                layer = nn.Sequential(nn.Linear(fan_in, w), _norm(norm, w), act(),
                                      nn.Dropout(dropout))
                residual = block == "residual" and w == fan_in
                layers.append(_Residual(layer, drop_path) if residual else layer)
                fan_in = w
        layers.append(nn.Linear(fan_in, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) or (N, D) -> logits (N, n_classes)."""
        return self.net(x)
