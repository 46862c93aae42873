"""Train your own model with nnlab's engine: durable runs, progress, seeds and TensorBoard.

    python examples/your_own_model.py runs/mine          # again after Ctrl-C: it resumes

``nnlab.launch(train, config, out)`` gives ``train`` a run: hand it what must survive a
restart (``run.track``), train through a driver (``nnlab.train_epochs``), return metrics.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

import nnlab


@dataclass
class Config:
    epochs: int = nnlab.option(30, "passes over the data", gt=0)
    hidden: int = nnlab.option(32, "hidden units", gt=0)
    seed: int = nnlab.option(0, "seeds the data, the weights and the batch order")


def train(cfg: Config, run) -> dict:  # noqa: ANN001 - an nnlab.engine.Run
    """Two interleaved spirals, classified by a small MLP."""
    gen = torch.Generator().manual_seed(cfg.seed)
    t = torch.rand(1024, generator=gen) * 12
    label = torch.randint(0, 2, (1024,), generator=gen)
    angle = t + torch.pi * label  # the second spiral is the first turned half a circle
    x = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], 1) / 12  # (1024, 2)
    torch.manual_seed(cfg.seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, cfg.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(cfg.hidden, cfg.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(cfg.hidden, 2))
    order = torch.Generator().manual_seed(cfg.seed)
    run.track(batch_order=order)  # with the model and optimizer, restored on resume

    def batches(epoch: int):  # (x (64, 2), y (64,)), in an order drawn from a tracked generator
        perm = torch.randperm(len(x), generator=order)
        return [(x[perm[i:i + 64]], label[perm[i:i + 64]]) for i in range(0, len(x), 64)]

    step = nnlab.TorchStep(model, torch.optim.Adam(model.parameters(), lr=1e-2))
    history = nnlab.train_epochs(step, batches, cfg.epochs, run=run)  # history.csv: the run's
    return {"train_acc": history.last["train_acc"], "train_loss": history.last["train_loss"]}


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/your-own-model")
    started = (out / "config.json").exists()  # then resume it (or read back a finished one)
    metrics = nnlab.launch(train, Config(), out, name="your-own-model",
                           resume=out if started else None)
    print(f"train accuracy {metrics['train_acc']:.3f} ({out})")
