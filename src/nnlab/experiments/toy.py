"""NumPy MLP vs PyTorch MLP on 2-D toy data, from the same weights (study, Part I.1-2)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from nnlab import numpy_nn
from nnlab.config import shown
from nnlab.data.toy import TOY_DATASETS, ToyData, make_toy
from nnlab.engine import History, Run, evaluate, evaluate_numpy, fit, fit_numpy
from nnlab.errors import ConfigError
from nnlab.experiments.configs.toy import GRADCHECK_WRONG, QUICK, Config, gradient_error
from nnlab.experiments.impl import load as load_impl
from nnlab.models.mlp import MLP
from nnlab.numpy_nn.gradcheck import numeric_gradient_at, rel_error
from nnlab.plots import plot_curves, plot_dataset, plot_decision_boundaries
from nnlab.registry import Experiment, describe

IMPLS = ("numpy", "torch")
GRADCHECK_POINTS = 16  # training points the gradient check's loss is taken over
GRADCHECK_ELEMENTS = 32  # elements of each parameter checked by centred differences


LAYERS = ("Linear", "ReLU", "SoftMax", "CrossEntropy")  # what --impl DIR/modules.py holds


def train(config: Config, run: Run) -> dict:
    """Train both implementations (a phase each); write history.csv, dataset.png,
    curves.png and boundary.png in the run folder and return the metrics.

    With ``dataset='all'`` each dataset is a sub-run in its own folder and the returned
    metrics are keyed by dataset.
    """
    if config.dataset == "all":
        return {name: run.child(name, replace(config, dataset=name), train)
                for name in TOY_DATASETS}

    data = make_toy(config.dataset, config.n_samples, config.noise, config.test_size, config.seed)
    n_in, n_classes = data.x_train.shape[1], data.n_classes

    # --impl: your layers (and your MLPs, where their files are there)
    mine = load_impl(config.impl, run, {"modules.py": LAYERS, "numpy_mlp.py": ("MLP",),
                                         "pytorch_mlp.py": ("MLP",)},
                      optional=("numpy_mlp.py", "pytorch_mlp.py")) if config.impl else {}
    layers = mine.get("modules.py")
    # One set of initial weights, drawn by the NumPy MLP and copied into the torch MLP.
    numpy_mlp = getattr(mine.get("numpy_mlp.py"), "MLP", numpy_nn.MLP)
    np_model = numpy_mlp(n_in, config.hidden, n_classes, seed=config.seed, modules=layers)
    torch_model = getattr(mine.get("pytorch_mlp.py"), "MLP", MLP)(n_in, config.hidden, n_classes)
    try:
        torch_model.load_state_dict({k: torch.from_numpy(v)
                                     for k, v in np_model.state_dict().items()})
    except (RuntimeError, ValueError) as e:  # a student's MLP laid out otherwise
        raise ConfigError(f"--impl {config.impl}: the NumPy MLP's weights do not load into "
                          f"pytorch_mlp.py's MLP ({str(e).splitlines()[0][:160]}); nnlab "
                          f"course check {config.impl} pytorch_mlp says why") from None
    grad_check = gradient_check(np_model.state_dict(), n_in, config.hidden, n_classes,
                                data.x_train[:GRADCHECK_POINTS], data.y_train[:GRADCHECK_POINTS],
                                seed=config.seed, modules=layers, mlp=numpy_mlp)

    if config.optimizer == "sgd":
        kwargs = dict(lr=config.lr, momentum=config.momentum)
        np_opt = numpy_nn.SGD(np_model.linears(), **kwargs)
        torch_opt = torch.optim.SGD(torch_model.parameters(), **kwargs)
    else:
        np_opt = numpy_nn.Adam(np_model.linears(), lr=config.lr)
        torch_opt = torch.optim.Adam(torch_model.parameters(), lr=config.lr)

    _warm_up(torch_model, torch.from_numpy(data.x_train[:8]),
             torch.from_numpy(data.y_train[:8]))
    common = dict(epochs=config.epochs, batch_size=config.batch_size, seed=config.seed, run=run)
    history = fit_numpy(np_model, np_opt, data.x_train, data.y_train,
                        eval_sets={"test": (data.x_test, data.y_test),  # val: what a sweep
                                   "val": (data.x_val, data.y_val)},     # prunes on
                        phase="numpy",
                        desc=f"{config.dataset} numpy", tags={"impl": "numpy"}, **common)
    xt = {split: torch.from_numpy(getattr(data, f"x_{split}"))
          for split in ("train", "test", "val")}
    yt = {split: torch.from_numpy(getattr(data, f"y_{split}"))
          for split in ("train", "test", "val")}
    history.extend(fit(torch_model, torch_opt, xt["train"], yt["train"],
                       eval_sets={"test": (xt["test"], yt["test"]),
                                  "val": (xt["val"], yt["val"])}, phase="torch",
                       desc=f"{config.dataset} torch", tags={"impl": "torch"}, **common))
    history.to_csv(run.out / "history.csv")

    # Final numbers: the trained models evaluated on the full train and test sets.
    metrics: dict = {}
    for impl in IMPLS:
        m: dict[str, float] = {}
        for split in ("train", "test", "val"):  # val: a fresh draw, for tuning (sweeps)
            if impl == "numpy":
                loss, acc = evaluate_numpy(np_model, getattr(data, f"x_{split}"),
                                           getattr(data, f"y_{split}"))
            else:
                loss, acc = evaluate(torch_model, xt[split], yt[split])
            m[f"{split}_acc"], m[f"{split}_loss"] = acc, loss
        m["wall_s"] = history.column("wall_s", impl=impl)[-1]
        metrics[impl] = m
    metrics["time_ratio_numpy_over_torch"] = metrics["numpy"]["wall_s"] / metrics["torch"]["wall_s"]
    metrics["gradient_check"] = grad_check
    _figures(config, data, history, np_model, torch_model, run.out)
    return metrics


def gradient_check(state: dict[str, np.ndarray], n_in: int, hidden: tuple[int, ...],
                   n_classes: int, x: np.ndarray, y: np.ndarray, seed: int = 0,
                   modules: ModuleType | None = None, mlp: type = numpy_nn.MLP) -> dict:
    """The NumPy MLP's hand-written backward, checked in float64 at the weights ``state``
    on the batch x (N, n_in), y (N,) of class indices: against centred differences of its own
    loss (on up to GRADCHECK_ELEMENTS elements of each parameter, drawn with ``seed``) and
    against torch autograd's gradient of the same loss (every element).

    Returns ``{"params": {"net.0.weight": {"vs_differences": e, "vs_autograd": e}, ...},
    "max_vs_differences": e, "max_vs_autograd": e, "points": N, "elements": k}`` with e the
    relative error of :func:`~nnlab.numpy_nn.gradcheck.rel_error`: ~1e-7 or less when the
    backward is right, 1e-2 or more when it is wrong. ``modules`` and ``mlp``: the layers and
    the MLP class checked (a student's, with ``--impl``; default nnlab's)."""
    model = mlp(n_in, hidden, n_classes, dtype=np.float64, modules=modules)
    model.load_state_dict(state)
    x = x.astype(np.float64)
    ce = model.criterion()

    def loss() -> float:
        return ce.forward(model.forward(x), y)

    loss()
    model.backward(ce.backward())
    twin = MLP(n_in, hidden, n_classes).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)),
                                      torch.from_numpy(y.astype(np.int64))).backward()
    autograd = dict(twin.named_parameters())
    rng = np.random.default_rng(seed)
    params = {}
    linears = {id(layer) for layer in model.linears()}
    for i, layer in enumerate(model.layers):
        if id(layer) not in linears:
            continue
        for name, value in layer.params.items():
            grad = layer.grads[name].copy()  # the differences below call forward, not backward
            at = rng.choice(value.size, min(value.size, GRADCHECK_ELEMENTS), replace=False)
            params[f"net.{i}.{name}"] = {
                "vs_differences": rel_error(grad.ravel()[at], numeric_gradient_at(loss, value, at)),
                "vs_autograd": rel_error(grad, autograd[f"net.{i}.{name}"].grad.numpy())}
    return {"params": params, **{f"max_{k}": max(p[k] for p in params.values())
                                 for k in ("vs_differences", "vs_autograd")},
            "points": len(y), "elements": GRADCHECK_ELEMENTS}


def _warm_up(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step on a throwaway copy, so torch's one-off set-up costs stay out of wall_s."""
    twin = copy.deepcopy(model)
    torch.nn.functional.cross_entropy(twin(x), y).backward()


