"""The experiment contract and the Python API: a record is all nnlab needs to run, resume and
evaluate an experiment, whether it is nnlab's own, a plugin's, a file's or made in code; a
record that lacks a part is refused in one line; ``nnlab.run`` and ``nnlab.launch`` behave as
the CLI does. One smoke test covers every experiment the registry knows, the example too."""

import dataclasses
import json
from pathlib import Path

import pytest
from fakes import kill_then_resume, same_results

import nnlab
from nnlab import experiments, registry
from nnlab.cli import main
from nnlab.testing import check_experiment

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "resnet_cifar.py")
SUBCLASSED = str(Path(EXAMPLE).with_name("frozen_stem.py"))  # a recipe with its own hooks
EVERY = [*experiments.names(), EXAMPLE, SUBCLASSED]
# quick runs: the VGG's is the slowest, and test_cifar_cnn runs it quick already
QUICK_RUNS = [pytest.param(n, marks=pytest.mark.slow) if n == "cifar-cnn" else n for n in EVERY]

TINY = '''
from dataclasses import dataclass

import torch

from nnlab import Experiment, TorchStep, option, train_epochs


@dataclass
class Config:
    epochs: int = option(3, "passes over the data", gt=0)
    seed: int = option(0, "seeds the data and the weights")


def train(cfg, run):
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(64, 4, generator=gen)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(cfg.seed)
    model = torch.nn.Linear(4, 2)
    step = TorchStep(model, torch.optim.SGD(model.parameters(), lr=0.5))
    history = train_epochs(step, lambda epoch: [(x, y)], cfg.epochs, run=run,
                           history_path=run.out / "history.csv")
    return {"train_acc": history.last["train_acc"], "epochs": cfg.epochs}


EXPERIMENT = Experiment(name="tiny", description="a linear classifier, from a plugin",
                        Config=Config, train=train, quick={"epochs": 2})
'''


@pytest.fixture
def fresh_registry(monkeypatch):
    """Records loaded by one test are not seen by the next."""
    monkeypatch.setattr(registry, "_loaded", {})


