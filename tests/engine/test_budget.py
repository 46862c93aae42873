"""--time-budget: parsing, the planner on a fake throughput table, the deadline, and the run
record, with a fake experiment (no CIFAR, no probe of a real network)."""

import json
import sys
import time
from dataclasses import dataclass

import pytest
import torch

import nnlab
from nnlab.cli import main
from nnlab.config import option
from nnlab.engine import TorchStep, train_epochs
from nnlab.engine.budget import (
    EXTRAPOLATE,
    Budget,
    Cost,
    Plan,
    Size,
    choose,
    parse_budget,
    process_age_s,
)
from nnlab.errors import ConfigError
from nnlab.experiments import Experiment


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2.5m", 150), ("600", 600),
    (" 5M ", 300), (45, 45), (7.5, 7.5)])
def test_durations_parse(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "5m30", "-5m", "0", "0s", "m"])
def test_a_bad_duration_is_one_line(text):
    with pytest.raises(ConfigError, match="--time-budget"):
        parse_budget(text)


def test_the_process_age_counts_from_before_python_started():
    age = process_age_s()
    assert 0 < age < 24 * 3600


# --------------------------------------------------------------------------- the planner

SMALL = Size("small", {"width": 8}, {2: 0.50, 8: 0.70})
LARGE = Size("large", {"width": 64}, {4: 0.80, 16: 0.90})
# a fake throughput table: seconds per epoch and once-only seconds on an imagined machine
COSTS = {"small": Cost(epoch_s=10.0, fixed_s=5.0), "large": Cost(epoch_s=60.0, fixed_s=20.0)}


def test_accuracy_is_interpolated_in_log_epochs_and_a_floor_past_the_last():
    assert SMALL.predicted(1) is None  # below the fewest measured: unknown
    assert SMALL.predicted(2) == 0.50 and SMALL.predicted(8) == 0.70
    assert SMALL.predicted(4) == pytest.approx(0.60)  # halfway in log(epochs)
    assert SMALL.predicted(30) == 0.70


def test_a_short_budget_runs_the_small_size_as_long_as_it_fits():
    size, epochs, seconds, acc, considered = choose(120, spent_s=10, sizes=[SMALL, LARGE],
                                                    costs=COSTS, margin=0.0)
    # small: (120 - 10 - 5) / 10 = 10 epochs (past its 8 measured, a floor of 0.70);
    # large: (120 - 10 - 20) / 60 = 1 epoch, below its fewest measured (4): not planned
    assert (size.name, epochs) == ("small", 10)
    assert seconds == 10 + 5 + 10 * 10 and acc == 0.70
    assert [c["size"] for c in considered] == ["small", "large"]
    assert considered[1]["epochs"] == 0 and "4 epochs" in considered[1]["why"]


def test_a_long_budget_takes_the_large_size_when_it_is_expected_to_be_better():
    size, epochs, seconds, _, _ = choose(600, 0, [SMALL, LARGE], COSTS, margin=0.0)
    assert (size.name, epochs) == ("large", 9)  # (600 - 20) / 60 = 9.67
    assert seconds <= 600
    assert size.predicted(9) > SMALL.predicted(59)


def test_the_margin_is_kept_and_the_plan_never_exceeds_the_budget():
    for budget in range(40, 3000, 37):
        size, epochs, seconds, _, _ = choose(budget, 3.0, [SMALL, LARGE], COSTS)
        assert seconds <= budget * 0.97 + 1e-9
        assert epochs >= min(size.accuracy)


def test_no_size_runs_past_three_times_its_most_measured_epochs():
    _, epochs, _, _, _ = choose(1e6, 0, [SMALL], COSTS)
    assert epochs == EXTRAPOLATE * 8


def test_ties_go_to_the_faster_plan():
    twin = Size("twin", {"width": 9}, SMALL.accuracy)
    costs = {**COSTS, "twin": Cost(epoch_s=5.0, fixed_s=5.0)}
    size, *_ = choose(10_000, 0, [SMALL, twin], costs)
    assert size.name == "twin"  # both reach the same floor; the twin gets there sooner


def test_a_budget_too_short_for_one_epoch_of_any_size_says_what_the_smallest_needs():
    with pytest.raises(ConfigError, match=r"too short on this machine: one epoch of the "
                                          r"smallest size needs about 2[0-9] s"):
        choose(20, 5, [SMALL, LARGE], COSTS)  # small: 5 + 5 + 1 x 10 = 20 s, / (1 - margin)


