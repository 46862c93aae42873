"""What users bring, handled as a careful adversary would try it: --overwrite never deletes a
user's files, a run folder never makes nnlab import a file, a resume is exact in every phase
(after an extension too) or leaves the folder as it found it, images as users have them,
damaged files in one line, and a half-written report that can be retried."""

import json
import pathlib

import numpy as np
import pytest
import torch
from fakes import disk_full_at, same_results
from PIL import Image

from nnlab.cli import main
from nnlab.engine import checkpoint as ckpt
from nnlab.engine.checkpoint import Checkpoints


def _one_error_line(capsys) -> str:
    """The one error line, last on stderr (progress notes may come before it)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("nnlab: error: ")]
    assert len(errors) == 1 and errors[0] == err[-1], err
    assert not any("Traceback" in line for line in err)
    return errors[0]


def _files(folder: pathlib.Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (the lock file aside)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".nnlab.lock"}


# --------------------------------------------------------------------------- 1. --overwrite


def test_overwrite_never_clears_a_project_that_merely_holds_a_config_json(tmp_path, capsys):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.json").write_text('{"name": "app"}')
    (proj / "notes.txt").write_text("my notes")
    (proj / "src" / "main.py").write_text("print('hi')")
    before = _files(proj)
    assert main(["run", "toy", "--quick", "--out", str(proj), "--overwrite"]) == 1
    assert "holds files that are not an nnlab run (config.json, notes.txt, src/)" in \
        _one_error_line(capsys)
    assert _files(proj) == before


def test_overwrite_deletes_only_what_a_run_wrote(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "toy", "--quick", "--dataset", "all", "--out", str(run)]) == 0
    (run / "moons" / "my-analysis.ipynb").write_text("{}")  # a user's file inside a sub-run
    before = _files(run)
    capsys.readouterr()
    assert main(["run", "toy", "--quick", "--out", str(run), "--overwrite"]) == 1
    line = _one_error_line(capsys)
    assert "files no run writes (my-analysis.ipynb)" in line and "move them" in line
    assert _files(run) == before
    (run / "moons" / "my-analysis.ipynb").unlink()
    assert main(["run", "toy", "--quick", "--out", str(run), "--overwrite"]) == 0
    assert not (run / "moons").exists()  # a run's own files and sub-runs are cleared


# --------------------------------------------------------------------------- 2. no code runs


def _pwn_folder(tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    marker = tmp_path / "pwned"
    code = tmp_path / "pwn.py"
    code.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    run = tmp_path / "shared-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"experiment": "pwn", "experiment_file": str(code), "config_format": 3}))
    (run / "model.pt").write_bytes(b"")
    return run, marker


@pytest.mark.parametrize("command", [["eval"], ["export"], ["predict", "x.png"]])
def test_a_run_folder_never_makes_nnlab_import_the_file_it_names(command, tmp_path, capsys):
    run, marker = _pwn_folder(tmp_path)
    argv = [command[0], str(run), *command[1:]]
    assert main(argv) == 1
    assert "never imports a file that a run folder names" in _one_error_line(capsys)
    assert not marker.exists()


def test_a_file_experiment_must_match_the_run_it_is_given_for(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["run", "toy", "--quick", "--out", str(run)]) == 0
    example = pathlib.Path(__file__).parents[1] / "examples" / "resnet_cifar.py"
    capsys.readouterr()
    assert main(["eval", str(run), "--experiment", str(example)]) == 1
    assert "holds a run of 'toy', but" in _one_error_line(capsys)


# --------------------------------------------------------------------------- 3. phases


class _Killed(BaseException):
    """A process killed right after it wrote a checkpoint (nothing of nnlab catches it)."""


def _killed_after(monkeypatch, n: int) -> None:
    real, written = Checkpoints.save, []

    def save(self, state, *args, **kwargs):  # noqa: ANN001
        path = real(self, state, *args, **kwargs)
        written.append(state["progress"]["phase"])
        if len(written) == n:
            raise _Killed(path)
        return path

    monkeypatch.setattr(Checkpoints, "save", save)


def _interrupted(monkeypatch, argv: list[str], at: int) -> None:
    """``nnlab ARGV``, killed right after its ``at``-th checkpoint; then resumed to its end."""
    out = pathlib.Path(argv[argv.index("--out" if "--out" in argv else "--resume") + 1])
    with monkeypatch.context() as m:
        _killed_after(m, at)
        with pytest.raises(_Killed):
            main(argv)
    assert main(["run", argv[1], "--resume", str(out)]) == 0


def _same(a: pathlib.Path, b: pathlib.Path) -> None:

    for history in sorted(p.relative_to(b) for p in b.rglob("history*.csv")):
        same_results(a / history.parent, b / history.parent, history.name)


TOY = ["--quick", "--dataset", "moons", "--epochs", "12", "--checkpoint-every", "2",
       "--hidden", "16"]


@pytest.mark.parametrize("at", [2, 5], ids=["numpy-phase", "torch-phase"])
def test_toy_interrupted_in_either_phase_resumes_exactly(at, tmp_path, monkeypatch):
    _interrupted(monkeypatch, ["run", "toy", *TOY, "--out", str(tmp_path / "killed")], at)
    assert main(["run", "toy", *TOY, "--out", str(tmp_path / "reference")]) == 0
    _same(tmp_path / "killed", tmp_path / "reference")


@pytest.mark.parametrize("at", [2, 5], ids=["numpy-phase", "torch-phase"])
def test_toy_extended_then_interrupted_in_either_phase_resumes_exactly(at, tmp_path,
                                                                       monkeypatch):
    """The torch phase of an extended run kept its weights while the NumPy phase trained
    on: checkpoints of the first phase carry the second's state."""
    out = tmp_path / "extended"
    assert main(["run", "toy", *TOY, "--out", str(out)]) == 0
    _interrupted(monkeypatch, ["run", "toy", "--resume", str(out), "--epochs", "20"], at)
    longer = [*TOY[:-4], "--checkpoint-every", "2", "--hidden", "16"]
    longer[longer.index("--epochs") + 1] = "20"
    assert main(["run", "toy", *longer, "--out", str(tmp_path / "reference")]) == 0
    _same(out, tmp_path / "reference")


