"""Checkpoints: everything a run needs to continue, on disk (its atomic writes and checked
reads: :mod:`nnlab.engine.files`).

A checkpoint is one ``torch.save`` dict (see :class:`nnlab.engine.run.Run` for its keys),
written to a temporary file, flushed to the disk and renamed over its final name: a reader
sees the whole old file or the whole new one, never half. Checkpoints are numbered
``checkpoint-000012.pt``; the newest ``keep`` are kept. A file that cannot be read (truncated
by a full disk or a killed copy) is reported in one line and the previous one is used.
"""

from __future__ import annotations

import io
import pickle
import random
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnlab.engine.files import MAX_JSON_BYTES as MAX_JSON_BYTES  # re-exported: the files
from nnlab.engine.files import _no_link_out
from nnlab.engine.files import read_json as read_json
from nnlab.engine.files import write_atomic as write_atomic
from nnlab.engine.files import write_json_atomic as write_json_atomic
from nnlab.errors import NnlabError

PATTERN = re.compile(r"checkpoint-(\d+)\.pt$")


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (:func:`write_atomic`). Serialised in
    memory first: torch's own writer reports a full disk as an obscure RuntimeError."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_atomic(path, buffer.getvalue())


_ARRAY = "__numpy_array__"  # a NumPy array kept as a tensor and its dtype


def _plain(obj: Any) -> Any:
    """``obj`` with every NumPy array a tagged tensor and every NumPy scalar a Python number:
    what ``torch.load(weights_only=True)`` reads back without unpickling anything else."""
    if isinstance(obj, np.ndarray):
        wide = obj.astype(np.int64) if obj.dtype == np.uint32 else obj  # torch: no uint32 ops
        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(wide)), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _numpy(obj: Any) -> Any:
    """The inverse of :func:`_plain`."""
    if isinstance(obj, dict):
        if _ARRAY in obj:
            return obj[_ARRAY].numpy().astype(obj["dtype"])
        return {k: _numpy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_numpy(v) for v in obj)
    return obj


def save(obj: Any, path: str | Path) -> Path:
    """:func:`save_atomic` of a checkpoint or model file, NumPy arrays kept as tensors so
    that :func:`load` needs no unpickling."""
    return save_atomic(_plain(obj), path)


def load(path: str | Path) -> dict:
    """A checkpoint or model file nnlab wrote (onto the CPU). Read with
    ``weights_only=True``: tensors, numbers, strings and containers only, so a file from
    someone else can never run code; anything else raises NnlabError in one line."""
    path = Path(path)
    _no_link_out(path)
    try:
        return _numpy(torch.load(path, map_location="cpu", weights_only=True))
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise NnlabError(f"{path}: not a file nnlab reads safely (it holds more than tensors "
                         f"and numbers, or was written by an nnlab before 0.2): {first[:160]}"
                         ) from None


