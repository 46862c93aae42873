"""Training throughput of the CIFAR CNNs by precision and memory layout.

    python benchmarks/cifar_cnn.py [--net vgg|speedrun] [--batch-size N] [--budget-s 10]

Times full training steps (forward, cross-entropy, backward, optimizer step) on random
(B, 3, 32, 32) batches in four modes: fp32 NCHW (plain eager PyTorch, the baseline), fp32
channels_last, bf16 autocast NCHW and bf16 channels_last. Modes alternate in rounds so all
see the same machine load; each runs at least two steps and about ``--budget-s`` seconds a
round. Prints images/s, the seconds a 45,000-image epoch would take, and each mode's speed
over the baseline. ``--net vgg`` is the study's VGGReduced at its batch of 64 with Adam;
``--net speedrun`` the speedrun network at batch 1024 with Nesterov SGD.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from nnlab.device import cpu_has_native_bf16, cpu_name, resolve_device
from nnlab.models.cnn import SpeedrunNet, VGGReduced

MODES = {"fp32 NCHW": ("fp32", False), "fp32 channels_last": ("fp32", True),
         "bf16 NCHW": ("bf16", False), "bf16 channels_last": ("bf16", True)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", default="vgg", choices=("vgg", "speedrun"))
    p.add_argument("--batch-size", type=int, default=0, help="default: 64 (vgg), 1024 (speedrun)")
    p.add_argument("--budget-s", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    device = resolve_device(args.device)
    batch = args.batch_size or (64 if args.net == "vgg" else 1024)
    torch.manual_seed(0)
    base = VGGReduced() if args.net == "vgg" else SpeedrunNet()
    x0 = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    runners = {}
    for name, (precision, channels_last) in MODES.items():
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = copy.deepcopy(base).to(device, memory_format=fmt)
        params = [q for q in model.parameters() if q.requires_grad]
        opt = (torch.optim.Adam(params, lr=1e-4) if args.net == "vgg"
               else torch.optim.SGD(params, lr=1e-3, momentum=0.85, nesterov=True))
        x = x0.contiguous(memory_format=fmt)

        def step(model=model, opt=opt, x=x, precision=precision) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=precision == "bf16"):
                loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        runners[name] = step
    print(f"{cpu_name()}, native bf16: {device.type == 'cuda' or cpu_has_native_bf16()}, "
          f"{device.type}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"{args.net}, batch {batch}, {args.rounds} rounds of {args.budget_s:g} s per mode")
    seen = {name: [0, 0.0] for name in runners}
    for step in runners.values():
        step()  # warm-up
    for _ in range(args.rounds):
        for name, step in runners.items():
            t0, n = time.perf_counter(), 0
            while n < 1 or time.perf_counter() - t0 < args.budget_s:
                step()
                n += 1
            seen[name][0] += n * batch
            seen[name][1] += time.perf_counter() - t0
    rate = {name: images / seconds for name, (images, seconds) in seen.items()}
    baseline = rate["fp32 NCHW"]
    print("\n| mode | images/s | s per 45,000-image epoch | vs fp32 NCHW |")
    print("| --- | ---: | ---: | ---: |")
    for name, r in rate.items():
        print(f"| {name} | {r:,.0f} | {45000 / r:,.1f} | {r / baseline:.2f} |")


if __name__ == "__main__":
    main()