@pytest.mark.slow
@pytest.mark.parametrize("extend, at", [(False, 1), (False, 3), (True, 1), (True, 3)],
                         ids=["adam", "sgd", "extended-adam", "extended-sgd"])
def test_the_vggs_two_optimizers_resume_exactly(extend, at, learnable_cifar, nnlab_cache,
                                               tmp_path, monkeypatch):
    argv = ["--quick", "--epochs", "2", "--schedule", "constant", "--data",
            str(learnable_cifar)]
    out = tmp_path / "killed"
    if extend:
        assert main(["run", "cifar-cnn", *argv, "--out", str(out)]) == 0
        _interrupted(monkeypatch, ["run", "cifar-cnn", "--resume", str(out), "--epochs", "4",
                                   "--data", str(learnable_cifar)], at)
        argv[argv.index("--epochs") + 1] = "4"
    else:
        _interrupted(monkeypatch, ["run", "cifar-cnn", *argv, "--out", str(out)], at)
    assert main(["run", "cifar-cnn", *argv, "--out", str(tmp_path / "reference")]) == 0
    _same(out, tmp_path / "reference")


@pytest.mark.parametrize("extend, at", [(False, 4), (True, 1), (True, 3)],
                         ids=["second-length", "extended-first", "extended-second"])
def test_palindrome_lengths_resume_exactly(extend, at, tmp_path, monkeypatch):
    argv = ["--quick", "--lengths", "3,4", "--steps", "60", "--eval-every", "20",
            "--patience", "1000"]
    out = tmp_path / "killed"
    if extend:
        assert main(["run", "palindrome", *argv, "--out", str(out)]) == 0
        _interrupted(monkeypatch, ["run", "palindrome", "--resume", str(out), "--steps",
                                   "100"], at)
        argv[argv.index("--steps") + 1] = "100"
    else:
        _interrupted(monkeypatch, ["run", "palindrome", *argv, "--out", str(out)], at)
    assert main(["run", "palindrome", *argv, "--out", str(tmp_path / "reference")]) == 0
    _same(out, tmp_path / "reference")


# --------------------------------------------------------------------------- 4. validate first


def _unfit_newest_checkpoint(run: pathlib.Path) -> None:
    newest = Checkpoints(run).paths()[-1]
    state = ckpt.load(newest)
    state["state"]["train.model"] = {k: torch.zeros(2, 2)
                                     for k in state["state"]["train.model"]}
    ckpt.save(state, newest)


