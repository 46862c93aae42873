import numpy as np
import pytest

from nnlab.numpy_nn import MLP


@pytest.mark.parametrize("hidden", [[], [7], [5, 6, 4]])
def test_any_depth_and_output_shape(hidden):
    model = MLP(3, hidden, 4, seed=0)
    probs = model.forward(np.zeros((9, 3), np.float32))
    assert probs.shape == (9, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert len(model.linears()) == len(hidden) + 1
    # each layer sized from the previous one, not from n_inputs (the study's listing bug)
    shapes = [lin.params["weight"].shape for lin in model.linears()]
    assert shapes == list(zip([*hidden, 4], [3, *hidden], strict=True))


def test_dtype_float32_default_and_float64_on_request():
    assert MLP(2, [3], 2).linears()[0].params["weight"].dtype == np.float32
    m64 = MLP(2, [3], 2, dtype=np.float64)
    assert m64.linears()[0].params["weight"].dtype == np.float64
    assert m64.forward(np.zeros((1, 2), np.float32)).dtype == np.float64


def test_init_bound_matches_torch_default():
    w = MLP(400, [300], 2, seed=0).linears()[0].params["weight"]
    bound = 1 / np.sqrt(400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.mean()) < 0.05 * bound  # centred: uniform on (-bound, bound)


def test_state_dict_round_trip():
    a, b = MLP(2, [4, 3], 2, seed=0), MLP(2, [4, 3], 2, seed=1)
    assert sorted(a.state_dict()) == ["net.0.bias", "net.0.weight", "net.2.bias",
                                      "net.2.weight", "net.4.bias", "net.4.weight"]
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_load_state_dict_rejects_wrong_shape():
    state = MLP(2, [4], 2).state_dict()
    with pytest.raises(ValueError, match="net.0.weight"):
        MLP(2, [5], 2).load_state_dict(state)
