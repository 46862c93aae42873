"""Hand-written recurrent cells: the study's tanh RNN, an LSTM and a GRU.

Explicit parameters and a plain time loop -- no nn.RNN, nn.LSTM, nn.GRU or nn.Linear. Each
network reads a sequence and returns the logits of its last step (the loss is on the last step
only; softmax lives in the loss). Backward is autograd.

Why the loop is fast without TorchScript: the input projection of every step is one matmul
(or a row lookup for digit indices) before the loop; the loop reads its per-step slices from
``unbind`` (one backward node for all steps -- slicing ``xp[:, t]`` instead costs a full-size
zero tensor per step in backward); and each step is one fused ``addmm``. Measured by
``benchmarks/rnn_speed.py``.

Recurrent weights use torch's layouts (gates stacked along the first dimension in torch's
order), so ``from_torch`` copies an nn.RNN / nn.LSTM / nn.GRU in, which is how the tests prove
the cells equal torch's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

RECURRENT_INITS = ("default", "orthogonal", "identity")


def _uniform(*shape: int, bound: float) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


class _Recurrent(nn.Module):
    """Shared parts: parameters W_hx (G*H, D), W_hh (G*H, H), b_h (G*H), and the output layer
    W_ph (C, H), b_o (C), where G is the number of gate blocks (1 RNN, 4 LSTM, 3 GRU).

    Inputs are x (B, L, D) floats, or (B, L) int64 digit indices, which select columns of W_hx
    (the same as a one-hot input, without the matmul).
    """

    n_gates = 1

    def __init__(self, seq_length: int, input_dim: int, num_hidden: int, num_classes: int) -> None:
        super().__init__()
        self.seq_length = seq_length  # the study's API; any length is accepted at run time
        self.num_hidden = H = num_hidden
        G, bound = self.n_gates, 1.0 / math.sqrt(num_hidden)  # torch's default init bound
        self.W_hx = _uniform(G * H, input_dim, bound=bound)
        self.W_hh = _uniform(G * H, H, bound=bound)
        self.b_h = _uniform(G * H, bound=bound)
        self.W_ph = _uniform(num_classes, H, bound=bound)
        self.b_o = _uniform(num_classes, bound=bound)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) float or (B, L) int64 -> W_hx x_t + b_h for all steps at once (B, L, G*H)."""
        if x.dtype == torch.long:
            return nn.functional.embedding(x, self.W_hx.t()) + self.b_h
        return x @ self.W_hx.t() + self.b_h

    def final_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden state after the last step, (B, H); h(0) = 0."""
        raise NotImplementedError

    @classmethod
    def from_torch(cls, module: nn.RNNBase, num_classes: int) -> _Recurrent:
        """This cell with the weights of a one-layer torch nn.RNN / nn.LSTM / nn.GRU (the output
        layer, which torch's modules lack, is fresh)."""
        model = cls(0, module.input_size, module.hidden_size, num_classes)
        with torch.no_grad():
            model._load_torch(module)
        return model

    def _load_torch(self, module: nn.RNNBase) -> None:
        """W_hx <- weight_ih_l0, W_hh <- weight_hh_l0, b_h <- bias_ih_l0 + bias_hh_l0."""
        self.W_hx.copy_(module.weight_ih_l0)
        self.W_hh.copy_(module.weight_hh_l0)
        self.b_h.copy_(module.bias_ih_l0 + module.bias_hh_l0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) or (B, L) digits -> logits (B, num_classes) of the last step."""
        return self.final_hidden(x) @ self.W_ph.t() + self.b_o


class VanillaRNN(_Recurrent):
    """h(t) = tanh(W_hh h(t-1) + W_hx x(t) + b_h),  o(t) = W_ph h(t) + b_o  (the study's cell).

    ``recurrent_init``: 'default' (torch's uniform), 'orthogonal' (a random rotation: the
    linearised map neither grows nor shrinks a state), or 'identity' (h carried over as is
    until the nonlinearity saturates), scaled by ``recurrent_gain``.
    """

    def __init__(self, seq_length: int, input_dim: int, num_hidden: int, num_classes: int,
                 recurrent_init: str = "default", recurrent_gain: float = 1.0) -> None:
        super().__init__(seq_length, input_dim, num_hidden, num_classes)
        if recurrent_init not in RECURRENT_INITS:
            raise ValueError(f"recurrent_init must be one of {RECURRENT_INITS}")
        with torch.no_grad():
            if recurrent_init == "orthogonal":
                nn.init.orthogonal_(self.W_hh, gain=recurrent_gain)
            elif recurrent_init == "identity":
                self.W_hh.copy_(recurrent_gain * torch.eye(num_hidden))
            if recurrent_init != "default":
                self.b_h.zero_()

    def final_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) or (B, L) digits -> h(L) (B, H): h(t) = tanh(W_hh h(t-1) + W_hx x(t) +
        b_h) for t = 1..L from h(0) = 0. ``self.project(x)`` (B, L, H) gives W_hx x(t) + b_h
        for every t at once; each step then adds W_hh h(t-1) of the step before."""
        xp = self.project(x)  # (B, L, H)
        h = xp.new_zeros(xp.shape[0], self.num_hidden)
        W_hh_T = self.W_hh.t()
        for xp_t in xp.unbind(1):
            h = torch.tanh(torch.addmm(xp_t, h, W_hh_T))  # (B, H)
        return h


class LSTM(_Recurrent):
    """i, f, g, o = sigma, sigma, tanh, sigma of (W_hx x(t) + W_hh h(t-1) + b_h) split in four;
    c(t) = f c(t-1) + i g;  h(t) = o tanh(c(t));  o(t) = W_ph h(t) + b_o.

    Gate rows of W_hx, W_hh, b_h are stacked in torch's order [i; f; g; o].
    """

    n_gates = 4

    def chrono_init_(self, max_gap: int) -> None:
        """Chrono initialisation (Tallec & Ollivier, 2018): forget bias log(U(1, max_gap - 1)),
        input bias its negative, so the cell's memory time scales spread up to ``max_gap``."""
        H = self.num_hidden
        with torch.no_grad():
            b_f = torch.log(torch.empty(H).uniform_(1, max(max_gap - 1, 2)))
            self.b_h[H:2 * H] = b_f
            self.b_h[:H] = -b_f

    def final_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) or (B, L) digits -> h(L) (B, H), from h(0) = c(0) = 0. Each step:
        gates = W_hx x(t) + b_h + W_hh h(t-1) (B, 4H), split in [i; f; g; o] (torch's
        order); i, f, o through a sigmoid, g through tanh; c(t) = f c(t-1) + i g;
        h(t) = o tanh(c(t)). ``self.project(x)`` (B, L, 4H) gives W_hx x(t) + b_h for every
        t at once."""
        xp = self.project(x)  # (B, L, 4H)
        H = self.num_hidden
        h = xp.new_zeros(xp.shape[0], H)
        c = torch.zeros_like(h)
        W_hh_T = self.W_hh.t()
        for xp_t in xp.unbind(1):
            gates = torch.addmm(xp_t, h, W_hh_T)  # (B, 4H)
            # One sigmoid over all four blocks (g's is unused) beats three calls on slices:
            # at this size the cost is per call, not per element.
            i, f, _, o = torch.sigmoid(gates).chunk(4, dim=1)
            g = torch.tanh(gates[:, 2 * H:3 * H])
            c = f * c + i * g
            h = o * torch.tanh(c)
        return h


class GRU(_Recurrent):
    """torch's GRU: r, z = sigma(W_x x + b_x + W_h h + b_hh) for the first two blocks;
    n = tanh(W_xn x + b_xn + r (W_hn h + b_hn));  h(t) = (1 - z) n + z h(t-1).

    The candidate's recurrent bias b_hn sits inside r (...), so it is kept apart from b_h:
    ``b_hh`` (3H) holds it in its last block (the first two blocks are folded into b_h).
    """

    n_gates = 3

    def __init__(self, seq_length: int, input_dim: int, num_hidden: int, num_classes: int) -> None:
        super().__init__(seq_length, input_dim, num_hidden, num_classes)
        self.b_hn = _uniform(num_hidden, bound=1.0 / math.sqrt(num_hidden))

    def final_hidden(self, x: torch.Tensor) -> torch.Tensor:
        xp = self.project(x)  # (B, L, 3H)
        H = self.num_hidden
        h = xp.new_zeros(xp.shape[0], H)
        W_hh_T = self.W_hh.t()
        b_hh = torch.cat([self.b_hn.new_zeros(2 * H), self.b_hn])
        for xp_t in xp.unbind(1):
            hh = torch.addmm(b_hh, h, W_hh_T)  # (B, 3H)
            r, z = torch.sigmoid(xp_t[:, :2 * H] + hh[:, :2 * H]).chunk(2, dim=1)
            n = torch.tanh(torch.addcmul(xp_t[:, 2 * H:], r, hh[:, 2 * H:]))
            h = n + z * (h - n)  # = (1 - z) n + z h
        return h

    def _load_torch(self, module: nn.RNNBase) -> None:
        """As the base, but b_hn (the candidate's recurrent bias) stays apart from b_h."""
        H = self.num_hidden
        super()._load_torch(module)
        self.b_h[2 * H:] = module.bias_ih_l0[2 * H:]
        self.b_hn.copy_(module.bias_hh_l0[2 * H:])


CELLS = {"rnn": VanillaRNN, "lstm": LSTM, "gru": GRU}
