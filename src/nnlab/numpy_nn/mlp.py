"""The study's multi-layer perceptron, from scratch: Linear -> ReLU -> ... -> Linear -> SoftMax."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnlab.numpy_nn import modules as _modules
from nnlab.numpy_nn.modules import CrossEntropy, DTypeLike, Linear


class MLP:
    """MLP(n_inputs, n_hidden, n_classes): any number of hidden layers, ReLU between them.

    ``forward`` returns class *probabilities* (the study ends its network with SoftMax and
    feeds them to CrossEntropy); ``backward`` takes dL/dprobs.

    Layers live in ``self.layers`` in the same order, and at the same indices, as the
    ``nn.Sequential`` of :class:`nnlab.models.mlp.MLP` (minus its missing final SoftMax), so
    :meth:`state_dict` uses torch's key names (``net.0.weight``, ``net.2.bias`` ...) and a
    state dict moves between the two with no renaming.
    """

    def __init__(
        self,
        n_inputs: int,
        n_hidden: Sequence[int],
        n_classes: int,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        modules: Any = None,
    ) -> None:
        """``modules``: where ``Linear``, ``ReLU``, ``SoftMax`` and ``CrossEntropy`` come
        from (a student's ``modules.py``; default: nnlab's)."""
        layers = modules if modules is not None else _modules
        self._linear, self._criterion = layers.Linear, layers.CrossEntropy
        rng = np.random.default_rng(seed)
        sizes = [n_inputs, *n_hidden, n_classes]
        self.layers: list = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            self.layers.append(layers.Linear(fan_in, fan_out, dtype=dtype, rng=rng))
            if i < len(sizes) - 2:  # no ReLU after the output layer
                self.layers.append(layers.ReLU())
        self.softmax = layers.SoftMax()
        self.dtype = np.dtype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, n_inputs) -> probabilities (N, n_classes)."""
        x = x.astype(self.dtype, copy=False)
        for layer in self.layers:
            x = layer.forward(x)
        return self.softmax.forward(x)

    def backward(self, dout: np.ndarray) -> None:
        """dout: dL/dprobs (N, n_classes). Fills ``grads`` of every Linear."""
        dout = self.softmax.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

    def linears(self) -> list[Linear]:
        """The layers that hold parameters, input to output (what an optimizer updates)."""
        return [layer for layer in self.layers if isinstance(layer, self._linear)]

    def criterion(self) -> CrossEntropy:
        """A new loss of this MLP's kind (its modules' CrossEntropy)."""
        return self._criterion()

    def state_dict(self) -> dict[str, np.ndarray]:
        """{'net.<i>.weight' | 'net.<i>.bias': array}, torch's key names; arrays are copies."""
        return {
            f"net.{i}.{k}": v.copy()
            for i, layer in enumerate(self.layers)
            if isinstance(layer, self._linear)
            for k, v in layer.params.items()
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy weights in (cast to this MLP's dtype); shapes and keys must match exactly."""
        own = self.state_dict()
        if set(own) != set(state):
            raise ValueError(f"state dict keys differ: expected {sorted(own)}, got {sorted(state)}")
        for key, value in state.items():
            value = np.asarray(value)
            if value.shape != own[key].shape:
                raise ValueError(f"{key}: expected shape {own[key].shape}, got {value.shape}")
            i, name = key.split(".")[1:]
            self.layers[int(i)].params[name][...] = value
