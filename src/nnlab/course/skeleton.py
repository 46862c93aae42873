"""Skeletons generated from nnlab's reference modules: every class and signature, every
docstring (shapes, the gradient convention), with the bodies a student writes replaced by a
``NotImplementedError`` that names what to write. Generated, not kept by hand, so a skeleton
is always in step with its reference."""

from __future__ import annotations

import ast
import importlib
import inspect
from dataclasses import dataclass, field
from types import ModuleType


@dataclass(frozen=True)
class Assignment:
    """One file of the assignment.

    ``name``: its file name; ``module``: the reference module it is made from; ``methods``
    ('Class.method'): the bodies the student writes; ``what``: one line for the README and
    the file's docstring; ``keep``: the reference's top-level names the file holds (None:
    all of them); ``imports``: lines of the reference replaced as they are, so the file
    imports the student's own files (``from nnlab.numpy_nn.modules import X`` -> ``from
    modules import X``)."""

    name: str
    module: str
    methods: tuple[str, ...]
    what: str
    keep: tuple[str, ...] | None = None
    imports: dict[str, str] = field(default_factory=dict)

    def reference(self) -> ModuleType:
        return importlib.import_module(self.module)


PART_1 = (
    Assignment("modules.py", "nnlab.numpy_nn.modules",
               ("Linear.forward", "Linear.backward", "ReLU.forward", "ReLU.backward",
                "SoftMax.forward", "SoftMax.backward", "CrossEntropy.forward",
                "CrossEntropy.backward"),
               "the four layers of the NumPy MLP, each forward and backward"),
    Assignment("numpy_mlp.py", "nnlab.numpy_nn.mlp", ("MLP.forward", "MLP.backward"),
               "the NumPy MLP: your four layers, chained forward and backward",
               imports={"from nnlab.numpy_nn import modules as _modules":
                        "import modules as _modules",
                        "from nnlab.numpy_nn.modules import": "from modules import"}),
    Assignment("pytorch_mlp.py", "nnlab.models.mlp", ("MLP.__init__", "MLP.forward"),
               "the same MLP in PyTorch: its layers and its forward", keep=("MLP",)),
)
PART_2 = (
    Assignment("cnn_model.py", "nnlab.models.cnn", ("VGGReduced.__init__",
                                                    "VGGReduced.forward"),
               "the study's reduced VGG: its layers and its forward", keep=("VGGReduced",)),
)
PART_3 = (
    Assignment("vanilla_rnn.py", "nnlab.models.rnn", ("VanillaRNN.final_hidden",),
               "the study's tanh RNN: its time loop (equation (1), no nn.RNN)",
               keep=("RECURRENT_INITS", "_uniform", "_Recurrent", "VanillaRNN")),
    Assignment("lstm.py", "nnlab.models.rnn", ("LSTM.final_hidden",),
               "an LSTM cell: its gates and its time loop (no nn.LSTM)",
               keep=("_uniform", "_Recurrent", "LSTM")),
)
PARTS = {"1": PART_1, "2": PART_2, "3": PART_3}
PART_NAMES = {"1": "Part I: the MLP, in NumPy and PyTorch", "2": "Part II: the reduced VGG",
              "3": "Part III: recurrent cells"}


def assignments(part: str = "all") -> tuple[Assignment, ...]:
    """The files of ``part`` ('1', '2', '3' or 'all')."""
    return sum(PARTS.values(), ()) if part == "all" else PARTS[part]


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def _used(nodes: list[ast.stmt]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.value for node in nodes for n in ast.walk(node)  # names in string annotations
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier()}


def _source(assignment: Assignment, cut: bool) -> str:
    """The reference's source cut to ``keep``, imports rewritten, and with ``cut`` each of
    ``methods`` reduced to its signature, docstring and a ``NotImplementedError``."""
    source = inspect.getsource(assignment.reference())
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    kept = [n for n in body if not isinstance(n, ast.Import | ast.ImportFrom)
            and (assignment.keep is None or _defined(n) & set(assignment.keep))]
    used = _used(kept)
    imports = [n for n in body if isinstance(n, ast.Import | ast.ImportFrom)
               and (getattr(n, "module", "") == "__future__" or assignment.keep is None
                    or any((a.asname or a.name).split(".")[0] in used for a in n.names))]
    cuts: dict[int, tuple[int, str]] = {}  # first body line -> (last line, replacement)
    found: set[str] = set()
    for node in kept:
        for fn in node.body if isinstance(node, ast.ClassDef) else []:
            name = f"{node.name}.{getattr(fn, 'name', '')}"
            if not isinstance(fn, ast.FunctionDef) or name not in assignment.methods:
                continue
            found.add(name)
            if not cut:
                continue
            rest = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
            indent = " " * (rest[0].col_offset if rest else fn.col_offset + 4)
            start = rest[0].lineno - 1 if rest else fn.end_lineno
            # comments between the docstring and the body go with the body
            while start > 0 and lines[start - 1].strip().startswith("#"):
                start -= 1
            text = f"{name}: write it (its docstring gives the shapes)"
            cuts[start] = (fn.end_lineno, f'{indent}raise NotImplementedError("{text}")\n')
    if missing := set(assignment.methods) - found:
        raise ValueError(f"{assignment.module} has no {sorted(missing)[0]}")

    def text(node: ast.stmt) -> str:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        out, i = [], first - 1
        while i < node.end_lineno:
            if i in cuts:
                i, replacement = cuts[i]
                out.append(replacement)
                continue
            out.append(lines[i])
            i += 1
        return "".join(out)

    head = "".join(text(n) + ("\n" if getattr(n, "module", "") == "__future__" else "")
                   for n in imports)
    for old, new in assignment.imports.items():
        head = head.replace(old, new)
    doc = (f'"""{assignment.what[0].upper()}{assignment.what[1:]}.\n\nGenerated by '
           f'`nnlab course init` from nnlab\'s `{assignment.module}`:\n'
           + ("write every body that raises NotImplementedError." if cut else
              "the reference, every body written.") + '\n"""\n\n')
    return doc + head + "".join("\n\n" + text(n) for n in kept)


def skeleton(assignment: Assignment) -> str:
    """The file a student completes: the reference cut to what the assignment holds, each of
    ``assignment.methods`` reduced to its signature, its docstring and ``raise
    NotImplementedError("<Class.method>: write it ...")``; everything else as it is."""
    return _source(assignment, cut=True)


def solved(assignment: Assignment) -> str:
    """The same file with nnlab's reference bodies (for teachers, and to see a grader pass)."""
    return _source(assignment, cut=False)
