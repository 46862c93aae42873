"""The experiment contract, and the registry that holds every experiment nnlab can run.

It sits below every experiment (``nnlab.experiments`` re-exports it, and :mod:`nnlab.vision`
builds its records with it), so that no import runs back up.

An experiment is one :class:`Experiment` record. Every caller (the CLI, ``nnlab.run``, seeds,
``reproduce``, ``eval``, ``report``) reads the record; none checks an experiment's name or
probes a module for attributes. Three places supply records:

* nnlab's own experiments (``BUILTIN``: one module each, its record named ``EXPERIMENT``);
* installed packages, through the ``nnlab.experiments`` entry-point group
  (``[project.entry-points."nnlab.experiments"] resnet = "mypkg.resnet:EXPERIMENT"``);
* a file: ``nnlab run path/to/file.py`` runs the record named ``EXPERIMENT`` in it.

A record missing a required part, or with a part of the wrong kind, is refused when it is
loaded, in one line that names the part.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from nnlab.errors import NnlabError

ENTRY_POINT_GROUP = "nnlab.experiments"
# nnlab's own: name -> (module holding EXPERIMENT, description). The descriptions live here
# (the records take them from here) so that `nnlab list` and `--help` import no torch.
BUILTIN: dict[str, tuple[str, str]] = {
    "toy": ("nnlab.experiments.toy",
            "NumPy MLP vs PyTorch MLP on moons/circles/blobs, from the same weights (Part I.1-2)"),
    "cifar-mlp": ("nnlab.experiments.cifar_mlp",
                  "the strongest pure MLP on CIFAR-10 (recipe best) beside the study's "
                  "(recipe study) (Part I.3)"),
    "cifar-cnn": ("nnlab.experiments.cifar_cnn",
                  "the study's reduced VGG on CIFAR-10, Adam vs SGD from the same weights "
                  "(Part II)"),
    "cifar-speedrun": ("nnlab.experiments.cifar_speedrun",
                       "a compact CNN and recipe for time-to-accuracy on CIFAR-10 "
                       "(patch whitening, Muon + Nesterov SGD, TTA)"),
    "palindrome": ("nnlab.experiments.palindrome",
                   "hand-written RNN/LSTM/GRU recalling a palindrome's first digit, by length T "
                   "(Part III)"),
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def _always(config: Any) -> bool:
    return True


def _as_is(config: Any) -> Any:
    return config


def _validation(config: Any) -> str:
    return "val"


def generic_summary(metrics: Mapping[str, Any]) -> str:
    """One line of every number in ``metrics`` (nested blocks as ``block.key``)."""
    from nnlab.engine.history import flatten  # here: `nnlab list` does not import the engine

    return ", ".join(f"{k} {v:.4g}" for k, v in flatten(dict(metrics)).items())


@dataclass(frozen=True)
class Experiment:
    """What an experiment is: the one record nnlab reads about it.

    Required:
        name: the CLI name (``nnlab run NAME``): lower case, digits, ``-`` and ``_``.
        description: one line for ``nnlab list`` and ``--help``.
        Config: a dataclass whose fields are the flags (see `nnlab.config.option`);
            checks its values in ``__post_init__`` and raises ConfigError naming the flag.
        train: ``train(config, run) -> metrics``: builds the model and data, hands what must
            survive a restart to ``run.track``, calls an engine driver, returns a dict of
            named numbers (``val_acc``, ``test_acc``, ``wall_s``...). Everything else (the
            folder, checkpoints, resume, signals, progress, TensorBoard, ``metrics.json``) is
            the engine's.

    Optional:
        summarize: ``metrics -> str``, the lines ``nnlab run`` prints at the end
            (default: every number on one line).
        quick: the defaults of ``--quick``, a smoke run in seconds (flags given still win).
        evaluate: ``evaluate(run_dir, config, split, tta, data) -> metrics`` for
            ``nnlab eval``; None: ``nnlab eval`` says this experiment has no evaluation.
        build_model: ``(config, n_classes) -> nn.Module``, the untrained image classifier
            whose weights a run's ``model*.pt`` holds (inputs: normalised (N, 3, 32, 32)
            images; ``n_classes``: as many as the run's data had), for ``nnlab eval``,
            ``nnlab export`` and ``nnlab predict``; None: none of them applies.
        held_out: ``config -> 'val' | 'test'``, the split a run reports and ``nnlab eval``
            uses by default (default: 'val').
        plot_seeds: ``plot_seeds(out_dir, runs)``, a figure across the seeds of ``--seeds N``.
        needs_cifar: takes CIFAR-10 (a ``data`` field): ``reproduce --data`` is passed on,
            and a missing copy is reported before anything runs.
        devices: its Config's ``device`` and ``precision`` fields pick where and how it
            trains; False: CPU and fp32 (small models, where the CPU is fastest). Default:
            derived from the fields (True when the Config has both).
        extendable: ``config -> bool``, whether ``--resume`` may raise ``--epochs`` (or
            ``--steps``) of a run: not when its schedule is planned for its length.
        resolve: ``config -> config`` with every "the recipe's value" (None) filled in, so
            that config.json records what runs.
        checkpoint_every: the default of ``--checkpoint-every`` (epochs, or evaluations).
        budget: a :class:`nnlab.engine.budget.Budget` (its sizes with their measured
            accuracy, and a probe of what an epoch of each costs here): ``--time-budget``
            then plans the run; None: ``--time-budget`` says this experiment has no plan.
        source: where the record came from (set by the registry; ``nnlab list`` shows it).
    """

    name: str
    description: str
    Config: type
    train: Callable[..., dict]
    summarize: Callable[[dict], str] = generic_summary
    quick: Mapping[str, Any] = field(default_factory=dict)
    evaluate: Callable[..., dict] | None = None
    build_model: Callable[[Any, int], Any] | None = None
    held_out: Callable[[Any], str] = _validation
    plot_seeds: Callable[[Path, list], None] | None = None
    needs_cifar: bool = False
    devices: bool | None = None  # None: derived from the Config's fields
    extendable: Callable[[Any], bool] = _always
    resolve: Callable[[Any], Any] = _as_is
    checkpoint_every: int = 1
    budget: Any = None
    source: str = "nnlab"

    def __post_init__(self) -> None:
        if self.devices is None and dataclasses.is_dataclass(self.Config):
            fields = {f.name for f in dataclasses.fields(self.Config)}
            object.__setattr__(self, "devices", {"device", "precision"} <= fields)
        check(self)


def check(exp: Experiment) -> None:
    """Refuse a record that cannot work, in one line naming the part (NnlabError)."""
    where = f"experiment {exp.name!r}" + (f" ({exp.source})" if exp.source != "nnlab" else "")
    if not isinstance(exp.name, str) or not _NAME.match(exp.name):
        raise NnlabError(f"{where}: name must be lower case letters, digits, '-' or '_'")
    if not isinstance(exp.description, str) or not exp.description.strip():
        raise NnlabError(f"{where}: description must be a line of text")
    if not dataclasses.is_dataclass(exp.Config) or not isinstance(exp.Config, type):
        raise NnlabError(f"{where}: Config must be a dataclass (its fields are the flags)")
    fields = {f.name for f in dataclasses.fields(exp.Config)}
    for part in ("train", "summarize", "held_out", "extendable", "resolve"):
        if not callable(getattr(exp, part)):
            raise NnlabError(f"{where}: {part} must be a function")
    for part in ("evaluate", "plot_seeds", "build_model"):
        if getattr(exp, part) is not None and not callable(getattr(exp, part)):
            raise NnlabError(f"{where}: {part} must be a function or None")
    if unknown := sorted(set(exp.quick) - fields):
        raise NnlabError(f"{where}: quick sets {unknown[0]!r}, which is no field of its Config")
    needed = {"data"} if exp.needs_cifar else set()
    needed |= {"device", "precision"} if exp.devices else set()
    if missing := sorted(needed - fields):
        raise NnlabError(f"{where}: its Config needs a {missing[0]!r} field "
                         f"({'needs_cifar' if missing[0] == 'data' else 'devices'} is set)")
    if exp.budget is not None:
        from nnlab.engine.budget import Budget

        if not isinstance(exp.budget, Budget):
            raise NnlabError(f"{where}: budget must be an nnlab.engine.budget.Budget or None")
    if not isinstance(exp.checkpoint_every, int) or exp.checkpoint_every < 1:
        raise NnlabError(f"{where}: checkpoint_every must be a whole number >= 1")


def _build(source: str, make: Callable[[], Any]) -> Experiment:
    """The record ``make()`` returns, with its source; one line for anything that fails."""
    try:
        record = make()
    except NnlabError as e:
        raise NnlabError(f"{source}: {e}") from None
    except TypeError as e:  # Experiment(...) without a required part, say
        missing = re.search(r"missing .*?argument[s]?: (.+)$", str(e))
        what = f"its Experiment lacks {missing.group(1)}" if missing else str(e)
        raise NnlabError(f"{source}: {what}") from None
    except (ImportError, AttributeError, SyntaxError) as e:
        raise NnlabError(f"{source}: cannot load it ({type(e).__name__}: {e})") from None
    if not isinstance(record, Experiment):
        raise NnlabError(f"{source}: EXPERIMENT is a {type(record).__name__}, "
                         "not an nnlab.experiments.Experiment")
    return dataclasses.replace(record, source=source)


def _plugins() -> dict[str, Any]:
    """Entry points of the ``nnlab.experiments`` group: name -> entry point."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)
            if ep.name not in BUILTIN}


