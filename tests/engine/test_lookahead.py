"""Lookahead: the slow/fast update equals its definition, covers BatchNorm's statistics,
and its state survives a checkpoint round trip."""

import pytest
import torch
from torch import nn

from nnlab.engine import TorchStep
from nnlab.engine.lookahead import Lookahead


def _loss(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(x @ w.T, y)


@pytest.mark.parametrize("k, alpha", [(3, 0.5), (1, 0.25), (4, 1.0)])
def test_lookahead_equals_its_definition(k, alpha):
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    model = nn.Linear(4, 3, bias=False)
    w0 = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    step = TorchStep(model, opt, lookahead=Lookahead(model, k, alpha))
    fast, slow = w0.clone(), w0.clone()
    for s in range(1, 3 * k + 2):  # a few slow updates and a partial stretch after them
        step(x, y)
        w = fast.clone().requires_grad_(True)
        _loss(w, x, y).backward()
        fast = fast - 0.1 * w.grad
        if s % k == 0:
            slow = slow + alpha * (fast - slow)
            fast = slow.clone()
        torch.testing.assert_close(model.weight.detach(), fast, rtol=1e-6, atol=1e-7)
    assert not torch.equal(slow, w0)


def test_lookahead_moves_batchnorm_statistics_and_skips_integer_buffers():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    la = Lookahead(model, k=1, alpha=0.5)
    assert "1.running_mean" in la.slow and "1.num_batches_tracked" not in la.slow
    model.train()
    model(torch.randn(8, 3) + 5)  # running_mean moves towards ~5 * weights
    moved = model[1].running_mean.clone()
    la.step()
    torch.testing.assert_close(model[1].running_mean, moved / 2)  # half way from 0


def test_lookahead_state_round_trips():
    torch.manual_seed(1)
    model = nn.Linear(3, 2)
    la = Lookahead(model, k=2, alpha=0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    la.step()
    la.step()
    other = Lookahead(nn.Linear(3, 2), k=2, alpha=0.5)
    other.load_state_dict(la.state_dict())
    assert other.steps == 2
    assert all(torch.equal(other.slow[n], la.slow[n]) for n in la.slow)


def test_lookahead_refuses_bad_settings():
    with pytest.raises(ValueError):
        Lookahead(nn.Linear(2, 2), k=0)
    with pytest.raises(ValueError):
        Lookahead(nn.Linear(2, 2), alpha=0.0)


def test_the_ramped_alpha_starts_at_one_and_ends_at_alpha():
    model = nn.Linear(2, 2)
    la = Lookahead(model, k=1, alpha=0.2, total_steps=10, power=3.0)
    assert la.current_alpha() == 1.0  # step 0: the slow copy simply follows
    la.steps = 5
    assert la.current_alpha() == pytest.approx(1 - 0.8 * 0.5 ** 3)
    la.steps = 10
    assert la.current_alpha() == pytest.approx(0.2)
    slow = la.slow["weight"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    la.sync()  # at the end: 20% of the way
    torch.testing.assert_close(model.weight.detach(), slow + 0.2)
