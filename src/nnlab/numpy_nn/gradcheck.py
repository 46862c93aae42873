"""Centred-difference gradients and the relative error used to compare gradients."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numeric_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d f / d x by centred differences, (f(x + h) - f(x - h)) / 2h, one element at a time.

    ``f`` takes no arguments and reads ``x`` (which is perturbed in place and restored), so it
    can be any closure over a model whose parameter ``x`` is. Use float64: in float32 the
    rounding error of f swamps the difference.
    """
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        grad[i] = _centred(f, x, i, h)
    return grad


def numeric_gradient_at(f: Callable[[], float], x: np.ndarray, at: np.ndarray,
                        h: float = 1e-6) -> np.ndarray:
    """:func:`numeric_gradient` at the flat indices ``at`` of ``x`` only: (len(at),). For a
    check of a large parameter on a sample of its elements."""
    return np.array([_centred(f, x, np.unravel_index(i, x.shape), h) for i in at])


def _centred(f: Callable[[], float], x: np.ndarray, i: tuple, h: float) -> float:
    old = x[i]
    x[i] = old + h
    f_plus = f()
    x[i] = old - h
    f_minus = f()
    x[i] = old
    return (f_plus - f_minus) / (2 * h)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a| + |b|, 1e-8), elementwise: ~1e-7 or less for a correct float64
    gradient, ~1e-2 or more for a wrong one."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
