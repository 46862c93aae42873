"""Before a run writes anything: its folder and its config, checked in one place.

A new run gets a free folder (or, with ``overwrite``, an earlier run's, cleared) and the config
its flags make (``quick`` defaults first, given flags win). A resumed run gets the config it
started with, read back from its ``config.json``, plus the changes a resume allows: anything
else that differs is refused, naming the flag. Every refusal is one line (NnlabError) before
any folder is made or data loaded. The CLI and :func:`nnlab.run` both come through here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nnlab.config import flag_name, migrate, shown, validate
from nnlab.engine.files import read_json
from nnlab.errors import ConfigError, NnlabError

# A resumed run keeps its config; these may still change (what it reads, where it runs),
# and these may grow (a finished run extended, when its schedule allows).
MAY_CHANGE_ON_RESUME = ("data", "device")
EXTENDS = ("epochs", "steps")


def check_out(out: Path, flag: str = "--out") -> None:
    """Refuse a folder nnlab could not write in: one under a file, or in a folder without
    write permission."""
    parent = Path(out).absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NnlabError(f"{flag} {out}: {parent} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nnlab-probe-", dir=parent))
    except OSError as e:
        raise NnlabError(f"{flag} {out}: cannot write in {parent} ({e.strerror})") from None


def check_data(data: str | None, flag: str = "--data") -> None:
    """A data path given must exist (checked before anything else touches the disk);
    ``cifar10`` names the official release (read from its default place, downloaded there
    when missing)."""
    if data and data != "cifar10" and not Path(data).expanduser().exists():
        raise NnlabError(f"{flag} {data}: no such file or folder")


LOCK = ".nnlab.lock"  # in a run folder: held by the one process that writes in it
_held: dict[Path, int] = {}  # folder -> open descriptor of its lock, for the process's life


def lock(folder: Path) -> None:
    """Make this process the one writer of ``folder`` (created if need be): an exclusive
    ``flock`` on ``folder/.nnlab.lock``, held until the process ends, when the kernel lets
    it go (so a killed run leaves no stale lock). A folder another process holds is refused
    in one line that names its PID and host."""
    folder = Path(folder).absolute()
    if folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        for _ in range(100):  # the holder writes its PID just after taking the lock
            if holder := os.pread(fd, 200, 0).decode(errors="replace").strip():
                break
            time.sleep(0.01)
        os.close(fd)
        holder = holder or "another process"
        raise NnlabError(f"{folder} is in use by {holder}: one process writes in a run "
                         "folder at a time; wait for it, or stop it") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[folder] = fd


def unlock(folder: Path) -> None:
    """Let go of a folder this process locked (a run that refused to start in it)."""
    if (fd := _held.pop(Path(folder).absolute(), None)) is not None:
        os.close(fd)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """:func:`lock` for the block's duration."""
    lock(folder)
    try:
        yield
    finally:
        unlock(folder)


def contents(folder: Path) -> list[Path]:
    """What a folder holds, its lock file aside."""
    return [p for p in folder.iterdir() if p.name != LOCK] if folder.is_dir() else []


# What a run writes in its folder (and in the folders of its seeds and sub-runs): the only
# names --overwrite deletes.
RUN_FILES = ("config.json", "metrics.json", "metrics.before-resume.json", "history*.csv",
             "checkpoint-*.pt", "model*.pt", "*.png", "eval-*.json", ".*.tmp", LOCK)
RUN_FOLDERS = ("tensorboard", "export")  # written whole by nnlab (TensorBoard, nnlab export)


def is_run_folder(folder: Path) -> bool:
    """True when ``folder`` holds a config.json that nnlab wrote: a JSON object that names
    its experiment and config format (a file merely called config.json is not enough)."""
    path = Path(folder) / "config.json"
    if not path.is_file() or path.is_symlink():
        return False
    try:
        record = read_json(path)
    except NnlabError:
        return False
    return isinstance(record.get("experiment"), str) and \
        isinstance(record.get("config_format"), int)


def not_written_by_a_run(folder: Path) -> list[Path]:
    """What in a run folder no run writes: anything but :data:`RUN_FILES`, the folders of
    :data:`RUN_FOLDERS` and sub-folders that are runs themselves (seeds, datasets, sweeps),
    each checked the same way. Links are never a run's."""
    foreign = []
    for path in sorted(Path(folder).iterdir()):
        if path.is_symlink():
            foreign.append(path)
        elif path.is_dir():
            if path.name in RUN_FOLDERS:
                continue
            if is_run_folder(path):
                foreign += not_written_by_a_run(path)
            else:
                foreign.append(path)
        elif not any(path.match(pattern) for pattern in RUN_FILES):
            foreign.append(path)
    return foreign


def _listed(paths: list[Path], most: int = 3) -> str:
    names = [p.name + ("/" if p.is_dir() and not p.is_symlink() else "") for p in paths]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most
                                      else "")


