"""nnlab list | run NAME [flags] | eval RUN_DIR | export RUN_DIR | predict RUN_DIR IMAGE... |
reproduce [NAME ...] | report RUNS_DIR

Flags of ``run NAME`` are built from the experiment's ``Config`` dataclass: one flag per field,
its help line, default and choices; the run options (``--out``, ``--overwrite``, ``--resume``,
``--checkpoint-every``, ``--tensorboard``, ``--seeds``, ``--jobs``) are added for every
experiment. Errors a user can cause end in one line on stderr and a non-zero exit; a run
stopped by SIGINT/SIGTERM exits 130/143 with the command that resumes it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from nnlab import __version__, experiments
from nnlab.config import field_kind, flag_name, parse_sizes, shown, shown_default
from nnlab.engine.prepare import check_data, check_out
from nnlab.errors import ConfigError, Interrupted, NnlabError
from nnlab.seeds import flatten
from nnlab.study.reproduce import PROFILES, RESULTS
from nnlab.sweeps import HEARTBEAT_S
from nnlab.vision.options import TTA

EXPERIMENT_FLAG = ("--experiment",)
EXPERIMENT_HELP = dict(type=Path, default=None, metavar="FILE.py",
                       help="for a run of an experiment defined in a file: that file (nnlab "
                            "never imports a file that a run folder names)")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return parse_sizes(text, "")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).strip()) from None


def _add_config_flags(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One flag per Config field. Defaults are suppressed (a flag not given is absent from
    the parsed namespace), so --quick and --resume know exactly which flags the user gave;
    the help shows the value that runs when a flag is not given (for each recipe, where
    the recipe decides)."""
    for field in dataclasses.fields(config_cls):
        kind = field_kind(config_cls, field.name)
        help_text = field.metadata.get("help", "")
        kwargs: dict = {"default": argparse.SUPPRESS}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _sizes if kind is tuple else kind
            kwargs["metavar"] = _metavar(field, kind)
        if "choices" in field.metadata:
            kwargs.pop("metavar", None)
            kwargs["choices"] = field.metadata["choices"]
        help_text += f" (default: {shown_default(config_cls, field.name)})"
        kwargs["help"] = help_text.replace("%", "%%")  # argparse formats help texts
        parser.add_argument(f"--{flag_name(field.name)}", dest=field.name, **kwargs)


# The flags every `nnlab run NAME` has besides its Config's (and the flag reference in docs/cli.md).
RUN_OPTIONS: list[tuple[str, dict[str, typing.Any]]] = [
    ("--out", dict(type=Path, default=None, metavar="DIR",
                   help="run folder (default: runs/NAME/<timestamp>)")),
    ("--overwrite", dict(action="store_true",
                         help="clear --out first if it holds an earlier run")),
    ("--resume", dict(type=Path, default=None, metavar="RUN_DIR",
                      help="continue an interrupted run from its newest good checkpoint, "
                           "with the config it started with; a finished run can be "
                           "extended by raising --epochs (or --steps)")),
    ("--checkpoint-every", dict(type=int, default=None, metavar="N",
                                help="checkpoint every N epochs (palindrome: evaluations); "
                                     "the newest two are kept; a resume keeps the run's own "
                                     "unless given again (default: 1; toy: 100)")),
    ("--tensorboard", dict(action="store_true",
                           help="log every history column and the final figures for "
                                "TensorBoard in RUN/tensorboard, one run per phase (pip install "
                                "-e '.[tensorboard]' in a clone)")),
    ("--track", dict(choices=("mlflow",), default=None,
                     help="log the run to MLflow too: its config, every history column by "
                          "epoch or step, the final metrics and figures; to "
                          "$MLFLOW_TRACKING_URI, else mlflow.db and mlartifacts/ beside the "
                          "run folder (pip install -e '.[mlflow]' in a clone)")),
    ("--seeds", dict(type=int, default=None, metavar="N",
                     help="run seeds --seed .. --seed+N-1, each in --out/seed<k>, and "
                          "report every metric as mean ± std (default: 1)")),
    ("--jobs", dict(type=int, default=None, metavar="N",
                    help="with --seeds: run N seeds at once in separate processes "
                         "(default: 1)")),
    ("--time-budget", dict(default=None, metavar="DURATION",
                           help="e.g. 10m, 90s, 1h: probe this machine for a few seconds, then "
                                "run the size and number of epochs expected to give the best "
                                "accuracy in that much time, whole process included; the plan "
                                "is printed first, and training stops early if it runs late "
                                "(experiments with measured sizes: cifar-speedrun)")),
    ("--quick", dict(action="store_true",
                     help="a smoke run in seconds (flags you give still win)")),
]