def test_a_busy_machine_gets_a_smaller_plan_not_a_refusal():
    """One epoch of the small size fits, its fewest measured (2) does not: it runs that one
    epoch, with no accuracy predicted, rather than being refused."""
    size, epochs, seconds, acc, considered = choose(25, 5, [SMALL, LARGE], COSTS)
    assert (size.name, epochs, acc) == ("small", 1, None)
    assert seconds == 5 + 5 + 10 <= 25 * 0.97
    plan = Plan(25, size, epochs, seconds, acc, 5, 0.1, COSTS["small"], considered)
    assert "fewer epochs than small was ever measured at (2), so no accuracy is predicted" in \
        "\n".join(plan.lines())
    assert plan.record()["predicted_acc"] is None


def test_a_budgeted_schedule_ends_at_the_deadline_on_a_machine_that_slows_half_way(
        tmp_path, fake_clock):
    """The learning rate of a budgeted run is keyed to the time left: on a fake clock that
    runs three times slower half-way (another process took the cores), the run trains fewer
    steps than planned and its schedule still reaches its end at the deadline; keyed to the
    planned steps it would have stopped with the learning rate two thirds up."""
    from nnlab.engine.run import Run, RunOptions

    steps, lrs = 200, []
    run = Run(tmp_path / "run", "budgeted", Config(), RunOptions(
        deadline=fake_clock() + 100.0, progress=False)).start()
    assert run.deadline == fake_clock() + 100.0  # 100 fake seconds from now
    start = fake_clock()
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1 - run.schedule_progress(s, steps))
    step = TorchStep(model, opt, scheduler=sched)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))

    def batches(epoch):
        for _ in range(10):
            fake_clock.advance(1.0 if fake_clock() - start < 50 else 3.0)  # then it slows
            lrs.append(opt.param_groups[0]["lr"])
            yield x, y

    history = train_epochs(step, batches, steps // 10, run=run)
    trained = len(lrs)
    assert run.stopped_by_budget and trained < steps  # fewer steps than planned
    assert fake_clock() >= run.deadline - 3.0  # it trained to the deadline
    assert lrs[-1] <= 0.05  # and the schedule had reached its end there
    assert 1 - trained / steps > 0.6  # a step-keyed schedule would still be this high
    assert history.last["lr"] <= 0.05


# --------------------------------------------------------------------------- a whole run


@dataclass
class Config:
    width: int = option(8, "hidden units", gt=0)
    epochs: int = option(3, "epochs", gt=0)
    slow: float = option(0.0, "seconds each batch sleeps (a machine slower than its probe)")
    seed: int = option(0, "seed")


_pass_time = time.sleep  # a batch of a machine slower than its probe (a fake clock's advance)


def _train(cfg: Config, run) -> dict:
    torch.manual_seed(cfg.seed)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(4, cfg.width), torch.nn.ReLU(),
                                torch.nn.Linear(cfg.width, 2))
    step = TorchStep(model, torch.optim.SGD(model.parameters(), lr=0.1),
                     torch.nn.functional.cross_entropy)

    def batches(epoch):
        for i in range(0, 64, 16):
            _pass_time(cfg.slow)
            yield x[i:i + 16], y[i:i + 16]

    history = train_epochs(step, batches, cfg.epochs, run=run,
                           history_path=run.out / "history.csv")
    return {"epochs_run": len(history.rows), "train_acc": history.rows[-1]["train_acc"]}


probed: list[str] = []


def _probe(cfg: Config, size: Size) -> Cost:
    probed.append(size.name)
    return {"small": Cost(0.01, 0.5, 0.001), "large": Cost(0.05, 0.5, 0.001)}[size.name]


BUDGETED = Experiment(
    name="budgeted", description="a fake experiment with two measured sizes", Config=Config,
    train=_train, budget=Budget(lambda cfg: [SMALL, LARGE], _probe))


def _budget(seconds: float, clock) -> float:  # noqa: ANN001 - the fake clock
    """A budget that leaves ``seconds`` to the plan after what this process has used."""
    return (clock() + seconds) / 0.97


