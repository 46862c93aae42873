"""``--impl DIR``: a student's own files (``nnlab course init DIR`` wrote them) trained in
place of nnlab's reference. A file is loaded only from a folder named on the command line
(nnlab never imports code a run folder names: a resume needs ``--impl`` again), with DIR
first on ``sys.path`` so its files import each other (``numpy_mlp.py``'s ``import modules``);
``config.json`` records the folder and a hash of every file used."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from nnlab.errors import ConfigError


def load(folder: str, run: Any, wanted: dict[str, tuple[str, ...]],
         optional: tuple[str, ...] = ()) -> dict[str, ModuleType]:
    """The files of ``wanted`` ({file name: the classes it must hold}) from ``folder``,
    imported, as {file name: module}; a file of ``optional`` that is not there is left out.
    ``run``'s config.json records the folder and each file's hash (``impl_code``)."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"--impl {folder}: no such folder (nnlab course init DIR writes "
                          "the files to complete)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    modules, hashes = {}, {}
    for file, classes in wanted.items():
        path = root / file
        if not path.is_file():
            if file in optional:
                continue
            raise ConfigError(f"--impl {folder}: no {file} there (nnlab course init DIR "
                              "writes one to complete)")
        name = f"nnlab_impl_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - whatever the student's file raises on import
            raise ConfigError(f"--impl {folder}: {file} fails to load ({type(e).__name__}: "
                              f"{str(e).strip()[:160]}); nnlab course check {folder} says "
                              "more") from None
        if missing := [c for c in classes if not hasattr(module, c)]:
            raise ConfigError(f"--impl {folder}: {file} has no {missing[0]} class")
        modules[file] = module
        hashes[file] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    run.record(impl_code={"path": str(root), "files": hashes, "sha256": hashlib.sha256(
        " ".join(f"{f}:{h}" for f, h in sorted(hashes.items())).encode()).hexdigest()[:16]})
    return modules


def in_place_of(reference: Any, build: Any, folder: str, file: str) -> Any:
    """A student's network built by ``build()`` (an ``nn.Module``) holding ``reference``'s
    weights: the same initial weights, and torch's random state left as if only the
    reference had been built (so the run draws its batches as nnlab's does)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        mine = build()
    try:
        mine.load_state_dict(reference.state_dict())
    except (RuntimeError, ValueError, AttributeError) as e:
        raise ConfigError(f"--impl {folder}: nnlab's initial weights do not load into "
                          f"{file}'s network ({str(e).splitlines()[0][:160]}); nnlab course "
                          f"check {folder} says why") from None
    return mine
