"""Hand-written RNN / LSTM / GRU predicting a palindrome's last digit, by length T (Part III)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from nnlab.config import LR_MAX, Options, option, validate
from nnlab.data.palindrome import distinct_palindromes, held_out_set, palindromes, split
from nnlab.engine import Run, TorchStep, evaluate, train_steps
from nnlab.errors import ConfigError
from nnlab.experiments import Experiment, describe
from nnlab.models.rnn import CELLS, VanillaRNN
from nnlab.plots import plot_accuracy_vs_length, plot_curves

# The long-memory recipe, per cell: learning rate (Adam) and what each choice buys is in
# the docs. The study recipe is RMSprop lr 1e-3 with scalar input for every cell.
LONG_LR = {"rnn": 3e-4, "lstm": 3e-3, "gru": 3e-3}
VAL_SEED, TEST_SEED = 1_000_003, 2_000_003  # fixed held-out sets, disjoint seeds from training
MAX_T = 10_000  # a sequence of this length already takes minutes per step on a CPU


@dataclass
class Config(Options):
    cell: str = option("rnn", "rnn, lstm or gru; a comma list (rnn,lstm) runs each")
    length: int = option(5, "palindrome length T (the network reads T-1 digits)", ge=2)
    lengths: tuple[int, ...] = option((), "sweep over T, comma-separated (overrides --length); "
                                          "one run folder per cell and T, plus acc_vs_T.png")
    recipe: str = option("study", "study: scalar input, RMSprop, default init; long: one-hot "
                         "input, orthogonal (rnn) / chrono (lstm) init, Adam, a curriculum on T",
                         choices=("study", "long"))
    input: str | None = option(None, "input encoding", choices=("scalar", "onehot"),
                               shown="study: scalar; long: onehot")
    init: str | None = option(None, "recurrent init: default (torch's uniform), orthogonal "
                              "(rnn), chrono (lstm gate biases)",
                              choices=("default", "orthogonal", "chrono"),
                              shown="study: default; long: orthogonal for rnn, chrono for "
                                    "lstm, default for gru")
    hidden: int = option(128, "hidden units", gt=0)
    batch_size: int = option(128, "fresh palindromes per step", gt=0)
    lr: float | None = option(None, "learning rate", gt=0, le=LR_MAX,
                              shown="study: 0.001; long: rnn 0.0003, lstm and gru 0.003")
    steps: int = option(10_000, "training steps at most", gt=0)
    clip: float = option(10.0, "clip the gradient's global L2 norm to this (0 = no clipping)",
                         ge=0)
    eval_every: int = option(100, "steps between evaluations on the validation set", gt=0)
    eval_size: int = option(10_000, "palindromes in the final test set (validation: 2,000)",
                            gt=0)
    patience: int = option(5, "stop once validation accuracy is 100% this many evaluations "
                               "in a row", gt=0)
    curriculum_start: int = option(10, "long recipe: first T of the curriculum (set it to T "
                                       "for none)", ge=2)
    curriculum_growth: float = option(1.25, "long recipe: T is multiplied by this when "
                                           "validation accuracy reaches 99%", gt=1)
    time_limit: float = option(0.0, "minutes of training at most per run (0 = no limit)", ge=0)
    seed: int = option(0, "seeds the weights and the training palindromes")

    def __post_init__(self) -> None:
        validate(self)
        if len(self.lengths) == 1:  # a sweep of one length is that length (it was ignored)
            self.length, self.lengths = self.lengths[0], ()
        for cell in self.cells:
            if cell not in CELLS:
                raise ConfigError(f"--cell takes rnn, lstm or gru (or a comma list of them); "
                                  f"got {self.cell!r}")
        owner = {"orthogonal": "rnn", "chrono": "lstm"}.get(self.init or "")
        if owner and self.cells != [owner]:
            raise ConfigError(f"--init {self.init} is for --cell {owner} alone")
        if min(self.Ts) < 2:
            raise ConfigError(f"--lengths: palindrome length T must be >= 2, got {min(self.Ts)}")
        if max(self.Ts) > MAX_T:
            raise ConfigError(f"--length/--lengths: T must be at most {MAX_T}, "
                              f"got {max(self.Ts)}")

    def resolved(self) -> Config:
        """For one cell: every None replaced by the recipe's value."""
        if len(self.cells) != 1:
            return self  # a sweep's sub-runs resolve their own
        cell, long = self.cells[0], self.recipe == "long"
        init = self.init
        if init is None:
            init = {"rnn": "orthogonal", "lstm": "chrono"}.get(cell, "default") if long \
                else "default"
        return replace(self, init=init,
                       input=self.input or ("onehot" if long else "scalar"),
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
    steps_run = history.last["step"]
    seen = steps_run * config.batch_size
    metrics = {
        "cell": cell, "T": T, "recipe": config.recipe, "test_acc": test_acc,
        "test_loss": test_loss, "steps": steps_run, "best_step": state["best_step"],
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
    from nnlab.engine.checkpoint import load_weights, saved_model

    weights, _ = saved_model(run_dir)
    model = load_weights(lambda: _build_model(config, 10 if config.input == "onehot" else 1),
                         weights, run_dir)
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
    quick={"length": 5, "hidden": 16, "steps": 60, "eval_every": 20, "eval_size": 500,
           "curriculum_start": 3},
    evaluate=eval_run, plot_seeds=plot_seeds,
    held_out=lambda config: "test",  # fresh palindromes: every run reports test
    resolve=Config.resolved,
)