@pytest.fixture
def plugin(tmp_path, monkeypatch, fresh_registry):
    """A package 'tinyplug' installed the way pip leaves one: a module and a dist-info whose
    entry_points.txt names its experiment in the nnlab.experiments group."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "tinyplug.py").write_text(TINY)
    info = site / "tinyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nnlab.experiments]\ntiny = tinyplug:EXPERIMENT\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_plugin_is_listed_run_with_seeds_and_evaluated(plugin, tmp_path, capsys):
    assert main(["list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny")]
    assert listed and listed[0].endswith("[plugin tinyplug]")
    assert main(["run", "tiny", "--quick", "--out", str(tmp_path / "one")]) == 0
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["epochs"] == 2
    assert main(["run", "tiny", "--seeds", "2", "--out", str(tmp_path / "two")]) == 0
    summary = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert summary["n_seeds"] == 2 and "train_acc_mean" in summary
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "one")]) == 1
    assert capsys.readouterr().err.strip() == (
        "nnlab: error: a tiny run has no separate evaluation: nnlab run evaluates it in full "
        "(see its metrics.json)")


def test_the_report_shows_a_plugin_run_with_its_metrics_and_figures(plugin, tmp_path):
    from nnlab.study.report import build

    runs = tmp_path / "runs"
    assert main(["run", "tiny", "--quick", "--out", str(runs / "linear")]) == 0
    md = (build(runs).parent / "index.md").read_text()
    assert "## linear: tiny" in md and "a linear classifier, from a plugin" in md
    assert f"→ `{runs / 'linear'}`" in md and "| train_acc |" in md
    assert "![linear: curves](figures/" in md  # drawn from its history.csv
    assert sorted(p.name for p in (runs / "linear").iterdir()) == [
        ".nnlab.lock", "checkpoint-000001.pt", "checkpoint-000002.pt", "config.json",
        "curves.png", "history.csv", "metrics.json"]  # the report wrote nothing there (the
    # run drew curves.png from its history, as every run whose experiment draws none)


def test_eval_of_a_run_whose_experiment_is_gone_names_the_cause(plugin, tmp_path, capsys,
                                                                 monkeypatch):
    assert main(["run", "tiny", "--quick", "--out", str(tmp_path / "r")]) == 0
    monkeypatch.setattr(registry, "_plugins", dict)  # the package uninstalled
    monkeypatch.setattr(registry, "_loaded", {})
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "an experiment this nnlab does not know" in err
    assert "older" not in err


@pytest.mark.parametrize("body, part", [
    ('EXPERIMENT = Experiment(name="x", description="y", Config=Config)', "'train'"),
    ('EXPERIMENT = Experiment(name="x", description="y", Config=Config, train=1)',
     "train must be a function"),
    ('EXPERIMENT = Experiment(name="x", description="y", Config=dict, train=print)',
     "Config must be a dataclass"),
    ('EXPERIMENT = Experiment(name="x", description="y", Config=Config, train=print, '
     'quick={"nope": 1})', "quick sets 'nope'"),
    ('EXPERIMENT = Experiment(name="X Y", description="y", Config=Config, train=print)',
     "name must be"),
    ("EXPERIMENT = 42", "EXPERIMENT is a int"),
    ("", "cannot load it"),
])
def test_a_record_missing_a_part_is_refused_in_one_line(body, part, tmp_path, capsys,
                                                       fresh_registry):
    path = tmp_path / "bad.py"
    path.write_text("from dataclasses import dataclass\nfrom nnlab import Experiment\n\n\n"
                    "@dataclass\nclass Config:\n    seed: int = 0\n\n\n" + body + "\n")
    assert main(["run", str(path), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and part in err and str(path) in err, err
    assert not (tmp_path / "r").exists()


def test_nnlab_run_is_the_cli_twin(tmp_path):
    metrics = nnlab.run("toy", out=tmp_path / "x", epochs=5, progress=False)
    assert 0 <= metrics["torch"]["test_acc"] <= 1
    assert json.loads((tmp_path / "x" / "config.json").read_text())["epochs"] == 5
    with pytest.raises(nnlab.ConfigError) as bad:
        nnlab.run("toy", out=tmp_path / "y", epochs=0)
    assert str(bad.value) == "--epochs must be > 0, got 0"
    with pytest.raises(nnlab.ConfigError, match="toy has no flag --widths"):
        nnlab.run("toy", out=tmp_path / "y", widths=(8,))
    with pytest.raises(nnlab.NnlabError, match="no experiment named 'nope'"):
        nnlab.run("nope")
    with pytest.raises(nnlab.NnlabError, match="is not empty"):
        nnlab.run("toy", out=tmp_path / "x", epochs=5)  # an earlier run is never lost
    assert not (tmp_path / "y").exists()


@dataclasses.dataclass
class MyConfig:
    epochs: int = 4
    seed: int = 0


def my_train(cfg: MyConfig, run) -> dict:
    """A linear classifier of one's own."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(32, 3, generator=gen)
    y = (x.sum(1) > 0).long()
    torch.manual_seed(cfg.seed)
    model = torch.nn.Linear(3, 2)
    step = nnlab.TorchStep(model, torch.optim.SGD(model.parameters(), lr=0.3))
    history = nnlab.train_epochs(step, lambda epoch: [(x, y)], cfg.epochs, run=run)
    return {"train_loss": history.last["train_loss"]}


def test_launch_trains_your_own_function_durably(tmp_path):
    first = nnlab.launch(my_train, MyConfig(epochs=2), tmp_path / "mine", progress=False)
    assert sorted(p.name for p in (tmp_path / "mine").glob("checkpoint-*.pt")) == [
        "checkpoint-000001.pt", "checkpoint-000002.pt"]
    assert json.loads((tmp_path / "mine" / "config.json").read_text())["experiment"] == \
        "my-train"
    # extended by resume to 4 epochs: the same numbers as 4 epochs straight
    longer = nnlab.launch(my_train, MyConfig(epochs=4), progress=False,
                          resume=tmp_path / "mine")
    straight = nnlab.launch(my_train, MyConfig(epochs=4), tmp_path / "straight",
                            progress=False)
    assert longer == straight and longer != first
    seeds = nnlab.launch(my_train, MyConfig(), tmp_path / "seeds", seeds=2, progress=False)
    assert seeds["n_seeds"] == 2 and seeds["train_loss_n"] == 2
    with pytest.raises(nnlab.ConfigError, match="dataclass instance"):
        nnlab.launch(my_train, {"epochs": 2}, tmp_path / "bad")


