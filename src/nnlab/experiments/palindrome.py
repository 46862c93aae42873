"""Hand-written RNN / LSTM / GRU predicting a palindrome's last digit, by length T (Part III)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from nnlab.config import check_choice, check_positive, option, parse_sizes
from nnlab.data.palindrome import distinct_palindromes, held_out_set, palindromes, split
from nnlab.engine import Run, TorchStep, evaluate, train_steps
from nnlab.errors import ConfigError
from nnlab.models.rnn import CELLS, VanillaRNN
from nnlab.plots import plot_accuracy_vs_length, plot_curves

# The long-memory recipe, per cell: learning rate (Adam) and what each choice buys is in
# the README. The study recipe is RMSprop lr 1e-3 with scalar input for every cell.
LONG_LR = {"rnn": 3e-4, "lstm": 3e-3, "gru": 3e-3}
VAL_SEED, TEST_SEED = 1_000_003, 2_000_003  # fixed held-out sets, disjoint seeds from training


@dataclass
class Config:
    cell: str = option("rnn", "rnn, lstm or gru; a comma list (rnn,lstm) runs each")
    length: int = option(5, "palindrome length T (the network reads T-1 digits)")
    lengths: tuple[int, ...] = option((), "sweep over T, comma-separated (overrides --length); "
                                          "one run folder per cell and T, plus acc_vs_T.png")
    recipe: str = option("study", "study: scalar input, RMSprop, default init; long: one-hot "
                         "input, orthogonal (rnn) / chrono (lstm) init, Adam, a curriculum on T",
                         choices=("study", "long"))
    input: str = option("recipe", "input encoding: scalar digits, onehot, or the recipe's "
                        "(study: scalar; long: onehot)", choices=("recipe", "scalar", "onehot"))
    init: str = option("recipe", "recurrent init: default (torch's uniform), orthogonal (rnn), "
                       "chrono (lstm gate biases), or the recipe's (study: default; long: "
                       "orthogonal for rnn, chrono for lstm)",
                       choices=("recipe", "default", "orthogonal", "chrono"))
    hidden: int = option(128, "hidden units")
    batch_size: int = option(128, "fresh palindromes per step")
    lr: float = option(0.0, "learning rate; 0 = the recipe's (study 1e-3; long rnn 3e-4, "
                            "lstm/gru 3e-3)")
    steps: int = option(10_000, "training steps at most")
    clip: float = option(10.0, "clip the gradient's global L2 norm to this (0 = no clipping)")
    eval_every: int = option(100, "steps between evaluations on the validation set")
    eval_size: int = option(10_000, "palindromes in the final test set (validation: 2,000)")
    patience: int = option(5, "stop once validation accuracy is 100% this many evaluations "
                               "in a row")
    curriculum_start: int = option(10, "long recipe: first T of the curriculum (set it to T "
                                       "for none)")
    curriculum_growth: float = option(1.25, "long recipe: T is multiplied by this when "
                                           "validation accuracy reaches 99%")
    time_limit: float = option(0.0, "minutes of training at most per run (0 = no limit)")
    seed: int = option(0, "seeds the weights and the training palindromes")
    quick: bool = option(False, "smoke run in seconds: T=5, hidden 16, 60 steps (flags you "
                                "give still win)")

    QUICK = {"length": 5, "hidden": 16, "steps": 60, "eval_every": 20, "eval_size": 500,
             "curriculum_start": 3}

    def __post_init__(self) -> None:
        for name in ("recipe", "input", "init"):
            check_choice(self, name)
        owner = {"orthogonal": "rnn", "chrono": "lstm"}.get(self.init)
        if owner and self.cells != [owner]:
            raise ConfigError(f"--init {self.init} is for --cell {owner} alone")
        for cell in self.cells:
            if cell not in CELLS:
                raise ConfigError(f"--cell must be among {', '.join(CELLS)}; got {cell!r}")
        check_positive(self, "length", "hidden", "batch_size", "steps", "eval_every",
                       "eval_size", "patience", "curriculum_start")
        if self.lengths:
            self.lengths = parse_sizes(self.lengths)
        if min(self.Ts) < 2:
            raise ConfigError(f"palindrome length T must be >= 2, got {min(self.Ts)}")
        if self.lr < 0 or self.clip < 0 or self.time_limit < 0:
            raise ConfigError("--lr, --clip and --time-limit must be >= 0")
        if self.curriculum_growth <= 1:
            raise ConfigError(f"--curriculum-growth must be > 1, got {self.curriculum_growth}")

    def resolved(self) -> Config:
        """For one cell: every 'recipe' / 0 setting replaced by the recipe's value."""
        if len(self.cells) != 1:
            return self  # a sweep's sub-runs resolve their own
        cell, long = self.cells[0], self.recipe == "long"
        init = self.init
        if init == "recipe":
            init = {"rnn": "orthogonal", "lstm": "chrono"}.get(cell, "default") if long \
                else "default"
        return replace(self, init=init,
                       input=self.input if self.input != "recipe" else
                       ("onehot" if long else "scalar"),
                       lr=self.lr or (LONG_LR[cell] if long else 1e-3))

    @property
    def cells(self) -> list[str]:
        return [c.strip() for c in self.cell.split(",")]

    @property
    def Ts(self) -> tuple[int, ...]:
        return self.lengths or (self.length,)


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


