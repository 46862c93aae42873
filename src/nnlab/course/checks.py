"""``nnlab course check DIR``: the student's modules, checked one method at a time, each in its
own process with a time limit, on shapes and seeds drawn fresh every run (printed, so a
failure can be replayed with ``--seed``): a hard-coded answer cannot pass.

Each check is one line: ✓, or ✗ with what was expected and a hint that points at the place
(not the answer). Code that raises shows the student's own lines of the traceback, never
nnlab's; code that hangs is stopped at the limit."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO

import numpy as np

from nnlab.course.findings import Wrong
from nnlab.errors import NnlabError

LIMIT_S = 10.0  # per check (a check that trains a network gets twice that)


@dataclass(frozen=True)
class Check:
    """One check: the student's ``file`` it loads, the ``part`` it belongs to, the function
    that checks the loaded module, and whether it trains (a longer limit)."""

    file: str
    part: str
    run: Callable[[ModuleType, np.random.Generator], str]
    trains: bool = False
    needs: tuple[str, ...] = ()  # modules imported before the clock starts


from nnlab.course import layers, networks  # noqa: E402 - after Check, which they do not need

CHECKS: dict[str, Check] = {
    **{f"{cls}.{step}": Check("modules.py", "1", getattr(layers, f"{fn}_{step}"))
       for cls, fn in (("Linear", "linear"), ("ReLU", "relu"), ("SoftMax", "softmax"),
                       ("CrossEntropy", "cross_entropy"))
       for step in ("forward", "backward")},
    "numpy_mlp.forward": Check("numpy_mlp.py", "1", networks.numpy_mlp_forward),
    "numpy_mlp.backward": Check("numpy_mlp.py", "1", networks.numpy_mlp_backward),
    "numpy_mlp.learns": Check("numpy_mlp.py", "1", networks.numpy_mlp_learns, True,
                              ("sklearn.datasets",)),
    "pytorch_mlp.layers": Check("pytorch_mlp.py", "1", networks.pytorch_mlp, False,
                                ("nnlab.models.mlp",)),
    "pytorch_mlp.learns": Check("pytorch_mlp.py", "1", networks.pytorch_mlp_learns, True,
                                ("nnlab.models.mlp", "sklearn.datasets")),
    "cnn_model.layers": Check("cnn_model.py", "2", networks.vgg, False, ("nnlab.models.cnn",)),
    "vanilla_rnn.cell": Check("vanilla_rnn.py", "3", networks.vanilla_rnn, False,
                              ("nnlab.models.rnn",)),
    "vanilla_rnn.learns": Check("vanilla_rnn.py", "3", networks.vanilla_rnn_learns, True,
                                ("nnlab.models.rnn", "nnlab.data.palindrome")),
    "lstm.cell": Check("lstm.py", "3", networks.lstm, False, ("nnlab.models.rnn",)),
}
READY = "ready"  # what the checks' process says once it has imported what they need
START_S = 120.0  # for that: importing torch on a busy machine takes seconds
STREAM = {name: i for i, name in enumerate(CHECKS)}  # each check's own stream of a seed


# --------------------------------------------------------------------------- running them


@dataclass
class Result:
    """One check's line: ``passed``, ``name``, and what it found (``said``, ``hint``)."""

    name: str
    passed: bool
    said: str
    hint: str = ""

    def line(self) -> str:
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.name}: {self.said}" + (f" (hint: {self.hint})" if self.hint
                                                      else "")


def _load(path: Path) -> ModuleType:
    """The student's file at ``path``, imported with its folder first on sys.path (so
    ``numpy_mlp.py``'s ``import modules`` finds the student's own layers)."""
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"student_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def frames_in(e: BaseException, folder: Path) -> list[traceback.FrameSummary]:
    """The frames of ``e``'s traceback in the files of ``folder`` (a student's), in order."""
    return [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).is_absolute()
            and Path(f.filename).resolve().parent == folder.resolve()]


def _student_lines(e: BaseException, folder: Path) -> str:
    """The exception, and the traceback's last frames in the student's files, as
    'modules.py line 12: code'."""
    where = "; ".join(f"{Path(f.filename).name} line {f.lineno}: {f.line}"
                      for f in frames_in(e, folder)[-2:])
    return f"{type(e).__name__}: {str(e).strip()[:200]}" + (f" ({where})" if where else "")


def one(folder: Path, name: str, seed: int) -> tuple[bool, str, str]:
    """In the check's own process: (passed, what it found, hint)."""
    try:
        module = _load(folder / CHECKS[name].file)
        return True, CHECKS[name].run(module, np.random.default_rng(seed)), ""
    except Wrong as w:
        return False, w.what, w.hint
    except NotImplementedError as e:  # a skeleton's body, not written yet
        frames = frames_in(e, folder)
        where = (f" ({Path(frames[-1].filename).name} line {frames[-1].lineno})" if frames
                 else "")
        return False, f"not written yet: {str(e).split(':')[0] or 'a body'}{where}", ""
    except Exception as e:  # noqa: BLE001 - whatever the student's code raises
        return False, f"raised {_student_lines(e, folder)}", ""


