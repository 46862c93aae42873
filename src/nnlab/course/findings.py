"""What a check finds, and how: a :class:`Wrong` (what is wrong, and a hint), the shapes it
draws, and the comparisons with a hint for the usual slips (a transposed gradient, a missing
or doubled 1/N)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnlab.numpy_nn.gradcheck import rel_error

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


def sizes(rng: np.random.Generator) -> Sizes:
    """Fresh sizes, D never equal to C, so a transposed (D, C) gradient shows by its shape."""
    n, d = int(rng.integers(2, 8)), int(rng.integers(2, 7))
    c = int(rng.choice([k for k in range(2, 7) if k != d]))
    return Sizes(n, d, c)


def close(name: str, got: object, want: np.ndarray, hint: str) -> None:
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


def gradient(name: str, got: object, numeric: np.ndarray, n: int, hint: str,
             tolerance: float = TOLERANCE) -> None:
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
    if error > tolerance:
        scale = np.sum(got_arr * numeric) / max(np.sum(numeric * numeric), 1e-300)
        if np.isclose(scale, n, rtol=1e-3):
            hint = (f"it is N = {n} times too large: the loss is the mean over the batch, "
                    "so the 1/N belongs in CrossEntropy.backward (the gradient convention)")
        elif np.isclose(scale, 1 / n, rtol=1e-3):
            hint = f"it is N = {n} times too small: the 1/N is taken twice"
        raise Wrong(f"{name} disagrees with centred differences (relative error "
                    f"{error:.1e}, expected below {tolerance:g})", hint)
