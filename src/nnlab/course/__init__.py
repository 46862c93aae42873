"""The study as an assignment: skeletons to complete and checks that explain.

``nnlab course init DIR`` writes the assignment's files (skeletons generated from nnlab's own
reference modules, :mod:`nnlab.course.skeleton`); ``nnlab course check DIR`` checks the
student's code (:mod:`nnlab.course.checks`). Part I's four NumPy layers so far."""

from __future__ import annotations

from pathlib import Path

from nnlab.course.checks import check
from nnlab.course.skeleton import PARTS, skeleton, solved
from nnlab.errors import NnlabError

README = """# Part I: the NumPy MLP's layers

`modules.py` holds the four layers of the study's from-scratch MLP: `Linear`, `ReLU`,
`SoftMax` and `CrossEntropy`. Each `forward` and `backward` raises `NotImplementedError`
until you write it; the docstrings give the shapes and the gradient convention (the loss is
the mean over the batch: `CrossEntropy.backward` carries the 1/N).

In order:

1. `Linear.forward`, then `nnlab course check {dir} Linear.forward`.
2. `Linear.backward`: `nnlab course check {dir} Linear` checks it against centred
   differences, on shapes drawn fresh every run.
3. `ReLU`, `SoftMax` (mind large logits), `CrossEntropy`, each checked the same way.
4. `nnlab course check {dir}`: every check; it exits 0 when all pass.

A failed check says what was expected and gives a hint; the seed it prints (`--seed N`)
draws the same shapes again.
"""


def init(folder: str | Path, part: str = "1", with_solutions: bool = False) -> list[Path]:
    """Write Part ``part``'s files into ``folder`` (new or empty): skeletons, or with
    ``with_solutions`` nnlab's reference bodies (for teachers, and to see every check pass).
    Returns the files written."""
    folder = Path(folder)
    if part not in PARTS:
        raise NnlabError(f"--part {part}: the parts so far: {', '.join(PARTS)}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise NnlabError(f"{folder}: not an empty folder; nothing was written (give a new "
                         "one, so no earlier work is overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for assignment in PARTS[part]:
        text = solved(assignment) if with_solutions else skeleton(assignment)
        (folder / assignment.name).write_text(text)
        written.append(folder / assignment.name)
    (folder / "README.md").write_text(README.format(dir=folder))
    return [*written, folder / "README.md"]


__all__ = ["check", "init"]