@pytest.mark.parametrize("extend", [False, True], ids=["interrupted", "extended"])
def test_a_resume_onto_a_checkpoint_that_does_not_fit_changes_nothing(extend, tmp_path, capsys):
    run = tmp_path / "r"
    argv = ["--quick", "--steps", "60", "--eval-every", "20", "--patience", "1000"]
    assert main(["run", "palindrome", *argv, "--out", str(run)]) == 0
    if not extend:
        (run / "metrics.json").unlink()  # killed after its last checkpoint
    _unfit_newest_checkpoint(run)
    before = _files(run)
    capsys.readouterr()
    more = ["--steps", "100"] if extend else []
    assert main(["run", "palindrome", "--resume", str(run), *more]) == 1
    line = _one_error_line(capsys)
    assert "'train.model' does not fit this run" in line and "as it was" in line
    assert _files(run) == before


def test_a_checkpoint_missing_a_part_is_refused_before_anything_changes(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["run", "toy", *TOY, "--out", str(run)]) == 0
    newest = Checkpoints(run).paths()[-1]
    state = ckpt.load(newest)
    del state["phases"]
    ckpt.save(state, newest)
    before = _files(run)
    capsys.readouterr()
    assert main(["run", "toy", "--resume", str(run), "--epochs", "20"]) == 1
    assert "damaged checkpoint: its 'phases' is missing" in _one_error_line(capsys)
    assert _files(run) == before


# --------------------------------------------------------------------------- 5. images


def _save(image: Image.Image, path: pathlib.Path, **kwargs) -> pathlib.Path:
    image.save(path, **kwargs)
    return path


def test_images_are_scaled_as_their_files_mean_not_clipped(tmp_path, monkeypatch):
    from nnlab.data import images

    grey16 = _save(Image.fromarray(np.full((8, 8), 32768, np.uint16)), tmp_path / "16.png")
    assert Image.open(grey16).mode.startswith("I")  # really 16-bit on disk
    assert (images.read_image(grey16) == 128).all()  # 32768 / 257, not 255
    floats = _save(Image.fromarray(np.full((8, 8), 0.5, np.float32)), tmp_path / "f.tiff")
    assert (images.read_image(floats) == 128).all()  # not black
    cmyk = _save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "c.jpg")
    assert tuple(images.read_image(cmyk)[4, 4]) == pytest.approx((255, 0, 0), abs=3)
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    assert tuple(images.read_image(_save(palette, tmp_path / "p.png"))[0, 0]) == (0, 0, 255)
    palette.info["transparency"] = 1
    assert tuple(images.read_image(_save(palette, tmp_path / "pt.png"))[0, 0]) == \
        (255, 255, 255)  # a transparent colour shows the white beneath
    half = Image.new("RGBA", (8, 8), (0, 0, 0, 128))
    assert images.read_image(_save(half, tmp_path / "a.png"))[0, 0, 0] == 127  # on white
    tall = np.zeros((6, 4, 3), np.uint8)
    tall[0, 0] = 255  # top left, upright
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: shown rotated 90 degrees clockwise
    rotated = _save(Image.fromarray(np.rot90(tall, 1).copy()), tmp_path / "r.png", exif=exif)
    assert images.read_image(rotated).shape == (6, 4, 3)
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(images.ImageError, match="more than the 100 nnlab decodes"):
        images.read_image(grey16 if False else _save(Image.new("L", (20, 20)),
                                                     tmp_path / "big.png"))


def test_predict_goes_on_past_a_missing_or_unreadable_file(learnable_cifar, nnlab_cache,
                                                           tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(learnable_cifar),
                 "--out", str(run)]) == 0
    good = sorted((learnable_cifar / "test" / "ship").iterdir())[0]
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG not really")
    capsys.readouterr()
    assert main(["predict", str(run), str(good), str(tmp_path / "missing.png"), str(junk),
                 str(good)]) == 1
    out, err = capsys.readouterr()
    assert [line.split(":")[0] for line in out.splitlines()] == [str(good), str(good)]
    assert err.splitlines() == [f"nnlab: error: {tmp_path / 'missing.png'}: no such file",
                                f"nnlab: error: {junk}: not an image nnlab can read (PNG, "
                                "JPEG, TIFF, BMP, GIF or WebP)"]


# --------------------------------------------------------------------------- damaged files


