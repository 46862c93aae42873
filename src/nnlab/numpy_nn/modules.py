"""The four layers of the study's from-scratch MLP, NumPy only.

Each module has ``forward`` and, right under it, ``backward``. ``backward(dout)`` takes the
gradient of the scalar loss with respect to the module's output and returns the gradient with
respect to its input; a module with parameters also fills ``grads`` (same keys and shapes as
``params``).

Gradient convention: the loss is the *mean* cross-entropy over the batch, so
``CrossEntropy.backward`` already carries the 1/N factor and every gradient downstream is the
gradient of that mean -- exactly what ``torch.nn.CrossEntropyLoss()`` (reduction='mean')
back-propagates, which is what lets our gradients be compared with autograd's one for one.
"""

from __future__ import annotations

import numpy as np

DTypeLike = type[np.floating] | np.dtype


class Linear:
    """Fully connected layer, y = x W^T + b.

    ``params['weight']`` has shape (out_features, in_features), as in ``torch.nn.Linear``, so
    weights copy between the two unchanged. Initialisation is torch's default:
    weight and bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        dtype: DTypeLike = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        rng = np.random.default_rng() if rng is None else rng
        # torch: kaiming_uniform_(a=sqrt(5)) for the weight gives bound = 1/sqrt(fan_in);
        # the bias uses the same bound.
        bound = 1.0 / np.sqrt(in_features)
        self.params = {
            "weight": rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype),
            "bias": rng.uniform(-bound, bound, out_features).astype(dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_features) -> (N, out_features). Caches x for backward."""
        self.x = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (N, out_features) -> dx: (N, in_features); fills grads (weight, bias)."""
        self.grads["weight"] = dout.T @ self.x  # (out, N) @ (N, in)
        self.grads["bias"] = dout.sum(axis=0)
        return dout @ self.params["weight"]


class ReLU:
    """max(0, x), elementwise. The gradient at exactly 0 is taken as 0 (as torch does)."""

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, D) -> (N, D). Caches the mask x > 0."""
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (N, D) -> dx: (N, D)."""
        return dout * self.mask


class SoftMax:
    """Row-wise softmax, s_i = exp(x_i) / sum_j exp(x_j), computed stably."""

    def __init__(self) -> None:
        self.out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C) logits -> (N, C) probabilities. Caches the output."""
        # Subtracting the row max changes nothing mathematically and keeps exp() <= 1.
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.out = e / e.sum(axis=1, keepdims=True)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (N, C) -> dx: (N, C).

        The Jacobian is diag(s) - s s^T per row, so dx = s * (dout - <dout, s>) without
        ever forming the (C, C) matrix.
        """
        s = self.out
        return s * (dout - (dout * s).sum(axis=1, keepdims=True))


class CrossEntropy:
    """Mean negative log-likelihood of the true class, L = -1/N sum_n log p[n, y_n].

    Takes probabilities (the output of SoftMax) and labels, either class indices (N,) or
    one-hot (N, C). Probabilities are clipped below at ``eps`` so the loss never takes log(0).
    """

    def __init__(self, eps: float = 1e-12) -> None:
        self.eps = eps
        self.probs: np.ndarray | None = None
        self.onehot: np.ndarray | None = None

    def forward(self, probs: np.ndarray, y: np.ndarray) -> float:
        """probs: (N, C), y: (N,) int or (N, C) one-hot -> scalar mean loss."""
        self.onehot = to_onehot(y, probs.shape[1], probs.dtype)
        self.probs = np.maximum(probs, self.eps)
        return float(-(self.onehot * np.log(self.probs)).sum() / probs.shape[0])

    def backward(self) -> np.ndarray:
        """-> dL/dprobs: (N, C), with the batch mean's 1/N included."""
        return -self.onehot / self.probs / self.probs.shape[0]


def to_onehot(y: np.ndarray, n_classes: int, dtype: DTypeLike = np.float32) -> np.ndarray:
    """y: (N,) class indices or (N, C) one-hot -> (N, C) one-hot in ``dtype``."""
    y = np.asarray(y)
    if y.ndim == 2:
        return y.astype(dtype, copy=False)
    onehot = np.zeros((y.shape[0], n_classes), dtype=dtype)
    onehot[np.arange(y.shape[0]), y] = 1
    return onehot
