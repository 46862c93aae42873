import pytest

from nnlab.cli import main
from nnlab.study.reproduce import RESULTS


def test_reproduce_list_prints_every_command_and_runs_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name, (argv, _, _) in RESULTS.items():
        assert f"nnlab run {' '.join(argv)} --out runs/reproduce/{name}" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("native", [True, False])
def test_reproduce_list_gives_the_measured_minutes_on_a_cpu_like_the_one_that_measured_them(
        native, capsys, monkeypatch):
    import nnlab.device
    from nnlab.study.reproduce import FULL_MINUTES_NATIVE_BF16

    monkeypatch.setattr(nnlab.device, "cpu_has_native_bf16", lambda: native)
    assert main(["reproduce", "--list", "cifar-speedrun-cpu"]) == 0
    line = capsys.readouterr().out
    cost = RESULTS["cifar-speedrun-cpu"][2]
    minutes = FULL_MINUTES_NATIVE_BF16["cifar-speedrun-cpu"]
    measured = f"(~{cost}; {minutes:g} min on a Xeon with native bf16, like this CPU)"
    assert (measured in line) == native
    assert (f"(~{cost})" in line) != native


def test_reproduce_commands_parse(capsys):
    """Each README command is valid: its flags parse and its config validates."""
    from nnlab import experiments
    from nnlab.cli import build_parser, given_flags
    from nnlab.engine.prepare import new_config

    for argv, _, _ in RESULTS.values():
        args = build_parser(["run", argv[0]]).parse_args(["run", *argv])
        exp = experiments.get(args.experiment)
        new_config(exp, given_flags(exp, args))


def test_reproduce_unknown_name(capsys):
    assert main(["reproduce", "nope"]) == 1
    assert "unknown result 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--seeds", "2", "--jobs", "0"]])
def test_bad_seeds_or_jobs(argv, capsys, tmp_path):
    assert main(["run", "toy", "--quick", *argv, "--out", str(tmp_path / "r")]) == 1
    assert "must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_counts_only_finished_results_and_resumes_the_rest(capsys, tmp_path,
                                                                      monkeypatch):
    import nnlab.study.reproduce

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nnlab.study.reproduce, "RESULTS",
                        {"tiny": (["toy", "--quick"], "a toy", "1 s")})
    out = tmp_path / "runs" / "reproduce" / "tiny"
    assert main(["run", "toy", "--quick", "--out", str(out)]) == 0
    (out / "metrics.json").unlink()  # as if stopped after its last checkpoint
    capsys.readouterr()
    assert main(["reproduce"]) == 0
    assert "[tiny] resuming the interrupted run" in capsys.readouterr().out
    assert (out / "metrics.json").exists()
    assert main(["reproduce"]) == 0
    assert "[tiny] done" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["toy", "cifar-mlp", "cifar-cnn", "cifar-speedrun",
                                  "palindrome"])
def test_every_experiment_has_help(name, capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", name, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--resume RUN_DIR" in out and "--quick" in out
