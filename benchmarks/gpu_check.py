"""The CUDA paths in one command, for the few minutes a GPU is lent: a table to paste.

    python benchmarks/gpu_check.py [--data DIR] [--record PATH] [--out DIR] [--dry-run]

Rows, each with what ran, its result and its seconds:

1. the device (name, memory, compute capability, torch and CUDA versions);
2. bf16 autocast: a large matmul in fp32 and under bf16 autocast (TFLOP/s each, and the
   relative error of bf16 against fp32);
3. the test suite's CUDA tests (``pytest -m cuda``);
4. ``nnlab run cifar-speedrun`` at full width on CUDA, eager and with ``--compile``: time and
   validation accuracy (on ``--data``, a CIFAR-10 folder; without one, on made-up images,
   where only the time means anything);
5. the record's own GPU script, when ``--record PATH`` names it (its exit status, seconds and
   last line: it loads CIFAR-10 its own way);
6. ``nnlab run cifar-mlp`` on CUDA;
7. a one-process DistributedDataParallel run under torchrun (NCCL).

Under 8 minutes on one recent GPU. Without CUDA it says so in one line and runs the same rows
on the CPU at tiny sizes (``--dry-run`` forces that), so the test suite keeps it working.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NNLAB = [sys.executable, "-m", "nnlab"]


def device_row(cuda: bool) -> list[str]:
    if not cuda:
        return ["device", "cpu (dry run)", f"torch {torch.__version__}, no CUDA", "—"]
    p = torch.cuda.get_device_properties(0)
    return ["device", p.name, f"{p.total_memory / 2**30:.0f} GiB, capability "
            f"{p.major}.{p.minor}, torch {torch.__version__}, CUDA {torch.version.cuda}", "—"]


def autocast_row(cuda: bool) -> list[str]:
    """fp32 against bf16 autocast on one square matmul: TFLOP/s and the relative error."""
    device = "cuda" if cuda else "cpu"
    n, reps = (8192, 20) if cuda else (256, 3)
    a, b = (torch.randn(n, n, device=device) for _ in range(2))

    def timed(bf16: bool) -> tuple[float, torch.Tensor]:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            c = a @ b  # warm-up
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(reps):
                c = a @ b
            if cuda:
                torch.cuda.synchronize()
        return (time.perf_counter() - t) / reps, c.float()

    t0 = time.perf_counter()
    fp32_s, exact = timed(False)
    bf16_s, rough = timed(True)
    err = float((rough - exact).norm() / exact.norm())
    flop = 2 * n ** 3
    return ["bf16 autocast", f"{n}x{n} matmul",
            f"fp32 {flop / fp32_s / 1e12:.1f} TFLOP/s, bf16 {flop / bf16_s / 1e12:.1f} TFLOP/s "
            f"({fp32_s / bf16_s:.1f}x), relative error {err:.1e}",
            f"{time.perf_counter() - t0:.1f}"]


def pytest_row() -> list[str]:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-p",
                           "no:cacheprovider", str(ROOT / "tests" / "test_cuda.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    tail = [line for line in done.stdout.splitlines() if line.strip()]
    return ["CUDA tests", "pytest -m cuda", tail[-1].strip("= ") if tail else
            f"exit {done.returncode}", f"{time.perf_counter() - t:.1f}"]


def run_row(name: str, args: list[str], out: Path, torchrun: bool = False) -> list[str]:
    """One ``nnlab run``: its validation accuracy and seconds, or its last error line."""
    command = [*NNLAB, "run", *args, "--out", str(out)]
    if torchrun:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", "1", "-m", "nnlab", "run", *args, "--out", str(out)]
    t = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = f"{time.perf_counter() - t:.1f}"
    shown = " ".join(a for i, a in enumerate(args)
                     if a != "--data" and (i == 0 or args[i - 1] != "--data"))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1][:160]
        return [name, shown, f"failed (exit {done.returncode}): {last}", seconds]
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())["provenance"]
    acc = metrics.get("val_acc")
    said = f"val_acc {acc:.4f}" if isinstance(acc, float) else "finished"
    said += f", training {metrics.get('wall_s', 0):.1f} s on {config.get('device')} " \
            f"({config.get('precision')})"
    if metrics.get("world_size", 1) > 1 or torchrun:
        said += f", world size {metrics.get('world_size', 1)}"
    return [name, shown, said, seconds]


def record_row(path: Path, work: Path) -> list[str]:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, str(path.absolute())], cwd=work,
                          capture_output=True, text=True, timeout=900)
    lines = (done.stdout + done.stderr).strip().splitlines() or ["(nothing printed)"]
    return ["the record's GPU script", path.name, f"exit {done.returncode}: {lines[-1][:160]}",
            f"{time.perf_counter() - t:.1f}"]


def fake_data(root: Path, per_class: int) -> Path:
    """A made-up CIFAR-10-shaped image folder (``train/<class>/*.png``), for timing only."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(10):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            pixels[..., c % 3] //= 2  # a little signal per class
            Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="a CIFAR-10 image folder (default: made-up images, time only)")
    parser.add_argument("--record", type=Path, default=None,
                        help="the public record's GPU script (airbench94_muon.py), to run too")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the runs go (default: a temp folder)")
    parser.add_argument("--dry-run", action="store_true",
                        help="the CPU at tiny sizes, even where CUDA is present")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda:
        print("no CUDA device here: the CPU dry run at tiny sizes (what runs, not how fast)"
              if not torch.cuda.is_available() else "--dry-run: the CPU at tiny sizes",
              flush=True)
    out = args.out or Path(tempfile.mkdtemp(prefix="nnlab-gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    data = args.data or fake_data(out / "images", 500 if cuda else 30)
    device = ["--device", "cuda"] if cuda else ["--device", "cpu", "--precision", "fp32"]
    size = [] if cuda else ["--quick", "--val-size", "20"]
    rows = [device_row(cuda), autocast_row(cuda), pytest_row()]
    for name, extra in (("speedrun eager", []), ("speedrun compiled", ["--compile"])):
        if not cuda and extra:
            rows.append([name, "cifar-speedrun --compile", "skipped in the dry run (compiling "
                         "takes minutes on a CPU)", "—"])
            continue
        rows.append(run_row(name, ["cifar-speedrun", "--data", str(data), *device, *size,
                                   *extra], out / name.replace(" ", "-")))
    if args.record is not None:
        rows.append(record_row(args.record, out))
    rows.append(run_row("MLP", ["cifar-mlp", "--data", str(data), *device,
                                *(["--epochs", "8"] if cuda else size)], out / "mlp"))
    rows.append(run_row("DDP, 1 process (NCCL)" if cuda else "DDP, 1 process (Gloo)",
                        ["cifar-mlp", "--data", str(data), *device, "--quick",
                         *([] if cuda else ["--val-size", "20"])], out / "ddp",
                        torchrun=True))
    print(f"\n{'CUDA' if cuda else 'CPU dry run'}, {time.strftime('%Y-%m-%d')}, data: "
          f"{'CIFAR-10 at ' + str(args.data) if args.data else 'made-up images'}\n")
    print("| check | what ran | result | seconds |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    failed = [r for r in rows if r[2].startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
