"""nnlab list | run NAME [flags] | eval RUN_DIR | reproduce [NAME ...]

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
import shlex
import shutil
import signal
import sys
import tempfile
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from nnlab import __version__, experiments
from nnlab.config import field_kind, flag_name, parse_sizes, shown, shown_default, upgrade
from nnlab.errors import ConfigError, Interrupted, NnlabError
from nnlab.reproduce import MEASURED_ON, PROFILE_PARTS, PROFILES, RESULTS, measured_minutes
from nnlab.seeds import flatten, format_summary, run_seeds

TTA = ("none", "flip", "flip+translate")  # as nnlab.experiments.cifar_common.TTA (no torch here)


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
        if field.name != "quick":
            help_text += f" (default: {shown_default(config_cls, field.name)})"
        kwargs["help"] = help_text.replace("%", "%%")  # argparse formats help texts
        parser.add_argument(f"--{flag_name(field.name)}", dest=field.name, **kwargs)


# The flags every `nnlab run NAME` has besides its Config's (and the README's reference).
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
                                "'nnlab[tensorboard]')")),
    ("--seeds", dict(type=int, default=None, metavar="N",
                     help="run seeds --seed .. --seed+N-1, each in --out/seed<k>, and "
                          "report every metric as mean ± std (default: 1)")),
    ("--jobs", dict(type=int, default=None, metavar="N",
                    help="with --seeds: run N seeds at once in separate processes "
                         "(default: 1)")),
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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    sub.add_parser("list", help="list the experiments, one line each")
    rep = sub.add_parser("reproduce", help="re-run the commands behind the README's results "
                         "into runs/reproduce/NAME, or the whole study: --profile P",
                         description="Re-run the README's results (NAME ...), or the study "
                         "as one command (--profile quick|study|full), then build its report "
                         "with nnlab report. Finished parts are kept, interrupted ones resumed.")
    rep.add_argument("names", nargs="*", metavar="NAME",
                     help=f"which results (default: all): {', '.join(RESULTS)}")
    rep.add_argument("--list", action="store_true", help="print the commands, run nothing")
    rep.add_argument("--overwrite", action="store_true",
                     help="re-run results already there from the start")
    rep.add_argument("--profile", choices=PROFILES, default=None,
                     help="quick: every part of the study at a size that takes about 10 "
                          "minutes on 2 CPU cores; study: the study's own settings (hours on "
                          "a CPU); full: study plus every result of the README")
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
    ev.add_argument("--data", default=None, metavar="PATH",
                    help="CIFAR-10 source (default: the one the run used)")
    ev.add_argument("--split", choices=("val", "test"), default=None,
                    help="held-out split (default: the run's own: val, or test for --final "
                         "runs and palindromes)")
    ev.add_argument("--tta", choices=TTA, default=None,
                    help="CIFAR test-time augmentation (default: the run's own)")
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
    run = sub.add_parser("run", help="run one experiment: nnlab run NAME [flags]")
    names = run.add_subparsers(dest="experiment", required=True, metavar="NAME",
                               parser_class=_Parser)
    for name in experiments.EXPERIMENTS:
        p = names.add_parser(name, help=experiments.describe(name),
                             description=experiments.describe(name))
        if name not in argv:
            continue
        _add_config_flags(p, experiments.load(name).Config)
        g = p.add_argument_group("run options (not part of the config)")
        for flag, kwargs in RUN_OPTIONS:
            g.add_argument(flag, **kwargs)
    return parser


def check_out(out: Path, flag: str = "--out") -> None:
    """Refuse, before any data is loaded or folder made, a folder nnlab could not write in:
    one under a file, or in a folder without write permission."""
    parent = out.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NnlabError(f"{flag} {out}: {parent} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nnlab-probe-", dir=parent))
    except OSError as e:
        raise NnlabError(f"{flag} {out}: cannot write in {parent} ({e.strerror})") from None


def check_data(data: str | None, flag: str = "--data") -> None:
    """A CIFAR-10 path given on the command line must exist (checked before the network or
    the disk is touched for anything else)."""
    if data and not Path(data).expanduser().exists():
        raise NnlabError(f"{flag} {data}: no such file or folder")


def _run_dir(name: str, out: Path | None, overwrite: bool) -> Path:
    """The folder of a new run: free, or cleared with --overwrite when it holds a run."""
    if out is None:
        out = Path("runs") / name / time.strftime("%Y%m%d-%H%M%S")
        while out.exists():  # two runs in the same second
            out = out.with_name(out.name + "-1")
    if out.exists() and not out.is_dir():
        raise NnlabError(f"--out {out} exists and is not a folder")
    check_out(out)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise NnlabError(f"--out {out} is not empty; pass --overwrite to write over it, "
                             "or choose another folder")
        if not any((out / f).exists() for f in ("config.json", "metrics.json")):
            raise NnlabError(f"--out {out} holds files that are not an nnlab run; "
                             "--overwrite clears only run folders")
        shutil.rmtree(out)  # never a folder mixing two runs
    return out


def _recorded(run_dir: Path) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise NnlabError(f"{run_dir}: no config.json; not an nnlab run folder")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NnlabError(f"{path}: not readable JSON") from None


def _config_from(module: ModuleType, recorded: dict) -> typing.Any:
    try:
        return module.Config(**upgrade(module.Config, recorded))
    except (TypeError, ConfigError) as e:
        raise NnlabError(f"config.json does not fit this nnlab's {module.__name__} ({e})") \
            from None


# A resumed run keeps its config; these may still change (what it reads, where it runs).
MAY_CHANGE_ON_RESUME = ("data", "device")
EXTENDS = ("epochs", "steps")


def _resumed_config(module: ModuleType, args: argparse.Namespace, given: dict) -> typing.Any:
    """The config a run started with, plus the changes a resume allows; anything else that
    differs from it is refused, naming the flag."""
    recorded = _recorded(args.resume)
    if "experiment" not in recorded:
        raise NnlabError(f"--resume {args.resume}: written by an nnlab older than checkpoints "
                         "(its config.json names no experiment); it cannot be resumed")
    if recorded.get("experiment") != args.experiment:
        raise NnlabError(f"--resume {args.resume}: that folder holds a "
                         f"{recorded.get('experiment')} run, not {args.experiment}")
    if args.out is not None and args.out.resolve() != args.resume.resolve():
        raise NnlabError("--resume continues a run in its own folder; drop --out")
    if args.seeds is not None and args.seeds != recorded.get("seeds", 1):
        raise NnlabError(f"--resume: --seeds {args.seeds} differs from the run's "
                         f"{recorded.get('seeds', 1)}")
    config = _config_from(module, recorded)
    changes = {}
    for name, value in given.items():
        old = getattr(config, name)
        new = getattr(dataclasses.replace(config, **{name: value}), name)  # as the run stores it
        if new == old or name in MAY_CHANGE_ON_RESUME:
            changes[name] = value
            continue
        flag = f"--{flag_name(name)}"
        if name not in EXTENDS:
            raise NnlabError(f"--resume: {flag} {shown(new)} differs from the run's "
                             f"{shown(old)}; a resumed "
                             "run keeps the config it started with (only --epochs/--steps "
                             "may grow, --data and --device may change)")
        if new < old:
            raise NnlabError(f"--resume: {flag} may only grow (the run's is {old})")
        if hasattr(config, "extendable") and not config.extendable():
            raise NnlabError(f"--resume: {flag}: this run's learning-rate schedule is planned "
                             "for its length, so it cannot be extended; start a new run")
        changes[name] = value
    return dataclasses.replace(config, **changes)


def given_flags(module: ModuleType, args: argparse.Namespace) -> dict[str, typing.Any]:
    """The Config fields whose flags the user gave (defaults are suppressed)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(module.Config)
            if hasattr(args, f.name)}


