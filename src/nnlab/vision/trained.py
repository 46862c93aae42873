"""A trained image classifier, opened from its run folder: :func:`load_trained`, the one way
``nnlab eval``, ``export``, ``predict``, ``nnlab.load`` and a distillation teacher reach a
run's weights. Nothing in the folder runs: the experiment is found by the name config.json
records (or the file the caller names), every file is validated before use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nnlab.engine import prepare
from nnlab.engine.checkpoint import check_image_state, open_saved
from nnlab.errors import NnlabError
from nnlab.registry import Experiment, experiment_of


@dataclass
class Trained:
    """A run's trained image classifier: ``net`` (in eval mode, on the CPU) takes normalised
    images (N, 3, S, S) (and whitened ones when ``data`` holds a ``zca``) to logits
    (N, classes); ``data`` is the run's data state (``mean``/``std`` (3,) in [0, 1] units,
    ``classes``, ``image_size``, an optional ``zca`` (3 S², 3 S²))."""

    experiment: Experiment
    config: Any  # the run's Config, resolved
    net: nn.Module
    data: dict[str, Any]
    model: str  # the model file's name without .pt: 'model', 'model-adam'
    run_dir: Path

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    @property
    def image_size(self) -> int:
        return self.data.get("image_size", 32)  # a model saved before other sizes: 32


def model_names(run_dir: Path) -> list[str]:
    """The saved models of a finished run: 'model', or one per phase ('model-adam')."""
    return sorted(p.stem for p in Path(run_dir).glob("model*.pt"))


def _model_file(run_dir: Path, model: str | None) -> str:
    names = model_names(run_dir)
    if model is not None:
        if model not in names:
            raise NnlabError(f"{run_dir}: no {model}.pt (it holds {', '.join(names) or 'none'})")
        return model
    if not names:
        raise NnlabError(f"{run_dir}: no saved model (model*.pt): give a finished run")
    if len(names) > 1:
        raise NnlabError(f"{run_dir} holds {len(names)} models ({', '.join(names)}); pick one "
                         "with --model")
    return names[0]


def load_trained(run_dir: str | Path, model: str | None = None,
                 experiment: str | Path | Experiment | None = None, *,
                 phase: str | None = None) -> Trained:
    """The trained classifier of the run in ``run_dir``: its experiment (as config.json names
    it, or ``experiment``: the ``.py`` file of one defined in a file), its resolved Config,
    ``model``'s weights (default: the run's one ``model*.pt``) in the network the experiment
    builds, and its checked data state.

    With ``phase`` (``nnlab eval``), a run still training is scored from its newest
    checkpoint's weights of that phase ('train', 'adam'...), ``model`` defaulting to 'model';
    without, the run must have finished (a ``model*.pt``). One NnlabError for anything that
    does not fit."""
    run_dir = Path(run_dir)
    exp, record = experiment_of(run_dir, experiment)
    if exp.build_model is None:
        raise NnlabError(f"a {exp.name} run is not an image classifier nnlab can evaluate, "
                         "export or run on image files")
    config = exp.resolve(prepare.config_from(exp, record))
    name = (model or "model") if phase is not None else _model_file(run_dir, model)
    net, data = open_saved(run_dir, lambda state: exp.build_model(config, len(state["classes"])),
                           name, phase or "train", check_image_state)
    return Trained(exp, config, net, data, name, run_dir)
