"""Seconds per training epoch of the NumPy MLP and the PyTorch MLP, side by side in one process.

    python benchmarks/numpy_vs_torch.py [--repeats 5]

Two set-ups: the study's (moons, 1,000 points -> 800 train, hidden (20,), full batch, SGD
lr 0.01) and a larger one (moons, 20,000 points -> 16,000 train, hidden (512, 512), batch 256).
Both implementations start from the same weights and train with the same loop (the engine's
epoch driver, no evaluation); timings alternate numpy/torch per repeat and the median is shown.
Prints a Markdown table; the ratio is NumPy time / PyTorch time (below 1: NumPy is faster).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from nnlab import numpy_nn
from nnlab.data.toy import make_toy
from nnlab.device import cpu_has_native_bf16, cpu_name
from nnlab.engine import fit, fit_numpy
from nnlab.models.mlp import MLP

SETUPS = [
    # name, n_samples, hidden, batch size, epochs timed per repeat
    ("study: 800 train, hidden (20,), full batch", 1000, (20,), 1000, 300),
    ("large: 16,000 train, hidden (512, 512), batch 256", 20000, (512, 512), 256, 2),
]


def seconds_per_epoch(impl: str, data, hidden, batch_size: int, epochs: int) -> float:
    np_model = numpy_nn.MLP(2, hidden, 2, seed=0)
    if impl == "numpy":
        opt = numpy_nn.SGD(np_model.linears(), lr=0.01)
        h = fit_numpy(np_model, opt, data.x_train, data.y_train, epochs, batch_size,
                      progress=False)
    else:
        model = MLP(2, hidden, 2)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.state_dict().items()})
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        h = fit(model, opt, torch.from_numpy(data.x_train), torch.from_numpy(data.y_train),
                epochs, batch_size, progress=False)
    return h.last["wall_s"] / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per set-up")
    args = parser.parse_args()
    print(f"{cpu_name()}, native bf16: {cpu_has_native_bf16()}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    print()
    print("| set-up | NumPy s/epoch | PyTorch s/epoch | NumPy / PyTorch |")
    print("| --- | ---: | ---: | ---: |")
    for name, n_samples, hidden, batch_size, epochs in SETUPS:
        data = make_toy("moons", n_samples=n_samples, seed=0)
        seconds_per_epoch("numpy", data, hidden, batch_size, 1)  # warm-up both
        seconds_per_epoch("torch", data, hidden, batch_size, 1)
        times: dict[str, list[float]] = {"numpy": [], "torch": []}
        for _ in range(args.repeats):
            for impl in times:
                times[impl].append(seconds_per_epoch(impl, data, hidden, batch_size, epochs))
        t_np, t_torch = (statistics.median(times[i]) for i in ("numpy", "torch"))
        print(f"| {name} | {t_np:.5f} | {t_torch:.5f} | {t_np / t_torch:.2f} |", flush=True)


if __name__ == "__main__":
    main()
