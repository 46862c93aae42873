"""``nnlab course check DIR``: the student's modules, checked one method at a time, each in its
own process with a time limit, on shapes and seeds drawn fresh every run (printed, so a
failure can be replayed with ``--seed``): a hard-coded answer cannot pass.

Each check is one line: ✓, or ✗ with what was expected and a hint that points at the place
(not the answer). Code that raises shows the student's own lines of the traceback, never
nnlab's; code that hangs is stopped at the limit."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from nnlab.errors import NnlabError
from nnlab.numpy_nn import modules as reference
from nnlab.numpy_nn.gradcheck import numeric_gradient, rel_error

LIMIT_S = 10.0  # per check
TOLERANCE = 1e-6  # relative error of a gradient against centred differences, in float64


class Wrong(Exception):
    """A check's finding: what is wrong, and a hint."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(what)
        self.what, self.hint = what, hint


@dataclass
class Sizes:
    """The shapes a check draws: N rows, D features in, C out."""

    n: int
    d: int
    c: int


def _sizes(rng: np.random.Generator) -> Sizes:
    """Fresh sizes, D never equal to C, so a transposed (D, C) gradient shows by its shape."""
    n, d = int(rng.integers(2, 8)), int(rng.integers(2, 7))
    c = int(rng.choice([k for k in range(2, 7) if k != d]))
    return Sizes(n, d, c)


def _close(name: str, got: object, want: np.ndarray, hint: str) -> None:
    if not isinstance(got, np.ndarray | float | int | np.floating):
        raise Wrong(f"{name} is a {type(got).__name__}, expected an array of shape "
                    f"{want.shape}", hint)
    got = np.asarray(got)
    if got.shape != want.shape:
        raise Wrong(f"{name} has shape {got.shape}, expected {want.shape}", hint)
    if not np.all(np.isfinite(got)):
        raise Wrong(f"{name} holds NaN or inf", hint)
    if not np.allclose(got, want, rtol=1e-5, atol=1e-7):
        raise Wrong(f"{name} differs from the expected values (largest error "
                    f"{np.abs(got - want).max():.3g})", hint)


def _gradient(name: str, got: object, numeric: np.ndarray, n: int, hint: str) -> None:
    """``got`` against centred differences, with a hint for the usual slips."""
    got_arr = np.asarray(got) if isinstance(got, np.ndarray) else None
    if got_arr is None:
        raise Wrong(f"{name} is a {type(got).__name__}, expected an array of shape "
                    f"{numeric.shape}", hint)
    if got_arr.shape != numeric.shape:
        transposed = got_arr.shape == numeric.shape[::-1] and len(numeric.shape) == 2
        raise Wrong(f"{name} has shape {got_arr.shape}, expected {numeric.shape}",
                    "it is transposed: a gradient has the shape of what it is the gradient "
                    "of" if transposed else hint)
    if not np.all(np.isfinite(got_arr)):
        raise Wrong(f"{name} holds NaN or inf", hint)
    error = rel_error(got_arr, numeric)
    if error > TOLERANCE:
        scale = np.sum(got_arr * numeric) / max(np.sum(numeric * numeric), 1e-300)
        if np.isclose(scale, n, rtol=1e-3):
            hint = (f"it is N = {n} times too large: the loss is the mean over the batch, "
                    "so the 1/N belongs in CrossEntropy.backward (the gradient convention)")
        elif np.isclose(scale, 1 / n, rtol=1e-3):
            hint = f"it is N = {n} times too small: the 1/N is taken twice"
        raise Wrong(f"{name} disagrees with centred differences (relative error "
                    f"{error:.1e}, expected below {TOLERANCE:g})", hint)


# --------------------------------------------------------------------------- the checks


def linear_forward(m: ModuleType, rng: np.random.Generator) -> str:
    s = _sizes(rng)
    layer, ref = m.Linear(s.d, s.c, np.float64, rng), reference.Linear(s.d, s.c, np.float64)
    ref.params = {k: v.copy() for k, v in layer.params.items()}
    x = rng.normal(size=(s.n, s.d))
    _close("the output", layer.forward(x.copy()), ref.forward(x),
           "y = x W^T + b, with W of shape (out_features, in_features)")
    return f"N={s.n}, {s.d}->{s.c}"


