"""What a checkpoint costs against the epoch it protects, per CIFAR training configuration.

    python benchmarks/checkpoint_cost.py [--budget-s 10] [--repeats 5]

For each configuration the engine checkpoints (the full-width and CPU-sized speedrun, the
study's VGGReduced, the best pure MLP with its ZCA matrix): training steps are timed on random
batches with the experiment's optimizer, schedule, precision (``auto``) and memory layout,
and the seconds of a 45,000-image epoch are the measured seconds per step times the steps in
an epoch (evaluation excluded, so the epoch is underestimated and the ratio overestimated).
Then the real :meth:`nnlab.engine.Run.checkpoint` writes the real state (model, optimizer,
scheduler, generators, data state) to a temporary folder ``--repeats`` times; the median is
the cost. Prints the checkpoint size, seconds, and its share of an epoch (target: < 3%).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nnlab.device import (
    autocast,
    cpu_has_native_bf16,
    cpu_name,
    resolve_device,
    resolve_precision,
)
from nnlab.engine import Run, TorchStep
from nnlab.experiments import cifar_cnn, cifar_mlp, cifar_speedrun
from nnlab.models.cnn import SpeedrunNet, VGGReduced
from nnlab.vision import weight_decay_groups


def _speedrun(widths: str, batch: int):
    cfg = cifar_speedrun.Config(widths=widths, batch_size=batch)
    model = SpeedrunNet(tuple(map(int, widths.split(","))))
    groups = weight_decay_groups(model, cfg.weight_decay)
    opt = torch.optim.SGD(groups, lr=0.1, momentum=cfg.momentum, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return cfg, model, opt, sched, True, {}


def _vgg():
    model = VGGReduced()
    return (cifar_cnn.Config(), model, torch.optim.Adam(model.parameters(), 1e-3), None, True,
            {})


def _mlp():
    cfg = cifar_mlp.Config().resolved()
    model = cifar_mlp.build_model(cfg)
    opt, sched = cifar_mlp.build_optimizer(cfg, model, 1000)
    return cfg, model, opt, sched, False, {"zca": torch.randn(3072, 3072)}


CONFIGS = {
    "speedrun 64,256,256 b1024": lambda: _speedrun("64,256,256", 1024),
    "speedrun 32,64,64 b256": lambda: _speedrun("32,64,64", 256),
    "VGGReduced b64 (Adam)": _vgg,
    "cifar-mlp best b512": _mlp,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, default=10.0, help="seconds of training steps")
    p.add_argument("--repeats", type=int, default=5, help="checkpoints written per config")
    args = p.parse_args()
    device = resolve_device("auto")
    print(f"{cpu_name()}, native bf16: {cpu_has_native_bf16()}, {device.type}, "
          f"threads {torch.get_num_threads()}")
    print("\n| configuration | precision | epoch (s) | checkpoint (MB) | checkpoint (s) | "
          "share of an epoch |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, make in CONFIGS.items():
        torch.manual_seed(0)
        cfg, model, opt, sched, channels_last, data = make()
        precision = resolve_precision(cfg.precision, device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model.to(device, memory_format=fmt)
        step = TorchStep(model, opt, scheduler=sched,
                         autocast=lambda precision=precision: autocast(device, precision))
        x = torch.randn(cfg.batch_size, 3, 32, 32, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, 10, (cfg.batch_size,), device=device)
        step(x, y)  # warm-up
        n, t0 = 0, time.perf_counter()
        while n < 2 or time.perf_counter() - t0 < args.budget_s:
            step(x, y)
            n += 1
        epoch_s = (time.perf_counter() - t0) / n * (45000 // cfg.batch_size)
        with tempfile.TemporaryDirectory() as tmp:
            run = Run(Path(tmp), "benchmark", cfg).start()
            run.track(**{f"train.{k}": v for k, v in step.states().items()},
                      batch_order=torch.Generator(), augmentation=torch.Generator())
            run.data.update(mean=torch.zeros(3), std=torch.ones(3), **data)
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                run.checkpoint({"phase": "train", "position": 1, "batch": 0, "sums": None})
                times.append(time.perf_counter() - t)
            size = max(p.stat().st_size for p in Path(tmp).glob("checkpoint-*.pt")) / 2**20
        ckpt_s = statistics.median(times)
        print(f"| {name} | {precision} | {epoch_s:.1f} | {size:.1f} | {ckpt_s:.3f} | "
              f"{ckpt_s / epoch_s:.2%} |", flush=True)


if __name__ == "__main__":
    main()
