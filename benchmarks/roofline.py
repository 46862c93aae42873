"""How close each training configuration the README reports comes to this machine's peak.

    python benchmarks/roofline.py [--budget-s 2] [--only NAME,...] [--precision auto]

First the measured peak: large matrix products in torch (fp32, and bf16 where the CPU has
it natively or on CUDA) and in NumPy (float32, the NumPy MLP's dtype). Then, per
configuration, with random data of the real shapes:

- FLOPs per training step: forward + backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions; the
  NumPy MLP's by formula, 6 x batch x fan-in x fan-out per layer);
- the full step as the experiment runs it (batch drawn, normalised and augmented by the
  experiment's own loader, forward, loss, backward, clipping, optimizer, schedule, EMA) and
  the network alone (forward + backward on a fixed batch);
- items (images or sequences) per second of the full step, achieved GFLOP/s, the % of the
  peak for the precision the run uses, and the share of the full step spent outside the
  network (data, augmentation, optimizer and host work): 1 - network time / step time.

Each timing runs at least two steps and about ``--budget-s`` seconds after one warm-up
step; the whole table takes a few minutes on 2 cores. The matmul peak is a ceiling that a
small or memory-bound layer cannot reach: read the % as "how much of the machine is used".
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from rnn_speed import BuiltIn  # torch's cell + a linear head (run as a script: same folder)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnlab import numpy_nn
from nnlab.data.cifar10 import Augment, Loader
from nnlab.data.palindrome import palindromes, split
from nnlab.device import autocast, cpu_has_native_bf16, resolve_device, resolve_precision
from nnlab.engine import TorchStep
from nnlab.experiments.cifar_mlp import RECIPES as MLP_RECIPES
from nnlab.models.cnn import SpeedrunNet, VGGReduced
from nnlab.models.mlp import ImageMLP
from nnlab.models.rnn import GRU, LSTM, VanillaRNN
from nnlab.numpy_nn.step import NumpyStep
from nnlab.vision import make_ema, weight_decay_groups


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn: Callable[[], object], budget_s: float, sync: Callable[[], None]) -> float:
    """Seconds per call of fn: one warm-up call, then at least two calls and ~budget_s."""
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < budget_s:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - t0) / n


def matmul_peak(dtype: torch.dtype, device: torch.device, budget_s: float,
                sync: Callable[[], None], n: int = 2048) -> float:
    """GFLOP/s of an n x n x n torch matrix product in ``dtype``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return 2 * n ** 3 / timed(lambda: a @ b, budget_s, sync) / 1e9


def numpy_peak(budget_s: float, n: int = 2048) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n ** 3 / timed(lambda: a @ b, budget_s, lambda: None) / 1e9


@dataclass
class Bench:
    """One configuration: ``step()`` the full training step, ``net()`` forward + backward
    only; ``items`` per step; ``flops`` per step (forward + backward); ``kind`` the peak
    to compare with."""

    name: str
    step: Callable[[], object]
    net: Callable[[], object]
    items: int
    flops: float
    kind: str


