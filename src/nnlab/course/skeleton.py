"""Skeletons generated from nnlab's reference modules: the same file, every class and
signature, every docstring (shapes, the gradient convention), with the bodies a student
writes replaced by a ``NotImplementedError`` that names what to write. Generated, not kept
by hand, so a skeleton is always in step with its reference."""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Assignment:
    """One file of the assignment: ``name`` (its file name), the reference ``module`` it is
    made from, and the ``methods`` ('Class.method') whose bodies the student writes."""

    name: str
    module: str
    methods: tuple[str, ...]
    what: str

    def reference(self) -> ModuleType:
        import importlib

        return importlib.import_module(self.module)


PART_1 = (
    Assignment("modules.py", "nnlab.numpy_nn.modules",
               ("Linear.forward", "Linear.backward", "ReLU.forward", "ReLU.backward",
                "SoftMax.forward", "SoftMax.backward", "CrossEntropy.forward",
                "CrossEntropy.backward"),
               "the four layers of the NumPy MLP, each forward and backward"),
)
PARTS = {"1": PART_1}


def _todo(method: str, doc: str | None) -> str:
    return f"{method}: write it (its docstring gives the shapes)"


def skeleton(assignment: Assignment) -> str:
    """The reference module's source with each of ``assignment.methods`` reduced to its
    signature, its docstring and ``raise NotImplementedError("<Class.method>: write it
    (<what the docstring says>)")``; everything else (imports, constructors, helpers) as it
    is."""
    source = inspect.getsource(assignment.reference())
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    cuts: list[tuple[int, int, str]] = []  # (first body line, last line, replacement)
    found: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for fn in node.body:
            name = f"{node.name}.{getattr(fn, 'name', '')}"
            if not isinstance(fn, ast.FunctionDef) or name not in assignment.methods:
                continue
            found.add(name)
            doc = ast.get_docstring(fn)
            body = fn.body[1:] if doc is not None else fn.body
            indent = " " * (body[0].col_offset if body else fn.col_offset + 4)
            start = body[0].lineno - 1 if body else fn.end_lineno
            # comments between the docstring and the body go with the body
            while start > 0 and lines[start - 1].strip().startswith("#"):
                start -= 1
            text = _todo(name, doc).replace("\\", "\\\\").replace('"', '\\"')
            cuts.append((start, fn.end_lineno, f'{indent}raise NotImplementedError("{text}")\n'))
    if missing := set(assignment.methods) - found:
        raise ValueError(f"{assignment.module} has no {sorted(missing)[0]}")
    for start, end, replacement in sorted(cuts, reverse=True):
        lines[start:end] = [replacement]
    return "".join(lines)


def solved(assignment: Assignment) -> str:
    """The reference module's source as it is: the file with every body filled in."""
    return inspect.getsource(assignment.reference())
