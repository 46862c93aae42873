"""The study's palindrome task: read the first T-1 digits, predict the last.

T is the *palindrome length* everywhere in nnlab (the input has T-1 steps). The last digit
equals the first, so the network must carry one digit across T-2 steps while reading the rest.
Batches are made whole, as tensors, from a ``torch.Generator``: no DataLoader, no workers.
"""

from __future__ import annotations

import math

import torch

N_DIGITS = 10


def palindromes(batch_size: int, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch_size, T) int64 palindromes: ceil(T/2) random digits, then the mirror of the
    first floor(T/2) of them (so the middle digit of an odd T appears once)."""
    half = torch.randint(0, N_DIGITS, (batch_size, math.ceil(T / 2)), generator=generator)
    return torch.cat([half, half[:, : T // 2].flip(1)], dim=1)


ENCODINGS = ("scalar", "onehot", "index")


def split(digits: torch.Tensor, encoding: str = "scalar") -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) palindromes -> inputs and targets (B,) int64, the last digit.

    inputs: 'scalar' (B, T-1, 1) float digits (the study's); 'onehot' (B, T-1, 10) float;
    'index' (B, T-1) int64 digits, which nnlab's recurrent models read as one-hot by a row
    lookup instead of a matmul.
    """
    x, y = digits[:, :-1], digits[:, -1]
    if encoding == "onehot":
        return torch.nn.functional.one_hot(x, N_DIGITS).float(), y
    if encoding == "index":
        return x, y
    return x.unsqueeze(-1).float(), y


def held_out_set(n: int, T: int, seed: int, encoding: str = "scalar"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of n palindromes of length T, the same for every call with that seed (the
    seed is offset by T, so each length gets its own draw), split as :func:`split` does."""
    return split(palindromes(n, T, torch.Generator().manual_seed(seed + T)), encoding)


def distinct_palindromes(T: int) -> int:
    """How many different palindromes of length T exist: 10 ** ceil(T/2)."""
    return N_DIGITS ** math.ceil(T / 2)


class PalindromeDataset:
    """Random palindromes of length ``seq_length`` (T), drawn a batch at a time.

    ``batch(B)`` gives fresh training samples from the dataset's own generator (seeded);
    ``eval_set(n, seed)`` gives a fixed held-out set, the same for every call with that seed.
    Input shape per sample: (T-1, 1) float digits, or (T-1, 10) one-hot.
    """

    def __init__(self, seq_length: int, one_hot: bool = False, seed: int = 0) -> None:
        if seq_length < 2:
            raise ValueError(f"a palindrome needs length T >= 2, got {seq_length}")
        self.seq_length = seq_length
        self.one_hot = one_hot
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def _encoding(self) -> str:
        return "onehot" if self.one_hot else "scalar"

    @property
    def input_dim(self) -> int:
        return N_DIGITS if self.one_hot else 1

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh (x, y): x (B, T-1, input_dim), y (B,)."""
        return split(palindromes(batch_size, self.seq_length, self.generator), self._encoding)

    def eval_set(self, n: int = 10_000, seed: int = 10**6) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed held-out (x, y) of n palindromes, drawn from its own seed.

        For small T there are only 10 ** ceil(T/2) palindromes (100 at T = 4), so held-out
        samples repeat training ones: :func:`distinct_palindromes` tells when that happens.
        """
        return held_out_set(n, self.seq_length, seed, self._encoding)