def names() -> list[str]:
    """Every experiment nnlab knows: its own, then installed plugins'."""
    return [*BUILTIN, *sorted(_plugins())]


_loaded: dict[str, Experiment] = {}


def get(name: str) -> Experiment:
    """The record of experiment ``name`` (or of a ``.py`` file), loaded and checked once."""
    if name in _loaded:
        return _loaded[name]
    if name in BUILTIN:
        exp = _build("nnlab", lambda: importlib.import_module(BUILTIN[name][0]).EXPERIMENT)
    elif name in (plugins := _plugins()):
        ep = plugins[name]
        dist = getattr(ep.dist, "name", None) or ep.value
        exp = _build(f"plugin {dist}", ep.load)
    elif name.endswith(".py"):
        exp = from_file(name)
    else:
        raise NnlabError(f"no experiment named {name!r}; nnlab knows {', '.join(names())} "
                         "(or give a .py file that defines EXPERIMENT)")
    _loaded[name] = _loaded[exp.name] = exp
    return exp


def from_file(path: str | Path) -> Experiment:
    """The ``EXPERIMENT`` record defined in a Python file (``nnlab run path/to/file.py``)."""
    path = Path(path)
    if not path.is_file():
        raise NnlabError(f"{path}: no such file")
    path = path.resolve()
    module_name = f"nnlab_user_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}"

    def load() -> Any:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and spawned --jobs workers look here
        spec.loader.exec_module(module)
        return module.EXPERIMENT

    return _build(f"file {path}", load)