def new_config(module: ModuleType, given: dict[str, typing.Any]) -> typing.Any:
    """The Config of a new run from the flags given: --quick is a set of defaults that a
    flag the user gave wins over. ConfigError (naming the flag) on a bad value."""
    quick = module.Config.QUICK if given.get("quick") else {}
    return module.Config(**{**quick, **given})


def _cmd_run(args: argparse.Namespace) -> None:
    module = experiments.load(args.experiment)
    given = given_flags(module, args)
    if args.resume is not None:
        config = _resumed_config(module, args, given)
        recorded = _recorded(args.resume)
        seeds, out = recorded.get("seeds", 1), args.resume
        jobs = args.jobs or recorded.get("jobs", 1)  # how many at once: results do not change
        # the options it was started with, unless given again
        every = recorded.get("checkpoint_every") if args.checkpoint_every is None \
            else args.checkpoint_every
        if (out / "metrics.json").exists() and not any(
                getattr(config, k, None) != recorded.get(k) for k in EXTENDS):
            print(f"nnlab: {out} is a finished run (it holds metrics.json); raise "
                  f"--epochs or --steps to extend it", file=sys.stderr)
            return
    else:
        config = new_config(module, given)
        out = None
        seeds = 1 if args.seeds is None else args.seeds
        jobs = 1 if args.jobs is None else args.jobs
        every = args.checkpoint_every
    if hasattr(config, "resolved"):
        config = config.resolved()  # config.json records what runs, not the sentinels
    check_data(getattr(config, "data", None))
    if args.resume is not None:
        check_out(args.resume, "--resume")
    if seeds < 1 or jobs < 1:
        raise ConfigError(f"--seeds and --jobs must be >= 1, got {seeds} and {jobs}")
    options = {"resume": args.resume is not None,
               "tensorboard": args.tensorboard or _logged_to_tensorboard(args.resume),
               "checkpoint_every": every}
    rank = int(os.environ.get("RANK", 0))  # under torchrun: only rank 0 checks and prints
    distributed = os.environ.get("WORLD_SIZE", "1") != "1"
    if distributed and (seeds > 1 or (args.out is None and out is None)):
        raise ConfigError("under torchrun, pass --out DIR (every process must name the "
                          "same folder) and run one seed at a time")
    if out is None:
        out = args.out if rank else _run_dir(args.experiment, args.out, args.overwrite)
    args.run_dir = out  # for the line that says how to resume
    fresh = not out.exists()
    try:
        if seeds == 1:
            from nnlab.engine.run import launch

            summary = module.summarize(launch(module, config, out, **options))
        else:
            summary = format_summary(run_seeds(module, config, out, seeds, jobs, **options))
    except NnlabError:
        # a new run that failed before it wrote anything but its config (say, unreadable
        # data): leave no folder behind, as if it had been refused up front
        if fresh and rank == 0 and out.is_dir() and all(
                p.name == "config.json" for p in out.iterdir()):
            shutil.rmtree(out)
        raise
    if distributed:
        from nnlab.engine import distributed as dist

        dist.teardown()
    if rank == 0:
        print(summary)
        print(f"run folder: {out}")