def remove(path: Path) -> None:
    """Delete a file, a link (never what it points to) or a folder."""
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def new_folder(name: str, out: Path | None, overwrite: bool) -> Path:
    """The folder of a new run: free, or cleared with ``overwrite`` when it holds a run
    (default: runs/<name>/<timestamp>)."""
    if out is None:
        out = Path("runs") / Path(name).stem / time.strftime("%Y%m%d-%H%M%S")
        while out.exists():  # two runs in the same second
            out = out.with_name(out.name + "-1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NnlabError(f"--out {out} exists and is not a folder")
    check_out(out)
    existed = out.is_dir()
    lock(out)  # before looking inside: two runs into one --out cannot both find it empty
    try:
        if held := contents(out):
            if not overwrite:
                raise NnlabError(f"--out {out} is not empty; pass --overwrite to write over "
                                 "it, or choose another folder")
            if not is_run_folder(out):
                raise NnlabError(f"--out {out} holds files that are not an nnlab run "
                                 f"({_listed(sorted(held))}); --overwrite clears only run folders")
            if foreign := not_written_by_a_run(out):
                raise NnlabError(f"--out {out} holds an nnlab run and files no run writes "
                                 f"({_listed(foreign)}); --overwrite deletes only what nnlab "
                                 "wrote: move them, or choose another folder")
            for path in held:  # never a folder mixing two runs (the lock stays)
                remove(path)
    except NnlabError:
        unlock(out)
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def recorded(run_dir: Path) -> dict:
    """A run folder's config.json; one line when it is missing or not JSON."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise NnlabError(f"{run_dir}: no config.json; not an nnlab run folder")
    record = read_json(path)
    if "experiment" in record and not isinstance(record["experiment"], str):
        raise NnlabError(f"{path}: its field 'experiment' is not a name")
    return record


def config_from(exp: Any, record: Mapping[str, Any]) -> Any:
    """The Config of experiment ``exp`` that a config.json records."""
    try:
        config = exp.Config(**migrate(exp.Config, dict(record)))
        validate(config)  # types and bounds, whatever the class's __post_init__ does
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # ConfigError included
        raise NnlabError(f"config.json does not fit this nnlab's {exp.name} "
                         f"({str(e).strip()[:200]})") from None
    return config


def new_config(exp: Any, given: Mapping[str, Any], quick: bool = False) -> Any:
    """The Config of a new run from the flags given: ``quick`` is a set of defaults that a
    flag given wins over. ConfigError (naming the flag) on a bad value or an unknown flag."""
    fields = {f.name for f in dataclasses.fields(exp.Config)}
    if unknown := sorted(set(given) - fields):
        raise ConfigError(f"{exp.name} has no flag --{flag_name(unknown[0])}; see "
                          f"nnlab run {exp.name} --help")
    config = exp.Config(**{**(exp.quick if quick else {}), **given})
    validate(config)  # the declared types and bounds, whatever the class's __post_init__ does
    return config


def resumed_config(exp: Any, run_dir: Path, given: Mapping[str, Any],
                   record: Mapping[str, Any]) -> Any:
    """The config a run started with (``record``, its config.json), plus the changes a resume
    allows: --epochs/--steps may grow (when the experiment's schedule can be extended),
    --data and --device may change; anything else that differs is refused, naming the flag."""
    if "experiment" not in record:
        raise NnlabError(f"--resume {run_dir}: written by an nnlab older than checkpoints "
                         "(its config.json names no experiment); it cannot be resumed")
    if record["experiment"] != exp.name:
        raise NnlabError(f"--resume {run_dir}: that folder holds a {record['experiment']} "
                         f"run, not {exp.name}")
    config = config_from(exp, record)
    fields = {f.name for f in dataclasses.fields(exp.Config)}
    if unknown := sorted(set(given) - fields):
        raise ConfigError(f"{exp.name} has no flag --{flag_name(unknown[0])}")
    for f in dataclasses.fields(exp.Config):  # a user's code is imported only when named
        if f.metadata.get("code") and getattr(config, f.name) and f.name not in given:
            flag = f"--{flag_name(f.name)}"
            raise NnlabError(f"--resume {run_dir}: this run trained the code in "
                             f"{getattr(config, f.name)}; nnlab never imports code that a run "
                             f"folder names: give {flag} again to go on with it")
    changes = {}
    for name, value in given.items():
        old = getattr(config, name)
        new = getattr(dataclasses.replace(config, **{name: value}), name)  # as the run stores it
        if new == old or name in MAY_CHANGE_ON_RESUME:
            changes[name] = value
            continue
        flag = f"--{flag_name(name)}"
        if name not in EXTENDS:
            raise NnlabError(f"--resume: {flag} {shown(new)} differs from the run's "
                             f"{shown(old)}; a resumed run keeps the config it started with "
                             "(only --epochs/--steps may grow, --data and --device may change)")
        if new < old:
            raise NnlabError(f"--resume: {flag} may only grow (the run's is {old})")
        if not exp.extendable(config):
            raise NnlabError(f"--resume: {flag}: this run's learning-rate schedule is planned "
                             "for its length, so it cannot be extended; start a new run")
        changes[name] = value
    return dataclasses.replace(config, **changes)
