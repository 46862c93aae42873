"""The course's notebooks, executed as a student runs them (a fresh kernel, cell by cell)
against nnlab's reference bodies, so they never go stale: every check passes and the
trained run's curves are shown inline."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")  # dev dependencies: installed by `make test`
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "docs" / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook_per_part():
    assert [p.name for p in NOTEBOOKS] == ["part-1-mlp.ipynb", "part-2-vgg.ipynb",
                                           "part-3-rnn.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs_with_the_reference_bodies(path, tmp_path, monkeypatch,
                                                     learnable_cifar):
    notebook = nbformat.read(path, as_version=4)
    setup = notebook.cells[1]
    assert "SOLVED = False" in setup.source  # what a student gets
    setup.source = setup.source.replace("SOLVED = False", "SOLVED = True")
    monkeypatch.setenv("NNLAB_DATA", str(learnable_cifar))
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "✗" not in text and "✓" in text
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the trained run's curves are shown"