def count_flops(fn: Callable[[], object]) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def fake_images(n: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return x.to(device), torch.randint(0, 10, (n,), generator=g).to(device)


def endless(batches: Callable[[int], object]) -> Callable[[], tuple]:
    """A callable returning the next batch, starting a new epoch whenever one ends."""
    state = {"epoch": 0, "it": iter(batches(0))}

    def draw() -> tuple:
        try:
            return next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            state["it"] = iter(batches(state["epoch"]))
            return next(state["it"])
    return draw


def torch_bench(name: str, model: nn.Module, opt: torch.optim.Optimizer, draw, items: int,
                kind: str, ac, sched=None, ema=None, clip: float | None = None,
                loss_fn=None) -> Bench:
    step = TorchStep(model, opt, loss_fn, sched, ac, clip_norm=clip, ema=ema)
    x0, y0 = draw()
    loss_fn = loss_fn or nn.functional.cross_entropy

    def net() -> None:
        with ac():
            loss = loss_fn(model(x0), y0)
        loss.backward()
        model.zero_grad(set_to_none=True)

    def full() -> None:
        step(*draw())

    return Bench(name, full, net, items, count_flops(net), kind)


def cifar_benches(device: torch.device, precision: str, fused: bool = True) -> list[Bench]:
    ac = lambda: autocast(device, precision)  # noqa: E731
    kind = f"torch {precision}"
    mean, std = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])
    out = []
    for recipe in ("best", "study"):
        r = MLP_RECIPES[recipe]
        n = 4 * r["batch_size"]
        x, y = fake_images(n, device)
        zca = torch.eye(3072) if r["zca_eps"] > 0 else None  # the same cost as a fitted one
        aug = Augment(flip=r["flip"], translate=r["translate"], cutout=r["cutout"])
        loader = Loader(x, y, r["batch_size"], mean, std, shuffle=True, augment=aug, zca=zca,
                        drop_last=True, device=device)
        model = ImageMLP(3072, r["widths"], 10, r["activation"], r["norm"], r["dropout"],
                         r["block"], r["expansion"]).to(device)
        groups = weight_decay_groups(model, r["weight_decay"])
        opt = (torch.optim.AdamW(groups, lr=1e-4, fused=fused) if r["optimizer"] == "adamw"
               else torch.optim.Adam(groups, lr=1e-4, fused=fused))
        out.append(torch_bench(f"cifar-mlp {recipe} (batch {r['batch_size']})", model, opt,
                               endless(lambda e, ld=loader: ld), r["batch_size"], kind, ac,
                               ema=make_ema(model, r["ema"])))
    for batch in (64, 256):
        x, y = fake_images(4 * batch, device)
        loader = Loader(x, y, batch, mean, std, shuffle=True, drop_last=True, device=device,
                        memory_format=torch.channels_last)  # cifar-cnn's default layout
        model = VGGReduced().to(device, memory_format=torch.channels_last)
        out.append(torch_bench(f"VGGReduced, Adam (batch {batch})", model,
                               torch.optim.Adam(model.parameters(), lr=1e-4),
                               endless(lambda e, ld=loader: ld), batch, kind, ac))
    for widths, batch in (((64, 256, 256), 1024), ((32, 64, 64), 256)):
        x, y = fake_images(2 * batch, device)
        loader = Loader(x, y, batch, mean, std, shuffle=True, drop_last=True, device=device,
                        memory_format=torch.channels_last, alternate_flips=True,
                        augment=Augment(flip=False, translate=2))  # the speedrun's loader
        model = SpeedrunNet(widths).to(device)
        model.init_whitening((x[:500].float() - 128) / 64)
        model = model.to(memory_format=torch.channels_last)
        weights, shifts = weight_decay_groups(model, 5e-5)
        opt = torch.optim.SGD([weights, shifts], lr=1e-3, momentum=0.85, nesterov=True)
        batches = loader.epoch
        name = "SpeedrunNet " + "-".join(map(str, widths)) + f" (batch {batch})"
        out.append(torch_bench(name, model, opt, endless(batches), batch, kind, ac,
                               loss_fn=lambda z, t: nn.functional.cross_entropy(
                                   z.float(), t, label_smoothing=0.2)))
    return out


def rnn_benches(device: torch.device, T: int = 100, batch: int = 128,
                hidden: int = 128) -> list[Bench]:
    """The palindrome setting (scalar input, RMSprop, clip 10), fp32 as its runs are."""
    out = []
    gen = torch.Generator().manual_seed(0)

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = split(palindromes(batch, T, gen))
        return x.to(device), y.to(device)

    for name, ours, theirs in (("tanh RNN", VanillaRNN, nn.RNN), ("LSTM", LSTM, nn.LSTM),
                               ("GRU", GRU, nn.GRU)):
        torch.manual_seed(0)
        mine = ours(T, 1, hidden, 10).to(device)
        b = torch_bench(f"{name}, hand-written (T={T})", mine,
                        torch.optim.RMSprop(mine.parameters(), lr=1e-3), draw, batch,
                        "torch fp32", lambda: torch.autocast(device.type, enabled=False),
                        clip=10.0)
        out.append(b)
        built = BuiltIn(theirs, hidden).to(device)
        # torch's fused cells are invisible to the FLOP counter: the arithmetic is the same
        # as the hand-written cell's, so its count is used.
        tb = torch_bench(f"{name}, torch nn.{theirs.__name__} (T={T})", built,
                         torch.optim.RMSprop(built.parameters(), lr=1e-3), draw, batch,
                         "torch fp32", lambda: torch.autocast(device.type, enabled=False),
                         clip=10.0)
        tb.flops = b.flops
        out.append(tb)
    return out


