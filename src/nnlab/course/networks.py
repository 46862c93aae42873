"""The checks of the networks a student builds from the layers: the NumPy MLP (forward and
backward against nnlab's reference on the same weights and against centred differences;
learning moons), the PyTorch MLP and the reduced VGG (their layers laid out as the
docstrings say, so nnlab's weights load; the same outputs), and the recurrent cells (the
same logits as nnlab's cells on the same weights; the tanh RNN's loss falling on
palindromes of length 5).

Each check takes the student's module and a generator, and returns what it checked, or
raises :class:`~nnlab.course.findings.Wrong`."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from nnlab.course.findings import Wrong, close, gradient, sizes
from nnlab.numpy_nn.gradcheck import numeric_gradient

LEARN_ACC = 0.95  # on a fresh draw of moons


def _moons(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.1, random_state=int(rng.integers(2**31)))
    return x.astype(np.float32), y


def _hidden(rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(int(w) for w in rng.integers(2, 7, int(rng.integers(1, 3))))


# --------------------------------------------------------------------------- Part I


def numpy_mlp_forward(m: ModuleType, rng: np.random.Generator) -> str:
    from nnlab.numpy_nn.mlp import MLP

    s, hidden = sizes(rng), _hidden(rng)
    net = m.MLP(s.d, hidden, s.c, dtype=np.float64, seed=int(rng.integers(2**31)))
    ref = MLP(s.d, hidden, s.c, dtype=np.float64)
    ref.load_state_dict(net.state_dict())
    x = rng.normal(size=(s.n, s.d))
    close("the probabilities", net.forward(x.copy()), ref.forward(x),
          "each of self.layers in turn, then self.softmax (when your layers' own checks "
          "pass, the order or the chaining is what is left)")
    return f"N={s.n}, {s.d}->{'->'.join(map(str, hidden))}->{s.c}, nnlab's weights"


def numpy_mlp_backward(m: ModuleType, rng: np.random.Generator) -> str:
    from nnlab.numpy_nn.mlp import MLP

    s, hidden = sizes(rng), _hidden(rng)
    net = m.MLP(s.d, hidden, s.c, dtype=np.float64, seed=int(rng.integers(2**31)))
    twin = MLP(s.d, hidden, s.c, dtype=np.float64)
    for mine, theirs in zip(twin.linears(), net.linears(), strict=True):
        mine.params = theirs.params  # the same arrays: perturbing one perturbs the loss below
    x, dout = rng.normal(size=(s.n, s.d)), rng.normal(size=(s.n, s.c))

    def loss() -> float:
        return float(np.sum(twin.forward(x) * dout))

    want = [{k: numeric_gradient(loss, v) for k, v in layer.params.items()}
            for layer in net.linears()]
    net.forward(x.copy())
    net.backward(dout.copy())
    for i, (layer, numeric) in enumerate(zip(net.linears(), want, strict=True)):
        for key, value in numeric.items():
            # 1e-4, not 1e-6: a hidden unit within a difference's step of the ReLU's kink
            # skews the differences a little; a wrong backward is off by 1e-2 or more
            gradient(f"Linear {i}'s grads[{key!r}]", layer.grads.get(key), value, s.n,
                     "backward runs self.softmax's backward first, then each of "
                     "self.layers in reverse, each given what the one after it returned",
                     tolerance=1e-4)
    return f"N={s.n}, {s.d}->{'->'.join(map(str, hidden))}->{s.c}, against centred differences"


def numpy_mlp_learns(m: ModuleType, rng: np.random.Generator) -> str:
    from nnlab.numpy_nn.optim import Adam

    x, y = _moons(rng, 1000)
    net = m.MLP(2, (32, 32), 2, seed=int(rng.integers(2**31)))
    criterion, opt = net.criterion(), Adam(net.linears(), lr=0.01)
    for _ in range(300):
        batch = rng.choice(len(y) // 2, 64, replace=False)
        loss = criterion.forward(net.forward(x[batch]), y[batch])
        net.backward(criterion.backward())
        opt.step()
    acc = float(np.mean(net.forward(x[len(y) // 2:]).argmax(1) == y[len(y) // 2:]))
    if not np.isfinite(loss) or acc < LEARN_ACC:
        raise Wrong(f"after 300 Adam steps on 500 points of moons it classifies "
                    f"{acc:.1%} of 500 others (loss {loss:.3g}); expected {LEARN_ACC:.0%}",
                    "when every other check passes, look at what backward leaves in grads "
                    "(the optimizer reads each Linear's grads)")
    return f"{acc:.1%} of 500 held-out moons after 300 steps (2->32->32->2, Adam)"


def _loads(net, ref, what: str, hint: str) -> None:  # noqa: ANN001 - two nn.Modules
    """``ref``'s weights into ``net``: the same names and shapes, or a finding."""
    mine, theirs = net.state_dict(), ref.state_dict()
    if set(mine) != set(theirs):
        missing = sorted(set(theirs) - set(mine))[:3]
        extra = sorted(set(mine) - set(theirs))[:3]
        raise Wrong(f"{what}'s parameters are not laid out as the docstring says (missing "
                    f"{missing or 'none'}, unexpected {extra or 'none'})", hint)
    for key, value in theirs.items():
        if mine[key].shape != value.shape:
            raise Wrong(f"{key} has shape {tuple(mine[key].shape)}, expected "
                        f"{tuple(value.shape)}", hint)
    net.load_state_dict(theirs)


