"""torch.compile and the profiler on the speedrun network, nnlab's and airbench94_muon's port.

    python benchmarks/speedrun_compile.py --anchors DIR [--widths 64,256,256] [--rounds 3]
        [--budget-s 6] [--profile] [--precision auto]

Times whole training steps on random images (forward, label-smoothed cross-entropy, backward,
the optimizers' steps) for nnlab's ``cifar-speedrun`` defaults (``SpeedrunNet``, batch 1,024,
channels_last, Muon with five Newton-Schulz steps chained with Nesterov SGD) and for the
network, batch (2,000) and optimizers (Muon with three steps, fused Nesterov SGD) of
``DIR/airbench94_muon_cpu.py`` (imported from where it is, never copied), each eager and
compiled with ``torch.compile`` (inductor, default mode; the port's own ``--compile`` does
the same: the model and its Newton-Schulz function). The sides alternate in rounds so all
see the same machine. Prints, per side: the seconds its first compiled steps cost beyond
steady steps (the compile time, which a whole process pays once), milliseconds per image,
the seconds of a 45,000-image epoch, compiled over eager, and the epochs after which
compiling has paid for itself. ``--profile`` adds, for each side eager, the operators that
took the most time in a few steps (``torch.profiler``, self CPU time), side by side.
Run it with ``OMP_NUM_THREADS=1`` to match the side-by-side pairs.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

from nnlab.device import autocast, cpu_has_native_bf16, cpu_name, resolve_precision
from nnlab.experiments.cifar_speedrun import Config, build_optimizer, muon_lr_rule
from nnlab.models.cnn import SpeedrunNet

EPOCH = 45_000


def load_port(anchors: Path, precision: str) -> ModuleType:
    """The port as a module (its ``__main__`` block does not run), set to ``precision``."""
    path = anchors / "airbench94_muon_cpu.py"
    spec = importlib.util.spec_from_file_location("airbench94_muon_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.PRECISION = precision
    return module


def nnlab_step(widths: tuple[int, ...], precision: str, compiled: bool, batch: int = 1024
               ) -> tuple[Callable[[], None], int]:
    """One training step of ``cifar-speedrun``'s defaults on a fixed random batch."""
    cfg = Config(widths=widths, batch_size=batch)
    torch.manual_seed(0)
    model = SpeedrunNet(cfg.widths, 10, dirac=True, bn_eps=cfg.bn_eps)
    model.init_whitening(torch.randn(512, 3, 32, 32), cfg.whiten_eps)
    model = model.to(memory_format=torch.channels_last).train()
    opt = build_optimizer(cfg, model, cfg.lr * batch / 512, muon_lr_rule(8 * EPOCH // batch))
    if compiled:
        model.compile()
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    device = torch.device("cpu")

    def step() -> None:
        with autocast(device, precision):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, batch


def port_step(port: ModuleType, compiled: bool, batch: int = 2000
              ) -> tuple[Callable[[], None], int]:
    """One training step of the port's ``main`` (its network and optimizers; its batch is
    2,000)."""
    torch.manual_seed(0)
    model = port.CifarNet().to(memory_format=torch.channels_last)
    model.reset()
    model.init_whiten(torch.randn(512, 3, 32, 32))
    wd = 2e-6 * batch
    norm_biases = [p for n, p in model.named_parameters() if "norm" in n and p.requires_grad]
    sgd = torch.optim.SGD([dict(params=[model.whiten.bias], lr=0.053, weight_decay=wd / 0.053),
                           dict(params=norm_biases, lr=0.053, weight_decay=wd / 0.053),
                           dict(params=[model.head.weight], lr=0.67, weight_decay=wd / 0.67)],
                          momentum=0.85, nesterov=True, fused=True)
    filters = [p for p in model.parameters() if p.ndim == 4 and p.requires_grad]
    muon = port.Muon(filters, lr=0.24, momentum=0.6, nesterov=True)
    if compiled:
        model.compile()
        if not hasattr(port, "_eager_ns"):
            port._eager_ns = port.zeropower_via_newtonschulz5
            port.zeropower_via_newtonschulz5 = torch.compile(port._eager_ns)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with port.autocast_ctx():
            loss = F.cross_entropy(model(x), y, label_smoothing=0.2, reduction="sum")
        loss.backward()
        sgd.step()
        muon.step()
        model.zero_grad(set_to_none=True)

    return step, batch


def first_steps(step: Callable[[], None], n: int = 3) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - t0


def profile(step: Callable[[], None], steps: int, top: int) -> list[tuple[str, float]]:
    """The ``top`` operators by self CPU time over ``steps`` steps, as (name, % of all)."""
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, 100 * e.self_cpu_time_total / total) for e in events[:top]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anchors", required=True, type=Path, help="folder of airbench94_muon_cpu.py")
    p.add_argument("--widths", default="64,256,256", help="nnlab's widths (the port's are fixed)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--budget-s", type=float, default=6.0, help="seconds per side and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="add each side's top operators")
    p.add_argument("--profile-steps", type=int, default=4)
    p.add_argument("--no-compile", action="store_true", help="eager only (a quick check)")
    p.add_argument("--batches", default="1024,2000", help="nnlab's and the port's batch")
    args = p.parse_args()

    precision = resolve_precision(args.precision, torch.device("cpu"))
    widths = tuple(int(w) for w in args.widths.split(","))
    if not (args.anchors / "airbench94_muon_cpu.py").is_file():
        p.error(f"--anchors: no airbench94_muon_cpu.py in {args.anchors}")
    port = load_port(args.anchors, precision)
    batches = dict(zip(("nnlab", "port"), (int(b) for b in args.batches.split(",")),
                       strict=True))
    modes = (False,) if args.no_compile else (False, True)
    print(f"{cpu_name()}, native bf16: {cpu_has_native_bf16()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}, {precision}; nnlab widths {widths}, batch "
          f"{batches['nnlab']}; airbench94_muon port, batch {batches['port']}; {args.rounds} "
          f"rounds of {args.budget_s:g} s")
    sides = {}
    for name in ("nnlab", "port"):
        for compiled in modes:
            step, batch = (nnlab_step(widths, precision, compiled, batches[name])
                           if name == "nnlab" else port_step(port, compiled, batches[name]))
            sides[name, compiled] = {"step": step, "batch": batch, "first": first_steps(step),
                                     "images": 0, "seconds": 0.0}
    for _ in range(args.rounds):
        for side in sides.values():
            t0, n = time.perf_counter(), 0
            while n < 1 or time.perf_counter() - t0 < args.budget_s:
                side["step"]()
                n += 1
            side["images"] += n * side["batch"]
            side["seconds"] += time.perf_counter() - t0

    print("\n| side | mode | compile s | ms per image | s per 45,000-image epoch "
          "| compiled / eager | epochs to pay back |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("nnlab", "port"):
        eager = sides[name, False]
        eager_s = eager["seconds"] / eager["images"]
        for compiled in modes:
            side = sides[name, compiled]
            per_image = side["seconds"] / side["images"]
            extra = max(0.0, side["first"] - 3 * side["batch"] * per_image)
            saved = (eager_s - per_image) * EPOCH
            payback = (f"{extra / saved:.1f}" if compiled and saved > 0
                       else "never" if compiled else "")
            shown = f"{extra:.0f}" if compiled else "—"
            print(f"| {name} | {'compiled' if compiled else 'eager'} | {shown} | "
                  f"{1e3 * per_image:.3f} | {EPOCH * per_image:.1f} | "
                  f"{per_image / eager_s:.2f} | {payback} |")

    if args.profile:
        tops = {name: profile(sides[name, False]["step"], args.profile_steps, 12)
                for name in ("nnlab", "port")}
        print(f"\nWhere an eager step's time goes ({args.profile_steps} steps, self CPU time):\n")
        print("| nnlab operator | % | port operator | % |")
        print("| --- | ---: | --- | ---: |")
        for (a, pa), (b, pb) in zip(tops["nnlab"], tops["port"], strict=False):
            print(f"| `{a}` | {pa:.1f} | `{b}` | {pb:.1f} |")


if __name__ == "__main__":
    main()
