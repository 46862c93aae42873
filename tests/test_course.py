"""nnlab course: skeletons generated from the reference modules, and checks that pass the
reference, fail every untouched skeleton in one line each, and catch a student's usual slips
with a hint that points at the place."""

import ast

import pytest

from nnlab import course
from nnlab.cli import main
from nnlab.course import checks
from nnlab.course.skeleton import assignments, skeleton


def _solved_with(tmp_path, old: str, new: str, file: str = "modules.py"):
    folder = tmp_path / "student"
    course.init(folder, "all", with_solutions=True)
    path = folder / file
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    return folder


def _lines(folder, only=None) -> dict[str, checks.Result]:
    return {r.name: r for r in course.check(folder, only, out=lambda line: None)}


def test_the_reference_passes_every_check_and_the_skeleton_none(tmp_path, capsys):
    """Every part: nnlab's own bodies pass all 17 checks; the untouched skeletons fail each
    in one line that names the body to write and its line."""
    n = len(checks.CHECKS)
    assert main(["course", "init", str(tmp_path / "solved"), "--part", "all", "--solved"]) == 0
    assert main(["course", "check", str(tmp_path / "solved")]) == 0
    out = capsys.readouterr().out
    assert f"{n} of {n} checks pass" in out and out.count("✓") == n
    assert main(["course", "init", str(tmp_path / "mine"), "--part", "all"]) == 0
    assert "next: read" in capsys.readouterr().out
    assert main(["course", "check", str(tmp_path / "mine")]) == 1
    out = capsys.readouterr().out.splitlines()
    failed = [line for line in out if line.startswith("✗")]
    assert len(failed) == n and all("not written yet" in line and ".py line " in line
                                    for line in failed)
    assert not any("Traceback" in line or "site-packages" in line or "nnlab/" in line
                   for line in out[1:])  # the student's file, never nnlab's internals


@pytest.mark.parametrize("assignment", assignments(), ids=lambda a: a.name)
def test_the_skeleton_keeps_every_signature_and_docstring_of_the_reference(assignment):
    """Generated from the reference, so it stays in step: the same classes, methods,
    arguments and docstrings (of the classes the file holds); only the methods to write
    lose their bodies."""
    ref = ast.parse(open(assignment.reference().__file__).read())
    skel = ast.parse(skeleton(assignment))

    def methods(tree, keep=None):  # noqa: ANN001, ANN202
        return {f"{c.name}.{f.name}": (ast.dump(f.args), ast.get_docstring(f))
                for c in tree.body if isinstance(c, ast.ClassDef)
                and (keep is None or c.name in keep)
                for f in c.body if isinstance(f, ast.FunctionDef)}

    assert methods(skel) == methods(ref, assignment.keep)
    for name in assignment.methods:
        cls, fn = name.split(".")
        body = next(f for c in skel.body if isinstance(c, ast.ClassDef) and c.name == cls
                    for f in c.body if isinstance(f, ast.FunctionDef) and f.name == fn).body
        assert isinstance(body[-1], ast.Raise) and len(body) == 2  # docstring, raise


@pytest.mark.parametrize(("name", "old", "new", "said", "file"), [
    ("CrossEntropy.backward", "return -self.onehot / self.probs / self.probs.shape[0]",
     "return -self.onehot / self.probs", "times too large: the loss is the mean",
     "modules.py"),
    ("Linear.backward", 'self.grads["weight"] = dout.T @ self.x',
     'self.grads["weight"] = self.x.T @ dout', "it is transposed", "modules.py"),
    ("SoftMax.forward", "e = np.exp(x - x.max(axis=1, keepdims=True))", "e = np.exp(x)",
     "exp overflows for large logits", "modules.py"),
    ("Linear.forward", 'return x @ self.params["weight"].T + self.params["bias"]',
     'return np.ones((x.shape[0], self.params["bias"].shape[0]))',
     "differs from the expected values", "modules.py"),
    ("CrossEntropy.forward", "self.probs = np.maximum(probs, self.eps)",
     "self.probs = np.maximum(probs, self.eps[0])", "modules.py line", "modules.py"),
    ("vanilla_rnn.cell", "            h = torch.tanh(torch.addmm(xp_t, h, W_hh_T))  # (B, H)\n"
     "        return h", "            before = h\n"
     "            h = torch.tanh(torch.addmm(xp_t, h, W_hh_T))  # (B, H)\n"
     "        return before", "h is read before it is updated", "vanilla_rnn.py"),
    ("numpy_mlp.backward", "dout = self.softmax.backward(dout)", "pass",
     "self.softmax's backward first", "numpy_mlp.py"),
    ("pytorch_mlp.layers", "            if i < len(sizes) - 2:\n                layers.append",
     "            if True:\n                layers.append", "a ReLU after every Linear but the "
     "last", "pytorch_mlp.py"),
    ("lstm.cell", "c = f * c + i * g", "c = i * c + f * g", "c(t) = f c(t-1) + i g", "lstm.py"),
], ids=["no-1/N", "transposed-grad", "softmax-overflow", "constant-forward", "raises",
        "rnn-h-before-update", "mlp-no-softmax-backward", "torch-mlp-relu-last", "lstm-gates"])
def test_a_students_usual_slips_are_caught_with_a_hint(name, old, new, said, file, tmp_path):
    folder = _solved_with(tmp_path, old, new, file)
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
    assert "none of the assignment's files" in capsys.readouterr().err
    course.init(tmp_path / "s")
    assert main(["course", "check", str(tmp_path / "s"), "Conv"]) == 1
    assert "no check is named 'Conv'" in capsys.readouterr().err
    assert main(["course", "check", str(tmp_path / "s"), "lstm"]) == 1  # Part III not there
    assert "✗ lstm.cell: no lstm.py in" in capsys.readouterr().out


