"""Hand-written RNN / LSTM / GRU predicting a palindrome's last digit, by length T (Part III)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import torch

from nnlab.data.palindrome import distinct_palindromes, held_out_set, palindromes, split
from nnlab.engine import Run, TorchStep, evaluate, train_steps
from nnlab.engine.checkpoint import open_saved
from nnlab.experiments.configs.palindrome import QUICK, Config
from nnlab.experiments.impl import in_place_of
from nnlab.experiments.impl import load as load_impl
from nnlab.models.rnn import CELLS
from nnlab.plots import plot_accuracy_vs_length, plot_curves
from nnlab.registry import Experiment, describe

VAL_SEED, TEST_SEED = 1_000_003, 2_000_003  # fixed held-out sets, disjoint seeds from training


def train(config: Config, run: Run) -> dict:
    """One run per (cell, T): a single one in the run folder itself, a sweep one sub-run
    ``<cell>-T<T>`` each plus ``acc_vs_T.png``. Returns the metrics."""
    if len(config.cells) == 1 and len(config.Ts) == 1:
        return train_one(config.resolved(), run)
    metrics = {f"{cell}-T{T}": run.child(f"{cell}-T{T}", replace(
                   config, cell=cell, length=T, lengths=()).resolved(), train_one)
               for cell in config.cells for T in config.Ts}
    if run.main:
        plot_seeds(run.out, [metrics])
    return metrics


IMPL_FILES = {"rnn": ("vanilla_rnn.py", "VanillaRNN"), "lstm": ("lstm.py", "LSTM")}


def _build_model(config: Config, input_dim: int, cells: dict | None = None) -> torch.nn.Module:
    """The cell of ``config`` with its initial weights; ``cells``: where the classes come
    from (a student's, with --impl; default nnlab's)."""
    cells = CELLS if cells is None else cells
    if config.cell == "rnn":
        return cells["rnn"](config.length, input_dim, config.hidden, 10,
                            recurrent_init="orthogonal" if config.init == "orthogonal"
                            else "default")
    model = cells[config.cell](config.length, input_dim, config.hidden, 10)
    if config.init == "chrono":
        model.chrono_init_(max_gap=config.length)
    return model


def _model_to_train(config: Config, run: Run, input_dim: int) -> torch.nn.Module:
    """nnlab's cell; with --impl, the student's in its place, with the same initial weights."""
    model = _build_model(config, input_dim)
    if not config.impl:
        return model
    file, name = IMPL_FILES[config.cell]
    mine = getattr(load_impl(config.impl, run, {file: (name,)})[file], name)
    return in_place_of(model, lambda: _build_model(config, input_dim, {config.cell: mine}),
                       config.impl, file)


def _encoding(config: Config) -> str:
    return "index" if config.input == "onehot" else "scalar"  # index = one-hot by row lookup


def train_one(config: Config, run: Run) -> dict:
    """Train one cell at one length T (a resolved config); write history.csv (every
    evaluation), model.pt (the best state at T) and curves.png."""
    cell, T, long = config.cell, config.length, config.recipe == "long"
    encoding = _encoding(config)
    torch.manual_seed(config.seed)
    model = _model_to_train(config, run, input_dim=10 if config.input == "onehot" else 1)
    opt = (torch.optim.Adam(model.parameters(), lr=config.lr) if long
           else torch.optim.RMSprop(model.parameters(), lr=config.lr))
    gen = torch.Generator().manual_seed(config.seed)

    # Curriculum (long recipe): train at T_cur, raise it when validation accuracy passes 99%.
    state = {"T": min(config.curriculum_start, T) if long else T, "best_acc": -1.0,
             "best_state": None, "best_step": 0, "streak": 0, "reached_step": None,
             "reached_wall_s": None, "collapse_step": None}
    run.track(palindromes=gen, search=state)  # the curriculum and the best state so far
    val: dict[int, tuple] = {}

    def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return split(palindromes(config.batch_size, state["T"], gen), encoding)

    def evaluate_all() -> dict:
        if state["T"] not in val:
            val[state["T"]] = held_out_set(2000, state["T"], VAL_SEED, encoding)
        loss, acc = evaluate(model, *val[state["T"]], batch_size=2000)
        return {"T": state["T"], "val_loss": loss, "val_acc": acc}

    def on_eval(row: dict) -> bool:
        acc = row["val_acc"]
        if state["T"] < T:
            if acc >= 0.99:
                state["T"] = min(T, math.ceil(state["T"] * config.curriculum_growth))
                run.note(f"{cell}: step {row['step']}, {row['wall_s']:.0f} s: val acc "
                         f"{acc:.3f} at T={row['T']}, curriculum moves to T={state['T']}")
            return False
        if acc > state["best_acc"]:
            state.update(best_acc=acc, best_state=copy.deepcopy(model.state_dict()),
                         best_step=row["step"])
        if acc >= 0.99 and state["reached_step"] is None:
            state.update(reached_step=row["step"], reached_wall_s=row["wall_s"])
        # Vanilla RNNs can fall from ~100% back to chance: note the first such fall.
        if state["reached_step"] is not None and acc < 0.9 and state["collapse_step"] is None:
            state["collapse_step"] = row["step"]
        state["streak"] = state["streak"] + 1 if acc == 1.0 else 0
        return state["streak"] >= config.patience

    history = train_steps(TorchStep(model, opt, clip_norm=config.clip or None), next_batch,
                          config.steps, config.eval_every, evaluate_all, on_eval, run=run,
                          desc=f"{cell} T={T}",
                          time_limit_s=config.time_limit * 60 if config.time_limit else None,
                          history_path=run.out / "history.csv")

    if state["best_state"] is not None:  # keep the best state seen at the target T
        model.load_state_dict(state["best_state"])
    run.save_model("model", model.state_dict())
    test_loss, test_acc = evaluate(model, *held_out_set(config.eval_size, T, TEST_SEED, encoding),
                                   batch_size=2000)
    val_loss, val_acc = evaluate(model, *held_out_set(2000, T, VAL_SEED, encoding),
                                 batch_size=2000)  # the validation set: what a sweep tunes on
    steps_run = history.last["step"]
    seen = steps_run * config.batch_size
    metrics = {
        "cell": cell, "T": T, "recipe": config.recipe, "test_acc": test_acc,
        "test_loss": test_loss, "val_acc": val_acc, "val_loss": val_loss, "steps": steps_run,
        "best_step": state["best_step"],
        "reached_T": history.last["T"],
        # the step and the seconds of training at which validation accuracy at the target
        # T first reached 99%: null when it never did
        "steps_to_99": state["reached_step"], "wall_s_to_99": _seconds(state["reached_wall_s"]),
        "collapsed": int(bool(state["collapse_step"])), "collapse_step": state["collapse_step"],
        "wall_s": history.last["wall_s"],
        # 10^(T//2) palindromes: a 501-digit integer at T = 1000, too big for JSON readers
        # that use floats, so its log10
        "log10_distinct_palindromes": math.log10(distinct_palindromes(T)),
        # Chance that a test palindrome also occurred in training (fresh draws each step):
        # near 1 for small T, where "held-out" cannot mean unseen.
        "test_seen_in_training_frac": -math.expm1(-seen / distinct_palindromes(T)),
    }
    plot_curves(history, run.out / "curves.png", group="none", splits=("train", "val"),
                x="step", twin="T" if long else None,
                title=f"{cell}, T={T} ({config.recipe} recipe): test acc {test_acc:.3f}")
    return metrics


def _seconds(value: float | None) -> float | None:
    return None if value is None or value < 0 else value  # -1: a checkpoint of nnlab <= 0.1


def eval_run(run_dir: Path, config: Config, split: str, tta: str | None,
             data: str | None) -> dict:
    """``nnlab eval``: the saved model (the best state at T) on the test set (``eval_size``
    fresh palindromes, as metrics.json) or the validation set (2,000); ``tta`` and ``data``
    do not apply."""
    model, _ = open_saved(run_dir, lambda data: _build_model(
        config, 10 if config.input == "onehot" else 1))
    n, seed = (config.eval_size, TEST_SEED) if split == "test" else (2000, VAL_SEED)
    loss, acc = evaluate(model, *held_out_set(n, config.length, seed, _encoding(config)),
                         batch_size=2000)
    return {f"{split}_acc": acc, f"{split}_loss": loss}


def plot_seeds(out_dir: Path, runs: list[dict]) -> None:
    """The headline figure: test accuracy against T per cell, over every seed in ``runs``
    (each the metrics of one run or of a sweep). Drawn when there is more than one T."""
    singles = [m for metrics in runs
               for m in ([metrics] if "cell" in metrics else metrics.values())]
    results: dict[str, dict[int, list[float]]] = {}
    for m in singles:
        results.setdefault(m["cell"], {}).setdefault(m["T"], []).append(m["test_acc"])
    if any(len(by_T) > 1 for by_T in results.values()):
        plot_accuracy_vs_length(results, Path(out_dir) / "acc_vs_T.png",
                                title=f"palindromes, {singles[0]['recipe']} recipe",
                                ylabel="test accuracy (fresh palindromes)")


def summarize(metrics: dict) -> str:
    rows = [metrics] if "cell" in metrics else list(metrics.values())
    cols = ("test_acc", "steps", "steps_to_99", "wall_s_to_99", "collapsed", "wall_s")
    lines = [f"{'cell':<5}{'T':>6}" + "".join(f"{c:>13}" for c in cols)]
    for m in rows:
        lines.append(f"{m['cell']:<5}{m['T']:>6}" + "".join(
            f"{'-':>13}" if m[c] is None else f"{m[c]:>13.4f}" if isinstance(m[c], float)
            else f"{m[c]:>13}" for c in cols))
    return "\n".join(lines) + "\n(-: validation accuracy never reached 99%)" * any(
        m["steps_to_99"] is None for m in rows)


EXPERIMENT = Experiment(
    name="palindrome", description=describe("palindrome"),
    Config=Config, train=train, summarize=summarize,
    quick=QUICK,
    evaluate=eval_run, plot_seeds=plot_seeds,
    held_out=lambda config: "test",  # fresh palindromes: every run reports test
    resolve=Config.resolved,
)