def linear_backward(m: ModuleType, rng: np.random.Generator) -> str:
    s = _sizes(rng)
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
    _gradient("dx", dx, want_dx, s.n, "dx = dout W: each input feeds every output")
    for key, hint in (("weight", "the weight's gradient sums dout_i x_j over the batch"),
                      ("bias", "the bias's gradient sums dout over the batch")):
        _gradient(f"grads[{key!r}]", layer.grads.get(key), want[key], s.n, hint)
    return f"N={s.n}, {s.d}->{s.c}, against centred differences"


def relu_forward(m: ModuleType, rng: np.random.Generator) -> str:
    s = _sizes(rng)
    x = rng.normal(size=(s.n, s.d))
    _close("the output", m.ReLU().forward(x.copy()), reference.ReLU().forward(x),
           "max(0, x), element by element")
    return f"N={s.n}, D={s.d}"


def relu_backward(m: ModuleType, rng: np.random.Generator) -> str:
    s = _sizes(rng)
    x = rng.normal(size=(s.n, s.d))
    x[np.abs(x) < 1e-3] = 0.5  # away from the kink, where the derivative is defined
    dout = rng.normal(size=x.shape)
    layer = m.ReLU()
    layer.forward(x.copy())
    want = numeric_gradient(lambda: float(np.sum(np.maximum(x, 0) * dout)), x)
    _gradient("dx", layer.backward(dout.copy()), want, s.n,
              "the gradient passes where the input was positive, and is 0 elsewhere")
    return f"N={s.n}, D={s.d}, against centred differences"


def softmax_forward(m: ModuleType, rng: np.random.Generator) -> str:
    s = _sizes(rng)
    x = rng.normal(size=(s.n, s.c))
    _close("the output", m.SoftMax().forward(x.copy()), reference.SoftMax().forward(x),
           "exp(x) divided by each row's sum of exp(x)")
    big = x * 1000  # logits of a confident network: exp(1000) overflows
    out = m.SoftMax().forward(big.copy())
    if not np.all(np.isfinite(np.asarray(out))):
        raise Wrong("logits around ±1000 give NaN or inf",
                    "exp overflows for large logits: softmax(x) = softmax(x - c) for any c "
                    "per row")
    _close("the output for logits around ±1000", out, reference.SoftMax().forward(big), "")
    return f"N={s.n}, C={s.c}, and logits around ±1000"


def softmax_backward(m: ModuleType, rng: np.random.Generator) -> str:
    s = _sizes(rng)
    x, dout = rng.normal(size=(s.n, s.c)), rng.normal(size=(s.n, s.c))
    layer = m.SoftMax()
    layer.forward(x.copy())
    want = numeric_gradient(lambda: float(np.sum(reference.SoftMax().forward(x) * dout)), x)
    _gradient("dx", layer.backward(dout.copy()), want, s.n,
              "each output depends on every input of its row: the Jacobian is "
              "diag(s) - s s^T")
    return f"N={s.n}, C={s.c}, against centred differences"


def cross_entropy_forward(m: ModuleType, rng: np.random.Generator) -> str:
    s = _sizes(rng)
    probs = reference.SoftMax().forward(rng.normal(size=(s.n, s.c)))
    y = rng.integers(0, s.c, s.n)
    got = m.CrossEntropy().forward(probs.copy(), y)
    want = reference.CrossEntropy().forward(probs, y)
    _close("the loss", np.asarray(got, dtype=float), np.asarray(want),
           "the mean over the batch of -log p of the true class")
    return f"N={s.n}, C={s.c}"


def cross_entropy_backward(m: ModuleType, rng: np.random.Generator) -> str:
    s = _sizes(rng)
    probs = reference.SoftMax().forward(rng.normal(size=(s.n, s.c)))
    y = rng.integers(0, s.c, s.n)
    loss = m.CrossEntropy()
    loss.forward(probs.copy(), y)
    want = numeric_gradient(lambda: reference.CrossEntropy().forward(probs, y), probs)
    _gradient("dL/dprobs", loss.backward(), want, s.n,
              "only the true class's probability enters the loss")
    return f"N={s.n}, C={s.c}, against centred differences"


CHECKS: dict[str, Callable[[ModuleType, np.random.Generator], str]] = {
    "Linear.forward": linear_forward, "Linear.backward": linear_backward,
    "ReLU.forward": relu_forward, "ReLU.backward": relu_backward,
    "SoftMax.forward": softmax_forward, "SoftMax.backward": softmax_backward,
    "CrossEntropy.forward": cross_entropy_forward,
    "CrossEntropy.backward": cross_entropy_backward,
}


