import numpy as np
import pytest
import torch

from nnlab import numpy_nn
from nnlab.engine import fit, fit_numpy
from nnlab.errors import TrainingDiverged
from nnlab.models.mlp import MLP


def _blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.normal(size=(n, 2)) + 3 * y[:, None]).astype(np.float32)
    return x, y


def test_fit_records_one_row_per_epoch_and_learns():
    x, y = _blobs()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    model = MLP(2, [8], 2)
    h = fit(model, torch.optim.Adam(model.parameters(), 0.05), xt, yt, epochs=30,
            batch_size=16, eval_sets={"test": (xt, yt)}, progress=False, tags={"impl": "t"})
    assert [r["epoch"] for r in h] == list(range(1, 31))
    assert set(h.last) >= {"impl", "train_loss", "train_acc", "test_loss", "test_acc", "wall_s"}
    assert h.last["train_loss"] < h.rows[0]["train_loss"] / 2
    assert h.last["test_acc"] > 0.9


def test_fit_numpy_learns():
    x, y = _blobs()
    model = numpy_nn.MLP(2, [8], 2, seed=0)
    h = fit_numpy(model, numpy_nn.Adam(model.linears(), 0.05), x, y, epochs=30, batch_size=16,
                  eval_sets={"test": (x, y)}, progress=False)
    assert h.last["train_loss"] < h.rows[0]["train_loss"] / 2 and h.last["test_acc"] > 0.9


def test_nan_guard_names_the_epoch():
    x, y = _blobs()
    x[0, 0] = np.nan  # one poisoned input makes the first epoch's loss NaN
    model = numpy_nn.MLP(2, [8], 2, seed=0)
    with pytest.raises(TrainingDiverged, match="at epoch 1"):
        fit_numpy(model, numpy_nn.SGD(model.linears(), 0.1), x, y, epochs=3, batch_size=64,
                  progress=False)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    tm = MLP(2, [8], 2)
    with pytest.raises(TrainingDiverged, match="at epoch 1"):
        fit(tm, torch.optim.SGD(tm.parameters(), 0.1), xt, yt, epochs=3, batch_size=64,
            progress=False)


def test_train_epochs_steps_the_schedule_per_batch_and_saves_history(tmp_path):
    from nnlab.engine import TorchStep, train_epochs

    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    model = torch.nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 / (1 + step))
    batches = lambda epoch: [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]  # noqa: E731
    step = TorchStep(model, opt, scheduler=sched)
    history = train_epochs(step, batches, 3, progress=False, history_path=tmp_path / "h.csv")
    assert sched.last_epoch == 12  # stepped once per batch: 4 batches x 3 epochs
    assert history.column("lr") == pytest.approx([0.1 / 5, 0.1 / 9, 0.1 / 13])
    speeds = history.column("images_per_s")
    assert len(speeds) == 3 and min(speeds) > 0
    assert (tmp_path / "h.csv").read_text().count("\n") == 4