def _has_model(run_dir: Path) -> bool:
    return any(run_dir.glob("model*.pt")) or any(run_dir.glob("checkpoint-*.pt"))


def _cmd_eval(args: argparse.Namespace) -> None:
    check_data(args.data)
    results = _evaluate(args.run_dir, args)
    for key, value in flatten(results).items():
        print(f"{key}  {value:.4f}")


def _evaluate(run_dir: Path, args: argparse.Namespace) -> dict:
    """Evaluate one run folder, or each sub-run (seeds, datasets, sweeps) of one."""
    recorded = _recorded(run_dir)
    name = recorded.get("experiment")
    if name not in experiments.EXPERIMENTS:
        raise NnlabError(f"{run_dir}: its config.json names no experiment nnlab knows "
                         f"({name!r}); runs written before nnlab eval existed cannot be read")
    module = experiments.load(name)
    if not hasattr(module, "eval_run"):
        raise NnlabError(f"nnlab eval takes CIFAR and palindrome runs; a {name} run is "
                         "evaluated in full by nnlab run (see its metrics.json)")
    if not _has_model(run_dir):
        children = [p for p in sorted(run_dir.iterdir()) if (p / "config.json").is_file()]
        if not children:
            raise NnlabError(f"{run_dir}: no saved model or checkpoint to evaluate yet")
        return {p.name: _evaluate(p, args) for p in children}
    config = _config_from(module, recorded)
    # The run's own held-out split: palindromes report test; CIFAR val, or test with --final.
    own = "test" if name == "palindrome" or getattr(config, "final", False) else "val"
    split = args.split or own
    from nnlab.engine.checkpoint import write_json_atomic

    result = module.eval_run(run_dir, config, split, args.tta, args.data)
    tta = result.get("tta")
    write_json_atomic(run_dir / f"eval-{split}{'-' + tta if tta else ''}.json", result)
    return result