def _memory_limit(mb: int | None) -> Callable[[], None] | None:
    """What the check's process runs before the student's code: at most ``mb`` MiB of
    address space (POSIX), so a runaway allocation fails inside it."""
    if mb is None:
        return None

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))
    return limit


def _answer(answers: queue.Queue, limit_s: float) -> str | None:
    try:
        return answers.get(timeout=limit_s)
    except queue.Empty:
        return None


def _relay(stream: IO[str], answers: queue.Queue) -> None:
    """Each line of the worker's output into ``answers``, then None at its end."""
    for line in stream:
        answers.put(line)
    answers.put(None)


def run_checks(folder: Path, names: list[str], seed: int, memory_mb: int | None = None,
               say: Callable[[Result], None] | None = None) -> list[Result]:
    """Check ``names`` on the student's files in ``folder``, in a Python process apart from
    nnlab's (it runs in that folder, one thread, at most ``memory_mb`` MiB), one check after
    another: each is given :data:`LIMIT_S` seconds (twice that for a check that trains) and
    the seed ``seed`` + its :data:`STREAM`. A check that hangs or kills its process is said,
    and a fresh process goes on with the rest. ``say`` hears each result as it comes."""
    results: list[Result] = []
    todo = list(names)

    def done(result: Result) -> None:
        results.append(result)
        todo.remove(result.name)
        if say is not None:
            say(result)

    for name in [n for n in todo if not (folder / CHECKS[n].file).is_file()]:
        done(Result(name, False, f"no {CHECKS[name].file} in {folder}",
                    f"nnlab course init DIR --part {CHECKS[name].part} writes it"))
    while todo:
        errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: no write ever blocks
        worker = subprocess.Popen(
            [sys.executable, "-m", "nnlab.course.worker", str(folder), str(seed), *todo],
            stdout=subprocess.PIPE, stderr=errors, text=True, cwd=folder,
            env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=_memory_limit(memory_mb))
        answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_relay, args=(worker.stdout, answers), daemon=True).start()
        try:
            started = _answer(answers, START_S)
            while started not in (None, READY + "\n"):
                started = _answer(answers, START_S)
            while todo:
                name = todo[0]
                limit_s = LIMIT_S * (2 if CHECKS[name].trains else 1)
                try:
                    line = answers.get(timeout=limit_s)
                except queue.Empty:
                    done(Result(name, False, f"did not finish in {limit_s:g} s",
                                "an endless loop, or a loop over every element that a "
                                "whole-array operation would do at once"))
                    break
                if line is None:  # it died: a crash in native code, killed for memory
                    worker.wait()
                    errors.seek(0)
                    last = errors.read().strip().splitlines()[-1:] or ["no output"]
                    done(Result(name, False, "its process ended without an answer "
                                f"({last[0][:200]})"))
                    break
                try:
                    passed, said, hint = json.loads(line)
                except ValueError:  # the student's own print()s
                    continue
                done(Result(name, passed, said, hint))
        finally:
            worker.kill()
            worker.wait()
            errors.close()
    return results


def chosen(folder: Path | None, only: str | None = None, part: str = "all") -> list[str]:
    """The checks to run: those of ``part`` ('1', '2', '3' or 'all'), cut to ``only`` (a
    part, or a prefix of the names: 'Linear', 'SoftMax.backward', 'numpy_mlp'); with no
    ``only`` and a ``folder``, those whose file is in it."""
    names = [n for n, c in CHECKS.items() if part in ("all", c.part)]
    if only is not None:
        names = [n for n in names if CHECKS[n].part == only or n.startswith(only)]
        if not names:
            raise NnlabError(f"no check is named {only!r}; the parts are 1, 2 and 3, the "
                             f"checks: {', '.join(CHECKS)}")
    elif folder is not None:
        names = [n for n in names if (folder / CHECKS[n].file).is_file()] or names
    return names


def check(folder: str | Path, only: str | None = None, seed: int | None = None,
          out: Callable[[str], None] = print, memory_mb: int | None = None,
          part: str = "all") -> list[Result]:
    """The checks of the student's files in ``folder`` (see :func:`chosen` for ``only`` and
    ``part``), each line to ``out``. ``seed``: replay a run's draws (default: fresh ones,
    printed first)."""
    folder = Path(folder).resolve()
    files = sorted({c.file for c in CHECKS.values()})
    if not folder.is_dir() or not any((folder / f).is_file() for f in files):
        raise NnlabError(f"{folder}: none of the assignment's files ({', '.join(files)}); "
                         f"make them with: nnlab course init {folder}")
    names = chosen(folder, only, part)
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    out(f"checking {folder} (seed {seed}: --seed {seed} draws the same again)")
    results = run_checks(folder, names, seed, memory_mb, say=lambda r: out(r.line()))
    passed = sum(r.passed for r in results)
    out(f"{passed} of {len(results)} checks pass")
    return results