def _build_model(config: Config, input_dim: int) -> torch.nn.Module:
    if config.cell == "rnn":
        return VanillaRNN(config.length, input_dim, config.hidden, 10,
                          recurrent_init="orthogonal" if config.init == "orthogonal"
                          else "default")
    model = CELLS[config.cell](config.length, input_dim, config.hidden, 10)
    if config.init == "chrono":
        model.chrono_init_(max_gap=config.length)
    return model


def _encoding(config: Config) -> str:
    return "index" if config.input == "onehot" else "scalar"  # index = one-hot by row lookup


def train_one(config: Config, run: Run) -> dict:
    """Train one cell at one length T (a resolved config); write history.csv (every
    evaluation), model.pt (the best state at T) and curves.png."""
    cell, T, long = config.cell, config.length, config.recipe == "long"
    encoding = _encoding(config)
    torch.manual_seed(config.seed)
    model = _build_model(config, input_dim=10 if config.input == "onehot" else 1)
    opt = (torch.optim.Adam(model.parameters(), lr=config.lr) if long
           else torch.optim.RMSprop(model.parameters(), lr=config.lr))
    gen = torch.Generator().manual_seed(config.seed)

    # Curriculum (long recipe): train at T_cur, raise it when validation accuracy passes 99%.
    state = {"T": min(config.curriculum_start, T) if long else T, "best_acc": -1.0,
             "best_state": None, "best_step": 0, "streak": 0, "reached_step": None,
             "reached_wall_s": -1.0, "collapse_step": None}
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
    steps_run = history.last["step"]
    seen = steps_run * config.batch_size
    metrics = {
        "cell": cell, "T": T, "recipe": config.recipe, "test_acc": test_acc,
        "test_loss": test_loss, "steps": steps_run, "best_step": state["best_step"],
        "reached_T": history.last["T"],
        "steps_to_99": state["reached_step"] or -1,
        # seconds of training until validation accuracy at the target T first reached 99%
        "wall_s_to_99": state["reached_wall_s"], "collapsed": int(bool(state["collapse_step"])),
        "collapse_step": state["collapse_step"] or -1, "wall_s": history.last["wall_s"],
        "distinct_palindromes": distinct_palindromes(T),
        # Chance that a test palindrome also occurred in training (fresh draws each step):
        # near 1 for small T, where "held-out" cannot mean unseen.
        "test_seen_in_training_frac": -math.expm1(-seen / distinct_palindromes(T)),
    }
    plot_curves(history, run.out / "curves.png", group="none", splits=("train", "val"),
                x="step", twin="T" if long else None,
                title=f"{cell}, T={T} ({config.recipe} recipe): test acc {test_acc:.3f}")
    return metrics


def eval_run(run_dir: Path, config: Config, split: str, tta: str | None,
             data: str | None) -> dict:
    """``nnlab eval``: the saved model (the best state at T) on the test set (``eval_size``
    fresh palindromes, as metrics.json) or the validation set (2,000); ``tta`` and ``data``
    do not apply."""
    from nnlab.engine.checkpoint import saved_model

    weights, _ = saved_model(run_dir)
    model = _build_model(config, input_dim=10 if config.input == "onehot" else 1)
    model.load_state_dict(weights)
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
            f"{m[c]:>13.4f}" if isinstance(m[c], float) else f"{m[c]:>13}" for c in cols))
    return "\n".join(lines)