# --------------------------------------------------------------------------- running them


@dataclass
class Result:
    """One check's line: ``passed``, ``name``, and what it found (``said``, ``hint``)."""

    name: str
    passed: bool
    said: str
    hint: str = ""

    def line(self) -> str:
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.name}: {self.said}" + (f" (hint: {self.hint})" if self.hint
                                                      else "")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"student_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _student_lines(e: BaseException, path: Path) -> str:
    """The traceback's frames in the student's file, as 'line 12: code'."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if Path(f.filename).resolve() == path.resolve()]
    where = "; ".join(f"{path.name} line {f.lineno}: {f.line}" for f in frames[-2:])
    return f"{type(e).__name__}: {str(e).strip()[:200]}" + (f" ({where})" if where else "")


def _one(path: Path, name: str, seed: int) -> tuple[bool, str, str]:
    """In the check's own process: (passed, what it found, hint)."""
    try:
        module = _load(path)
        return True, CHECKS[name](module, np.random.default_rng(seed)), ""
    except Wrong as w:
        return False, w.what, w.hint
    except NotImplementedError as e:  # a skeleton's body, not written yet
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if Path(f.filename).resolve() == path.resolve()]
        where = f" ({path.name} line {frames[-1].lineno})" if frames else ""
        return False, f"not written yet: {str(e).split(':')[0] or 'a body'}{where}", ""
    except Exception as e:  # noqa: BLE001 - whatever the student's code raises
        return False, f"raised {_student_lines(e, path)}", ""


def _memory_limit(mb: int | None) -> Callable[[], None] | None:
    """What the check's process runs before the student's code: at most ``mb`` MiB of
    address space (POSIX), so a runaway allocation fails inside it."""
    if mb is None:
        return None

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))
    return limit


def run_check(path: Path, name: str, seed: int, limit_s: float | None = None,
              memory_mb: int | None = None) -> Result:
    """Check ``name`` on the module at ``path`` in a Python process of its own (the
    student's code shares nothing with nnlab's; it runs in the module's folder), stopped
    after ``limit_s`` seconds (default :data:`LIMIT_S`), with at most ``memory_mb`` MiB."""
    limit_s = LIMIT_S if limit_s is None else limit_s
    try:
        done = subprocess.run([sys.executable, "-m", "nnlab.course.checks", str(path), name,
                               str(seed)], capture_output=True, text=True, timeout=limit_s,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=path.parent,
                              preexec_fn=_memory_limit(memory_mb))
    except subprocess.TimeoutExpired:
        return Result(name, False, f"did not finish in {limit_s:g} s",
                      "an endless loop, or a loop over every element that a whole-array "
                      "operation would do at once")
    try:
        passed, said, hint = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):  # it died: a crash in native code, killed for memory
        last = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return Result(name, False, f"its process ended without an answer ({last[0][:200]})")
    return Result(name, passed, said, hint)


def check(folder: str | Path, only: str | None = None, seed: int | None = None,
          out: Callable[[str], None] = print, memory_mb: int | None = None) -> list[Result]:
    """Every check of the student's ``modules.py`` in ``folder`` (``only``: those whose name
    starts with it, 'Linear' or 'SoftMax.backward'), each line to ``out``. ``seed``: replay a
    run's draws (default: fresh ones, printed first)."""
    path = Path(folder) / "modules.py"
    if not path.is_file():
        raise NnlabError(f"{folder}: no modules.py (make one with: nnlab course init "
                         f"{folder})")
    names = [n for n in CHECKS if only is None or n.startswith(only)]
    if not names:
        raise NnlabError(f"no check is named {only!r}; the checks: {', '.join(CHECKS)}")
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    out(f"checking {path} (seed {seed}: --seed {seed} draws the same again)")
    results = []
    for i, name in enumerate(names):
        result = run_check(path.resolve(), name, seed + i, memory_mb=memory_mb)
        out(result.line())
        results.append(result)
    passed = sum(r.passed for r in results)
    out(f"{passed} of {len(results)} checks pass")
    return results


if __name__ == "__main__":  # one check, in its own process: python -m nnlab.course.checks
    print(json.dumps(_one(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))))