def test_a_folder_of_submissions_is_graded_into_a_table(tmp_path, monkeypatch, capsys):
    """Four students: right, partly wrong (no 1/N), raising at import, hanging; each gets its
    row, within the time limits, and the submissions are left as they were."""
    subs = tmp_path / "submissions"
    course.init(subs / "ada", with_solutions=True)
    _solved_with(tmp_path / "b", "return -self.onehot / self.probs / self.probs.shape[0]",
                 "return -self.onehot / self.probs").rename(subs / "bob")
    course.init(subs / "cy", with_solutions=True)
    (subs / "cy" / "modules.py").write_text("import numpy as np\n1 / 0\n")
    _solved_with(tmp_path / "d", "        return self.net(x)\n",
                 "        while True:\n            pass\n", "pytorch_mlp.py").rename(subs / "dee")
    before = {p: p.read_bytes() for p in subs.rglob("*") if p.is_file()}
    monkeypatch.setattr(checks, "LIMIT_S", 2.0)
    assert main(["course", "grade", str(subs), "--part", "1", "--jobs", "2", "--out",
                 str(tmp_path / "grades.csv")]) == 0
    import csv

    rows = {r["submission"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert rows["ada"]["passed"] == "13"
    assert rows["cy"]["passed"] == "2"  # all but its own pytorch_mlp.py import modules.py
    assert rows["bob"]["passed"] == "12" and rows["bob"]["CrossEntropy.backward"] == "fail"
    assert rows["dee"]["pytorch_mlp.layers"] == "fail" and "did not finish" in rows["dee"]["note"]
    assert rows["dee"]["passed"] == "11" and rows["dee"]["Linear.forward"] == "pass"
    assert "ZeroDivisionError" in rows["cy"]["note"]
    summary = (tmp_path / "grades.md").read_text()
    assert "| bob | 12 of 13 | CrossEntropy.backward |" in summary
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


def _untimed_metrics(run):  # noqa: ANN001, ANN202
    """metrics.json without its seconds (wall_s, data_s, images_per_s, wall_s_to_99...)."""
    import json

    def clean(value):  # noqa: ANN001, ANN202
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()
                    if not (k.endswith("_s") or "_per_s" in k or k.startswith("wall_s"))}
        return value

    return clean(json.loads((run / "metrics.json").read_text()))


def test_your_cells_train_through_the_same_engine(tmp_path, capsys):
    """nnlab run palindrome --impl DIR with nnlab's cells in DIR: the numbers of nnlab run
    palindrome, the files used named in config.json; a broken cell is refused in one line."""
    import json

    course.init(tmp_path / "mine", "3", with_solutions=True)
    quick = ["run", "palindrome", "--quick", "--cell", "rnn,lstm", "--length", "5"]
    assert main([*quick, "--impl", str(tmp_path / "mine"), "--out", str(tmp_path / "a")]) == 0
    assert main([*quick, "--out", str(tmp_path / "b")]) == 0
    assert _untimed_metrics(tmp_path / "a") == _untimed_metrics(tmp_path / "b")
    code = json.loads((tmp_path / "a" / "lstm-T5" / "config.json").read_text())["impl_code"]
    assert set(code["files"]) == {"lstm.py"}
    (tmp_path / "mine" / "lstm.py").write_text("raise ImportError('half written')\n")
    capsys.readouterr()
    assert main([*quick, "--impl", str(tmp_path / "mine"), "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "lstm.py fails to load (ImportError: half written)" in err and "Traceback" not in err


@pytest.mark.slow
def test_your_vgg_trains_through_the_same_engine(tmp_path, learnable_cifar, nnlab_cache):
    """nnlab run cifar-cnn --impl DIR with nnlab's VGG in DIR: the numbers of nnlab run
    cifar-cnn (same split, initial weights, batches)."""
    course.init(tmp_path / "mine", "2", with_solutions=True)
    quick = ["run", "cifar-cnn", "--quick", "--epochs", "2", "--data", str(learnable_cifar)]
    assert main([*quick, "--impl", str(tmp_path / "mine"), "--out", str(tmp_path / "a")]) == 0
    assert main([*quick, "--out", str(tmp_path / "b")]) == 0
    from nnlab.engine.history import flatten

    # to the float noise of multi-threaded convolutions (a wrong init or batch order moves
    # these numbers by points, not by 1e-6)
    mine, theirs = (flatten(_untimed_metrics(tmp_path / r)) for r in "ab")
    assert mine == pytest.approx(theirs, rel=1e-6, abs=1e-6)


def test_your_unfinished_or_failing_code_is_one_line_naming_its_place(tmp_path, capsys):
    """Half-done work through --impl: a body not written yet, or one that raises mid-run,
    is one line naming your file and line, never a traceback or an 'internal error'."""
    from nnlab.course.skeleton import PART_1

    folder = tmp_path / "mine"
    course.init(folder, with_solutions=True)
    (folder / "numpy_mlp.py").write_text(skeleton(PART_1[1]))  # the MLP not written yet
    capsys.readouterr()
    assert main(["run", "toy", "--quick", "--impl", str(folder), "--out",
                 str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "not written yet: MLP.forward (numpy_mlp.py line " in err
    assert f"nnlab course check {folder} says more" in err


def test_a_wrong_backward_in_your_numpy_mlp_fails_the_runs_gradient_check(tmp_path, capsys):
    folder = _solved_with(tmp_path, "dout = self.softmax.backward(dout)", "pass", "numpy_mlp.py")
    capsys.readouterr()
    assert main(["run", "toy", "--quick", "--impl", str(folder), "--out",
                 str(tmp_path / "a")]) == 0
    assert "the gradient check FAILS" in capsys.readouterr().out
