"""The run lifecycle in process: a stop inside an epoch (or between evaluations) resumes to
exactly the numbers of a run that never stopped; a truncated checkpoint falls back."""

import os
import signal
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from nnlab.engine import History, Run, RunOptions, TorchStep, train_epochs, train_steps
from nnlab.engine.checkpoint import Checkpoints
from nnlab.engine.run import signals_handled
from nnlab.errors import Interrupted

TIMING = ("wall_s", "images_per_s")


@dataclass
class Config:
    epochs: int = 4


def _untimed(history: History) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def _train(run: Run, stop_at: tuple[int, int] | None = None, steps: bool = False):
    """A small net with dropout, a per-step schedule and noisy batches drawn from a tracked
    generator: every source of randomness a resume must restore. ``stop_at`` (epoch or
    step, batch): SIGINT arrives there."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (1 + 0.1 * s))
    gen = torch.Generator().manual_seed(1)
    run.track(data=gen)
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(2))
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()

    def evaluate_all() -> dict:
        model.eval()
        with torch.no_grad():
            loss = nn.functional.cross_entropy(model(x), y).item()
        return {"val_loss": loss}

    step = TorchStep(model, opt, scheduler=sched)
    if steps:
        def next_batch(s: int):
            if stop_at is not None and s == stop_at[0]:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C
            idx = torch.randint(0, 64, (8,), generator=gen)
            return x[idx] + 0.1 * torch.randn(8, 5, generator=gen), y[idx]

        history = train_steps(step, next_batch, 30, 7, evaluate_all, run=run, progress=False)
        return history, model

    def batches(epoch: int):
        perm = torch.randperm(64, generator=gen)
        for i in range(8):
            if stop_at == (epoch, i):
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C
            idx = perm[i * 8:(i + 1) * 8]
            yield x[idx] + 0.1 * torch.randn(8, 5, generator=gen), y[idx]

    return train_epochs(step, batches, 4, evaluate_all, run=run, progress=False), model


@pytest.mark.parametrize("steps, stop_at, inside", [
    (False, (2, 3), True),  # epoch 2, after its 4th batch
    (False, (3, 7), True),  # after the last batch of epoch 3, before its evaluation
    (True, (11, 0), True),  # step 11, between the evaluations at 7 and 14
    (True, (14, 0), False),  # at an evaluation
])
def test_stop_inside_an_epoch_or_interval_resumes_exactly(tmp_path, steps, stop_at, inside):
    reference, ref_model = _train(Run(tmp_path / "ref", "test", Config()).start(), steps=steps)
    folder = tmp_path / "stopped"
    with pytest.raises(Interrupted) as stopped, signals_handled():
        _train(Run(folder, "test", Config()).start(), stop_at, steps)
    assert stopped.value.signum == signal.SIGINT
    progress = Checkpoints(folder).latest()[0]["progress"]
    assert (progress["sums"] is not None) == inside  # a checkpoint inside the epoch/interval
    resumed, model = _train(Run(folder, "test", Config(), RunOptions(resume=True)).start(),
                            steps=steps)
    assert _untimed(resumed) == _untimed(reference)
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_finished_phase_is_not_trained_again(tmp_path):
    _train(Run(tmp_path, "test", Config()).start())
    again, _ = _train(Run(tmp_path, "test", Config(), RunOptions(resume=True)).start())
    assert [r["epoch"] for r in again] == [1, 2, 3, 4]


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    _train(Run(tmp_path, "test", Config()).start())
    older, newest = Checkpoints(tmp_path).paths()
    newest.write_bytes(newest.read_bytes()[:1000])  # a copy cut short
    state, path = Checkpoints(tmp_path).latest()
    assert path == older and state["progress"]["position"] == 3
    err = capsys.readouterr().err
    assert f"checkpoint {newest} is unreadable" in err and len(err.strip().splitlines()) == 1


def test_only_the_newest_two_checkpoints_stay(tmp_path):
    _train(Run(tmp_path, "test", Config()).start())
    assert [p.name for p in Checkpoints(tmp_path).paths()] == ["checkpoint-000003.pt",
                                                             "checkpoint-000004.pt"]
