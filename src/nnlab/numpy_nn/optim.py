"""SGD and Adam with torch.optim's exact update rules (defaults: no dampening, no amsgrad).

The rules are small pure functions (arrays in, arrays out) so a test can check them against
numbers worked out by hand; the classes only keep per-parameter state and write in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nnlab.numpy_nn.modules import Linear


def sgd_update(
    p: np.ndarray,
    g: np.ndarray,
    buf: np.ndarray | None,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One torch.optim.SGD step for one parameter -> (new p, new momentum buffer).

    g <- g + wd p;  buf <- g on the first step, else momentum buf + g;
    p <- p - lr (g + momentum buf if nesterov else buf).
    """
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        buf = g.copy() if buf is None else momentum * buf + g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def adam_update(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One torch.optim.Adam step (t counts from 1) -> (new p, new m, new v).

    Weight decay is L2 added to the gradient (torch's Adam, not AdamW). Note torch adds eps
    *after* the bias correction of sqrt(v): p <- p - lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps).
    """
    b1, b2 = betas
    if weight_decay:
        g = g + weight_decay * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    # math.sqrt keeps these Python floats, so float32 arrays stay float32 (NumPy 2 promotion).
    denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
    return p - (lr / (1 - b1**t)) * m / denom, m, v


def clip_grad_norm(layers: Sequence[Linear], max_norm: float) -> float:
    """Scale every grad of ``layers`` in place so their global L2 norm is at most
    ``max_norm`` (as torch.nn.utils.clip_grad_norm_); returns the norm before clipping."""
    grads = [g for layer in layers for g in layer.grads.values()]
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    scale = max_norm / (norm + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return norm


class SGD:
    """SGD(params, lr, momentum=0, weight_decay=0, nesterov=False), as torch.optim.SGD."""

    def __init__(
        self,
        params: Sequence[Linear],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self.params = list(params)
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov
        self.weight_decay = weight_decay
        self.bufs: dict[tuple[int, str], np.ndarray | None] = {}

    def step(self) -> None:
        """Update every parameter in place from the grads the last backward left."""
        for i, layer in enumerate(self.params):
            for k, p in layer.params.items():
                new_p, self.bufs[i, k] = sgd_update(
                    p, layer.grads[k], self.bufs.get((i, k)), self.lr,
                    self.momentum, self.weight_decay, self.nesterov,
                )
                p[...] = new_p

    def state_dict(self) -> dict:
        """Momentum buffers (copies), keyed '<layer>.<param>'."""
        return {"lr": self.lr, "bufs": {f"{i}.{k}": None if b is None else b.copy()
                                        for (i, k), b in self.bufs.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.lr = state["lr"]
        self.bufs = {(int(key.split(".")[0]), key.split(".")[1]): None if b is None else b.copy()
                     for key, b in state["bufs"].items()}


class Adam:
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0), as torch.optim.Adam."""

    def __init__(
        self,
        params: Sequence[Linear],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m = [{k: np.zeros_like(p) for k, p in layer.params.items()} for layer in self.params]
        self.v = [{k: np.zeros_like(p) for k, p in layer.params.items()} for layer in self.params]

    def step(self) -> None:
        """Update every parameter in place from the grads the last backward left."""
        self.t += 1
        for i, layer in enumerate(self.params):
            for k, p in layer.params.items():
                new_p, self.m[i][k], self.v[i][k] = adam_update(
                    p, layer.grads[k], self.m[i][k], self.v[i][k], self.t,
                    self.lr, self.betas, self.eps, self.weight_decay,
                )
                p[...] = new_p

    def state_dict(self) -> dict:
        """Step count and moment estimates (copies)."""
        return {"lr": self.lr, "t": self.t,
                "m": [{k: a.copy() for k, a in d.items()} for d in self.m],
                "v": [{k: a.copy() for k, a in d.items()} for d in self.v]}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.t = state["lr"], state["t"]
        self.m = [{k: a.copy() for k, a in d.items()} for d in state["m"]]
        self.v = [{k: a.copy() for k, a in d.items()} for d in state["v"]]