def _metavar(field: dataclasses.Field, kind: type) -> str:
    """How a field's value is shown in usage lines: INT, FLOAT, N[,N...], TEXT or its own."""
    return field.metadata.get("metavar", {int: "INT", float: "FLOAT",
                                          tuple: "N[,N...]"}.get(kind, "TEXT"))


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the experiment named in ``argv`` (if any) is imported for its flags."""
    parser = _Parser(prog="nnlab", description="Train and compare the classic network "
                     "families: MLP, CNN, RNN.")
    parser.add_argument("--version", action="version", version=f"nnlab {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an internal error (also NNLAB_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    sub.add_parser("list", help="list the experiments, one line each")
    rep = sub.add_parser("reproduce", help="re-run the commands behind the documentation's results "
                         "into runs/reproduce/NAME, or the whole study: --profile P",
                         description="Re-run the documentation's results (NAME ...), or the study "
                         "as one command (--profile quick|study|full), then build its report "
                         "with nnlab report. Finished parts are kept, interrupted ones resumed.")
    rep.add_argument("names", nargs="*", metavar="NAME",
                     help=f"which results (default: all): {', '.join(RESULTS)}")
    rep.add_argument("--list", action="store_true", help="print the commands, run nothing")
    rep.add_argument("--overwrite", action="store_true",
                     help="re-run results already there from the start")
    rep.add_argument("--profile", choices=PROFILES, default=None,
                     help="quick: every part of the study at a preview size (minutes on 2 "
                          "CPU cores; the plan it prints says how long each part took where "
                          "measured); study: the study's own settings (hours on a CPU); full: "
                          "study plus every result in the documentation")
    rep.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="with --profile: where the parts go (default: runs/study-PROFILE)")
    rep.add_argument("--only", default="", metavar="PART[,PART...]",
                     help="with --profile: run only these parts")
    rep.add_argument("--force", default="", metavar="PART[,PART...]",
                     help="with --profile: redo these parts from the start")
    rep.add_argument("--data", default=None, metavar="PATH",
                     help="CIFAR-10 for the CIFAR parts (default: $NNLAB_DATA, else "
                          "torchvision's copy)")
    ev = sub.add_parser("eval", help="evaluate a saved run's model: nnlab eval RUN_DIR",
                        description="Load a finished (or checkpointed) CIFAR or palindrome "
                        "run's model and data state, print its loss and accuracy and write "
                        "them to RUN_DIR/eval-<split>-<tta>.json. On a finished run with its "
                        "own split and TTA it reproduces metrics.json.")
    ev.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder")
    ev.add_argument(*EXPERIMENT_FLAG, **EXPERIMENT_HELP)
    ev.add_argument("--data", default=None, metavar="PATH",
                    help="CIFAR-10 source (default: the one the run used)")
    ev.add_argument("--split", choices=("val", "test"), default=None,
                    help="held-out split (default: the run's own: val, or test for --final "
                         "runs and palindromes)")
    ev.add_argument("--tta", choices=TTA, default=None,
                    help="CIFAR test-time augmentation (default: the run's own)")
    exp_ = sub.add_parser("export", help="write a trained CIFAR model for others: "
                          "nnlab export RUN_DIR --format onnx",
                          description="Write a finished run's trained model, its input "
                          "preparation inside (images: float32 (N, 3, 32, 32), RGB 0-255), to "
                          "RUN_DIR/export/<model>.<format> with <model>.json beside it (input, "
                          "output, classes, config).")
    exp_.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    exp_.add_argument(*EXPERIMENT_FLAG, **EXPERIMENT_HELP)
    exp_.add_argument("--format", choices=("safetensors", "onnx", "torchscript"),
                      default="safetensors", help="safetensors (weights), onnx (onnxruntime) "
                      "or torchscript (torch.jit.load) (default: safetensors)")
    exp_.add_argument("--model", default=None, metavar="NAME",
                      help="which model*.pt when the run holds several (cifar-cnn: "
                      "model-adam, model-sgd)")
    exp_.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="where it goes (default: RUN_DIR/export)")
    pre = sub.add_parser("predict", help="classify image files with a run's model: "
                         "nnlab predict RUN_DIR IMAGE...",
                         description="One line per image: its file, the classes the "
                         "run's model gives it (--top-k) with their probabilities, or --json. "
                         "Images are read as training read them (16-bit and float scaled, "
                         "alpha on white, EXIF turned upright) and resized to 32 x 32 "
                         "(bicubic, antialiased, the aspect ratio not kept). A file that "
                         "cannot be read is named on stderr, the others are still "
                         "predicted, and the exit is 1.")
    pre.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    pre.add_argument(*EXPERIMENT_FLAG, **EXPERIMENT_HELP)
    pre.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                     help="image files, or folders of them")
    pre.add_argument("--top-k", type=int, default=1, metavar="K",
                     help="the K most likely classes of each, with their probabilities "
                          "(default: 1)")
    pre.add_argument("--json", action="store_true",
                     help="print a JSON list instead: for each image its path, top classes, "
                          "probabilities and every class's logit (or its error)")
    pre.add_argument("--model", default=None, metavar="NAME",
                     help="which model*.pt when the run holds several")
    rpt = sub.add_parser("report", help="build the study's report from run folders: "
                         "nnlab report RUNS_DIR",
                         description="Build RUNS_DIR/report/index.md and a self-contained "
                         "index.html (figures embedded) from the run folders that nnlab "
                         "reproduce --profile wrote, with each of the study's claims checked "
                         "against the data.")
    rpt.add_argument("runs_dir", type=Path, metavar="RUNS_DIR")
    rpt.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="where the report goes: a new or empty folder, or an earlier report's "
                     "(default: RUNS_DIR/report)")
    cmp = sub.add_parser("compare", help="separate runs on shared axes: nnlab compare RUN "
                         "RUN...", description="Draw the curves of run folders on shared axes "
                         "(compare.png: held-out accuracy and training loss), tabulate each "
                         "training's last and best numbers (and a hand-written gradient "
                         "check's verdict), and list every setting in which the runs differ "
                         "(compare.md). A run holding several trainings (toy's NumPy and "
                         "PyTorch, cifar-cnn's Adam and SGD, a palindrome sweep's cells) "
                         "gives a curve each: your --impl run beside nnlab's, Adam beside "
                         "SGD, two sweeps' best trials.")
    cmp.add_argument("runs", type=Path, nargs="+", metavar="RUN",
                     help="run folders (a folder of runs gives each of its runs)")
    cmp.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="a new or empty folder (default: runs/compare/<timestamp>)")
    sw = sub.add_parser("sweep", help="search an experiment's flags with Optuna: nnlab sweep "
                        "NAME --param FLAG=SPEC ... --trials N --out DIR",
                        description="Run --trials runs of an experiment, each an ordinary run "
                        "folder under DIR/trials/, choosing the searched flags with Optuna "
                        "(TPE by default) and stopping trials that do worse than the median "
                        "of earlier ones by the same epoch (once a quarter of --trials, 2 to 5, "
                        "have finished). The study is kept in DIR/study.db, or in a database "
                        "server (--storage postgresql://...) that other machines join with "
                        "--join URL --study NAME --out DIR; a worker that dies is noticed by "
                        "Optuna's heartbeat and its trial retried by the next worker, and a "
                        "killed sweep goes on with --resume DIR. Workers that start a trial at "
                        "the same moment may each finish one past --trials. Flags after -- are "
                        "fixed for every trial: nnlab sweep toy --param lr=1e-3..1:log "
                        "--trials 20 --out runs/lr -- --epochs 200.")
    sw.add_argument("experiment", nargs="?", default=None, metavar="NAME|FILE.py",
                    help="the experiment (not with --resume or --join)")
    sw.add_argument("--param", action="append", default=[], metavar="FLAG=SPEC",
                    help="a searched flag: lo..hi (whole numbers for an integer flag), "
                         "lo..hi:log (log scale), or choices a,b,c; a list-valued flag's "
                         "choices are separated by | (quoted): \"widths=32,64|64,128\". "
                         "Repeat for more")
    sw.add_argument("--trials", type=int, default=None, metavar="N",
                    help="finished trials in all, pruned ones included (default: 20); with "
                         "--resume, a larger N continues a finished sweep")
    sw.add_argument("--jobs", type=int, default=1, metavar="J",
                    help="trials at a time, each in its own process with its share of the "
                         "cores (default: 1)")
    sw.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe",
                    help="how values are chosen: tpe (learns from earlier trials), random, "
                         "or grid (every combination of listed values) (default: tpe)")
    sw.add_argument("--metric", default=None, metavar="KEY",
                    help="what to optimise, a key of metrics.json (nested keys joined by "
                         "dots: torch.val_acc) (default: val_acc, the validation accuracy "
                         "every experiment reports: a sweep never tunes on a test split)")
    sw.add_argument("--direction", choices=("maximize", "minimize"), default="maximize",
                    help="maximize (accuracy) or minimize (a loss) (default: maximize)")
    sw.add_argument("--storage", default=None, metavar="URL",
                    help="Optuna's database, shared by every process and machine of the "
                         "sweep (postgresql://user@host/db, mysql://...; default: sqlite in "
                         "DIR; PostgreSQL needs pip install -e '.[postgres]')")
    sw.add_argument("--study", default=None, metavar="NAME",
                    help="the sweep's name in the storage (default: DIR's name); with --join, "
                         "the sweep to join")
    sw.add_argument("--join", default=None, metavar="URL",
                    help="join the sweep --study NAME kept in the database URL as one more "
                         "worker, its trials in its own --out DIR (the experiment, flags and "
                         "trials come from the study)")
    sw.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, metavar="SECONDS",
                    help="seconds between a running trial's heartbeats; a trial silent for "
                         f"two is taken for lost and retried (default: {HEARTBEAT_S})")
    sw.add_argument("--time-budget", default=None, metavar="T",
                    help="start no trial after T (90s, 10m, 2h) of the sweep")
    sw.add_argument("--quick", action="store_true",
                    help="every trial with the experiment's --quick defaults")
    sw.add_argument("--no-prune", dest="prune", action="store_false",
                    help="run every trial to its end (by default a trial that does worse "
                         "than the median of earlier ones by the same epoch is stopped)")
    sw.add_argument("--track", choices=("mlflow",), default=None,
                    help="log every trial to MLflow, as runs of one MLflow experiment "
                         "('nnlab sweep NAME'), in $MLFLOW_TRACKING_URI, else mlflow.db in DIR "
                         "(pip install -e '.[mlflow]' in a clone)")
    sw.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="a new or empty folder (default: runs/sweep-NAME/TIMESTAMP)")
    sw.add_argument("--resume", type=Path, default=None, metavar="DIR",
                    help="continue the sweep in DIR: finished trials kept, interrupted ones "
                         "resumed from their checkpoints")
    sw.set_defaults(flags=[])  # after --: the experiment's own flags, fixed for every trial
    course = sub.add_parser("course", help="the study as an assignment: nnlab course init "
                            "DIR, then nnlab course check DIR",
                            description="Skeletons to complete (generated from nnlab's own "
                            "reference modules) and checks that explain: each check one line, "
                            "on shapes and seeds drawn fresh every run, with a hint on failure; "
                            "then nnlab run toy|cifar-cnn|palindrome --impl DIR trains your "
                            "code.")
    steps = course.add_subparsers(dest="step", required=True, metavar="STEP",
                                  parser_class=_Parser)
    init = steps.add_parser("init", help="write the assignment's files into a new folder",
                            description="Write the skeletons (or, with --solved, nnlab's "
                            "reference bodies) and a README that says what to do, in order.")
    init.add_argument("dir", type=Path, metavar="DIR", help="a new or empty folder")
    init.add_argument("--part", default="1", choices=("1", "2", "3", "all"),
                      help="which part of the study: 1 the MLP (NumPy layers, NumPy and "
                           "PyTorch MLPs), 2 the reduced VGG, 3 the recurrent cells "
                           "(default: 1)")
    init.add_argument("--solved", action="store_true",
                      help="the reference bodies filled in: for teachers, and to see every "
                           "check pass")
    chk = steps.add_parser("check", help="check the code in DIR: one line per check",
                           description="Every check of the assignment's files in DIR, each in "
                           "a process of its own with a time limit; exit 0 only when all "
                           "pass.")
    chk.add_argument("dir", type=Path, metavar="DIR", help="the folder course init wrote")
    chk.add_argument("name", nargs="?", default=None, metavar="NAME",
                     help="only a part's checks (1, 2, 3) or those whose name starts "
                          "with NAME (Linear, SoftMax.backward, numpy_mlp, vanilla_rnn)")
    chk.add_argument("--seed", type=int, default=None, metavar="N",
                     help="draw the shapes and values of an earlier run again (it printed "
                          "its seed)")
    grd = steps.add_parser("grade", help="check every submission folder: a CSV of checks by "
                           "student", description="Each submission folder in SUBMISSIONS "
                           "checked in a temporary copy, each check in its own process with a "
                           "time limit and a memory limit, the same seed for all; one bad "
                           "submission never stops the rest. Writes OUT (CSV) and OUT with .md "
                           "(a summary).")
    grd.add_argument("submissions", type=Path, metavar="SUBMISSIONS",
                     help="a folder holding one folder per submission")
    grd.add_argument("--out", type=Path, required=True, metavar="FILE.csv",
                     help="the grades (never written over)")
    grd.add_argument("--seed", type=int, default=None, metavar="N",
                     help="the draws every submission is checked on (default: fresh)")
    grd.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="submissions checked at a time (default 1; at most the number of "
                          "cores, since each check's time limit is wall time)")
    grd.add_argument("--part", default="all", choices=("1", "2", "3", "all"),
                     help="grade only this part's checks (default: all; a file a submission "
                          "lacks fails its checks)")
    run = sub.add_parser("run", help="run one experiment: nnlab run NAME|FILE.py [flags]")
    names = run.add_subparsers(dest="experiment", required=True, metavar="NAME",
                               parser_class=_Parser)
    asked = argv[1] if len(argv) > 1 and argv[0] == "run" else None
    for name in experiments.names() + ([asked] if asked and asked.endswith(".py") else []):
        about = experiments.describe(name)
        p = names.add_parser(name, help=about, description=about)
        if name != asked:
            continue
        config, quick = experiments.flags_of(name)  # nnlab's own: without torch
        _add_config_flags(p, config)
        g = p.add_argument_group("run options (not part of the config)")
        for flag, kwargs in RUN_OPTIONS:
            if flag == "--quick":
                kwargs = {**kwargs, "help": f"{kwargs['help']}: {_quick_text(quick)}"}
            g.add_argument(flag, **kwargs)
    return parser


def _quick_text(quick: typing.Mapping[str, typing.Any]) -> str:
    """What --quick sets, as flags: '--epochs 2, --batch-size 128'."""
    return ", ".join(f"--{flag_name(k)} {shown(v)}" for k, v in quick.items()) or \
        "this experiment sets none"


def given_flags(exp: experiments.Experiment, args: argparse.Namespace) -> dict[str, typing.Any]:
    """The Config fields whose flags the user gave (defaults are suppressed, so a flag not
    given is absent from the namespace)."""
    parsed = vars(args)
    return {f.name: parsed[f.name] for f in dataclasses.fields(exp.Config) if f.name in parsed}


def _cmd_run(args: argparse.Namespace) -> None:
    from nnlab.api import execute

    exp = experiments.get(args.experiment)
    outcome = execute(exp, given_flags(exp, args), out=args.out, overwrite=args.overwrite,
                      resume=args.resume, quick=args.quick, seeds=args.seeds, jobs=args.jobs,
                      checkpoint_every=args.checkpoint_every, tensorboard=args.tensorboard,
                      time_budget=args.time_budget, track=args.track)
    if not outcome.trained:
        print(f"nnlab: {outcome.out} is a finished run (it holds metrics.json); raise "
              f"--epochs or --steps to extend it", file=sys.stderr)
        return
    if int(os.environ.get("RANK", 0)) == 0:
        from nnlab.engine.budget import outcome as budget_outcome

        print(outcome.summary())
        if (line := budget_outcome(outcome.metrics)) is not None:
            print(line)
        print(f"run folder: {outcome.out}")


def _cmd_sweep(args: argparse.Namespace) -> None:
    from nnlab.sweeps import summary, sweep

    if args.join is not None and args.resume is not None:
        raise ConfigError("--resume continues a sweep folder; --join starts a new one")
    if args.join is not None and (args.experiment or args.param or args.flags):
        raise ConfigError("--join takes the sweep as the study keeps it: drop the experiment, "
                          "--param and the flags after --")
    if args.join is None and (args.resume is None) == (args.experiment is None):
        raise ConfigError("nnlab sweep takes an experiment (NAME or FILE.py), --resume DIR "
                          "to continue a sweep, or --join URL --study NAME to join one")
    if args.resume is not None and (args.param or args.flags or args.out is not None):
        raise ConfigError("--resume continues a sweep as it was started: drop --param, "
                          "--out and the flags after --")
    flags = args.flags
    given = {}
    if args.experiment is not None:
        exp = experiments.get(args.experiment)
        try:
            parsed = build_parser(["run", args.experiment]).parse_args(
                ["run", args.experiment, *flags])
        except SystemExit as e:  # the run parser said what was wrong, in one line
            raise SystemExit(e.code) from None
        given = given_flags(exp, parsed)
    result = sweep(args.experiment, args.param, trials=args.trials, jobs=args.jobs,
                   out=args.out, sampler=args.sampler, metric=args.metric,
                   direction=args.direction, storage=args.storage, resume=args.resume,
                   quick=args.quick, time_budget=args.time_budget, track=args.track,
                   prune=args.prune, study=args.study, join=args.join,
                   heartbeat=args.heartbeat, **given)
    print(summary(result))


def run_command(argv: list[str]) -> None:
    """``nnlab run ...`` from a list of arguments (``nnlab reproduce`` is given it to run its
    parts)."""
    _cmd_run(build_parser(argv[:2]).parse_args(argv))


def _cmd_eval(args: argparse.Namespace) -> None:
    from nnlab.api import evaluate

    check_data(args.data)
    results = evaluate(args.run_dir, split=args.split, tta=args.tta, data=args.data,
                       experiment=args.experiment)
    for key, value in flatten(results).items():
        print(f"{key}  {value:.4f}")


# --------------------------------------------------------------------------- flag reference

REFERENCE_START, REFERENCE_END = "<!-- cli-reference: start -->", "<!-- cli-reference: end -->"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _flag_cell(field: dataclasses.Field, kind: type) -> str:
    flag = f"--{flag_name(field.name)}"
    if kind is bool:
        return f"`{flag}` / `--no-{flag_name(field.name)}`"
    if "choices" in field.metadata:
        return _md(f"`{flag} {'|'.join(map(str, field.metadata['choices']))}`")
    return f"`{flag} {_metavar(field, kind)}`"


def reference_markdown() -> str:
    """The flag reference (docs/cli.md), generated from what the parsers are built from: the
    run options, then one table per experiment (a test checks the page holds exactly this)."""
    lines = ["**Run options** (every experiment; not part of the config):", "",
             "| flag | what it does |", "| --- | --- |"]
    for flag, kwargs in RUN_OPTIONS:
        metavar = f" {kwargs['metavar']}" if "metavar" in kwargs else ""
        lines.append(f"| `{flag}{metavar}` | {_md(kwargs['help'])} |")
    for name in experiments.BUILTIN:
        exp = experiments.get(name)
        cls = exp.Config
        lines += ["", f"**`nnlab run {name}`** — {_md(exp.description)}", "",
                  "| flag | default | what it sets |", "| --- | --- | --- |"]
        for field in dataclasses.fields(cls):
            default = _md(shown_default(cls, field.name))
            lines.append(f"| {_flag_cell(field, field_kind(cls, field.name))} | {default} | "
                         f"{_md(field.metadata.get('help', ''))} |")
        lines += ["", f"`--quick` sets {_md(_quick_text(exp.quick))}."]
    return "\n".join(lines)


def _reference_span(text: str) -> tuple[int, int]:
    """Where a page's generated reference sits: between its two markers."""
    return text.index(REFERENCE_START) + len(REFERENCE_START), text.index(REFERENCE_END)


