"""Training throughput of the cifar-mlp network in fp32 and under bf16 autocast.

    python benchmarks/cifar_mlp.py [--recipe best] [--batch-size N] [--budget-s 20]
                                   [--precisions fp32,bf16] [--without-dropout]

Times full training steps (forward, label-smoothed loss, backward, AdamW) of the recipe's
network on random (B, 3, 32, 32) batches, alternating fp32 and bf16 in rounds so both see
the same machine load; each mode runs at least two steps and about ``--budget-s`` seconds.
Prints images/s, the seconds a 45,000-image epoch would take, peak memory (CUDA), and the
bf16/fp32 speed ratio. On a CPU without native bf16 (no AVX-512-BF16/AMX) bf16 is emulated
and very slow, so the default batch is smaller there (``--precisions fp32`` leaves it out).
``--without-dropout`` adds, for each precision, a mode with the recipe's dropout set to 0, in
the same rounds (what ``--dropout 0`` saves per epoch).
"""

from __future__ import annotations

import argparse
import time

import torch

from nnlab.device import autocast, cpu_has_native_bf16, cpu_name, resolve_device
from nnlab.experiments.cifar_mlp import Config, build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="best", choices=("best", "study"))
    p.add_argument("--batch-size", type=int, default=0, help="default: the recipe's "
                   "(64 on a CPU without native bf16)")
    p.add_argument("--budget-s", type=float, default=20.0, help="seconds per mode per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--precisions", default="fp32,bf16",
                   help="comma-separated, from fp32 and bf16; ratios are against the first")
    p.add_argument("--without-dropout", action="store_true",
                   help="also time each precision with dropout 0")
    args = p.parse_args()
    precisions = args.precisions.split(",")
    if not precisions or any(k not in ("fp32", "bf16") for k in precisions):
        p.error(f"--precisions takes fp32 and/or bf16, got {args.precisions!r}")

    device = resolve_device(args.device)
    cfg = Config(recipe=args.recipe).resolved()
    native = device.type == "cuda" or cpu_has_native_bf16()
    batch = args.batch_size or (cfg.batch_size if native or "bf16" not in precisions else 64)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    def step(mode: str) -> None:
        precision = mode.split()[0]
        for m in dropouts:
            m.p = 0.0 if mode.endswith("dropout 0") else cfg.dropout
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    print(f"{cpu_name()}, native bf16: {native}, {device.type}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; {cfg.recipe} network "
          f"{cfg.widths}, batch {batch}, {args.rounds} rounds of {args.budget_s:g} s per mode")
    seen = {k: [0, 0.0] for k in precisions}
    if args.without_dropout:
        seen.update({f"{k} dropout 0": [0, 0.0] for k in precisions})
    for precision in seen:
        step(precision)  # warm-up: allocations, kernel selection
    for _ in range(args.rounds):
        for precision in seen:
            t0, n = time.perf_counter(), 0
            while n < 1 or time.perf_counter() - t0 < args.budget_s:
                step(precision)
                n += 1
            seen[precision][0] += n * batch
            seen[precision][1] += time.perf_counter() - t0
    rate = {k: images / seconds for k, (images, seconds) in seen.items()}
    first = precisions[0]
    print(f"\n| mode | images/s | s per 45,000-image epoch | vs {first} |")
    print("| --- | ---: | ---: | ---: |")
    for k, r in rate.items():
        print(f"| {k} | {r:,.0f} | {45000 / r:,.1f} | {r / rate[first]:.3f} |")
    if device.type == "cuda":
        print(f"\npeak memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
