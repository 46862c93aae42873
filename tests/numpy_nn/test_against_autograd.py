"""The NumPy MLP's gradients equal torch autograd's for the same weights and batch."""

import numpy as np
import torch

from nnlab.models.mlp import MLP as TorchMLP
from nnlab.numpy_nn import MLP, CrossEntropy
from nnlab.numpy_nn.gradcheck import rel_error


def test_gradients_equal_autograd_float64():
    np_model = MLP(5, [16, 8], 3, dtype=np.float64, seed=3)
    torch_model = TorchMLP(5, [16, 8], 3).double()
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.state_dict().items()})
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(32, 5)), rng.integers(0, 3, size=32)

    ce = CrossEntropy()
    np_loss = ce.forward(np_model.forward(x), y)
    np_model.backward(ce.backward())
    torch_loss = torch.nn.functional.cross_entropy(torch_model(torch.from_numpy(x)),
                                                   torch.from_numpy(y))
    torch_loss.backward()

    assert abs(np_loss - torch_loss.item()) < 1e-12
    for i, layer in enumerate(np_model.layers):
        if hasattr(layer, "grads"):
            for name in ("weight", "bias"):
                torch_grad = getattr(torch_model.net[i], name).grad.numpy()
                assert rel_error(layer.grads[name], torch_grad) < 1e-8, f"net.{i}.{name}"
