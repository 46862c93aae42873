"""One vocabulary, no surprises: every experiment's flags drawn at random (hypothesis) end in a
valid Config or in one line naming a flag; --help works everywhere; each user error is one
line and exit 1 (2 for argparse's syntax errors), with no run folder left behind."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlab import experiments
from nnlab.cli import build_parser, given_flags, main
from nnlab.config import field_kind, flag_name
from nnlab.engine.prepare import check_out, config_from, new_config
from nnlab.errors import ConfigError, NnlabError

NAMES = experiments.names()
# make test-fast draws fewer (NNLAB_FUZZ_EXAMPLES=50); make test draws them all
FUZZ = settings(max_examples=int(os.environ.get("NNLAB_FUZZ_EXAMPLES", 1200)), deadline=None,
                derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@functools.cache
def _parser(name: str):
    return build_parser(["run", name])


@functools.cache
def _fields(name: str) -> list[tuple[str, type]]:
    cls = experiments.get(name).Config
    return [(f.name, field_kind(cls, f.name)) for f in dataclasses.fields(cls)]


TEXT = st.one_of(
    st.sampled_from(["", "0", "-1", "1", "2", "16", "0.5", "1.5", "-0.0", "1e400", "1e12",
                     "inf", "-inf", "nan", "NaN", "1,2", "0,4", "8,16,16", ",", "a,b", "abc",
                     "é", "🙂", "none", "flip", "flip+translate", "on", "off", "recipe", "rnn",
                     "lstm,gru", "best", "study", "cpu", "cuda", "auto", "bf16", " 3", "3 "]),
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6))


@st.composite
def command_lines(draw) -> list[str]:
    name = draw(st.sampled_from(NAMES))
    argv = ["run", name] + (["--quick"] if draw(st.booleans()) else [])
    fields = _fields(name)
    for field, kind in draw(st.lists(st.sampled_from(fields), max_size=5)):
        if kind is bool:
            argv.append(draw(st.sampled_from([f"--{flag_name(field)}",
                                              f"--no-{flag_name(field)}"])))
        else:
            argv += [f"--{flag_name(field)}", draw(TEXT)]
    return argv


def _outcome(make) -> str:
    """'config', 'error' (ConfigError: one line naming a flag) or 'usage' (argparse: exit 2,
    one line naming a flag); anything else fails the test."""
    try:
        make()
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message and "--" in message, message
        return "error"
    return "config"


@FUZZ
@given(command_lines())
def test_drawn_command_lines_give_a_config_or_one_line(argv):
    name = argv[1]
    module = experiments.get(name)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = _parser(name).parse_args(argv)
    except SystemExit as e:
        err = stderr.getvalue().strip()
        assert e.code == 2 and len(err.splitlines()) == 1 and "--" in err, err
        return
    given_ = given_flags(module, args)
    outcome = _outcome(lambda: new_config(module, given_))
    if outcome == "config":
        cfg = module.resolve(new_config(module, given_))
        json.dumps(dataclasses.asdict(cfg), allow_nan=False)  # config.json stays plain JSON


ANY = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                st.floats(allow_nan=True, allow_infinity=True), TEXT,
                st.lists(st.integers(-3, 3000), max_size=3),
                st.tuples(st.integers(1, 64)))


@FUZZ
@given(st.sampled_from(NAMES), st.data())
def test_drawn_config_values_give_a_config_or_one_line(name, data):
    """As a config.json (or a script) would pass them: any Python value for any field."""
    module = experiments.get(name)
    fields = [f for f, _ in _fields(name)]
    kwargs = data.draw(st.dictionaries(st.sampled_from(fields), ANY, max_size=4))
    _outcome(lambda: module.Config(**kwargs))


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("paths")
    (root / "file").write_text("x")
    locked = root / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return {"file": root / "file", "under a file": root / "file" / "run",
            "proc": Path("/proc/nnlab-run"), "unicode": root / "é🙂" / "run",
            "free": root / "free" / "run", "locked": locked / "run"}


@pytest.mark.parametrize("key, refused", [
    ("file", True), ("under a file", True), ("proc", True), ("unicode", False),
    ("free", False), ("locked", os.getuid() != 0)])  # root may write anywhere
def test_out_folders_are_checked_before_anything_runs(paths, key, refused):
    path = paths[key]
    try:
        check_out(path)
    except NnlabError as e:
        assert refused and "\n" not in str(e) and str(e).startswith(f"--out {path}: ")
    else:
        assert not refused
    assert not path.exists() or key == "file"  # the check makes nothing


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["eval", "--help"],
                                  ["report", "--help"], ["reproduce", "--help"],
                                  ["run", "--help"]] + [["run", n, "--help"] for n in NAMES])
def test_help_works_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nnlab") and "Traceback" not in out


def test_help_shows_the_value_each_recipe_runs(capsys):
    with pytest.raises(SystemExit):
        main(["run", "cifar-mlp", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: study: 0.001; best: 0.003; long: 0.003)" in out  # --lr
    assert "(default: study: none; best: flip+translate; long: flip+translate)" in out  # --tta
    assert "-1" not in out.split("--lr")[1][:80]  # no sentinel shown as the default


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("nnlab 0.")


@pytest.mark.parametrize("argv, flag", [
    (["run", "toy", "--quick", "--n-samples", "3"], "--n-samples"),
    (["run", "toy", "--quick", "--seed", "-1"], "--seed"),
    (["run", "toy", "--quick", "--lr", "inf"], "--lr"),
    (["run", "cifar-speedrun", "--quick", "--lr", "1e12"], "--lr"),
    (["run", "palindrome", "--hidden", "0"], "--hidden"),
    (["run", "cifar-cnn", "--quick", "--data", "/nonexistent/cifar.tar.gz"], "--data"),
    (["run", "cifar-mlp", "--quick", "--data", "/nonexistent"], "--data"),
])
def test_user_errors_are_one_line_exit_1_and_leave_no_folder(argv, flag, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nnlab: error: ") and flag in err
    assert not out.exists()


def test_out_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["run", "toy", "--quick", "--out", str(tmp_path / "f" / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a file, not a folder" in err


def test_out_where_nothing_can_be_written_is_one_line(capsys):
    assert main(["run", "toy", "--quick", "--out", "/proc/nnlab-run"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write in /proc" in err


def test_an_unreadable_tar_gz_is_one_line_and_leaves_no_folder(tmp_path, nnlab_cache, capsys):
    bad = tmp_path / "cifar.tar.gz"
    bad.write_bytes(os.urandom(4000))
    out = tmp_path / "run"
    assert main(["run", "cifar-cnn", "--quick", "--data", str(bad), "--out", str(out)]) == 1
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(errors) == 1 and "not a readable .tar.gz" in errors[0] and not out.exists()


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_is_no_traceback(monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())  # `nnlab list | head -1`, head gone
    assert main(["list"]) == 141  # 128 + SIGPIPE, as a shell reports it; nothing raised


def test_a_closed_pipe_in_a_real_shell():
    proc = subprocess.run(f"{sys.executable} -m nnlab list | head -1", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("toy") and proc.stderr == ""


def test_the_seeds_summary_averages_measurements_and_counts_milestones():
    from nnlab.seeds import aggregate, format_summary

    runs = [{"val_acc": 0.80, "n_params": 38968, "world_size": 1, "time_to_85_s": None},
            {"val_acc": 0.84, "n_params": 38968, "world_size": 1, "time_to_85_s": 30.0},
            {"val_acc": 0.82, "n_params": 38968, "world_size": 1, "time_to_85_s": None}]
    summary = aggregate(runs)
    assert summary["val_acc_mean"] == pytest.approx(0.82) and summary["val_acc_n"] == 3
    assert summary["n_params"] == 38968 and "n_params_mean" not in summary  # a fact, once
    assert summary["time_to_85_s_n"] == 1 and summary["time_to_85_s_mean"] == 30.0
    text = format_summary(summary)
    assert "n = 3" in text and "1 of 3 seeds reached it" in text
    assert "n_params 38968" in text and "± 0.0000" not in text.split("val_acc")[0]
    assert "world_size 1" in text and "world_size  1.0000" not in text
    none = format_summary(aggregate([{"time_to_94_s": None}] * 2))
    assert "not reached by any seed" in none


def test_epoch_and_T_axes_tick_whole_numbers(tmp_path, monkeypatch):
    from nnlab import plots
    from nnlab.engine import History

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    h = History()
    for epoch in (1, 2):
        h.log(epoch=epoch, train_loss=1.0 / epoch, train_acc=0.5, test_loss=1.0,
              test_acc=0.5, impl="numpy")
    plots.plot_curves(h, tmp_path / "c.png")
    plots.plot_accuracy_vs_length({"rnn": {4: [1.0], 5: [0.9], 6: [0.5]}}, tmp_path / "a.png")
    for fig in figures:
        for ax in fig.axes[:2]:
            fig.canvas.draw()
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(t == int(t) for t in ticks), ticks


README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_flag_reference_is_the_parsers():
    from nnlab.cli import readme_reference

    written, generated = readme_reference(README.with_name("docs") / "cli.md")
    assert written == generated, "docs/cli.md's flag reference is stale: run `make reference`"


def test_every_relative_link_and_image_in_the_readme_resolves():
    import re

    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    relative = [t.split("#")[0] for t in targets if not t.startswith(("http", "#", "mailto:"))]
    assert len(relative) > 10
    missing = [t for t in relative if not (README.parent / t).exists()]
    assert not missing, missing


@pytest.mark.slow
def test_the_docs_site_builds_strictly(tmp_path):
    """mkdocs build --strict: a broken link, a missing page or a docstring that does not
    render fails it."""
    pytest.importorskip("mkdocs")
    root = README.parent
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("nnlab.run") > 0


def _readme_commands() -> list[list[str]]:
    import shlex

    commands = []
    pages = [README, *sorted(README.with_name("docs").glob("*.md"))]
    # a line ending in a backslash continues on the next, as in a shell
    text = "\n".join(page.read_text().replace("\\\n", " ") for page in pages)
    for line in text.splitlines():
        line = line.strip().removeprefix("# = ").removeprefix("# or: ").split(" #")[0]
        line = line.split("   ")[0].replace("[change]", "").strip()  # before a comment
        if line.startswith("nnlab run ") and "NAME" not in line and "…" not in line and \
                "$" not in line:  # with a shell variable ($lr) it is not one literal command
            commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.parametrize("argv", _readme_commands(), ids=" ".join)
def test_every_run_command_in_the_readme_makes_a_valid_config(argv):
    if "--resume" in argv:
        argv = argv[:argv.index("--resume")]  # the folder's config: tested in test_durable
    if "--device" in argv:  # this machine may lack it; the device check is tested elsewhere
        i = argv.index("--device")
        argv = argv[:i] + argv[i + 2:]
    args = build_parser(argv[:2]).parse_args(argv)
    module = experiments.get(args.experiment)
    new_config(module, given_flags(module, args))


@pytest.mark.parametrize("name, recorded, expected", [
    ("cifar-cnn", {"lr": -1.0, "tta": False, "flip": False, "translate": 0},
     {"lr": None, "tta": "none", "flip": False}),
    ("cifar-mlp", {"recipe": "study", "widths": "1024,512,256", "lr": -1.0, "flip": "on",
                   "tta": "off", "activation": "recipe", "epochs": -1},
     {"widths": (1024, 512, 256), "lr": None, "flip": True, "tta": "none",
      "activation": None, "epochs": None}),
    ("palindrome", {"input": "recipe", "init": "recipe", "lr": 0.0, "lengths": []},
     {"input": None, "init": None, "lr": None, "lengths": ()}),
])
def test_config_json_of_an_earlier_nnlab_still_loads(name, recorded, expected):
    """Run folders written before this vocabulary (sentinels, on/off, bool TTA) can still be
    resumed and evaluated."""
    cfg = config_from(experiments.get(name), {"experiment": name, **recorded})
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_every_profile_part_makes_a_valid_config():
    from nnlab.study.reproduce import PROFILE_RUNS

    for parts in PROFILE_RUNS.values():
        for name, argv, *_ in parts:
            args = build_parser(["run", argv[0]]).parse_args(["run", *argv])
            exp = experiments.get(args.experiment)
            given_ = given_flags(exp, args)
            cfg = exp.resolve(new_config(exp, given_))
            # every flag the part gives is what its run records (nothing dropped or reset)
            assert {k: getattr(cfg, k) for k in given_} == given_, name


@pytest.mark.slow
def test_every_config_json_in_docs_results_still_loads():
    """The run folders the documentation's numbers come from (formats 1 to 4) load as today's
    configs; a config.json from a newer nnlab is refused in one line."""
    folders = sorted(Path(__file__).resolve().parents[1].glob("docs/results/**/config.json"))
    assert len(folders) > 100
    for path in folders:
        record = json.loads(path.read_text())
        config_from(experiments.get(record["experiment"]), record)
    with pytest.raises(NnlabError, match="config format 5 is newer than this nnlab reads"):
        config_from(experiments.get("toy"), {"experiment": "toy", "config_format": 5})