def _figures(config: Config, data: ToyData, history: History, np_model, torch_model,
             out_dir: Path) -> None:
    name = f"{config.dataset} (noise {config.noise})" if config.dataset != "blobs" else "blobs"
    sizes = f"{len(data.y_train)} train (dots), {len(data.y_test)} test (crosses)"
    plot_dataset(data.x_train, data.y_train, data.x_test, data.y_test, out_dir / "dataset.png",
                 title=f"{name}: {sizes}")
    plot_curves(history, out_dir / "curves.png",
                title=f"{name}, hidden {shown(config.hidden)}, {config.optimizer} lr {config.lr:g}")
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    xx, yy = np.meshgrid(*(np.linspace(x[:, i].min() - 0.5, x[:, i].max() + 0.5, 200)
                           for i in range(2)))
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)  # (200*200, 2)
    with torch.no_grad():
        torch_pred = torch_model(torch.from_numpy(grid)).argmax(dim=1).numpy()
    panels = {
        "NumPy MLP": (xx, yy, np_model.forward(grid).argmax(axis=1).reshape(xx.shape)),
        "PyTorch MLP": (xx, yy, torch_pred.reshape(xx.shape)),
    }
    plot_decision_boundaries(panels, x, y, out_dir / "boundary.png",
                             title=f"{name}: decision boundary (all points)")