def test_a_budgeted_run_prints_its_plan_runs_it_and_records_it(tmp_path, capsys, fake_clock):
    probed.clear()
    budget = _budget(30, fake_clock)
    metrics = nnlab.run(BUDGETED, out=tmp_path / "run", time_budget=budget)
    err = capsys.readouterr().err
    assert "time budget" in err and "plan: large (--width 64, --epochs 48)" in err
    assert sorted(probed) == ["large", "small"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["width"] == 64 and config["epochs"] == 48  # 3 x its 16 measured
    assert config["time_budget"]["size"] == "large"
    assert metrics["epochs_run"] == 48
    block = metrics["time_budget"]
    assert block["budget_s"] == budget and not block["stopped_early"]
    assert block["process_s"] <= budget
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["time_budget"] == block
    # a resume reads the finished run back, plan and all
    assert nnlab.run(BUDGETED, resume=tmp_path / "run") == on_disk
    assert json.loads((tmp_path / "run" / "config.json").read_text())["time_budget"] == \
        config["time_budget"]


def test_the_command_line_says_how_the_run_fared_against_its_budget(tmp_path, capsys,
                                                                   fake_clock):
    exp_file = tmp_path / "budgeted.py"
    exp_file.write_text(
        "from dataclasses import dataclass\n"
        "from nnlab.config import option\n"
        "from nnlab.engine.budget import Budget, Cost, Size\n"
        "from nnlab.experiments import Experiment\n\n"
        "@dataclass\n"
        "class Config:\n"
        "    epochs: int = option(1, 'epochs', gt=0)\n\n"
        "EXPERIMENT = Experiment(\n"
        "    name='budgeted', description='one size', Config=Config,\n"
        "    train=lambda cfg, run: {'epochs': cfg.epochs},\n"
        "    budget=Budget(lambda cfg: [Size('one', {}, {1: 0.5})],\n"
        "                  lambda cfg, size: Cost(0.01, 0.1)))\n")
    budget = _budget(30, fake_clock)
    assert main(["run", str(exp_file), "--time-budget", f"{budget:.1f}", "--out",
                 str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "time budget " in out and "the whole process took" in out and "planned" in out


def test_flags_given_keep_only_the_sizes_they_agree_with(tmp_path, capsys, fake_clock):
    probed.clear()
    nnlab.run(BUDGETED, out=tmp_path / "run", time_budget=_budget(30, fake_clock), width=8)
    assert probed == ["small"]
    assert "plan: small (--width 8, --epochs 24)" in capsys.readouterr().err


def test_a_run_slower_than_its_probe_stops_at_the_deadline(tmp_path, capsys, fake_clock,
                                                           monkeypatch):
    # the probe says 0.05 s an epoch; each epoch takes 4 x 0.25 s of the fake clock
    monkeypatch.setattr(sys.modules[__name__], "_pass_time", fake_clock.advance)
    budget = _budget(3.0, fake_clock)
    metrics = nnlab.run(BUDGETED, out=tmp_path / "run", time_budget=budget, slow=0.25)
    block = metrics["time_budget"]
    assert block["stopped_early"]
    assert block["process_s"] <= budget + 0.25  # the deadline held, to one batch
    assert 1 <= metrics["epochs_run"] < 48
    assert "stopped at" in capsys.readouterr().err
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + metrics["epochs_run"]  # what it trained is kept


@pytest.mark.parametrize(("flags", "message"), [
    ({"epochs": 4}, "--time-budget chooses --epochs; give one or the other"),
    ({"width": 5}, "no measured size has the --width given"),
    ({"seeds": 2}, "--time-budget plans one run; drop --seeds"),
])
def test_flags_that_clash_with_a_budget_are_one_line(tmp_path, flags, message):
    with pytest.raises(ConfigError, match=message):
        nnlab.run(BUDGETED, out=tmp_path / "run", time_budget="10m", **flags)
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_an_experiment_without_sizes_refuses_a_budget(tmp_path, capsys):
    assert main(["run", "toy", "--quick", "--time-budget", "5m", "--out",
                 str(tmp_path / "t")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("nnlab: error: toy has no --time-budget plan (nothing measured says what "
                   "its sizes reach); set its flags instead")
    assert not (tmp_path / "t").exists()


def test_a_bad_duration_on_the_command_line_is_one_line(tmp_path, capsys):
    assert main(["run", "cifar-speedrun", "--time-budget", "soon", "--out",
                 str(tmp_path / "t")]) == 1
    assert capsys.readouterr().err.strip().endswith("give a duration such as 90s, 10m, 1h "
                                                    "or 1h30m")


def test_a_resumed_run_keeps_its_plan(tmp_path):
    nnlab.run(BUDGETED, out=tmp_path / "run", epochs=2, progress=False)
    with pytest.raises(ConfigError, match="a resumed run keeps its own plan"):
        nnlab.run(BUDGETED, resume=tmp_path / "run", time_budget="1m")


def test_too_short_a_budget_leaves_no_folder(tmp_path, fake_clock):
    with pytest.raises(ConfigError, match="too short"):
        nnlab.run(BUDGETED, out=tmp_path / "run", time_budget=fake_clock() / 2)
    assert not (tmp_path / "run").exists()


def test_a_busy_machine_is_said_and_the_run_keeps_to_the_free_cores(tmp_path, capsys,
                                                                    monkeypatch, fake_clock):
    from nnlab.engine import budget

    monkeypatch.setattr(budget, "busy_cores", lambda sample_s=0.3: 1.0)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        nnlab.run(BUDGETED, out=tmp_path / "run", time_budget=_budget(30, fake_clock))
        assert torch.get_num_threads() == 2  # given back: a notebook keeps its threads
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "note: other processes keep about 1.0 cores busy: the run trains on 1 thread" in err
    prov = json.loads((tmp_path / "run" / "config.json").read_text())["provenance"]
    assert prov["threads"] == 1  # config.json records what ran