def test_damaged_files_in_a_run_folder_are_one_line(learnable_cifar, nnlab_cache, tmp_path,
                                                    capsys):
    run = tmp_path / "r"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(learnable_cifar),
                 "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    cases = {  # what is done to the folder -> what the line says
        "wrong type": (lambda: (run / "config.json").write_text(json.dumps(
            {**config, "widths": "lots"})), "does not fit this nnlab's cifar-speedrun"),
        "absurd size": (lambda: (run / "config.json").write_text(json.dumps(
            {**config, "widths": [2**20, 2**20, 2**20]})), "does not fit the network"),
        "not a state dict": (lambda: ckpt.save({"model": [1, 2], "data": {}},
                                               run / "model.pt"), "not a set of named tensors"),
        "no data": (lambda: ckpt.save({"model": {"w": torch.zeros(1)}}, run / "model.pt"),
                    "not a model file nnlab saved"),
    }
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes((run / "model.pt").read_bytes())

    def link_out() -> None:
        (run / "model.pt").unlink()
        (run / "model.pt").symlink_to(outside)

    cases["a link out of the folder"] = (link_out, "a link to a file outside its folder")
    original = {p: p.read_bytes() for p in (run / "config.json", run / "model.pt")}
    for name, (damage, said) in cases.items():
        damage()
        capsys.readouterr()
        for argv in (["eval", str(run)], ["export", str(run)]):
            assert main(argv) == 1, name
            assert said in _one_error_line(capsys), name
        for path, data in original.items():
            path.unlink()
            path.write_bytes(data)


def test_an_unexpected_error_is_one_line_and_its_traceback_is_kept(tmp_path, capsys,
                                                                    monkeypatch):
    from nnlab import experiments

    def broken():
        raise RuntimeError("something nnlab did not foresee")

    monkeypatch.setattr(experiments, "listing", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("NNLAB_DEBUG", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert main(["list"]) == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error in 'nnlab list': RuntimeError: something" in err[0]
    (report,) = tmp_path.glob("nnlab-crash-*.txt")
    assert str(report) in err[0] and "please report it" in err[0]
    assert "Traceback" in report.read_text() and "def broken" not in err[0]
    with pytest.raises(RuntimeError):
        main(["--debug", "list"])
    monkeypatch.setenv("NNLAB_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["list"])


# --------------------------------------------------------------------------- 7. the report


def test_a_half_written_report_is_rebuilt_and_a_damaged_run_is_left_out(tmp_path, capsys):
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        assert main(["run", "palindrome", "--quick", "--out", str(runs / name)]) == 0
    (runs / "b" / "metrics.json").write_text('{"test_acc": 0.')  # cut short
    assert main(["report", str(runs)]) == 0
    err = capsys.readouterr().err
    assert f"{runs / 'b'}: left out of the report: its metrics.json cannot be read" in err
    html = (runs / "report" / "index.html").read_text()
    assert "a: palindrome" in html and "b: palindrome" not in html
    (runs / "report" / "index.html").unlink()  # interrupted before its last file
    assert main(["report", str(runs)]) == 0
    assert (runs / "report" / "index.html").is_file()


def test_a_report_on_a_full_disk_names_the_file_it_was_writing(tmp_path, capsys, monkeypatch):

    runs = tmp_path / "runs"
    assert main(["run", "palindrome", "--quick", "--out", str(runs / "a")]) == 0
    disk_full_at(monkeypatch, "index.html")
    capsys.readouterr()
    assert main(["report", str(runs)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"nnlab: error: cannot write {runs / 'report' / 'index.html'}")
    monkeypatch.undo()
    assert main(["report", str(runs)]) == 0  # and it can be retried


# --------------------------------------------------------------------------- fuzzed folders

import os  # noqa: E402
import shutil  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=int(os.environ.get("NNLAB_FUZZ_EXAMPLES", 60)) // 2 or 1,
                deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) |
                    st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> pathlib.Path:
    """A finished palindrome run, unfinished again (its newest checkpoint is where it
    stopped), in a folder of runs: what every fuzzed example copies and damages."""
    runs = tmp_path_factory.mktemp("fuzz") / "runs"
    assert main(["run", "palindrome", "--quick", "--steps", "40", "--eval-every", "20",
                 "--out", str(runs / "r")]) == 0
    return runs


@st.composite
def damage(draw) -> tuple[str, object]:
    """(file, what is done to it): a JSON value replaced, a key dropped, bytes cut or
    flipped, a checkpoint's part replaced or dropped."""
    target = draw(st.sampled_from(["config.json", "metrics.json", "history.csv",
                                   "checkpoint"]))
    if target == "checkpoint":
        part = draw(st.sampled_from(["format", "experiment", "progress", "phases", "data",
                                     "rng", "generators", "state", "progress.phase",
                                     "progress.position", "progress.sums", "phases.train",
                                     "phases.train.history", "phases.train.position",
                                     "state.train.model", "state.train.optimizer",
                                     "state.search", "generators.palindromes"]))
        return target, ("drop" if draw(st.booleans()) else "set", part, draw(JSON))
    how = draw(st.sampled_from(["cut", "flip", "set", "drop"] if target.endswith(".json")
                               else ["cut", "flip"]))
    return target, (how, draw(st.integers(0, 10**6)), draw(JSON))


def _damage(run: pathlib.Path, target: str, how: tuple) -> None:
    kind, where, value = how
    if target == "checkpoint":
        path = Checkpoints(run).paths()[-1]
        state = ckpt.load(path)
        *parents, key = where.split(".", 2) if where.startswith(("state.", "generators.")) \
            else where.split(".")
        if where.startswith(("state.", "generators.")):
            parents, key = [where.split(".", 1)[0]], where.split(".", 1)[1]
        holder = state
        for p in parents:
            holder = holder[p]
        if kind == "drop":
            holder.pop(key, None)
        else:
            holder[key] = value
        ckpt.save(state, path)
        return
    path = run / target
    data = path.read_bytes()
    if kind == "cut":
        path.write_bytes(data[:where % max(len(data), 1)])
    elif kind == "flip":
        i = where % max(len(data), 1)
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xA5]) + data[i + 1:])
    else:
        record = json.loads(data)
        keys = sorted(record) or ["x"]
        key = keys[where % len(keys)]
        if kind == "drop":
            record.pop(key, None)
        else:
            record[key] = value
        path.write_text(json.dumps(record))