def summarize(metrics: dict) -> str:
    """A small text table of the final metrics (one block per dataset)."""
    if "numpy" not in metrics:
        return "\n\n".join(f"[{name}]\n{summarize(m)}" for name, m in metrics.items())
    cols = ("train_acc", "val_acc", "test_acc", "train_loss", "test_loss", "wall_s")
    lines = [f"{'impl':<6}" + "".join(f"{c:>11}" for c in cols)]
    for impl in IMPLS:
        lines.append(f"{impl:<6}" + "".join(f"{metrics[impl].get(c, math.nan):>11.4f}"
                                            for c in cols))
    lines.append("(the trained models on whole splits; history.csv's train_acc is the mean over "
                 "each epoch's batches, as the weights moved)")
    lines.append(f"NumPy took {metrics['time_ratio_numpy_over_torch']:.3g} times as long as "
                 "PyTorch")
    if "gradient_check" in metrics:
        g = metrics["gradient_check"]
        lines.append(f"hand-written gradients at the initial weights: largest relative error "
                     f"{g['max_vs_differences']:.1e} against centred differences, "
                     f"{g['max_vs_autograd']:.1e} against autograd")
        if gradient_error(g) > GRADCHECK_WRONG:
            lines.append("the gradient check FAILS: the NumPy MLP's backward is wrong (nnlab "
                         "course check DIR says where); its curves train on wrong gradients")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="toy", description=describe("toy"),
    Config=Config, train=train, summarize=summarize,
    quick=QUICK,
    held_out=lambda config: "test",
    checkpoint_every=100,  # epochs: a toy epoch takes a millisecond, a checkpoint several
)