def test_a_checkpoint_of_another_experiment_is_refused(tmp_path, capsys):
    """A run folder whose config.json was edited to name another experiment: the checkpoint
    says what it is, and both are named."""
    assert main(["run", "toy", "--quick", "--checkpoint-every", "5", "--epochs", "10",
                 "--dataset", "moons", "--out", str(tmp_path / "r")]) == 0
    (tmp_path / "r" / "metrics.json").unlink()
    from nnlab.engine import checkpoint as ckpt

    newest = ckpt.Checkpoints(tmp_path / "r").paths()[-1]
    state = ckpt.load(newest)
    ckpt.save({**state, "format": 99}, newest)
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert "checkpoint format 99, but this nnlab reads format 2" in err
    ckpt.save({**state, "experiment": "palindrome"}, newest)
    assert main(["run", "toy", "--resume", str(tmp_path / "r")]) == 1
    assert "a checkpoint of experiment 'palindrome', not 'toy'" in capsys.readouterr().err


def _data_flags(name: str, cifar) -> list[str]:
    return ["--data", str(cifar)] if experiments.get(name).needs_cifar else []


@pytest.mark.parametrize("name", QUICK_RUNS, ids=lambda n: Path(n).stem)
def test_every_experiment_keeps_the_contract(name, learnable_cifar, nnlab_cache, tmp_path):
    """Adding an experiment to the registry is enough for it to be covered here: the
    contract test a plugin author runs on theirs (quick run, files, read back, exact resume
    from the checkpoint before the last, eval, load and predict)."""
    flags = {"data": str(learnable_cifar)} if experiments.get(name).needs_cifar else {}
    metrics = check_experiment(name, tmp_path, **flags)
    assert metrics and (tmp_path / "run" / "config.json").exists()
    if experiments.get(name).evaluate is not None:
        assert list((tmp_path / "run").rglob("eval-*.json")), "nnlab eval wrote nothing"


def test_the_contract_check_fails_an_experiment_that_breaks_it(tmp_path, fresh_registry):
    """check_experiment can fail: a run that does not resume where it stopped (its metrics
    drift with every process start) is named with the number that moved."""
    drifting = tmp_path / "drifting.py"
    drifting.write_text(TINY.replace('"epochs": cfg.epochs}', '"epochs": cfg.epochs, '
                                     '"drift": float(next(COUNTER))}')
                        .replace("from dataclasses import dataclass",
                                 "import itertools\nfrom dataclasses import dataclass\n\n"
                                 "COUNTER = itertools.count()"))
    with pytest.raises(AssertionError, match="drift 0.0 before, 1.0 after"):
        check_experiment(str(drifting), tmp_path / "check")


@pytest.mark.slow
@pytest.mark.parametrize("name", EVERY, ids=lambda n: Path(n).stem)
def test_every_experiment_killed_resumes_exactly(name, learnable_cifar, tmp_path,
                                                 monkeypatch):
    """SIGKILL after the second checkpoint of a run five times its quick length, then resume:
    the same history and metrics as the run that never stopped."""

    exp = experiments.get(name)
    fields = {f.name for f in dataclasses.fields(exp.Config)}
    length = "epochs" if "epochs" in fields else "steps"
    longer = [f"--{length}", str(5 * exp.quick.get(length, 10))]
    if "patience" in fields:  # never stop early: the kill must find it running
        longer += ["--patience", "100000"]
    argv = ["--quick", *longer, "--checkpoint-every", "1", *_data_flags(name, learnable_cifar)]
    killed, reference = kill_then_resume(name, argv, tmp_path, monkeypatch, at=2)
    for history in sorted(p.relative_to(reference) for p in reference.rglob("history*.csv")):
        same_results(killed / history.parent, reference / history.parent, history.name)


def test_the_train_your_own_example_learns_and_resumes(tmp_path, monkeypatch, capsys):
    import runpy

    script = str(Path(EXAMPLE).with_name("your_own_model.py"))
    monkeypatch.setattr("sys.argv", [script, str(tmp_path / "mine")])
    runpy.run_path(script, run_name="__main__")
    first = capsys.readouterr().out
    assert float(first.split()[2]) > 0.8  # the spirals are learnt
    runpy.run_path(script, run_name="__main__")  # a second call reads the finished run back
    assert capsys.readouterr().out == first
    assert json.loads((tmp_path / "mine" / "config.json").read_text())["experiment"] == \
        "your-own-model"