def reference(exp: Experiment) -> str:
    """What :func:`get` takes to load ``exp`` again (in another process): its name, or the
    file it came from. A record made in code and never registered has none."""
    if exp.source.startswith("file ") or exp.name in BUILTIN or \
            exp.source.startswith("plugin "):
        return reference_or_name(exp)
    raise NnlabError(f"experiment {exp.name!r} was made in code: --jobs > 1 needs one that "
                     "nnlab can load again (built in, a plugin, or a .py file)")


def listing() -> list[tuple[str, str, str]]:
    """(name, description, source) of every experiment; nnlab's own are not imported."""
    return [(n, BUILTIN[n][1], "nnlab") if n in BUILTIN else
            (n, (e := get(n)).description, e.source) for n in names()]


def reference_or_name(exp: Experiment) -> str:
    """How a command names ``exp``: its file, or its name."""
    return exp.source[len("file "):] if exp.source.startswith("file ") else exp.name


def flags_of(name: str) -> tuple[type, Mapping[str, Any]]:
    """(Config, quick defaults) of experiment ``name``: what ``nnlab run NAME --help`` shows.
    nnlab's own are read from their torch-free ``nnlab.experiments.configs`` modules, without
    loading the experiment."""
    if name in BUILTIN:
        module = importlib.import_module(
            "nnlab.experiments.configs." + BUILTIN[name][0].rsplit(".", 1)[1])
        return module.Config, module.QUICK
    exp = get(name)
    return exp.Config, exp.quick


def describe(name: str) -> str:
    """The one-line description of experiment ``name`` (nnlab's own without importing it)."""
    return BUILTIN[name][1] if name in BUILTIN else get(name).description


def experiment_of(run_dir: str | Path, experiment: str | Path | Experiment | None = None
                  ) -> tuple[Experiment, dict]:
    """The record of the experiment that made a run folder, and its config.json.

    Nothing a run folder names is imported: an experiment nnlab knows (built in or an
    installed plugin) is found by the name config.json records; one defined in a file is
    used only when the caller names that file (``experiment``, the CLI's ``--experiment
    FILE.py``), and the folder must hold a run of it."""
    from nnlab.engine import prepare

    record = prepare.recorded(Path(run_dir))
    name = record.get("experiment")
    if name is None:
        raise NnlabError(f"{run_dir}: its config.json names no experiment (written by an "
                         "nnlab older than checkpoints)")
    if experiment is not None:
        exp = experiment if isinstance(experiment, Experiment) else \
            get(str(experiment))
        if exp.name != name:
            raise NnlabError(f"{run_dir} holds a run of {name!r}, but {experiment} defines "
                             f"{exp.name!r}")
        return exp, record
    if name in names():
        return get(name), record
    if isinstance(record.get("experiment_file"), str):
        raise NnlabError(f"{run_dir}: a run of {name!r}, defined in a file; nnlab never "
                         "imports a file that a run folder names: give the file yourself "
                         f"with --experiment FILE.py (it was {record['experiment_file']!r})")
    raise NnlabError(f"{run_dir}: a run of {name!r}, an experiment this nnlab does not know; "
                     "install the package that provides it, or give the file that defines it "
                     "with --experiment FILE.py")
