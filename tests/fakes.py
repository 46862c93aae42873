"""What several test files share: tiny fake datasets (nothing is downloaded), a run killed
and resumed in a real process, results compared with their timings aside, a full disk."""

import csv
import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from nnlab.cli import main
from nnlab.data.cifar10 import CLASSES
from nnlab.engine import files
from nnlab.engine.checkpoint import Checkpoints
from nnlab.seeds import flatten


def make_cifar_folder(root, per_class=3, splits=("train", "test"), classes=CLASSES, fmt="png",
                      learnable=False):
    """ROOT/<split>/<class>/NNNN.<fmt>, 32x32 RGB. ``learnable``: each class has its own
    mean colour under noise, so a network can tell classes apart; otherwise uniform noise."""
    rng = np.random.default_rng(0)
    for split in splits:
        for k, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                if learnable:  # a class is a colour: unchanged by flips and shifts
                    colour = np.array([30 + 100 * (k % 3), 30 + 100 * (k // 3 % 3),
                                       230 - 100 * (k // 5)])  # 10 distinct colours
                    pixels = np.clip(colour + rng.integers(-40, 41, (32, 32, 3)), 0, 255)
                    pixels = pixels.astype(np.uint8)
                else:
                    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i:04d}.{fmt}")
    return root


def untimed_metrics(metrics: dict) -> dict:
    """Every number except timings (seconds, throughputs, time ratios)."""
    return {k: v for k, v in flatten(metrics).items()
            if not (k.endswith("_s") or "wall_s" in k or "per_s" in k or "time_ratio" in k)}


def untimed_history(path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("wall_s", "images_per_s")}
                for row in csv.DictReader(f)]


def same_results(a, b, history="history.csv") -> None:
    assert untimed_history(a / history) == untimed_history(b / history)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert untimed_metrics(ma) == untimed_metrics(mb)


def start_nnlab(argv, tmp_path, env=None):
    env = {**os.environ, "NNLAB_CACHE": str(tmp_path / "cache"), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "nnlab", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(proc, folder, number: int, timeout: float = 120) -> None:
    """Until checkpoint ``number`` exists (or the process ended, which fails the test)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        paths = Checkpoints(folder).paths() if folder.exists() else []
        if paths and int(paths[-1].stem.split("-")[1]) >= number:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before checkpoint {number}: "
                                 f"{proc.stderr.read()[-1500:]}")
        time.sleep(0.005)
    raise AssertionError(f"no checkpoint {number} after {timeout} s")


def kill_then_resume(name, argv, tmp_path, monkeypatch, at: int, truncate: bool = False):
    """Run ``nnlab run name argv`` in a subprocess, SIGKILL it once checkpoint ``at`` is
    written, resume it in process; run the same uninterrupted; compare."""
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path / "cache"))
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    proc = start_nnlab(["run", name, *argv, "--out", str(killed)], tmp_path)
    wait_for_checkpoint(proc, killed, at)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists()  # it really was cut short
    if truncate:  # and its newest checkpoint cut short too: the previous one is used
        newest = Checkpoints(killed).paths()[-1]
        newest.write_bytes(newest.read_bytes()[:200])
    assert main(["run", name, "--resume", str(killed)]) == 0
    assert main(["run", name, *argv, "--out", str(reference)]) == 0
    return killed, reference


def disk_full_at(monkeypatch, name: str, after: int = 1) -> None:
    """From the ``after``-th write of a file whose name starts with ``name``, the disk is
    full: half the bytes go down, then ENOSPC, as a real full disk does."""
    real, seen = files._write_bytes, []

    def writer(f, data: bytes, path: pathlib.Path) -> None:  # noqa: ANN001
        if path.name.startswith(name):
            seen.append(path)
            if len(seen) >= after:
                f.write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data, path)

    monkeypatch.setattr(files, "_write_bytes", writer)


class FakeClock:
    """A clock that moves only when told (:meth:`advance`): the process's age, which a time
    budget counts, and a run's deadline clock both read it (the ``fake_clock`` fixture), so a
    budget test does not depend on how fast or how busy the shared machine is."""

    def __init__(self, now: float = 10.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

