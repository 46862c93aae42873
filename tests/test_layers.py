"""nnlab's import graph: the layers in pyproject.toml hold (``lint-imports``, run by ``make
test``, checks the arrows) and no module imports itself back through others."""

import grimp
import pytest


def _cycles(graph: grimp.ImportGraph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(
                        child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.add(m)
                    if m == module:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("nnlab")


def test_no_module_imports_itself_back(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_one():
    """The check above can fail: two modules that import each other are one cycle."""
    g = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        g.add_import(importer=a, imported=b)
    assert _cycles(g) == [{"p.a", "p.b", "p.c"}]


NO_TORCH = '''
import sys
from nnlab.cli import main
from nnlab.experiments import BUILTIN

for argv in [["list"], ["--help"], ["run", "--help"], ["sweep", "--help"],
             *(["run", name, "--help"] for name in BUILTIN)]:
    try:
        main(argv)
    except SystemExit:
        pass
    if "torch" in sys.modules:
        print("TORCH after", *argv)
        break
'''


def test_listing_and_help_import_no_torch():
    """``nnlab list`` and ``nnlab run NAME --help`` answer without loading torch (seconds on
    a cold laptop): the Configs live in torch-free modules, the engine's JSON files too."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TORCH after" not in done.stdout, done.stdout.splitlines()[-1]
    assert "palindrome" in done.stdout  # the listing and the help texts were printed


def test_the_torch_free_choices_are_the_models():
    """The Configs name the models' choices without importing them: the same lists."""
    from nnlab.experiments.configs import cifar_mlp, cifar_speedrun, palindrome
    from nnlab.models import cnn, mlp, rnn

    assert cifar_mlp.ACTIVATIONS == tuple(mlp.ACTIVATIONS)
    assert (cifar_mlp.NORMS, cifar_mlp.BLOCKS) == (mlp.NORMS, mlp.BLOCKS)
    assert cifar_speedrun.BN_EPS == cnn.BN_EPS
    assert palindrome.CELL_NAMES == tuple(rnn.CELLS)


# what a module that imports torch may still import inside a function: packages that are
# optional (TensorBoard) or slow to import and needed only on one path (torchvision's
# download and mixing, matplotlib's image reader for TensorBoard)
LATE = ("torchvision", "torch.utils.tensorboard", "matplotlib")


def test_a_module_that_imports_torch_imports_the_rest_at_its_top():
    """Imports inside functions serve one rule, "nnlab list and --help import no torch"; in
    a module that imports torch anyway they only hide what it depends on."""
    import ast
    from pathlib import Path

    import nnlab

    late = []
    for path in sorted(Path(nnlab.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text())
        if not any((isinstance(n, ast.Import) and any(a.name.split(".")[0] == "torch"
                                                     for a in n.names))
                   or (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("torch"))
                   for n in tree.body):
            continue
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for n in ast.walk(fn):
                    name = n.module if isinstance(n, ast.ImportFrom) else \
                        n.names[0].name if isinstance(n, ast.Import) else None
                    if name is not None and not name.startswith(LATE):
                        late.append(f"{path.name}:{n.lineno} {name}")
    assert not late, late
