"""Lookahead (Zhang et al., 2019, "Lookahead Optimizer: k steps forward, 1 step back").

The optimizer moves a model's ("fast") weights as usual; every ``k`` steps a slow copy moves
``alpha`` of the way towards them and the fast weights restart from the slow copy:

    slow <- slow + alpha * (fast - slow);   fast <- slow

Fast CIFAR-10 recipes apply it to every floating-point tensor of the state, BatchNorm's
running statistics included, which is what this does, and they ramp the averaging up over the
run: move fast early, average strongly at the end. With ``total_steps`` T the slow copy's
own share (1 - alpha) rises as (t / T)^power: at step t the update is

    slow <- slow + alpha_t * (fast - slow),   alpha_t = 1 - (1 - alpha) * (t / T)^power

so alpha_t starts at 1 (the slow copy simply follows) and ends at ``alpha``. Without
``total_steps`` alpha stays constant (the paper's form). The checkpointed state is the step
count and the slow copy.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Lookahead:
    """Slow weights for ``model``; call :meth:`step` after every optimizer step."""

    def __init__(self, model: nn.Module, k: int = 5, alpha: float = 0.5,
                 total_steps: int | None = None, power: float = 3.0) -> None:
        if k < 1 or not 0 < alpha <= 1:
            raise ValueError(f"Lookahead needs k >= 1 and 0 < alpha <= 1, got {k}, {alpha}")
        self.model, self.k, self.alpha = model, k, alpha
        self.total_steps, self.power = total_steps, power
        self.steps = 0
        self.slow = {name: t.detach().clone() for name, t in model.state_dict().items()
                     if t.is_floating_point()}

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        if self.steps % self.k == 0:
            self.sync()

    def current_alpha(self) -> float:
        """alpha_t at the current step (constant without ``total_steps``)."""
        if not self.total_steps:
            return self.alpha
        progress = min(1.0, self.steps / self.total_steps)
        return 1 - (1 - self.alpha) * progress ** self.power

    @torch.no_grad()
    def sync(self) -> None:
        """The slow update now (also at the end of training, so the final weights are slow
        ones whatever the step count)."""
        alpha = self.current_alpha()
        fast = self.model.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(fast[name], alpha)
            fast[name].copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "slow": self.slow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]
        for name, slow in self.slow.items():
            slow.copy_(state["slow"][name])