def _run_part(name: str, argv: list[str], out: Path, fresh: bool, data: str | None,
              again: list[str]) -> str:
    """Run one result into ``out``: 'done' when it holds metrics.json (unless ``fresh``),
    resumed when it holds a started run, else from the start. Returns what it did."""
    extra = ["--data", data] if data and argv[0].startswith("cifar") else []
    if (out / "metrics.json").exists() and not fresh:
        return "done"
    if (out / "config.json").exists() and not fresh:
        command, what = ["run", argv[0], "--resume", str(out), *extra], "resumed"
    else:
        command, what = ["run", *argv, *extra, "--out", str(out)], "ran"
        if out.exists():
            command.append("--overwrite")
    try:
        _cmd_run(build_parser(command[:2]).parse_args(command))
    except Interrupted as e:
        e.resume = shlex.join(again)
        raise
    except NnlabError as e:
        raise NnlabError(f"[{name}] {e}") from None
    return what


def _logged_to_tensorboard(run_dir: Path | None) -> bool:
    """A run that logged to TensorBoard keeps logging when resumed (if the package is here)."""
    if run_dir is None or not any(run_dir.rglob("events.out.tfevents.*")):
        return False
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _cmd_reproduce(args: argparse.Namespace) -> None:
    if args.profile is not None:
        return _cmd_profile(args)
    unknown = [n for n in args.names if n not in RESULTS]
    if unknown:
        raise NnlabError(f"unknown result {unknown[0]!r}; choose from {', '.join(RESULTS)}")
    measured = measured_minutes()
    for name in args.names or RESULTS:
        argv, what, cost = RESULTS[name]
        out = Path("runs") / "reproduce" / name
        if name in measured:
            cost += f"; {measured[name]:g} min {MEASURED_ON}"
        print(f"[{name}] {what} (~{cost}): nnlab {shlex.join(['run', *argv, '--out', str(out)])}",
              flush=True)
        if args.list:
            continue
        if (out / "config.json").exists() and not (out / "metrics.json").exists() \
                and not args.overwrite:
            print(f"[{name}] resuming the interrupted run in {out}", flush=True)
        done = _run_part(name, argv, out, args.overwrite, args.data,
                         ["nnlab", "reproduce", *args.names])
        if done == "done":
            print(f"[{name}] done: {out} holds its results (--overwrite re-runs it)")


