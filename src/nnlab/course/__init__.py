"""The study as an assignment: skeletons to complete and checks that explain.

``nnlab course init DIR`` writes the assignment's files (skeletons generated from nnlab's own
reference modules, :mod:`nnlab.course.skeleton`); ``nnlab course check DIR`` checks the
student's code (:mod:`nnlab.course.checks`); ``nnlab course grade`` checks a folder of
submissions (:mod:`nnlab.course.grade`)."""

from __future__ import annotations

from pathlib import Path

from nnlab.course.checks import CHECKS, check
from nnlab.course.skeleton import PART_NAMES, PARTS, assignments, skeleton, solved
from nnlab.errors import NnlabError

STEPS = {
    "1": """1. `modules.py`: `Linear.forward`, then `nnlab course check {dir} Linear.forward`.
2. `Linear.backward`: `nnlab course check {dir} Linear` checks it against centred
   differences, on shapes drawn fresh every run. The gradient convention: the loss is the
   mean over the batch, so `CrossEntropy.backward` carries the 1/N.
3. `ReLU`, `SoftMax` (mind large logits), `CrossEntropy`, each checked the same way.
4. `numpy_mlp.py`: the MLP's `forward` and `backward`, chaining your layers
   (`nnlab course check {dir} numpy_mlp`); it must learn moons.
5. `pytorch_mlp.py`: the same network in PyTorch (`nnlab course check {dir} pytorch_mlp`).
6. Train your layers through nnlab: `nnlab run toy --impl {dir}` (the same data, initial
   weights and figures as `nnlab run toy`), then `nnlab compare` your run with nnlab's.""",
    "2": """1. `cnn_model.py`: the reduced VGG's layers and forward
   (`nnlab course check {dir} cnn_model`): nnlab's weights must load into it and give the
   same logits.
2. Train it: `nnlab run cifar-cnn --impl {dir}` (with `--data PATH` to CIFAR-10).""",
    "3": """1. `vanilla_rnn.py`: the tanh RNN's time loop, equation (1) step by step
   (`nnlab course check {dir} vanilla_rnn`); its loss must fall on palindromes of length 5.
2. `lstm.py`: the LSTM's gates and loop (`nnlab course check {dir} lstm`).
3. Train them: `nnlab run palindrome --impl {dir} --cell rnn,lstm`.""",
}

README = """# {title}

Every body that raises `NotImplementedError` is yours to write; the docstrings give the
shapes. The files:

{files}

In order:

{steps}

`nnlab course check {dir}` runs every check of the files here; it exits 0 when all pass. A
failed check says what was expected and gives a hint; the seed it prints (`--seed N`) draws
the same shapes again.
"""


def init(folder: str | Path, part: str = "1", with_solutions: bool = False) -> list[Path]:
    """Write part ``part``'s files ('1', '2', '3' or 'all') into ``folder`` (new or empty):
    skeletons, or with ``with_solutions`` nnlab's reference bodies (for teachers, and to see
    every check pass). Returns the files written."""
    folder = Path(folder)
    if part not in (*PARTS, "all"):
        raise NnlabError(f"--part {part}: the parts are {', '.join(PARTS)} and all")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise NnlabError(f"{folder}: not an empty folder; nothing was written (give a new "
                         "one, so no earlier work is overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for assignment in assignments(part):
        text = solved(assignment) if with_solutions else skeleton(assignment)
        (folder / assignment.name).write_text(text)
        written.append(folder / assignment.name)
    parts = list(PARTS) if part == "all" else [part]
    (folder / "README.md").write_text(README.format(
        title="; ".join(PART_NAMES[p] for p in parts), dir=folder,
        files="\n".join(f"- `{a.name}`: {a.what}" for a in assignments(part)),
        steps="\n\n".join((f"{PART_NAMES[p]}:\n\n" if len(parts) > 1 else "")
                          + STEPS[p].format(dir=folder) for p in parts)))
    return [*written, folder / "README.md"]


__all__ = ["CHECKS", "check", "init"]