def numpy_bench(hidden: tuple[int, ...] = (512, 512), batch: int = 256) -> Bench:
    """The NumPy MLP of benchmarks/numpy_vs_torch.py's large setting, float32, SGD."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 2), dtype=np.float32)
    y = rng.integers(0, 2, batch)
    model = numpy_nn.MLP(2, hidden, 2, seed=0)
    step = NumpyStep(model, numpy_nn.SGD(model.linears(), lr=0.01))
    sizes = [2, *hidden, 2]
    flops = 6.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    def net() -> None:
        step.ce.forward(model.forward(x), y)
        model.backward(step.ce.backward())

    return Bench(f"NumPy MLP 2-{'-'.join(map(str, hidden))}-2 (batch {batch})",
                 lambda: step(x, y), net, batch, flops, "numpy fp32")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, default=2.0, help="seconds per timing")
    p.add_argument("--only", default="", help="comma-separated substrings of the names")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="the CIFAR configurations' precision (auto: what the runs use)")
    p.add_argument("--device", default="auto")
    p.add_argument("--unfused", action="store_true",
                   help="cifar-mlp with the unfused Adam/AdamW step it had before")
    args = p.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    native = device.type == "cuda" or cpu_has_native_bf16()
    t_start = time.perf_counter()
    print(f"{cpu_model()}; {device.type}; torch {torch.__version__}, numpy {np.__version__}, "
          f"{torch.get_num_threads()} threads; native bf16: {'yes' if native else 'no'}; "
          f"CIFAR configurations in {precision}")
    peaks = {"torch fp32": matmul_peak(torch.float32, device, args.budget_s, sync),
             "numpy fp32": numpy_peak(args.budget_s)}
    if native:
        peaks["torch bf16"] = matmul_peak(torch.bfloat16, device, args.budget_s, sync)
    print()
    print("| peak: 2048 x 2048 matrix product | GFLOP/s |")
    print("| --- | ---: |")
    for kind, gflops in peaks.items():
        print(f"| {kind} | {gflops:,.0f} |")
    if precision == "bf16" and "torch bf16" not in peaks:
        peaks[f"torch {precision}"] = matmul_peak(torch.bfloat16, device, args.budget_s, sync)
        print(f"| torch {precision} (emulated) | {peaks[f'torch {precision}']:,.0f} |")

    benches = [numpy_bench()] + cifar_benches(device, precision, not args.unfused)
    benches += rnn_benches(device)
    wanted = [s for s in args.only.split(",") if s]
    benches = [b for b in benches if not wanted or any(w in b.name for w in wanted)]
    print()
    print("| configuration | GFLOP per step | items/s | GFLOP/s | % of peak | outside the "
          "network |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for b in benches:
        t_step = timed(b.step, args.budget_s, sync)
        t_net = timed(b.net, args.budget_s, sync)
        gflops = b.flops / t_step / 1e9
        outside = max(0.0, 1 - t_net / t_step)
        print(f"| {b.name} | {b.flops / 1e9:.3g} | {b.items / t_step:,.0f} | {gflops:,.1f} | "
              f"{100 * gflops / peaks[b.kind]:.0f}% ({b.kind}) | {100 * outside:.0f}% |",
              flush=True)
    print(f"\n{time.perf_counter() - t_start:.0f} s in all")


if __name__ == "__main__":
    main()
