"""One training step of the from-scratch MLP, in the shape the engine's drivers call."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnlab.numpy_nn.modules import CrossEntropy
from nnlab.numpy_nn.optim import clip_grad_norm


class NumpyStep:
    """forward -> mean cross-entropy -> backward -> clip (when ``clip_norm``) -> optimizer.

    ``model.forward`` gives probabilities (N, classes), ``model.backward(dL/dprobs)`` fills
    the grads of ``model.linears()``. Returns (loss x batch size, correct count), as the
    engine's torch step does.
    """

    def __init__(self, model, optimizer, clip_norm: float | None = None) -> None:
        self.model, self.optimizer, self.clip_norm = model, optimizer, clip_norm
        self.ce = model.criterion() if hasattr(model, "criterion") else CrossEntropy()
        self.classes: int | None = None  # seen in the probabilities: what chance level means

    def train(self) -> None:
        """No-op: the NumPy MLP has no dropout or normalisation to switch."""

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        probs = self.model.forward(x)
        self.classes = probs.shape[1]
        loss = self.ce.forward(probs, y)
        self.model.backward(self.ce.backward())
        if self.clip_norm:
            clip_grad_norm(self.model.linears(), self.clip_norm)
        self.optimizer.step()
        return float(loss) * len(y), int((probs.argmax(axis=1) == y).sum())

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    def states(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer}
