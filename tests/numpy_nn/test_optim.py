"""Update rules by hand, and step for step against torch.optim."""

import numpy as np
import pytest
import torch

from nnlab.numpy_nn import MLP, SGD, Adam, CrossEntropy
from nnlab.numpy_nn.optim import adam_update, sgd_update


def test_sgd_rule_by_hand():
    p, g = np.array([1.0]), np.array([0.5])
    p1, buf = sgd_update(p, g, None, lr=0.1, momentum=0.9, weight_decay=0.2)
    # g' = 0.5 + 0.2 * 1 = 0.7; first buf = g'; p = 1 - 0.1 * 0.7
    assert buf[0] == pytest.approx(0.7) and p1[0] == pytest.approx(0.93)
    p2, buf = sgd_update(p1, g, buf, lr=0.1, momentum=0.9)
    # buf = 0.9 * 0.7 + 0.5 = 1.13; p = 0.93 - 0.113
    assert buf[0] == pytest.approx(1.13) and p2[0] == pytest.approx(0.817)


def test_adam_rule_by_hand():
    p, g = np.array([1.0]), np.array([0.5])
    p1, m, v = adam_update(p, g, np.zeros(1), np.zeros(1), t=1, lr=0.1)
    # first step: m_hat = g, v_hat = g^2, so p moves by lr * g / (|g| + eps) ~ lr
    assert m[0] == pytest.approx(0.05) and v[0] == pytest.approx(0.00025)
    assert p1[0] == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-8))


def _twin_models(seed=0):
    """A float64 NumPy MLP and a torch MLP with the same weights, and a batch."""
    from nnlab.models.mlp import MLP as TorchMLP

    np_model = MLP(3, [8, 6], 4, dtype=np.float64, seed=seed)
    torch_model = TorchMLP(3, [8, 6], 4).double()
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.state_dict().items()})
    rng = np.random.default_rng(seed)
    return np_model, torch_model, rng.normal(size=(10, 3)), rng.integers(0, 4, size=10)


def _steps(np_model, np_opt, torch_model, torch_opt, x, y, n_steps):
    ce = CrossEntropy()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(n_steps):
        ce.forward(np_model.forward(x), y)
        np_model.backward(ce.backward())
        np_opt.step()
        torch_opt.zero_grad()
        torch.nn.functional.cross_entropy(torch_model(xt), yt).backward()
        torch_opt.step()


@pytest.mark.parametrize("name, np_cls, torch_cls, kwargs", [
    ("sgd+momentum", SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd+nesterov", SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)),
])
def test_steps_equal_torch_optim(name, np_cls, torch_cls, kwargs):
    np_model, torch_model, x, y = _twin_models()
    _steps(np_model, np_cls(np_model.linears(), **kwargs),
           torch_model, torch_cls(torch_model.parameters(), **kwargs), x, y, n_steps=5)
    for key, value in torch_model.state_dict().items():
        np.testing.assert_allclose(np_model.state_dict()[key], value.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=f"{name}: {key}")


def test_clip_grad_norm_matches_torch():
    from nnlab.numpy_nn import clip_grad_norm

    model = MLP(4, [8], 3, dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    for layer in model.linears():
        layer.grads = {k: rng.normal(size=p.shape) * 3 for k, p in layer.params.items()}
    tensors = [torch.tensor(g, requires_grad=False) for layer in model.linears()
               for g in layer.grads.values()]
    params = [torch.zeros_like(t, requires_grad=True) for t in tensors]
    for p, g in zip(params, tensors, strict=True):
        p.grad = g.clone()
    expected_norm = torch.nn.utils.clip_grad_norm_(params, 1.5)
    norm = clip_grad_norm(model.linears(), 1.5)
    assert norm == pytest.approx(expected_norm.item(), rel=1e-12)
    ours = [g for layer in model.linears() for g in layer.grads.values()]
    for g, p in zip(ours, params, strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
    assert np.sqrt(sum((g ** 2).sum() for g in ours)) < 1.5 + 1e-6  # it really clipped
