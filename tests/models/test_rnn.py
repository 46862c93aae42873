"""The hand-written cells equal torch's built-in ones on copied weights."""

import pytest
import torch
from torch import nn

from nnlab.models.rnn import GRU, LSTM, VanillaRNN


@pytest.mark.parametrize("cls, torch_cls", [(VanillaRNN, nn.RNN), (LSTM, nn.LSTM), (GRU, nn.GRU)])
@pytest.mark.parametrize("input_dim", [1, 10])
def test_cell_equals_torch_on_copied_weights(cls, torch_cls, input_dim):
    torch.manual_seed(0)
    ref = torch_cls(input_dim, 16, batch_first=True)
    model = cls.from_torch(ref, num_classes=10)
    x = torch.randn(5, 12, input_dim)
    out, _ = ref(x)
    torch.testing.assert_close(model.final_hidden(x), out[:, -1], atol=1e-5, rtol=1e-5)
    assert model(x).shape == (5, 10)


@pytest.mark.parametrize("cls", [VanillaRNN, LSTM, GRU])
def test_digit_indices_equal_one_hot_input(cls):
    torch.manual_seed(0)
    model = cls(7, 10, 8, 10)
    digits = torch.randint(0, 10, (4, 6))
    onehot = nn.functional.one_hot(digits, 10).float()
    torch.testing.assert_close(model(digits), model(onehot))


def test_no_builtin_recurrent_or_linear_modules():
    for cls in (VanillaRNN, LSTM, GRU):
        kinds = {type(m) for m in cls(5, 1, 8, 10).modules()}
        assert kinds == {cls}, kinds


def test_parameter_shapes_rnn():
    model = VanillaRNN(5, 1, 128, 10)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes == {"W_hx": (128, 1), "W_hh": (128, 128), "b_h": (128,),
                      "W_ph": (10, 128), "b_o": (10,)}


def test_recurrent_inits():
    ortho = VanillaRNN(5, 1, 32, 10, recurrent_init="orthogonal").W_hh.detach()
    torch.testing.assert_close(ortho @ ortho.t(), torch.eye(32), atol=1e-5, rtol=0)
    ident = VanillaRNN(5, 1, 32, 10, recurrent_init="identity", recurrent_gain=0.9).W_hh
    torch.testing.assert_close(ident.detach(), 0.9 * torch.eye(32))


def test_chrono_init_sets_forget_bias_in_range():
    model = LSTM(5, 1, 64, 10)
    model.chrono_init_(max_gap=200)
    b_f, b_i = model.b_h[64:128].detach(), model.b_h[:64].detach()
    assert b_f.min() >= 0 and b_f.max() <= torch.log(torch.tensor(199.0))
    torch.testing.assert_close(b_i, -b_f)


def test_gradients_flow_to_every_parameter():
    model = LSTM(5, 1, 8, 10)
    model(torch.randn(3, 4, 1)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
