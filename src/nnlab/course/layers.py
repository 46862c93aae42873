"""Part I's checks of ``modules.py``: each layer's forward against nnlab's reference, each
backward against float64 centred differences, on shapes and seeds drawn fresh."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from nnlab.course.findings import Sizes, Wrong, close, gradient, sizes
from nnlab.numpy_nn import modules as reference
from nnlab.numpy_nn.gradcheck import numeric_gradient


def linear_forward(m: ModuleType, rng: np.random.Generator) -> str:
    s = sizes(rng)
    layer, ref = m.Linear(s.d, s.c, np.float64, rng), reference.Linear(s.d, s.c, np.float64)
    ref.params = {k: v.copy() for k, v in layer.params.items()}
    x = rng.normal(size=(s.n, s.d))
    close("the output", layer.forward(x.copy()), ref.forward(x),
          "y = x W^T + b, with W of shape (out_features, in_features)")
    return f"N={s.n}, {s.d}->{s.c}"


def linear_backward(m: ModuleType, rng: np.random.Generator) -> str:
    s = sizes(rng)
    layer = m.Linear(s.d, s.c, np.float64, rng)
    x, dout = rng.normal(size=(s.n, s.d)), rng.normal(size=(s.n, s.c))
    twin = reference.Linear(s.d, s.c, np.float64)
    twin.params = layer.params  # the same arrays: perturbing one perturbs the loss below

    def loss() -> float:
        return float(np.sum(twin.forward(x) * dout))

    want_dx, want = numeric_gradient(loss, x), {k: numeric_gradient(loss, v)
                                                 for k, v in layer.params.items()}
    layer.forward(x.copy())
    dx = layer.backward(dout.copy())
    gradient("dx", dx, want_dx, s.n, "dx = dout W: each input feeds every output")
    for key, hint in (("weight", "the weight's gradient sums dout_i x_j over the batch"),
                      ("bias", "the bias's gradient sums dout over the batch")):
        gradient(f"grads[{key!r}]", layer.grads.get(key), want[key], s.n, hint)
    return f"N={s.n}, {s.d}->{s.c}, against centred differences"


def relu_forward(m: ModuleType, rng: np.random.Generator) -> str:
    s = sizes(rng)
    _forward(m.ReLU(), reference.ReLU(), rng.normal(size=(s.n, s.d)),
             "max(0, x), element by element")
    return f"N={s.n}, D={s.d}"


def _forward(layer: object, ref: object, x: np.ndarray, hint: str) -> np.ndarray:
    """A parameterless layer's output on x against nnlab's ``ref``; returns x."""
    close("the output", layer.forward(x.copy()), ref.forward(x), hint)
    return x


def _backward(layer: object, forward: object, x: np.ndarray, rng: np.random.Generator,
              hint: str) -> None:
    """A parameterless layer's dx for a random dout against centred differences of
    sum(forward(x) * dout), ``forward`` being nnlab's."""
    dout = rng.normal(size=x.shape)
    layer.forward(x.copy())
    want = numeric_gradient(lambda: float(np.sum(forward(x) * dout)), x)
    gradient("dx", layer.backward(dout.copy()), want, len(x), hint)


def relu_backward(m: ModuleType, rng: np.random.Generator) -> str:
    s = sizes(rng)
    x = rng.normal(size=(s.n, s.d))
    x[np.abs(x) < 1e-3] = 0.5  # away from the kink, where the derivative is defined
    _backward(m.ReLU(), lambda v: np.maximum(v, 0), x, rng,
              "the gradient passes where the input was positive, and is 0 elsewhere")
    return f"N={s.n}, D={s.d}, against centred differences"


def softmax_forward(m: ModuleType, rng: np.random.Generator) -> str:
    s = sizes(rng)
    x = _forward(m.SoftMax(), reference.SoftMax(), rng.normal(size=(s.n, s.c)),
                 "exp(x) divided by each row's sum of exp(x)")
    big = x * 1000  # logits of a confident network: exp(1000) overflows
    out = m.SoftMax().forward(big.copy())
    if not np.all(np.isfinite(np.asarray(out))):
        raise Wrong("logits around ±1000 give NaN or inf",
                    "exp overflows for large logits: softmax(x) = softmax(x - c) for any c "
                    "per row")
    close("the output for logits around ±1000", out, reference.SoftMax().forward(big), "")
    return f"N={s.n}, C={s.c}, and logits around ±1000"


def softmax_backward(m: ModuleType, rng: np.random.Generator) -> str:
    s = sizes(rng)
    _backward(m.SoftMax(), lambda v: reference.SoftMax().forward(v),
              rng.normal(size=(s.n, s.c)), rng,
              "each output depends on every input of its row: the Jacobian is "
              "diag(s) - s s^T")
    return f"N={s.n}, C={s.c}, against centred differences"


def _predictions(rng: np.random.Generator) -> tuple[Sizes, np.ndarray, np.ndarray]:
    """Sizes, probabilities (N, C) of random logits, and labels (N,)."""
    s = sizes(rng)
    probs = reference.SoftMax().forward(rng.normal(size=(s.n, s.c)))
    return s, probs, rng.integers(0, s.c, s.n)


def cross_entropy_forward(m: ModuleType, rng: np.random.Generator) -> str:
    s, probs, y = _predictions(rng)
    got = m.CrossEntropy().forward(probs.copy(), y)
    want = reference.CrossEntropy().forward(probs, y)
    close("the loss", np.asarray(got, dtype=float), np.asarray(want),
          "the mean over the batch of -log p of the true class")
    return f"N={s.n}, C={s.c}"


def cross_entropy_backward(m: ModuleType, rng: np.random.Generator) -> str:
    s, probs, y = _predictions(rng)
    loss = m.CrossEntropy()
    loss.forward(probs.copy(), y)
    want = numeric_gradient(lambda: reference.CrossEntropy().forward(probs, y), probs)
    gradient("dL/dprobs", loss.backward(), want, s.n,
             "only the true class's probability enters the loss")
    return f"N={s.n}, C={s.c}, against centred differences"
