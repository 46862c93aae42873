"""Muon for convolution filters, and several optimizers stepped as one.

Muon (Jordan et al., 2024) replaces a weight matrix's momentum update by the nearest
orthogonal matrix (a few Newton-Schulz iterations, no SVD). PyTorch ships it as
``torch.optim.Muon``, for 2-D parameters only. :class:`MatrixMuon` gives it weights of any
rank >= 2, a conv filter bank (out, in, kh, kw) included: each is optimised as the
(out, in * kh * kw) matrix that shares its memory (for a channels-last tensor the columns are
taken in memory order, (kh, kw, in); orthogonalisation does not depend on the columns' order).
Fast CIFAR-10 recipes hand Muon the convolution filters only; the rest (biases, BatchNorm
shifts, the head) stays on SGD or Adam. :class:`Chain` steps such a pair as one optimizer,
so a single learning-rate scheduler, checkpoint and training step drive both.

``torch.optim.Muon`` runs its Newton-Schulz iterations in bf16. On a CPU without native bf16
(AVX2 only) bf16 matrix products are emulated and some 40x slower than fp32, so there
:class:`MatrixMuon` runs the same update with the iterations in fp32 (``ns_dtype``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from nnlab import device as devices


def _channels_last(t: torch.Tensor) -> bool:
    """Whether ``t`` is a 4-D tensor laid out channels-last (and not also contiguous)."""
    return t.ndim == 4 and not t.is_contiguous() and t.is_contiguous(
        memory_format=torch.channels_last)


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """``t`` (out, ...) as an (out, rest) view of the same memory: flattened in the order
    of its strides (channels-last 4-D tensors: (out, kh * kw * in))."""
    if _channels_last(t):
        return t.permute(0, 2, 3, 1).flatten(1)
    if not t.is_contiguous():
        raise ValueError(f"MatrixMuon needs contiguous or channels-last tensors, got strides "
                         f"{t.stride()} for shape {tuple(t.shape)}")
    return t.flatten(1)


def orthogonalize(g: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                  eps: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The quintic Newton-Schulz iteration Muon uses, in ``dtype``: g (rows, cols) scaled to
    spectral norm at most 1, then X <- a X + (b A + c A^2) X with A = X X^T, on the wider
    orientation. Returns a matrix of g's shape whose singular values lie near 1."""
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class MatrixMuon(torch.optim.Muon):
    """``torch.optim.Muon`` for parameters of any rank >= 2 (see the module's docstring).

    With ``normalize`` each parameter is rescaled before every update to Frobenius norm
    sqrt(out) (rows of unit norm on average), as airbench does for filters that a BatchNorm
    follows: the scale does not change what the network computes, and pinning it keeps
    ``lr`` the fraction each row turns per step instead of letting the growing norm shrink it.
    Other keyword arguments go to ``torch.optim.Muon``.
    """

    def __init__(self, params: Iterable[torch.Tensor], normalize: bool = False,
                 ns_dtype: torch.dtype | str = "auto", **kwargs: Any) -> None:
        params = list(params)
        if ns_dtype not in ("auto", torch.bfloat16, torch.float32):
            raise ValueError(f"ns_dtype must be 'auto', torch.bfloat16 or torch.float32, "
                             f"got {ns_dtype!r}")
        self.ns_dtype = ns_dtype
        if not params or any(p.ndim < 2 for p in params):
            raise ValueError("MatrixMuon needs one or more parameters of rank 2 or more")
        # Leaf tensors that alias each parameter's memory: torch's Muon updates them in place.
        self.pairs = [(p, nn.Parameter(as_matrix(p.detach()))) for p in params]
        self.normalize = normalize
        super().__init__([m for _, m in self.pairs], **kwargs)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for p, m in self.pairs:
            # The gradient laid out as its parameter, so both flatten in the same order.
            layout = torch.channels_last if _channels_last(p) else torch.contiguous_format
            m.grad = None if p.grad is None else as_matrix(p.grad.contiguous(
                memory_format=layout))
            if self.normalize and p.grad is not None:
                p.mul_(math.sqrt(len(p)) / p.norm().clamp_min(1e-12))
        dtype = self._dtype()
        if dtype == torch.bfloat16:
            return super().step(closure)
        return self._step_in(dtype, closure)

    def _dtype(self) -> torch.dtype:
        """The Newton-Schulz dtype: bf16 (torch's) on CUDA and on CPUs with native bf16,
        fp32 on other CPUs, unless ``ns_dtype`` says which."""
        if self.ns_dtype != "auto":
            return self.ns_dtype
        device = self.pairs[0][1].device
        return torch.bfloat16 if device.type != "cpu" or devices.cpu_has_native_bf16() else \
            torch.float32

    @torch.no_grad()
    def _step_in(self, dtype: torch.dtype, closure: Any = None) -> Any:
        """torch.optim.Muon's update (Nesterov momentum, orthogonalised, lr scaled by
        sqrt(max(1, rows / cols)), decoupled weight decay) with the iterations in ``dtype``;
        the momentum buffers are torch's own state, so either path resumes the other."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for m in group["params"]:
                if m.grad is None:
                    continue
                state = self.state[m]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(m.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(m.grad, 1 - momentum)
                update = m.grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = orthogonalize(update, group["ns_coefficients"], group["ns_steps"],
                                       group["eps"], dtype)
                rows, cols = m.shape[:2]
                m.mul_(1 - lr * group["weight_decay"])
                m.add_(update.to(m.dtype), alpha=-lr * math.sqrt(max(1.0, rows / cols)))
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p, m in self.pairs:
            m.grad = None
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()


class Chain(torch.optim.Optimizer):
    """Several optimizers over disjoint parameters, stepped as one.

    ``param_groups`` are the optimizers' own group dicts, so a learning-rate scheduler on the
    chain sets every group's ``lr`` (a group's ``initial_lr`` is its optimizer's ``lr``); the
    state dict holds each optimizer's. :attr:`optimizers` are stepped in the order given.
    """

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        if not optimizers:
            raise ValueError("Chain needs at least one optimizer")
        self.optimizers = list(optimizers)
        super().__init__([g for o in self.optimizers for g in o.param_groups], {})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for o in self.optimizers:
            o.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict["optimizers"]
        if len(states) != len(self.optimizers):
            raise ValueError(f"the state holds {len(states)} optimizers, this chain has "
                             f"{len(self.optimizers)}")
        for o, s in zip(self.optimizers, states, strict=True):
            o.load_state_dict(s)
        # load_state_dict replaces the inner group dicts: share them again.
        self.param_groups = [g for o in self.optimizers for g in o.param_groups]
