"""The experiment contract as a test you run on your own experiment (nnlab's own tests run it
on each of nnlab's):

    from nnlab.testing import check_experiment

    def test_my_experiment(tmp_path):
        check_experiment("path/to/my_experiment.py", tmp_path, data="path/to/images")

:func:`check_experiment` takes the record as ``nnlab run`` would and checks what every
experiment owes its users, each failure one AssertionError that says what broke."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnlab import api, registry
from nnlab.engine.checkpoint import Checkpoints
from nnlab.engine.history import flatten
from nnlab.registry import Experiment


def timed(key: str) -> bool:
    """Whether a metric measures time (seconds, throughputs, time ratios): it differs between
    any two runs, resumed or not."""
    return key.endswith("_s") or "wall_s" in key or "per_s" in key or "time_ratio" in key


def _timeless(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flatten(dict(metrics)).items() if not timed(k)}


def _record(experiment: str | Path | Experiment) -> Experiment:
    if isinstance(experiment, Experiment):
        registry.check(experiment)
        return experiment
    return registry.get(str(experiment))


def check_experiment(experiment: str | Path | Experiment, folder: str | Path,
                     **flags: Any) -> dict[str, Any]:
    """Run ``experiment`` (a name, a ``.py`` file or a record) with ``--quick`` and ``flags``
    in ``folder`` (a new or empty folder: a test's ``tmp_path``) and check that

    * the record is complete and its ``quick`` names fields of its Config;
    * the run writes ``config.json`` naming the experiment and ``metrics.json`` with
      finite, named numbers (nested blocks allowed);
    * the finished run is read back, not trained again, when run with ``resume``;
    * with its newest checkpoint and ``metrics.json`` removed (a run killed between two
      checkpoints), ``resume`` goes on from the checkpoint before and ends with the same
      metrics, times aside (exact resume);
    * ``evaluate``, when the record has one, scores the saved run in numbers;
    * ``build_model``, when given, makes a model that ``nnlab.load`` opens and that predicts
      one class per image of the run's size.

    Returns the metrics of the run. The folder keeps the run for a closer look."""
    exp = _record(experiment)
    folder = Path(folder)
    out = folder / "run"
    metrics = api.execute(exp, flags, out=out, quick=True, checkpoint_every=1,
                          progress=False).metrics
    record = json.loads((out / "config.json").read_text())
    assert record.get("experiment") == exp.name, \
        f"{exp.name}: config.json names experiment {record.get('experiment')!r}"
    assert (out / "metrics.json").is_file(), f"{exp.name}: the run wrote no metrics.json"
    numbers = flatten(json.loads((out / "metrics.json").read_text()))
    assert numbers, f"{exp.name}: metrics.json holds no numbers"
    bad = [k for k, v in numbers.items() if not math.isfinite(v)]
    assert not bad, f"{exp.name}: metrics.json's {bad[0]} is {numbers[bad[0]]}"

    again = api.execute(exp, {}, resume=out, progress=False)
    assert not again.trained, f"{exp.name}: resuming a finished run trained it again"

    checkpoints = Checkpoints(out).paths()
    if len(checkpoints) >= 2:  # killed after its last checkpoint but one
        (out / "metrics.json").unlink()
        checkpoints[-1].unlink()
        resumed = api.execute(exp, {}, resume=out, progress=False).metrics
        assert _timeless(resumed) == _timeless(metrics), \
            f"{exp.name}: resumed from its checkpoint before the last, it ended elsewhere: " \
            f"{_first_difference(_timeless(metrics), _timeless(resumed))}"

    if exp.evaluate is not None:
        scores = flatten(api.evaluate(out, experiment=exp))
        assert scores and all(math.isfinite(v) for v in scores.values()), \
            f"{exp.name}: nnlab eval gave {scores}"
    if exp.build_model is not None:
        _check_model(exp, out)
    return metrics


def _check_model(exp: Experiment, out: Path) -> None:
    import torch

    from nnlab.vision.trained import model_names

    for name in model_names(out):
        model = api.load(out, model=name, experiment=exp)
        size = model.image_size
        said = model.predict(torch.rand(2, 3, size, size) * 255)
        assert len(said) == 2 and all(p.name in model.classes for p in said), \
            f"{exp.name}: {name}.pt predicts {said}"


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key} {a.get(key)!r} before, {b.get(key)!r} after"
    return "no key differs"


__all__ = ["check_experiment"]