def _parts(text: str, known: list[str], flag: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    if unknown := sorted(names - set(known)):
        raise NnlabError(f"{flag}: unknown part {unknown[0]!r}; the profile has "
                         f"{', '.join(known)}")
    return names


def _cmd_profile(args: argparse.Namespace) -> None:
    """The study as one command: a plan, then one line per part; resumable."""
    # The plan's minutes: on a CPU with native bf16, what the full profile's parts took on one.
    measured = measured_minutes() if args.profile == "full" else {}
    parts = [(n, a, w, c, measured.get(n, m)) for n, a, w, c, m in PROFILE_PARTS[args.profile]]
    names = [p[0] for p in parts]
    only = _parts(args.only, names, "--only") or set(names)
    force = _parts(args.force, names, "--force")
    out = args.out or Path("runs") / f"study-{args.profile}"
    check_data(args.data)
    if not args.list:
        check_out(out)
    chosen = [p for p in parts if p[0] in only]
    cifar_missing = None
    if any(p[3] for p in chosen) and not args.list:
        from nnlab.data.cifar10 import load_cifar10

        try:
            load_cifar10(args.data)
        except NnlabError as e:
            cifar_missing = str(e)
    def done(name: str) -> bool:  # finished, and not to be redone
        return name not in force and (out / name / "metrics.json").exists()

    from nnlab.engine.checkpoint import read_json, write_json_atomic

    # The command that made each part's folder (older records: the parts' list), so that a
    # folder another profile made (quick's preview MLP, say) is never taken for this one's.
    previous = read_json(out / "profile.json")
    made_by = previous.get("made_by") or {p["name"]: p["argv"] for p in previous.get("parts", [])}
    clash = {p[0]: made_by[p[0]] for p in chosen if p[0] not in force and (out / p[0]).exists()
             and made_by.get(p[0], p[1]) != p[1]}

    # Wall seconds each part has cost, summed over every invocation that worked on it (time
    # lost to an interruption included): the profile's measured time, however often resumed.
    seconds = {n: s for n, s in previous.get("seconds", {}).items() if n not in force}
    runnable = [p for p in chosen if not (p[3] and cifar_missing)]
    total = sum(p[4] for p in runnable)
    left = sum(max(p[4] - seconds.get(p[0], 0.0) / 60, 0.0) for p in runnable if not done(p[0]))
    print(f"nnlab reproduce --profile {args.profile}: {len(chosen)} parts into {out}, about "
          f"{total:.0f} min on a 2-core CPU ("
          + (f"as measured {MEASURED_ON}" if measured else
             "measured on this project's machines") + ")"
          + (f", about {left:.0f} min of it still to run" if left < total else ""))
    for i, (name, argv, what, cifar, minutes) in enumerate(chosen, 1):
        state = ("skipped: no CIFAR-10" if cifar and cifar_missing else
                 f"made by another command, nnlab {shlex.join(['run', *clash[name]])}"
                 if name in clash else
                 "done" if done(name) else
                 "to resume" if (out / name / "config.json").exists() and name not in force
                 else f"~{minutes:g} min")
        print(f"  {i}. {name:<24} {what} [{state}]\n     nnlab {shlex.join(['run', *argv])}")
    if args.list:
        return
    if clash:
        name, argv = next(iter(clash.items()))
        raise NnlabError(f"{out / name} holds a run of `nnlab {shlex.join(['run', *argv])}`, not "
                         f"this profile's: pick another --out, or --force {name} to replace it")
    out.mkdir(parents=True, exist_ok=True)
    recorded = {p["name"] for p in previous.get("parts", [])} | {p[0] for p in chosen}

    def record() -> None:  # parts run by an earlier --only stay in the record
        write_json_atomic(out / "profile.json", {
            "profile": args.profile, "parts": [{"name": n, "argv": a, "what": w, "cifar": c}
                                               for n, a, w, c, _ in parts if n in recorded],
            "seconds": seconds, "made_by": made_by})

    record()
    again = ["nnlab", "reproduce", *sys.argv[2:]] if sys.argv[1:2] == ["reproduce"] else [
        "nnlab", "reproduce", "--profile", args.profile]
    for i, (name, argv, _, cifar, _) in enumerate(chosen, 1):
        if cifar and cifar_missing:
            print(f"[{i}/{len(chosen)}] {name}: skipped, no CIFAR-10 ({cifar_missing}); "
                  "pass --data PATH or set NNLAB_DATA", flush=True)
            continue
        if done(name):
            print(f"[{i}/{len(chosen)}] {name}: done", flush=True)
            continue
        t, before = time.perf_counter(), seconds.get(name, 0.0)
        made_by[name] = argv

        def tick(name: str = name, t: float = t, before: float = before) -> None:
            seconds[name] = before + time.perf_counter() - t
            record()

        # A heartbeat keeps the record within a minute of the truth even through a SIGKILL.
        try:
            with _every(60.0, tick):
                did = _run_part(name, argv, out / name, name in force, args.data, again)
        finally:
            tick()
        print(f"[{i}/{len(chosen)}] {name}: {did} in {time.perf_counter() - t:.0f} s",
              flush=True)
    finished = [p[0] for p in chosen if (out / p[0] / "metrics.json").exists()]
    if finished and all(n in seconds for n in finished):
        print(f"measured: {sum(seconds[n] for n in finished) / 60:.1f} min for "
              f"{len(finished)} finished parts ("
              + ", ".join(f"{n} {seconds[n] / 60:.1f}" for n in finished)
              + "), every invocation's time summed", flush=True)
    print(f"report: nnlab report {out}")


@contextlib.contextmanager
def _every(period_s: float, fn):
    """Call ``fn`` every ``period_s`` seconds from a daemon thread while the block runs."""
    import threading

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(period_s):
            fn()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------- README reference

REFERENCE_START, REFERENCE_END = "<!-- cli-reference: start -->", "<!-- cli-reference: end -->"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _flag_cell(field: dataclasses.Field, kind: type) -> str:
    flag = f"--{flag_name(field.name)}"
    if field.name == "quick":
        return f"`{flag}`"
    if kind is bool:
        return f"`{flag}` / `--no-{flag_name(field.name)}`"
    if "choices" in field.metadata:
        return _md(f"`{flag} {'|'.join(map(str, field.metadata['choices']))}`")
    return f"`{flag} {_metavar(field, kind)}`"


def reference_markdown() -> str:
    """The README's flag reference, generated from what the parsers are built from: the run
    options, then one table per experiment (a test checks the README holds exactly this)."""
    lines = ["**Run options** (every experiment; not part of the config):", "",
             "| flag | what it does |", "| --- | --- |"]
    for flag, kwargs in RUN_OPTIONS:
        metavar = f" {kwargs['metavar']}" if "metavar" in kwargs else ""
        lines.append(f"| `{flag}{metavar}` | {_md(kwargs['help'])} |")
    for name in experiments.EXPERIMENTS:
        cls = experiments.load(name).Config
        lines += ["", f"**`nnlab run {name}`** — {_md(experiments.describe(name))}", "",
                  "| flag | default | what it sets |", "| --- | --- | --- |"]
        for field in dataclasses.fields(cls):
            default = "" if field.name == "quick" else _md(shown_default(cls, field.name))
            lines.append(f"| {_flag_cell(field, field_kind(cls, field.name))} | {default} | "
                         f"{_md(field.metadata.get('help', ''))} |")
    return "\n".join(lines)


def _reference_span(text: str) -> tuple[int, int]:
    """Where the README's generated reference sits: between its two markers."""
    return text.index(REFERENCE_START) + len(REFERENCE_START), text.index(REFERENCE_END)


def readme_reference(readme: Path) -> tuple[str, str]:
    """(the README's reference block as it is, as it should be)."""
    text = readme.read_text()
    start, end = _reference_span(text)
    return text[start:end].strip(), reference_markdown()


def write_readme_reference(readme: str | Path) -> None:
    """``make readme``: replace the README's reference block with the generated one."""
    path = Path(readme)
    text = path.read_text()
    start, end = _reference_span(text)
    path.write_text(f"{text[:start]}\n{reference_markdown()}\n{text[end:]}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[:2]).parse_args(argv)
    try:
        if args.command == "list":
            width = max(map(len, experiments.EXPERIMENTS))
            for name in experiments.EXPERIMENTS:
                print(f"{name:<{width}}  {experiments.describe(name)}")
        elif args.command == "run":
            _cmd_run(args)
        elif args.command == "eval":
            _cmd_eval(args)
        elif args.command == "reproduce":
            _cmd_reproduce(args)
        elif args.command == "report":
            from nnlab.report import build

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
        resume = getattr(e, "resume", None)
        if resume is None and getattr(args, "run_dir", None) is not None:
            resume = f"nnlab run {args.experiment} --resume {shlex.quote(str(args.run_dir))}"
        hint = f"; resume with: {resume}" if resume else ""
        print(f"nnlab: stopped by {signal.Signals(signum).name}{where}{hint}", file=sys.stderr)
        return 128 + signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
