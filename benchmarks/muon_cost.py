"""What Muon's step costs beside SGD's (speedrun) and AdamW's (the best MLP).

    python benchmarks/muon_cost.py [--budget-s 4] [--rounds 2]

Times whole training steps (bf16 autocast where the CPU has it, forward, cross-entropy,
backward, optimizer step) on random batches, and the optimizer step alone, for each
optimizer of each configuration: the speedrun network CPU-sized (32, 64, 64 at batch 256)
and full width (64, 256, 256 at batch 1024), each with Nesterov SGD and with Muon for its
filters (the optimizers `nnlab run cifar-speedrun [--optimizer sgd]` builds; on a CPU without
native bf16 also with torch's bf16 Newton-Schulz iterations, which nnlab replaces by fp32
there); and the best MLP (3 x 2048 at batch 512) with fused AdamW and with torch's Muon on
its hidden matrices. Optimizers alternate in rounds so all see the same machine load.
Muon's Newton-Schulz iterations cost O(rows^2 x cols) per matrix whatever the batch: small
beside a conv network's step, large beside an MLP's.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from nnlab.device import cpu_has_native_bf16, cpu_name
from nnlab.engine.muon import Chain
from nnlab.experiments import cifar_mlp, cifar_speedrun
from nnlab.models.cnn import SpeedrunNet


def _speedrun(widths, batch, kind):
    """kind: 'sgd', 'muon' (nnlab's choice of iteration dtype) or 'muon-bf16' (torch's)."""
    model = SpeedrunNet(widths).to(memory_format=torch.channels_last)
    model.init_whitening(torch.randn(512, 3, 32, 32))
    cfg = cifar_speedrun.Config(optimizer="sgd" if kind == "sgd" else "muon")
    opt = cifar_speedrun.build_optimizer(cfg, model, 0.5, None if kind == "sgd" else 0.1)
    if kind == "muon-bf16":
        opt.optimizers[1].ns_dtype = torch.bfloat16
    return model, opt, batch


def _mlp(batch, kind):
    muon = kind != "sgd"
    cfg = cifar_mlp.Config().resolved()
    model = cifar_mlp.build_model(cfg)
    opt, _ = cifar_mlp.build_optimizer(cfg, model, 1000)
    if muon:  # the hidden matrices to torch's Muon, the head and vectors stay on AdamW
        head = model.net[-1].weight
        hidden = [p for p in model.parameters() if p.ndim == 2 and p is not head]
        rest = [p for p in model.parameters() if p.ndim != 2 or p is head]
        opt = Chain(torch.optim.AdamW(rest, lr=cfg.lr, fused=True),
                    torch.optim.Muon(hidden, lr=cfg.lr, adjust_lr_fn="match_rms_adamw"))
    return model, opt, batch


CONFIGS = {
    "speedrun 32-64-64, batch 256": lambda kind: _speedrun((32, 64, 64), 256, kind),
    "speedrun 64-256-256, batch 1024": lambda kind: _speedrun((64, 256, 256), 1024, kind),
    "MLP 3 x 2048, batch 512": lambda kind: _mlp(512, kind),
}


def _time(model, opt, batch, budget_s, autocast) -> tuple[float, float]:
    """Seconds per whole step and per optimizer step (means over >= 2 steps, one warm-up)."""
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    steps, whole, only = -1, 0.0, 0.0
    start = time.perf_counter()
    while steps < 2 or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        with autocast():
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        if steps >= 0:  # the first step warms up
            whole, only = whole + t2 - t0, only + t2 - t1
        steps += 1
    return whole / steps, only / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, default=4.0, help="seconds per optimizer a round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--only", default="", help="configurations whose name contains this")
    args = p.parse_args()
    bf16 = cpu_has_native_bf16()

    def autocast():
        return torch.autocast("cpu", torch.bfloat16, enabled=bf16)

    print(f"{cpu_name()}, native bf16: {bf16}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, precision {'bf16' if bf16 else 'fp32'}; the least disturbed "
          f"of {args.rounds} rounds of {args.budget_s:g} s per optimizer")
    print()
    print("| configuration | optimizer | step ms | optimizer ms | step vs the first |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, build in CONFIGS.items():
        if args.only not in name:
            continue
        base = "AdamW (fused)" if "MLP" in name else "SGD"
        kinds = {"sgd": base, "muon": f"Muon + {base}"}
        if "speedrun" in name and not bf16:  # the iterations torch.optim.Muon runs, emulated
            kinds["muon"] = f"Muon (fp32 iterations) + {base}"
            kinds["muon-bf16"] = f"Muon (bf16 iterations, torch's) + {base}"
        torch.manual_seed(0)
        runs = {kind: build(kind) for kind in kinds}
        times: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind, (model, opt, batch) in runs.items():
                times[kind].append(_time(model, opt, batch, args.budget_s, autocast))
        step = {k: min(t[0] for t in ts) for k, ts in times.items()}  # least disturbed round
        only = {k: min(t[1] for t in ts) for k, ts in times.items()}
        for kind, label in kinds.items():
            print(f"| {name} | {label} | {1e3 * step[kind]:.1f} | {1e3 * only[kind]:.2f} | "
                  f"{step[kind] / step['sgd']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
