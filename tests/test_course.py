"""nnlab course: skeletons generated from the reference modules, and checks that pass the
reference, fail every untouched skeleton in one line each, and catch a student's usual slips
with a hint that points at the place."""

import ast

import pytest

from nnlab import course
from nnlab.cli import main
from nnlab.course import checks
from nnlab.course.skeleton import PART_1, skeleton


def _solved_with(tmp_path, old: str, new: str):
    folder = tmp_path / "student"
    course.init(folder, with_solutions=True)
    path = folder / "modules.py"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    return folder


def _lines(folder, only=None) -> dict[str, checks.Result]:
    return {r.name: r for r in course.check(folder, only, out=lambda line: None)}


def test_the_reference_passes_every_check_and_the_skeleton_none(tmp_path, capsys):
    assert main(["course", "init", str(tmp_path / "solved"), "--solved"]) == 0
    assert main(["course", "check", str(tmp_path / "solved")]) == 0
    out = capsys.readouterr().out
    assert "8 of 8 checks pass" in out and out.count("✓") == 8
    assert main(["course", "init", str(tmp_path / "mine")]) == 0
    assert "next: read" in capsys.readouterr().out
    assert main(["course", "check", str(tmp_path / "mine")]) == 1
    out = capsys.readouterr().out.splitlines()
    failed = [line for line in out if line.startswith("✗")]
    assert len(failed) == 8 and all("not written yet" in line for line in failed)
    assert not any("Traceback" in line or "site-packages" in line or "nnlab/" in line
                   for line in out[1:])  # the student's file, never nnlab's internals


def test_the_skeleton_keeps_every_signature_and_docstring_of_the_reference():
    """Generated from the reference, so it stays in step: the same classes, methods,
    arguments and docstrings; only the methods to write lose their bodies."""
    assignment = PART_1[0]
    ref = ast.parse(open(assignment.reference().__file__).read())
    skel = ast.parse(skeleton(assignment))

    def methods(tree):  # noqa: ANN001, ANN202
        return {f"{c.name}.{f.name}": (ast.dump(f.args), ast.get_docstring(f))
                for c in tree.body if isinstance(c, ast.ClassDef)
                for f in c.body if isinstance(f, ast.FunctionDef)}

    assert methods(skel) == methods(ref)
    for name in assignment.methods:
        cls, fn = name.split(".")
        body = next(f for c in skel.body if isinstance(c, ast.ClassDef) and c.name == cls
                    for f in c.body if isinstance(f, ast.FunctionDef) and f.name == fn).body
        assert isinstance(body[-1], ast.Raise) and len(body) == 2  # docstring, raise


@pytest.mark.parametrize(("name", "old", "new", "said"), [
    ("CrossEntropy.backward", "return -self.onehot / self.probs / self.probs.shape[0]",
     "return -self.onehot / self.probs", "times too large: the loss is the mean"),
    ("Linear.backward", 'self.grads["weight"] = dout.T @ self.x',
     'self.grads["weight"] = self.x.T @ dout', "it is transposed"),
    ("SoftMax.forward", "e = np.exp(x - x.max(axis=1, keepdims=True))", "e = np.exp(x)",
     "exp overflows for large logits"),
    ("Linear.forward", 'return x @ self.params["weight"].T + self.params["bias"]',
     'return np.ones((x.shape[0], self.params["bias"].shape[0]))',
     "differs from the expected values"),
    ("CrossEntropy.forward", "self.probs = np.maximum(probs, self.eps)",
     "self.probs = np.maximum(probs, self.eps[0])", "modules.py line"),
], ids=["no-1/N", "transposed-grad", "softmax-overflow", "constant-forward", "raises"])
def test_a_students_usual_slips_are_caught_with_a_hint(name, old, new, said, tmp_path):
    folder = _solved_with(tmp_path, old, new)
    found = _lines(folder, name)[name]
    assert not found.passed and said in found.line(), found.line()


def test_code_that_hangs_is_stopped_at_the_limit(tmp_path, monkeypatch):
    folder = _solved_with(tmp_path, "        self.mask = x > 0\n",
                          "        while True:\n            pass\n")
    monkeypatch.setattr(checks, "LIMIT_S", 2.0)
    found = _lines(folder, "ReLU.forward")["ReLU.forward"]
    assert not found.passed and "did not finish in 2 s" in found.said


def test_draws_are_fresh_each_run_and_a_seed_replays_them(tmp_path):
    course.init(tmp_path / "s", with_solutions=True)
    seen = []
    for _ in range(2):
        course.check(tmp_path / "s", "Linear.forward", out=seen.append)
    first, second = seen[0], seen[3]
    assert first.startswith("checking") and first != second  # another seed each run
    seed = int(first.split("seed ")[1].split(":")[0])
    again = []
    course.check(tmp_path / "s", "Linear.forward", seed=seed, out=again.append)
    assert again[1] == seen[1]  # the same shapes drawn