def readme_reference(readme: Path) -> tuple[str, str]:
    """(the page's reference block as it is, as it should be)."""
    text = readme.read_text()
    start, end = _reference_span(text)
    return text[start:end].strip(), reference_markdown()


def write_readme_reference(readme: str | Path) -> None:
    """``make reference``: replace a page's flag-reference block (docs/cli.md) with the
    generated one."""
    path = Path(readme)
    text = path.read_text()
    start, end = _reference_span(text)
    path.write_text(f"{text[:start]}\n{reference_markdown()}\n{text[end:]}")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``nnlab`` command: 0 on success, 1 for an error the user can fix (one line), 2 for
    a usage error, 128 + N when stopped by signal N, 70 for a bug in nnlab (one line naming the
    file that holds its traceback; ``--debug`` or ``NNLAB_DEBUG=1`` shows the traceback)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("NNLAB_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    try:
        fixed = None
        if argv[:1] == ["sweep"] and "--" in argv:  # a sweep's fixed flags: the run's parser
            fixed, argv = argv[argv.index("--") + 1:], argv[:argv.index("--")]
        args = build_parser(argv[:2]).parse_args(argv)
        if fixed is not None:
            args.flags = fixed
        if args.command == "list":
            rows = experiments.listing()
            width = max(len(name) for name, _, _ in rows)
            for name, description, source in rows:
                where = "" if source == "nnlab" else f"  [{source}]"
                print(f"{name:<{width}}  {description}{where}")
        elif args.command == "run":
            _cmd_run(args)
        elif args.command == "eval":
            _cmd_eval(args)
        elif args.command == "export":
            from nnlab.export import export

            path = export(args.run_dir, args.format, args.out, args.model, args.experiment)
            print(f"exported: {path}")
        elif args.command == "predict":
            from nnlab.export import predict

            said = predict(args.run_dir, args.images, args.model, args.experiment, args.top_k)
            for p in said:
                if p.error is not None:
                    print(f"nnlab: error: {p.error}", file=sys.stderr)
                elif not args.json:
                    print(f"{p.path}: " + ", ".join(
                        f"{c} ({q:.1%})" for c, q in zip(p.classes, p.probabilities,
                                                          strict=True)))
            if args.json:
                print(json.dumps([{"path": p.path, "classes": p.classes,
                                   "probabilities": p.probabilities, "logits": p.logits}
                                  | ({"error": p.error} if p.error else {}) for p in said],
                                 indent=2))
            if any(p.error is not None for p in said):
                return 1
        elif args.command == "sweep":
            _cmd_sweep(args)
        elif args.command == "course":
            from nnlab import course

            if args.step == "init":
                for path in course.init(args.dir, args.part, args.solved):
                    print(f"wrote {path}")
                print(f"next: read {args.dir / 'README.md'}, then nnlab course check "
                      f"{args.dir}")
            elif args.step == "grade":
                from nnlab.course.grade import grade

                graded = grade(args.submissions, args.out, args.seed, part=args.part,
                               jobs=args.jobs)
                print(f"grades: {graded}")
            elif not all(r.passed for r in course.check(args.dir, args.name, args.seed)):
                return 1
        elif args.command == "reproduce":
            from nnlab.study.reproduce import reproduce

            reproduce(args, run_command)
        elif args.command == "compare":
            from nnlab.study.compare import compare

            if args.out is not None:
                check_out(args.out)
            compare(args.runs, args.out)
        elif args.command == "report":
            from nnlab.study.report import build

            if args.out is not None:
                check_out(args.out)
            print(f"report: {build(args.runs_dir, args.out)}")
    except NnlabError as e:
        print(f"nnlab: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `nnlab list | head -2`: the reader has what it wanted
        with contextlib.suppress(OSError, ValueError):  # no error at exit's flush either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as e:  # a disk or folder that fails mid-run: one line, not a traceback
        where = f": {e.filename}" if e.filename else ""
        print(f"nnlab: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt) as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        where = f" ({e.where})" if isinstance(e, Interrupted) and e.where else ""
        resume = e.resume if isinstance(e, Interrupted) else None
        hint = f"; resume with: {resume}" if resume else ""
        print(f"nnlab: stopped by {signal.Signals(signum).name}{where}{hint}", file=sys.stderr)
        return 128 + signum
    except Exception as e:  # a bug of nnlab's: one line for the user, the traceback kept
        if debug:
            raise
        if said := _your_code(e, getattr(locals().get("args"), "impl", "") or ""):
            print(f"nnlab: error: {said}", file=sys.stderr)
            return 1
        print(f"nnlab: internal error in 'nnlab {' '.join(argv[:1])}': "
              f"{type(e).__name__}: {_first_line(e)}; {crash_report(argv)}", file=sys.stderr)
        return 70  # EX_SOFTWARE
    return 0


def _your_code(e: BaseException, folder: str) -> str:
    """'your code raised X (file line N: code) ...' when the traceback passes through a file
    of ``--impl``'s folder (a student's code failing mid-run is theirs to fix, not an nnlab
    bug); '' otherwise."""
    if not folder:
        return ""
    from nnlab.course.checks import frames_in

    frames = frames_in(e, Path(folder).expanduser())
    if not frames:
        return ""
    last = frames[-1]
    what = (f"not written yet: {str(e).split(':')[0]}" if isinstance(e, NotImplementedError)
            else f"{type(e).__name__}: {_first_line(e)}")
    return (f"your code in --impl {folder}: {what} ({Path(last.filename).name} line "
            f"{last.lineno}: {last.line}); nnlab course check {folder} says more")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 200 else line[:197] + "..."


def crash_report(argv: Sequence[str]) -> str:
    """Write the traceback being handled to a file and say where, with how to report it."""
    import tempfile
    import time
    import traceback

    text = (f"nnlab {__version__}, {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
            f"command: nnlab {' '.join(argv)}\n\n{traceback.format_exc()}")
    try:
        fd, path = tempfile.mkstemp(prefix="nnlab-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError:
        return "this is a bug in nnlab: please report it (rerun with --debug to see where)"
    return (f"this is a bug in nnlab: please report it with the traceback in {path} "
            "(or rerun with --debug to see it here)")


if __name__ == "__main__":
    sys.exit(main())
