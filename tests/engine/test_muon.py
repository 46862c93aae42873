"""Muon for conv filters: the update is orthogonal (to Newton-Schulz's tolerance), equals
torch's Muon on the matrix view, keeps the filter norm pinned; Chain steps, schedules and
checkpoints its optimizers as one."""

import copy
import math

import pytest
import torch
from torch import nn

from nnlab.engine.muon import Chain, MatrixMuon, as_matrix


def _spread_gradient(out: int, cols: int) -> torch.Tensor:
    """An (out, cols) gradient whose singular values span two orders of magnitude."""
    u, _ = torch.linalg.qr(torch.randn(out, out))
    v, _ = torch.linalg.qr(torch.randn(cols, out))
    return u @ torch.diag(torch.logspace(0, -2, out)) @ v.T


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_update_of_a_filter_bank_is_orthogonal(memory_format):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, bias=False).to(memory_format=memory_format)
    grad = _spread_gradient(16, 8 * 9).reshape(16, 8, 3, 3)
    conv.weight.grad = grad.contiguous(memory_format=memory_format)
    before = conv.weight.detach().clone()
    opt = MatrixMuon([conv.weight], lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0)
    opt.step()
    update = (before - conv.weight.detach()).flatten(1)  # (out, in*kh*kw)
    singular = torch.linalg.svdvals(update)
    # Newton-Schulz with Muon's coefficients lands every singular value near 1, not exactly:
    # about [0.68, 1.13]; the gradient's own spread was 100x.
    assert singular.min() > 0.6 and singular.max() < 1.2, singular
    # ... and the update points along the gradient: the polar factor's inner product with it
    # is its nuclear norm, positive.
    assert (update * grad.flatten(1)).sum() > 0


@pytest.mark.parametrize("path", ["torch's", "ours in bf16", "ours in fp32"])
def test_equals_torch_muon_on_the_matrix_view(path):
    """torch.optim.Muon's own step (bf16 where it is native), nnlab's step with the same bf16
    iterations (equal to rounding), and nnlab's fp32 iterations for CPUs without native bf16
    (equal to bf16's rounding, the size of Muon's own error)."""
    torch.manual_seed(1)
    w = torch.randn(6, 4, 3, 3)
    filters = nn.Parameter(w.clone())
    matrix = nn.Parameter(w.clone().flatten(1))
    kwargs = dict(lr=0.05, momentum=0.6, nesterov=True, weight_decay=0.01)
    dtype = torch.float32 if path == "ours in fp32" else torch.bfloat16
    ours, theirs = MatrixMuon([filters], ns_dtype=dtype, **kwargs), torch.optim.Muon([matrix],
                                                                                      **kwargs)
    for _ in range(3):
        g = torch.randn(6, 4, 3, 3)
        filters.grad, matrix.grad = g.clone(), g.clone().flatten(1)
        if path == "ours in bf16":  # the same pinning and views as step(), nnlab's update
            ours.pairs[0][1].grad = as_matrix(filters.grad)
            ours._step_in(torch.bfloat16)
        else:
            ours.step()
        theirs.step()
    tolerance = {"atol": 2e-3, "rtol": 0} if path == "ours in fp32" else {}
    torch.testing.assert_close(filters.detach().flatten(1), matrix.detach(), **tolerance)
    assert "momentum_buffer" in ours.state[ours.pairs[0][1]]  # torch's state: either resumes


def test_fp32_iterations_are_chosen_where_bf16_is_emulated(monkeypatch):
    import nnlab.device

    p = nn.Parameter(torch.randn(4, 6))
    monkeypatch.setattr(nnlab.device, "cpu_has_native_bf16", lambda: False)
    assert MatrixMuon([p])._dtype() == torch.float32
    monkeypatch.setattr(nnlab.device, "cpu_has_native_bf16", lambda: True)
    assert MatrixMuon([p])._dtype() == torch.bfloat16
    assert MatrixMuon([p], ns_dtype=torch.float32)._dtype() == torch.float32
    with pytest.raises(ValueError, match="ns_dtype"):
        MatrixMuon([p], ns_dtype=torch.float16)


def test_channels_last_only_reorders_the_columns():
    """Orthogonalising G P (P a column permutation) gives polar(G) P: the same update."""
    torch.manual_seed(2)
    w, g = torch.randn(8, 4, 3, 3), torch.randn(8, 4, 3, 3)
    a = nn.Parameter(w.clone())
    b = nn.Parameter(w.clone().contiguous(memory_format=torch.channels_last))
    a.grad, b.grad = g.clone(), g.clone().contiguous(memory_format=torch.channels_last)
    assert as_matrix(b.detach()).data_ptr() == b.data_ptr()  # a view, not a copy
    for p in (a, b):
        MatrixMuon([p], lr=0.1, momentum=0.0, weight_decay=0.0).step()
    # Newton-Schulz runs in bf16: the column order changes the rounding, not the result.
    torch.testing.assert_close(a.detach(), b.detach(), atol=2e-3, rtol=0)


def test_normalize_pins_each_bank_to_unit_norm_rows():
    torch.manual_seed(3)
    p = nn.Parameter(5 * torch.randn(16, 8, 3, 3))
    opt = MatrixMuon([p], normalize=True, lr=0.1, momentum=0.0, weight_decay=0.0)
    for _ in range(4):
        p.grad = torch.randn_like(p)
        opt.step()
        # Pinned before the update; one update of size lr changes the norm by about lr^2.
        assert p.norm().item() == pytest.approx(math.sqrt(16), rel=0.05)


def test_rejects_vectors():
    with pytest.raises(ValueError, match="rank 2"):
        MatrixMuon([nn.Parameter(torch.zeros(3))])


def _model_and_chain():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.Flatten(), nn.Linear(8 * 4 * 4, 2))
    filters = [model[0].weight]
    rest = [p for p in model.parameters() if p is not model[0].weight]
    chain = Chain(torch.optim.SGD(rest, lr=0.1, momentum=0.9),
                  MatrixMuon(filters, lr=0.02, momentum=0.6))
    sched = torch.optim.lr_scheduler.LambdaLR(chain, lambda s: 1.0 / (1 + s))
    return model, chain, sched


def _train(model, chain, sched, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(4, 3, 6, 6, generator=gen), torch.randint(0, 2, (4,), generator=gen)
        chain.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        chain.step()
        sched.step()


def test_chain_schedules_every_group_and_clears_every_gradient():
    model, chain, sched = _model_and_chain()
    _train(model, chain, sched, 3, seed=0)
    assert [g["lr"] for g in chain.param_groups] == pytest.approx([0.1 / 4, 0.02 / 4])
    assert [g["lr"] for o in chain.optimizers for g in o.param_groups] == pytest.approx(
        [0.1 / 4, 0.02 / 4])
    chain.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_chain_state_round_trip_continues_exactly():
    model, chain, sched = _model_and_chain()
    _train(model, chain, sched, 3, seed=0)
    saved = copy.deepcopy({"model": model.state_dict(), "opt": chain.state_dict(),
                           "sched": sched.state_dict()})  # state dicts alias live tensors
    _train(model, chain, sched, 3, seed=1)
    reference = [p.detach().clone() for p in model.parameters()]

    model2, chain2, sched2 = _model_and_chain()
    model2.load_state_dict(saved["model"])
    chain2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    _train(model2, chain2, sched2, 3, seed=1)
    for a, b in zip(model2.parameters(), reference, strict=True):
        torch.testing.assert_close(a.detach(), b)
    assert [g["lr"] for g in chain2.optimizers[1].param_groups] == pytest.approx([0.02 / 7])