def pytorch_mlp(m: ModuleType, rng: np.random.Generator) -> str:
    import torch

    from nnlab.models.mlp import MLP

    s, hidden = sizes(rng), _hidden(rng)
    torch.manual_seed(int(rng.integers(2**31)))
    net, ref = m.MLP(s.d, hidden, s.c), MLP(s.d, hidden, s.c)
    _loads(net, ref, "the MLP", "self.net = nn.Sequential(Linear, ReLU, ..., Linear): a "
           "ReLU after every Linear but the last")
    x = torch.from_numpy(rng.normal(size=(s.n, s.d))).float()
    with torch.no_grad():
        got, want = net(x), ref(x).double().numpy()
    if isinstance(got, torch.Tensor) and got.shape == want.shape and got.min() >= 0 > want.min():
        raise Wrong("no logit it returns is negative, and nnlab's are",
                    "a ReLU after every Linear but the last: the last Linear's output is "
                    "returned as it is")
    close("the output (logits)", got.double().numpy() if isinstance(got, torch.Tensor) else got,
          want, "forward returns the last Linear's output (logits: no softmax)")
    return f"N={s.n}, {s.d}->{'->'.join(map(str, hidden))}->{s.c}, nnlab's weights"


def pytorch_mlp_learns(m: ModuleType, rng: np.random.Generator) -> str:
    import torch

    torch.manual_seed(int(rng.integers(2**31)))
    x, y = (torch.from_numpy(a) for a in _moons(rng, 1000))
    net = m.MLP(2, (32, 32), 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(300):
        batch = torch.from_numpy(rng.choice(500, 64, replace=False))
        loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = float((net(x[500:]).argmax(1) == y[500:]).float().mean())
    if acc < LEARN_ACC:
        raise Wrong(f"after 300 Adam steps on 500 points of moons it classifies {acc:.1%} "
                    f"of 500 others; expected {LEARN_ACC:.0%}",
                    "every layer must be an attribute (or in an nn.Sequential) for "
                    "parameters() to find it")
    return f"{acc:.1%} of 500 held-out moons after 300 steps (2->32->32->2, Adam)"


# --------------------------------------------------------------------------- Part II


def vgg(m: ModuleType, rng: np.random.Generator) -> str:
    import torch

    from nnlab.models.cnn import VGGReduced

    torch.manual_seed(int(rng.integers(2**31)))
    net, ref = m.VGGReduced(3, 10), VGGReduced(3, 10)
    _loads(net, ref, "the VGG", "self.features: conv, BatchNorm, ReLU, max-pool for each "
           "width; self.classifier: flatten, Linear(512, 128), ReLU, Linear(128, 10)")
    x = torch.from_numpy(rng.normal(size=(int(rng.integers(2, 5)), 3, 32, 32))).float()
    net.eval(), ref.eval()
    with torch.no_grad():
        close("the output (logits)", net(x).double().numpy(), ref(x).double().numpy(),
              "the same layers in the docstring's order: conv 3x3 with padding 1, then "
              "BatchNorm, ReLU and a 2x2 max-pool")
    n = sum(p.numel() for p in net.parameters())
    return f"{n:,} parameters, {len(x)} images, nnlab's weights"


# --------------------------------------------------------------------------- Part III


def _cell_agrees(m: ModuleType, rng: np.random.Generator, name: str, hint: str) -> str:
    import torch

    from nnlab.models import rnn

    T, H, B = int(rng.integers(3, 8)), int(rng.integers(3, 9)), int(rng.integers(2, 6))
    torch.manual_seed(int(rng.integers(2**31)))
    net, ref = getattr(m, name)(T, 10, H, 10), getattr(rnn, name)(T, 10, H, 10)
    _loads(net, ref, f"the {name}", "keep the given __init__: its parameters are the "
           "equations' weights")
    digits = torch.from_numpy(rng.integers(0, 10, (B, T))).long()
    for x, kind in ((digits, "digits (B, L)"),
                    (torch.from_numpy(rng.normal(size=(B, T, 10))).float(), "floats (B, L, D)")):
        with torch.no_grad():
            got, want = net.final_hidden(x), ref.final_hidden(x)
            before = ref.final_hidden(x[:, :-1])
        got = got.double().numpy() if isinstance(got, torch.Tensor) else got
        if isinstance(got, np.ndarray) and got.shape == want.shape and np.allclose(
                got, before.double().numpy(), rtol=1e-5, atol=1e-6):
            raise Wrong(f"on {kind}, it returns h(L-1), the state before the last step's "
                        "update", "h is read before it is updated: return h after the "
                        "loop's last update")
        close(f"h(L) on {kind}", got, want.double().numpy(), hint)
    return f"B={B}, L={T}, H={H}, digits and floats, nnlab's weights"


def vanilla_rnn(m: ModuleType, rng: np.random.Generator) -> str:
    return _cell_agrees(m, rng, "VanillaRNN", "h(t) = tanh(W_hh h(t-1) + W_hx x(t) + b_h) "
                        "from h(0) = 0, for every step in order")


def lstm(m: ModuleType, rng: np.random.Generator) -> str:
    return _cell_agrees(m, rng, "LSTM", "the gates in torch's order [i; f; g; o]; c(t) = "
                        "f c(t-1) + i g, then h(t) = o tanh(c(t))")


def vanilla_rnn_learns(m: ModuleType, rng: np.random.Generator) -> str:
    import torch

    from nnlab.data.palindrome import palindromes, split

    torch.manual_seed(int(rng.integers(2**31)))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    net = m.VanillaRNN(5, 10, 64, 10)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for _ in range(150):
        x, y = split(palindromes(128, 5, gen), "index")
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    if not np.isfinite(last) or last > 0.5 * first:
        raise Wrong(f"on palindromes of length 5 its loss went from {first:.3g} to "
                    f"{last:.3g} in 150 Adam steps; expected below half",
                    "the gradient reaches the first digit only through every step's h: "
                    "each step must use the h of the step before")
    return f"loss {first:.2f} -> {last:.2f} in 150 steps on palindromes of length 5"
