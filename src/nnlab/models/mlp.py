"""The study's MLP as a PyTorch module."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> ReLU -> ... -> Linear, returning logits (the softmax lives in the loss).

    Its ``net`` is laid out like :class:`nnlab.numpy_nn.MLP`'s layers, so the two exchange
    state dicts key for key.
    """

    def __init__(self, n_inputs: int, n_hidden: Sequence[int], n_classes: int) -> None:
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