class Checkpoints:
    """The numbered checkpoints in ``folder``: save the next one, find the newest good one."""

    def __init__(self, folder: str | Path, keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = keep

    def paths(self) -> list[Path]:
        """Existing checkpoint files, oldest first."""
        found = [(int(m.group(1)), p) for p in self.folder.glob("checkpoint-*.pt")
                 if (m := PATTERN.search(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, state: dict, protect: Collection[Path] = ()) -> Path:
        """The next checkpoint; the oldest beyond ``keep`` are deleted, except those in
        ``protect`` (those a resume found, until all it loaded is in use again)."""
        for stale in self.folder.glob(".checkpoint-*.tmp"):  # left by a killed write
            stale.unlink(missing_ok=True)
        paths = self.paths()
        number = int(PATTERN.search(paths[-1].name).group(1)) + 1 if paths else 1
        path = save(state, self.folder / f"checkpoint-{number:06d}.pt")
        for old in self.paths()[:-self.keep]:
            if old not in protect:
                old.unlink(missing_ok=True)
        return path

    def latest(self) -> tuple[dict, Path] | None:
        """The newest checkpoint that loads, and its path; None when there is none. Each
        unreadable one is named in a warning line on stderr and kept in ``damaged``
        (path, what is wrong): when none loads, the caller says so (and deletes nothing)."""
        self.damaged: list[tuple[Path, str]] = []
        for path in reversed(self.paths()):
            try:
                state = load(path)
                if not isinstance(state, dict) or "progress" not in state:
                    raise ValueError("not an nnlab checkpoint")
                return state, path
            except Exception as e:  # truncated, corrupt or foreign: say so, try the previous
                why = ("holds more than tensors and numbers: not written by this nnlab"
                       if isinstance(e, NnlabError) else e.__class__.__name__)
                self.damaged.append((path, why))
                print(f"nnlab: warning: checkpoint {path} is unreadable ({why}); trying the "
                      "previous one", file=sys.stderr)
        return None


def check_weights(weights: Any, where: str | Path) -> dict:
    """``weights`` if it is a state dict (names -> tensors); one NnlabError naming ``where``
    otherwise."""
    if not isinstance(weights, dict) or not weights or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise NnlabError(f"{where}: its saved model is not a set of named tensors, so not a "
                         "model nnlab saved")
    return weights


def load_weights(model: Any, weights: dict, where: str | Path) -> Any:
    """``model`` (a module, or a function that builds one) with ``weights`` loaded; weights of
    other layers or shapes (a file that is not what it claims) are one NnlabError naming
    ``where``. A builder runs first on the meta device (no memory), so a config.json whose
    sizes are absurd is refused by comparing shapes before anything is allocated. Returns
    the model."""
    check_weights(weights, where)
    unfit = NnlabError(f"{where}: its saved model does not fit the network its config.json "
                       "describes (other layers or shapes)")
    if not isinstance(model, torch.nn.Module):
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in model().state_dict().items()}
        if shapes != {k: tuple(v.shape) for k, v in weights.items()}:
            raise unfit
        model = model()
    try:
        model.load_state_dict(weights)
    except RuntimeError:  # missing or unexpected keys, other shapes
        raise unfit from None
    return model


def state_key(phase: str, part: str) -> str:
    """The name of a phase's tracked object in a checkpoint's state: 'train.model',
    'adam.ema'. Written by the training drivers, read back by :func:`saved_model`."""
    return f"{phase}.{part}"


def load_model_file(path: Path) -> dict:
    """A ``model*.pt`` that :meth:`nnlab.engine.run.Run.save_model` wrote, checked: a dict
    with the model's named tensors and a ``data`` dict; one NnlabError naming it otherwise."""
    try:
        saved = load(path)
    except NnlabError:
        raise
    except Exception as e:  # truncated, not a torch file
        raise NnlabError(f"{path}: unreadable model file ({e.__class__.__name__})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("data"), dict):
        raise NnlabError(f"{path}: not a model file nnlab saved (no 'model' and 'data')")
    check_weights(saved.get("model"), path)
    return saved


def check_image_state(data: Any, where: str | Path) -> dict:
    """The data state an image classifier's model file keeps (``mean``/``std`` (3,) tensors,
    ``classes`` names, an optional square ``zca``), checked; one NnlabError naming ``where``
    and the field otherwise."""
    def bad(field: str, what: str) -> NnlabError:
        return NnlabError(f"{where}: its data state's {field!r} is not {what}")

    for key in ("mean", "std"):
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, torch.Tensor) or value.numel() != 3 or \
                not value.is_floating_point():
            raise bad(key, "3 numbers, one per colour channel")
    classes = data.get("classes")
    if not isinstance(classes, list | tuple) or len(classes) < 2 or \
            not all(isinstance(c, str) for c in classes):
        raise bad("classes", "a list of class names")
    size = data.get("image_size", 32)
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 256:
        raise bad("image_size", "a whole number of pixels from 8 to 256")
    zca = data.get("zca")
    if zca is not None and (not isinstance(zca, torch.Tensor) or zca.dim() != 2
                            or zca.shape[0] != zca.shape[1]):
        raise bad("zca", "a square matrix")
    return data


def saved_model(run_dir: Path, name: str = "model", phase: str = "train"
                ) -> tuple[dict, dict]:
    """(weights to evaluate, data state) of a run: from ``<name>.pt`` when the run finished,
    else from its newest good checkpoint (the EMA's weights when it has one)."""
    path = run_dir / f"{name}.pt"
    if path.exists():
        saved = load_model_file(path)
        return saved["model"], saved["data"]
    found = Checkpoints(run_dir).latest()
    if found is None:
        raise NnlabError(f"{run_dir}: no {name}.pt and no checkpoint to evaluate")
    state = found[0]["state"]
    if state_key(phase, "ema") in state:  # an AveragedModel: its module's weights, no count
        ema = state[state_key(phase, "ema")]
        weights = {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}
    elif state_key(phase, "model") in state:
        weights = state[state_key(phase, "model")]
    else:
        raise NnlabError(f"{run_dir}: its newest checkpoint has no {phase} model yet")
    return weights, found[0]["data"]



def open_saved(run_dir: Path, build: Any, name: str = "model", phase: str = "train",
               check_data: Any = None) -> tuple[Any, dict]:
    """(network with a run's saved weights, in eval mode; its data state): the one way a
    trained network is opened from a run folder. The weights are :func:`saved_model`'s
    (``<name>.pt``, else the newest checkpoint's); ``check_data(data, where)`` validates the
    data state first, and ``build(data)`` makes the untrained network they are loaded into
    (shapes compared before anything is allocated, see :func:`load_weights`)."""
    weights, data = saved_model(run_dir, name, phase)
    where = run_dir / f"{name}.pt" if (run_dir / f"{name}.pt").exists() else run_dir
    if check_data is not None:
        data = check_data(data, where)
    return load_weights(lambda: build(data), weights, where).eval(), data

# --------------------------------------------------------------------------- RNG states


def generator_state(gen: torch.Generator | np.random.Generator) -> Any:
    """A copy of a torch or NumPy generator's state."""
    if isinstance(gen, np.random.Generator):
        return gen.bit_generator.state
    return gen.get_state()


def set_generator_state(gen: torch.Generator | np.random.Generator, state: Any) -> None:
    if isinstance(gen, np.random.Generator):
        gen.bit_generator.state = state
    else:
        gen.set_state(state)


def global_rng_state() -> dict:
    """The process-wide generators: torch (CPU and CUDA), NumPy's legacy one, Python's."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
