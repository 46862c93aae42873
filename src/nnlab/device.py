"""Devices and precision: ``--device auto|cuda|mps|cpu`` and ``--precision auto|bf16|fp32``.

``auto`` picks cuda, then mps, then cpu. bf16 autocast is the ``auto`` precision on CUDA and
on CPUs with native bf16 matrix units (AVX-512-BF16 or AMX); elsewhere bf16 is emulated and
far slower than fp32 (measured: `python benchmarks/cifar_mlp.py`), so ``auto`` means fp32.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import time

import torch

from nnlab.config import DEVICES as DEVICES  # the choices, defined torch-free
from nnlab.config import PRECISIONS as PRECISIONS
from nnlab.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> the best device present; a named device that is absent is a ConfigError."""
    has = {"cuda": torch.cuda.is_available(),
           "mps": getattr(torch.backends, "mps", None) is not None
           and torch.backends.mps.is_available(),
           "cpu": True}
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if has[d]))
    if name not in has:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}; got {name!r}")
    if not has[name]:
        raise ConfigError(f"--device {name}: no {name} device on this machine")
    return torch.device(name)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises AVX-512-BF16 or AMX-BF16 (Linux /proc/cpuinfo)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' on CUDA and on CPUs with native bf16, else 'fp32'."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """A context that runs the forward pass in bf16 (autocast) or leaves it in fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def busy_cores(sample_s: float = 0.5) -> float | None:
    """How many cores other processes keep busy: /proc/stat sampled ``sample_s`` apart while
    this process sleeps (so the busy time is theirs); None where /proc/stat is missing."""
    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = ticks()
        time.sleep(sample_s)
        total1, idle1 = ticks()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total1 - total0
    if elapsed <= 0:
        return None
    return (elapsed - (idle1 - idle0)) / elapsed * (os.cpu_count() or 1)