@FUZZ
@given(damage=damage(), command=st.sampled_from(["eval", "resume", "report"]))
def test_damaged_run_folders_are_one_line_and_lose_nothing(template, tmp_path_factory, damage,
                                                           command, capsys):
    runs = tmp_path_factory.mktemp("case") / "runs"
    shutil.copytree(template, runs)
    run = runs / "r"
    (run / "metrics.json").rename(run / "metrics.kept.json")  # unfinished: resumable
    if command != "resume":
        (run / "metrics.kept.json").rename(run / "metrics.json")
    if command == "resume" and damage[0] == "metrics.json":
        damage = ("metrics.kept.json", damage[1])  # a file resume does not read
    _damage(run, *damage)
    before = _files(runs)
    capsys.readouterr()
    argv = {"eval": ["eval", str(run)], "resume": ["run", "palindrome", "--resume", str(run)],
            "report": ["report", str(runs)]}[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 1), err[-2000:]  # never 70: an internal error
    assert "Traceback" not in err
    if code == 1:
        assert err.strip().splitlines()[-1].startswith("nnlab: error: ")
        assert _files(runs) == before  # a refusal changes nothing
    else:
        gone = set(before) - set(_files(runs))  # only checkpoints rotated by training on
        assert all(pathlib.Path(p).name.startswith("checkpoint-") for p in gone), gone


def test_everything_nnlab_writes_is_readable_by_others_under_umask_022(tmp_path, capsys):
    """A teacher's run folder, report and export can be read by a class: files get what a
    plain open() gives under the umask (0644 under 022), not mkstemp's private 0600."""
    old = os.umask(0o022)
    try:
        run = tmp_path / "runs" / "r"
        assert main(["run", "palindrome", "--quick", "--out", str(run)]) == 0
        assert main(["report", str(tmp_path / "runs")]) == 0
        written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".nnlab.lock"]
        assert len(written) > 5
        assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}
    finally:
        os.umask(old)


def test_declared_bounds_hold_without_a_post_init(tmp_path):
    """A Config that declares option(gt=0) and writes no __post_init__ still refuses 0: the
    engine validates every config it builds (nnlab.launch, a file's experiment, a resume)."""
    from dataclasses import dataclass

    import nnlab

    @dataclass
    class Config:
        epochs: int = nnlab.option(3, "passes", gt=0)

    def train(config, run):  # noqa: ANN001, ANN202
        return {"epochs": config.epochs}

    with pytest.raises(nnlab.ConfigError, match="--epochs must be > 0, got 0"):
        nnlab.launch(train, Config(epochs=0), tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert nnlab.launch(train, Config(), tmp_path / "ok", progress=False) == {"epochs": 3}
