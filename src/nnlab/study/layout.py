"""The study's report, declared: which run folder each section reads and what makes it.
This is the study's profile definition for the report; the only place that names the
study's run folders and the experiments its tables group by (the sections themselves read
whatever folder they are given).

An experiment of your own (a plugin, a file) needs nothing here: every finished run folder
that no section below reads gets a section of its own, made from its record and its files
(description, command, metrics, figures, curves)."""

from __future__ import annotations

from functools import partial

from nnlab.study import sections, tables
from nnlab.study.sections import Group

# The study's four parts, in its order: the folder each reads (what `nnlab reproduce --profile
# P` writes into OUT/<part>) and the builder of its section.
STUDY = {"toy": sections.part_toy, "cifar-mlp": sections.part_mlp,
         "cifar-cnn": sections.part_cnn, "palindrome": sections.part_palindrome}

# nnlab's additions (gradient checks and boundaries come from the toy part), where the `full`
# profile ran them: the fast CNN's time to accuracy, and the long-memory palindrome runs.
SPEEDRUNS = ("cifar-speedrun-cpu", "cifar-speedrun-cpu-muon")
LONG_MEMORY = ("palindrome-long-rnn", "palindrome-long-lstm", "palindrome-push-rnn",
               "palindrome-push-lstm")
SHOWN = (*SPEEDRUNS, *LONG_MEMORY)  # the additions show these: not again in REST

# The full profile's other results, grouped by the experiment that made each (its command
# in reproduce.RESULTS), in this order.
REST = (
    Group("toy", "**Part I over seeds** (NumPy and PyTorch from the same weights; test "
                 "points):", tables.toy_seeds),
    Group("cifar-mlp", "**Part I.3: MLPs on CIFAR-10** (validation):", tables.cifar_mlp),
    Group("cifar-cnn", "**Part II: the study's VGG for 10 epochs, as the study trains it and "
                       "improved** (validation; the end's with TTA where the part uses it, "
                       "the best epoch's without):", tables.vgg_short),
    Group("cifar-speedrun", "**Part II: what each part of the speedrun recipe buys** (10,000 "
                            "training images, 4 epochs, one change at a time; validation):",
          partial(tables.ablation, base="speedrun-ablation-full")),
    Group("palindrome", "**Part III: what each choice of the long recipe buys** (the tanh RNN "
                        "at T = 60, 2,000 steps; test accuracy on held-out palindromes):",
          partial(tables.ablation, base="palindrome-ablation-full", key="test_acc"),
          where=lambda metrics: "cell" in metrics),  # one run each: the ablations
    Group("palindrome", "**`{name}`: {what}** (test accuracy on held-out palindromes, mean ± "
                        "sd over the seeds where it ran several):", tables.palindrome_grid,
          where=lambda metrics: "cell" not in metrics, each=True,  # sweeps over T
          figure="acc_vs_T.png"),
)

DOCS_PAGES = {  # a section's anchor -> its page in the documentation (docs/<page>.md)
    "part-1": ("part-1-toy", "Part I: NumPy and PyTorch MLPs on toy data"),
    "part-1-3": ("part-1-3-cifar-mlp", "Part I.3: the strongest pure MLP on CIFAR-10"),
    "part-2": ("part-2-vgg", "Part II: the study's reduced VGG"),
    "additions": ("part-2-fast-cnn", "Part II: the fast CNN recipe"),
    "part-3": ("part-3-palindromes", "Part III: palindromes"),
    "rest": ("lab-notes", "Lab notes"),
}
