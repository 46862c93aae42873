"""nnlab compare: separate runs on shared axes, their numbers in one table, their settings'
differences listed, a failed gradient check said."""

from nnlab import course
from nnlab.cli import main


def test_a_students_run_beside_nnlabs(tmp_path, capsys):
    mine = tmp_path / "mine"
    course.init(mine, with_solutions=True)
    layers = mine / "modules.py"
    layers.write_text(layers.read_text().replace('self.grads["bias"] = dout.sum(axis=0)',
                                                 'self.grads["bias"] = dout.mean(axis=0)'))
    quick = ["run", "toy", "--quick", "--epochs", "30"]
    assert main([*quick, "--impl", str(mine), "--out", str(tmp_path / "student")]) == 0
    assert main([*quick, "--lr", "0.05", "--out", str(tmp_path / "nnlab")]) == 0
    capsys.readouterr()
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "student"), str(tmp_path / "nnlab"), "--out",
                 str(out)]) == 0
    said = capsys.readouterr().out
    table = (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 10_000
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()
            if line.startswith("| student") or line.startswith("| nnlab")}
    assert set(rows) == {"student numpy", "student torch", "nnlab numpy", "nnlab torch"}
    assert "FAILS" in rows["student numpy"] and "passes" in rows["nnlab numpy"]
    assert "30 epochs" in rows["nnlab torch"]
    settings = {line.split(" | ")[0].strip("| ") for line in table.splitlines()
                if line.startswith("| ") and " | " in line}
    assert {"lr", "impl", "impl_code.path"} <= settings and "seed" not in settings
    assert "FAILS" in said and "figure:" in said


def test_the_report_says_whose_code_trained_and_that_its_gradients_are_wrong(tmp_path):
    """A student's toy run in a report's folder: the report names the code (folder and
    hash), checks the study's claim on it, and says its gradient check fails."""
    from nnlab.study.report import build

    mine = tmp_path / "mine"
    course.init(mine, with_solutions=True)
    layers = mine / "modules.py"
    layers.write_text(layers.read_text().replace('self.grads["bias"] = dout.sum(axis=0)',
                                                 'self.grads["bias"] = dout.mean(axis=0)'))
    runs = tmp_path / "runs"
    assert main(["run", "toy", "--quick", "--dataset", "all", "--impl", str(mine), "--out",
                 str(runs / "toy")]) == 0
    text = (build(runs, tmp_path / "report").parent / "index.md").read_text()
    assert f"Trained with your code** (`--impl {mine.resolve()}`): `modules.py` (" in text
    assert "The gradient check FAILS** on moons, circles, blobs" in text


def test_compare_refuses_what_is_not_a_run_and_never_writes_over(tmp_path, capsys):
    assert main(["run", "toy", "--quick", "--out", str(tmp_path / "a")]) == 0
    (tmp_path / "b").mkdir()
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "not a run folder (no config.json)" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.md").write_text("earlier\n")
    assert main(["compare", str(tmp_path / "a"), "--out", str(tmp_path / "out")]) == 1
    assert "never written over" in capsys.readouterr().err
    assert (tmp_path / "out" / "mine.md").read_text() == "earlier\n"