def test_course_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.py").write_text("# earlier work\n")
    assert main(["course", "init", str(tmp_path / "full")]) == 1
    assert "not an empty folder; nothing was written" in capsys.readouterr().err
    assert (tmp_path / "full" / "mine.py").read_text() == "# earlier work\n"
    assert main(["course", "check", str(tmp_path / "nowhere")]) == 1
    assert "no modules.py" in capsys.readouterr().err
    course.init(tmp_path / "s")
    assert main(["course", "check", str(tmp_path / "s"), "Conv"]) == 1
    assert "no check is named 'Conv'" in capsys.readouterr().err


def test_a_folder_of_submissions_is_graded_into_a_table(tmp_path, monkeypatch, capsys):
    """Four students: right, partly wrong (no 1/N), raising at import, hanging; each gets its
    row, within the time limits, and the submissions are left as they were."""
    subs = tmp_path / "submissions"
    course.init(subs / "ada", with_solutions=True)
    _solved_with(tmp_path / "b", "return -self.onehot / self.probs / self.probs.shape[0]",
                 "return -self.onehot / self.probs").rename(subs / "bob")
    course.init(subs / "cy", with_solutions=True)
    (subs / "cy" / "modules.py").write_text("import numpy as np\n1 / 0\n")
    _solved_with(tmp_path / "d", "        self.mask = x > 0\n",
                 "        while True:\n            pass\n").rename(subs / "dee")
    before = {p: p.read_bytes() for p in subs.rglob("*") if p.is_file()}
    monkeypatch.setattr(checks, "LIMIT_S", 2.0)
    assert main(["course", "grade", str(subs), "--out", str(tmp_path / "grades.csv")]) == 0
    import csv

    rows = {r["submission"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert rows["ada"]["passed"] == "8" and rows["cy"]["passed"] == "0"
    assert rows["bob"]["passed"] == "7" and rows["bob"]["CrossEntropy.backward"] == "fail"
    assert rows["dee"]["ReLU.forward"] == "fail" and "did not finish" in rows["dee"]["note"]
    assert rows["dee"]["Linear.forward"] == "pass"
    assert "ZeroDivisionError" in rows["cy"]["note"]
    summary = (tmp_path / "grades.md").read_text()
    assert "| bob | 7 of 8 | CrossEntropy.backward |" in summary
    assert {p: p.read_bytes() for p in subs.rglob("*") if p.is_file()} == before
    assert main(["course", "grade", str(subs), "--out", str(tmp_path / "grades.csv")]) == 1
    assert "never written over" in capsys.readouterr().err


def test_your_layers_train_through_the_same_engine(tmp_path, capsys):
    """nnlab run toy --impl DIR with the reference in DIR gives the numbers of nnlab run toy
    (same data, same initial weights); config.json names the folder and a hash of its code;
    a resume imports it only when --impl is given again; a wrong backward is said."""
    import json

    course.init(tmp_path / "mine", with_solutions=True)
    quick = ["run", "toy", "--quick", "--epochs", "30"]
    assert main([*quick, "--impl", str(tmp_path / "mine"), "--out", str(tmp_path / "a")]) == 0
    assert main([*quick, "--out", str(tmp_path / "b")]) == 0

    def untimed(run):  # noqa: ANN001, ANN202
        m = json.loads((run / "metrics.json").read_text())
        return {impl: {k: v for k, v in m[impl].items() if k != "wall_s"}
                for impl in ("numpy", "torch")}, m["gradient_check"]

    assert untimed(tmp_path / "a") == untimed(tmp_path / "b")
    impl = json.loads((tmp_path / "a" / "config.json").read_text())["impl_code"]
    assert impl["path"] == str((tmp_path / "mine").resolve()) and len(impl["sha256"]) == 16
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(tmp_path / "a"), "--epochs", "40"]) == 1
    assert "give --impl again" in capsys.readouterr().err
    assert main(["run", "toy", "--resume", str(tmp_path / "a"), "--epochs", "40", "--impl",
                 str(tmp_path / "mine")]) == 0
    wrong = _solved_with(tmp_path / "w", 'self.grads["bias"] = dout.sum(axis=0)',
                         'self.grads["bias"] = dout.mean(axis=0)')
    capsys.readouterr()
    assert main([*quick, "--impl", str(wrong), "--out", str(tmp_path / "c")]) == 0
    assert "the gradient check FAILS" in capsys.readouterr().out
