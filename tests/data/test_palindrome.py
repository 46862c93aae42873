import pytest
import torch

from nnlab.data.palindrome import PalindromeDataset, distinct_palindromes, palindromes


@pytest.mark.parametrize("T", [2, 3, 4, 5, 10, 11])
def test_every_sample_is_a_palindrome(T):
    digits = palindromes(256, T, torch.Generator().manual_seed(0))
    assert digits.shape == (256, T) and digits.dtype == torch.long
    assert torch.equal(digits, digits.flip(1))
    assert digits.min() >= 0 and digits.max() <= 9


def test_all_ceil_half_digits_are_free():
    # T = 5: the first 3 digits are drawn freely, so nearly all 1000 patterns occur
    digits = palindromes(20_000, 5, torch.Generator().manual_seed(0))
    assert len({tuple(r) for r in digits[:, :3].tolist()}) > 990
    assert distinct_palindromes(5) == 1000 and distinct_palindromes(4) == 100


@pytest.mark.parametrize("one_hot, dim", [(False, 1), (True, 10)])
def test_shapes_and_target_is_first_digit(one_hot, dim):
    data = PalindromeDataset(seq_length=7, one_hot=one_hot, seed=1)
    x, y = data.batch(32)
    assert x.shape == (32, 6, dim) and x.dtype == torch.float32
    assert y.shape == (32,) and y.dtype == torch.long
    first = x[:, 0, 0].long() if not one_hot else x[:, 0].argmax(dim=1)
    assert torch.equal(first, y)
    assert data.input_dim == dim


def test_eval_set_is_fixed_and_training_batches_are_fresh():
    data = PalindromeDataset(9, seed=0)
    a, b = data.eval_set(100), data.eval_set(100)
    assert torch.equal(a[0], b[0])
    assert not torch.equal(data.batch(100)[0], data.batch(100)[0])


def test_too_short_is_an_error():
    with pytest.raises(ValueError, match="T >= 2"):
        PalindromeDataset(1)
