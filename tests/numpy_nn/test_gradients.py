"""Hand-written backward passes against centred differences (float64, tiny seeded shapes)."""

import numpy as np
import pytest

from nnlab.numpy_nn import MLP, CrossEntropy, Linear, ReLU, SoftMax
from nnlab.numpy_nn.gradcheck import numeric_gradient, rel_error

TOL = 1e-6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _check_input_grad(module, x, dout):
    """Compare module.backward(dout) with the numeric gradient of sum(forward(x) * dout)."""
    module.forward(x)
    dx = module.backward(dout)
    dx_num = numeric_gradient(lambda: float((module.forward(x) * dout).sum()), x)
    return rel_error(dx, dx_num)


def test_linear_gradients(rng):
    layer = Linear(5, 4, dtype=np.float64, rng=rng)
    x, dout = rng.normal(size=(3, 5)), rng.normal(size=(3, 4))
    assert _check_input_grad(layer, x, dout) < TOL
    layer.forward(x)
    layer.backward(dout)
    for name in ("weight", "bias"):
        p = layer.params[name]
        num = numeric_gradient(lambda: float((layer.forward(x) * dout).sum()), p)
        assert rel_error(layer.grads[name], num) < TOL, name


def test_relu_gradient(rng):
    # Keep inputs away from the kink at 0, where the centred difference is not the derivative.
    x = rng.normal(size=(4, 6))
    x[np.abs(x) < 0.1] = 0.5
    assert _check_input_grad(ReLU(), x, rng.normal(size=(4, 6))) < TOL


def test_softmax_gradient(rng):
    assert _check_input_grad(SoftMax(), rng.normal(size=(4, 5)), rng.normal(size=(4, 5))) < TOL


def test_softmax_is_stable_for_huge_logits():
    probs = SoftMax().forward(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.all(np.isfinite(probs)) and probs[0, 0] == pytest.approx(1.0)


def test_crossentropy_gradient(rng):
    probs = SoftMax().forward(rng.normal(size=(4, 3)))
    y = np.array([0, 2, 1, 2])
    ce = CrossEntropy()
    ce.forward(probs, y)
    num = numeric_gradient(lambda: ce.forward(probs, y), probs)
    ce.forward(probs, y)
    assert rel_error(ce.backward(), num) < TOL


def test_crossentropy_never_takes_log_of_zero():
    loss = CrossEntropy().forward(np.array([[1.0, 0.0]]), np.array([1]))
    assert np.isfinite(loss) and loss > 20  # -log(1e-12) ~ 27.6


def test_crossentropy_accepts_onehot_labels(rng):
    probs = SoftMax().forward(rng.normal(size=(4, 3)))
    y = np.array([0, 2, 1, 2])
    assert CrossEntropy().forward(probs, y) == CrossEntropy().forward(probs, np.eye(3)[y])


def test_mlp_gradients_two_hidden_layers(rng):
    model = MLP(4, [6, 5], 3, dtype=np.float64, seed=1)
    x, y = rng.normal(size=(7, 4)), rng.integers(0, 3, size=7)
    ce = CrossEntropy()

    def loss() -> float:
        return ce.forward(model.forward(x), y)

    loss()
    model.backward(ce.backward())
    analytic = [(layer, name, layer.grads[name].copy())
                for layer in model.linears() for name in ("weight", "bias")]
    assert len(analytic) == 6
    for layer, name, grad in analytic:
        assert rel_error(grad, numeric_gradient(loss, layer.params[name])) < TOL, name


def test_gradcheck_catches_a_wrong_gradient(rng):
    """The check has teeth: a backward that is off by a factor 2 fails it by far."""
    x, dout = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    relu = ReLU()
    relu.forward(x)
    wrong = 2 * relu.backward(dout)
    num = numeric_gradient(lambda: float((relu.forward(x) * dout).sum()), x)
    assert rel_error(wrong, num) > 0.1
