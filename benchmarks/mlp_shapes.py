"""Seconds per epoch of the cifar-mlp network in several shapes, side by side.

    python benchmarks/mlp_shapes.py [--shapes 2048,2048,2048@512 2560,2560@512 ...]
                                    [--epochs 38 42 ...] [--budget-s 10] [--rounds 3]

Times full training steps (forward, label-smoothed loss, backward, fused AdamW) of the best
recipe's network (GELU, BatchNorm, dropout 0) with the hidden widths and batch of each
``WIDTHS@BATCH``, on random (B, 3, 32, 32) batches in the precision ``--precision auto``
picks. Shapes alternate in rounds so all see the same machine. Prints each shape's images/s,
the seconds of a 45,000-image epoch, and, with ``--epochs`` (one per shape), the training
seconds of that many epochs and their ratio to the first shape's: which shapes cost the same
time on this machine. Run it with ``OMP_NUM_THREADS=1`` to match one-thread runs.
"""

from __future__ import annotations

import argparse
import time

import torch

from nnlab.device import autocast, cpu_has_native_bf16, cpu_name, resolve_device, resolve_precision
from nnlab.experiments.cifar_mlp import Config, build_model

EPOCH = 45_000


def parse_shape(text: str) -> tuple[tuple[int, ...], int]:
    widths, _, batch = text.partition("@")
    return tuple(int(w) for w in widths.split(",")), int(batch or 512)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=["2048,2048,2048@512", "2048,2048,2048@1024",
                                                   "2560,2560@512"],
                   help="WIDTHS@BATCH, the first the one the others are compared with")
    p.add_argument("--epochs", nargs="*", type=int, default=[], help="epochs of each shape")
    p.add_argument("--budget-s", type=float, default=10.0, help="seconds per shape per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    args = p.parse_args()
    try:
        shapes = [parse_shape(s) for s in args.shapes]
    except ValueError:
        p.error(f"--shapes takes WIDTHS@BATCH such as 2048,2048@512; got {args.shapes}")
    if args.epochs and len(args.epochs) != len(shapes):
        p.error(f"--epochs needs one number per shape ({len(shapes)}), got {len(args.epochs)}")

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    steps = {}
    for widths, batch in shapes:
        cfg = Config(widths=widths, batch_size=batch, dropout=0.0).resolved()
        torch.manual_seed(0)
        model = build_model(cfg).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        x = torch.randn(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch,), device=device)

        def step(model=model, opt=opt, x=x, y=y) -> None:  # noqa: ANN001
            with autocast(device, precision):
                loss = torch.nn.functional.cross_entropy(model(x).float(), y,
                                                         label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        step()  # warm-up: allocations, kernel selection
        steps[widths, batch] = step

    print(f"{cpu_name()}, native bf16: {device.type == 'cuda' or cpu_has_native_bf16()}, "
          f"{device.type}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{precision}; {args.rounds} rounds of {args.budget_s:g} s per shape")
    seen = {k: [0, 0.0] for k in steps}
    for _ in range(args.rounds):
        for (widths, batch), step in steps.items():
            t0, n = time.perf_counter(), 0
            while n < 1 or time.perf_counter() - t0 < args.budget_s:
                step()
                n += 1
            seen[widths, batch][0] += n * batch
            seen[widths, batch][1] += time.perf_counter() - t0

    per_epoch = {k: EPOCH * seconds / images for k, (images, seconds) in seen.items()}
    head = "| widths | batch | images/s | s per 45,000-image epoch |"
    rule = "| --- | ---: | ---: | ---: |"
    if args.epochs:
        head += " epochs | s of training | / the first |"
        rule += " ---: | ---: | ---: |"
    print(f"\n{head}\n{rule}")
    first = per_epoch[shapes[0]] * (args.epochs[0] if args.epochs else 1)
    for i, (widths, batch) in enumerate(shapes):
        row = (f"| {','.join(map(str, widths))} | {batch} | {EPOCH / per_epoch[widths, batch]:,.0f}"
               f" | {per_epoch[widths, batch]:.1f} |")
        if args.epochs:
            total = per_epoch[widths, batch] * args.epochs[i]
            row += f" {args.epochs[i]} | {total:,.0f} | {total / first:.2f} |"
        print(row)


if __name__ == "__main__":
    main()
