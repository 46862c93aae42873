"""The flags of ``palindrome`` (Part III), torch-free: ``nnlab run palindrome --help`` reads
them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from nnlab.config import LR_MAX, Options, option, validate
from nnlab.errors import ConfigError

CELL_NAMES = ("rnn", "lstm", "gru")  # nnlab.models.rnn.CELLS (a test keeps them the same)

# The long-memory recipe, per cell: learning rate (Adam) and what each choice buys is in
# the docs. The study recipe is RMSprop lr 1e-3 with scalar input for every cell.
LONG_LR = {"rnn": 3e-4, "lstm": 3e-3, "gru": 3e-3}


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
    impl: str = option("", "your cells in place of nnlab's: a folder whose vanilla_rnn.py (for "
                           "--cell rnn) and lstm.py (--cell lstm) nnlab course init --part 3 "
                           "wrote and you completed; the same palindromes, initial weights "
                           "and curves", metavar="DIR", code=True)

    def __post_init__(self) -> None:
        validate(self)
        if len(self.lengths) == 1:  # a sweep of one length is that length (it was ignored)
            self.length, self.lengths = self.lengths[0], ()
        for cell in self.cells:
            if cell not in CELL_NAMES:
                raise ConfigError(f"--cell takes rnn, lstm or gru (or a comma list of them); "
                                  f"got {self.cell!r}")
        if self.impl and "gru" in self.cells:
            raise ConfigError("--impl trains the course's cells, rnn and lstm; nnlab's GRU "
                              "has no skeleton: leave gru out of --cell")
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


# --quick: the defaults it takes first (a flag you give still wins)
QUICK = {"length": 5, "hidden": 16, "steps": 60, "eval_every": 20, "eval_size": 500,
           "curriculum_start": 3}
