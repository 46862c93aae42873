"""Milliseconds per training step (forward + backward) of the hand-written cells vs torch's.

    python benchmarks/rnn_speed.py [--T 100] [--batch 128] [--hidden 128] [--repeats 5]

Palindrome length T (input T-1 steps), scalar input, loss on the last step. Built-in cells are
nn.RNN / nn.LSTM / nn.GRU with an nn.Linear head. Timings alternate hand-written/built-in in
each repeat; the median is shown. Ratio: hand-written / built-in (below 1: ours is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from nnlab.data.palindrome import PalindromeDataset
from nnlab.device import cpu_has_native_bf16, cpu_name
from nnlab.models.rnn import GRU, LSTM, VanillaRNN


class BuiltIn(nn.Module):
    def __init__(self, cell: type[nn.RNNBase], hidden: int) -> None:
        super().__init__()
        self.rnn = cell(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def ms_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
    return (time.perf_counter() - t0) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=100, help="palindrome length")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = PalindromeDataset(args.T).batch(args.batch)
    print(f"{cpu_name()}, native bf16: {cpu_has_native_bf16()}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; T={args.T}, "
          f"batch {args.batch}, hidden {args.hidden}")
    print()
    print("| cell | hand-written ms/step | built-in ms/step | hand-written / built-in |")
    print("| --- | ---: | ---: | ---: |")
    pairs = [("tanh RNN", VanillaRNN, nn.RNN), ("LSTM", LSTM, nn.LSTM), ("GRU", GRU, nn.GRU)]
    for name, ours_cls, theirs_cls in pairs:
        models = {"ours": ours_cls(args.T, 1, args.hidden, 10),
                  "builtin": BuiltIn(theirs_cls, args.hidden)}
        times: dict[str, list[float]] = {k: [] for k in models}
        for m in models.values():
            ms_per_step(m, x, y, 2)  # warm-up
        for _ in range(args.repeats):
            for k, m in models.items():
                times[k].append(ms_per_step(m, x, y, args.steps))
        ours, builtin = (statistics.median(times[k]) for k in ("ours", "builtin"))
        print(f"| {name} | {ours:.1f} | {builtin:.1f} | {ours / builtin:.2f} |", flush=True)


if __name__ == "__main__":
    main()
