"""nnlab list | run NAME [flags]

Flags of ``run NAME`` are built from the experiment's ``Config`` dataclass: one flag per field,
its help line, default and choices; ``--out`` and ``--overwrite`` are added for every
experiment. Errors a user can cause end in one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path

from nnlab import experiments
from nnlab.config import flag_name, parse_sizes
from nnlab.errors import ConfigError, NnlabError
from nnlab.reproduce import RESULTS
from nnlab.seeds import format_summary, run_seeds


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return parse_sizes(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_config_flags(parser: argparse.ArgumentParser, config_cls: type) -> None:
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        kwargs: dict = {"default": field.default, "help": field.metadata.get("help", "")}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            kwargs["type"] = _sizes
            kwargs["metavar"] = "N[,N...]"
        else:
            kwargs["type"] = kind
            kwargs["metavar"] = {int: "INT", float: "FLOAT"}.get(kind, "TEXT")
        if "choices" in field.metadata:
            kwargs.pop("metavar", None)
            kwargs["choices"] = field.metadata["choices"]
        if kind is not bool and "%(default)" not in kwargs["help"]:
            default = field.default
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            kwargs["help"] += f" (default: {shown})"
        parser.add_argument(f"--{flag_name(field.name)}", dest=field.name, **kwargs)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the experiment named in ``argv`` (if any) is imported for its flags."""
    parser = _Parser(prog="nnlab", description="Train and compare the classic network "
                     "families: MLP, CNN, RNN.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the experiments, one line each")
    rep = sub.add_parser("reproduce", help="re-run the commands behind the README's results "
                         "into runs/reproduce/NAME")
    rep.add_argument("names", nargs="*", metavar="NAME",
                     help=f"which results (default: all): {', '.join(RESULTS)}")
    rep.add_argument("--list", action="store_true", help="print the commands, run nothing")
    rep.add_argument("--overwrite", action="store_true", help="re-run results already there")
    run = sub.add_parser("run", help="run one experiment: nnlab run NAME [flags]")
    names = run.add_subparsers(dest="experiment", required=True, metavar="NAME",
                               parser_class=_Parser)
    for name in experiments.EXPERIMENTS:
        p = names.add_parser(name, help=experiments.describe(name),
                             description=experiments.describe(name))
        if name not in argv:
            continue
        _add_config_flags(p, experiments.load(name).Config)
        p.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="run folder (default: runs/NAME/<timestamp>)")
        p.add_argument("--overwrite", action="store_true",
                       help="write into --out even if it already holds files")
        p.add_argument("--seeds", type=int, default=1, metavar="N",
                       help="run seeds --seed .. --seed+N-1, each in --out/seed<k>, and "
                            "report every metric as mean ± std (default: 1)")
        p.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="with --seeds: run N seeds at once in separate processes "
                            "(default: 1)")
    return parser


def _run_dir(name: str, out: Path | None, overwrite: bool) -> Path:
    if out is None:
        out = Path("runs") / name / time.strftime("%Y%m%d-%H%M%S")
        while out.exists():  # two runs in the same second
            out = out.with_name(out.name + "-1")
    if out.exists() and not out.is_dir():
        raise NnlabError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise NnlabError(f"--out {out} is not empty; pass --overwrite to write over it, "
                         "or choose another folder")
    return out


def _cmd_run(args: argparse.Namespace) -> None:
    module = experiments.load(args.experiment)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(module.Config)}
    config = module.Config(**values)  # validates; raises ConfigError on bad values
    if args.seeds < 1 or args.jobs < 1:
        raise ConfigError(f"--seeds and --jobs must be >= 1, got {args.seeds} and {args.jobs}")
    rank = int(os.environ.get("RANK", 0))  # under torchrun: only rank 0 checks and prints
    if os.environ.get("WORLD_SIZE", "1") != "1":
        if args.seeds > 1 or args.out is None:
            raise ConfigError("under torchrun, pass --out DIR (every process must name the "
                              "same folder) and run one seed at a time")
        out = args.out if rank else _run_dir(args.experiment, args.out, args.overwrite)
    else:
        out = _run_dir(args.experiment, args.out, args.overwrite)
    if args.seeds == 1:
        summary = module.summarize(module.run(config, out))
    else:
        summary = format_summary(run_seeds(module, config, out, args.seeds, args.jobs))
    if os.environ.get("WORLD_SIZE", "1") != "1":
        from nnlab.engine import distributed

        distributed.teardown()
    if rank == 0:
        print(summary)
        print(f"run folder: {out}")


def _cmd_reproduce(args: argparse.Namespace) -> None:
    unknown = [n for n in args.names if n not in RESULTS]
    if unknown:
        raise NnlabError(f"unknown result {unknown[0]!r}; choose from {', '.join(RESULTS)}")
    for name in args.names or RESULTS:
        argv, what, cost = RESULTS[name]
        out = Path("runs") / "reproduce" / name
        command = ["run", *argv, "--out", str(out)]
        print(f"[{name}] {what} (~{cost}): nnlab {' '.join(command)}", flush=True)
        if args.list:
            continue
        if out.is_dir() and any(out.iterdir()) and not args.overwrite:
            print(f"[{name}] {out} already holds results; skipped (--overwrite re-runs it)")
            continue
        code = main([*command, *(["--overwrite"] if args.overwrite else [])])
        if code:
            raise NnlabError(f"[{name}] failed with exit code {code}")


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
        elif args.command == "reproduce":
            _cmd_reproduce(args)
    except NnlabError as e:
        print(f"nnlab: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nnlab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
