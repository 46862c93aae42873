"""Every documented result, as the exact `nnlab run` command that makes it, and the
study's profiles (quick, study, full) as lists of such commands.

`nnlab reproduce` runs them all (or the ones named) into runs/reproduce/<name>;
`nnlab reproduce --profile P` runs a profile's parts into runs/study-P/<part>. A result whose
folder holds metrics.json is done; one that holds only a started run is resumed, so an
interrupted reproduction picks up where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from nnlab.engine.prepare import check_data, check_out, locked
from nnlab.errors import Interrupted, NnlabError


def _long_run(cell: str, length: int, what: str, cost: str) -> tuple[list[str], str, str]:
    """A long-recipe palindrome run of one cell at one length, 15 minutes at most (the LSTM
    with 64 hidden units)."""
    hidden = ["--hidden", "64"] if cell == "lstm" else []
    return (["palindrome", "--recipe", "long", "--cell", cell, "--length", str(length),
             *hidden, "--eval-every", "50", "--steps", "100000", "--time-limit", "15"],
            what, cost)


# name -> (argv after `nnlab run`, what it makes, rough cost on a 2-core CPU)
RESULTS: dict[str, tuple[list[str], str, str]] = {
    "toy-sgd": (["toy", "--dataset", "all", "--seeds", "3"],
                "Part I, study setting: NumPy vs PyTorch table, boundaries", "1 min"),
    "toy-adam": (["toy", "--dataset", "all", "--seeds", "3", "--optimizer", "adam",
                  "--epochs", "300"],
                 "Part I with Adam: table, boundaries", "1 min"),
    # The study's budget, 10,000 steps, on the study's lengths and T = 4 (its Figure 12).
    "palindrome-study-10k": (["palindrome", "--cell", "rnn,lstm", "--lengths",
                              "4,5,10,15,20,30,40", "--steps", "10000", "--seeds", "3",
                              "--jobs", "2"],
                             "Part III at the study's budget: accuracy vs T, 3 seeds",
                             "60-90 min"),
    # The study's VGG at its full length: 100 epochs per optimizer (resumable: run it again).
    "cifar-cnn-study-100ep": (["cifar-cnn", "--optimizer", "both", "--precision", "fp32"],
                              "Part II at the study's length: Adam vs SGD, 100 epochs each",
                              "220 min"),
    # 3,000 steps, not the study's 10,000: the same budget for both cells, within a 2-core hour.
    "palindrome-study": (["palindrome", "--cell", "rnn,lstm", "--lengths", "5,10,15,20,30,40",
                          "--steps", "3000", "--seeds", "3", "--jobs", "3"],
                         "Part III, study setting: accuracy vs T, 3 seeds", "40 min"),
    "palindrome-long-sweep": (["palindrome", "--recipe", "long", "--cell", "rnn,lstm",
                               "--lengths", "5,10,15,20,30,40", "--steps", "3000",
                               "--seeds", "3", "--jobs", "3"],
                              "Part III, long recipe on the study's lengths, 3 seeds", "10 min"),
    "palindrome-long-rnn": _long_run("rnn", 200, "Part III, long recipe: tanh RNN at T = 200",
                                     "5-15 min"),
    "palindrome-long-lstm": _long_run("lstm", 1000, "Part III, long recipe: LSTM at T = 1000",
                                      "10-15 min"),
    # What each choice of the long recipe buys: the tanh RNN at T = 60, one choice undone
    # at a time, 2,000 steps each (a step budget, so a busy machine changes nothing).
    **{f"palindrome-ablation-{name}": (
        ["palindrome", "--recipe", "long", "--cell", "rnn", "--length", "60",
         "--eval-every", "50", "--steps", "2000", *flags],
        f"Part III, long recipe ablation: {what}", "2 min")
       for name, flags, what in [
           ("full", [], "the whole recipe"),
           ("no-curriculum", ["--curriculum-start", "60"], "no curriculum"),
           ("default-init", ["--init", "default"], "torch's default recurrent init"),
           ("scalar-input", ["--input", "scalar"], "scalar digits instead of one-hot"),
           ("none", ["--lr", "1e-3", "--curriculum-start", "60", "--input", "scalar",
                     "--init", "default"], "none of it: the study's cell with Adam lr 1e-3"),
       ]},
    # CIFAR-10 (set NNLAB_DATA or pass --data): the pure MLP, 3 seeds each, one after the other.
    # --tta flip: these were measured before six views became the best recipe's default.
    "cifar-mlp-best": (["cifar-mlp", "--recipe", "best", "--tta", "flip", "--seeds", "3"],
                       "Part I.3: the strongest pure MLP, validation accuracy over 3 seeds",
                       "90 min"),
    "cifar-mlp-study": (["cifar-mlp", "--recipe", "study", "--seeds", "3"],
                        "Part I.3: the study's kind of MLP, validation accuracy over 3 seeds",
                        "10 min"),
    # The strongest pure MLP found: `best` without dropout, 38 epochs (about the training
    # time of its 33 epochs with dropout).
    "cifar-mlp-best-d0-38ep": (["cifar-mlp", "--recipe", "best", "--tta", "flip", "--dropout",
                                "0", "--epochs", "38", "--seeds", "3"],
                               "Part I.3: the strongest pure MLP found, best without dropout, "
                               "38 epochs, 3 seeds", "25 min"),
    # Part II on a 2-core CPU: the study's CNN for 10 of its 100 epochs, and the speedrun
    # recipe narrowed to fit a CPU (the full-width recipe is about an hour per run there).
    "cifar-cnn-study-10ep": (["cifar-cnn", "--optimizer", "both", "--epochs", "10"],
                             "Part II: the study's VGG, Adam vs SGD from the same weights, "
                             "10 epochs", "40-60 min"),
    **{f"cifar-cnn-improved-10ep-{opt}": (
        ["cifar-cnn", "--optimizer", opt, "--flip", "--translate", "2", "--momentum", "0.9",
         "--schedule", "cosine", "--tta", "flip", "--epochs", "10"],
        f"Part II: the study's VGG with augmentation and a cosine lr, {opt}, 10 epochs",
        "20-40 min") for opt in ("adam", "sgd")},
    # The recipe before Muon became the default: Nesterov SGD for every weight.
    "cifar-speedrun-cpu": (["cifar-speedrun", "--optimizer", "sgd", "--widths", "32,64,64",
                            "--epochs", "8", "--batch-size", "256", "--seeds", "3"],
                           "Part II: the speedrun recipe sized for a CPU, 3 seeds",
                           "30-50 min"),
    # Muon in place of SGD for the convolutions, 7 epochs: the documented seeds 1-3.
    "cifar-speedrun-cpu-muon": (["cifar-speedrun", "--widths", "32,64,64", "--batch-size",
                                 "256", "--seeds", "3", "--seed", "1", "--epochs", "7",
                                 "--muon-lr", "0.1", "--warmup", "0"],
                                "Part II: the CPU-sized speedrun with Muon, 7 epochs, seeds 1-3",
                                "15-20 min"),
    # What each part of the speedrun recipe (with SGD) buys: 10,000 training images, 4 epochs,
    # the CPU-sized network, one change at a time (validation: the usual 5,000 images).
    **{f"speedrun-ablation-{name}": (
        ["cifar-speedrun", "--optimizer", "sgd", "--widths", "32,64,64", "--epochs", "4",
         "--batch-size", "512", "--train-limit", "10000", *flags],
        f"Part II, speedrun ablation: {what}", "3 min")
       for name, flags, what in [
           ("full", [], "the whole recipe"),
           ("default-init", ["--init", "default"], "PyTorch's default conv init, not Dirac"),
           ("bias-lr-1", ["--bias-lr-scale", "1"], "BatchNorm shifts at the weights' lr"),
           ("old-lr-wd", ["--lr", "0.4", "--weight-decay", "5e-4", "--bias-lr-scale", "1"],
            "the first version's lr 0.4 and weight decay 5e-4"),
           ("first-version", ["--init", "default", "--lr", "0.4", "--weight-decay", "5e-4",
                              "--bias-lr-scale", "1"], "the first version: both undone"),
       ]},
    # How far the long recipe goes: a longer T for each cell, 15 minutes each.
    "palindrome-push-rnn": _long_run("rnn", 1000, "Part III, long recipe pushed: tanh RNN at "
                                     "T = 1000", "15 min"),
    "palindrome-push-lstm": _long_run("lstm", 2000, "Part III, long recipe pushed: LSTM at "
                                      "T = 2000", "15 min"),
}

# The study as one command: `nnlab reproduce --profile NAME` runs these parts, in order, each
# into OUT/<part> (a part whose experiment needs CIFAR-10 is skipped, with a line, without
# it); `minutes` is the time one part took on this project's 2-core machines (the plan's
# estimate; see docs/long-runs.md for the measured totals).
PROFILE_RUNS: dict[str, list[tuple[str, list[str], str, float]]] = {
    "quick": [  # (part, argv after `nnlab run`, what, minutes)
        ("toy", ["toy", "--dataset", "all"],
         "Part I: NumPy vs PyTorch MLP, study setting, moons/circles/blobs", 0.2),
        ("cifar-mlp", ["cifar-mlp", "--recipe", "study", "--train-limit", "10000",
                       "--epochs", "8"],
         "Part I.3: the study's MLP on 10,000 CIFAR-10 images, 8 epochs", 0.5),
        ("cifar-cnn", ["cifar-cnn", "--optimizer", "both", "--train-limit", "10000",
                       "--epochs", "4"],
         "Part II: VGGReduced, Adam vs SGD, 10,000 images, 4 epochs", 1.7),
        ("palindrome", ["palindrome", "--cell", "rnn,lstm", "--lengths", "4,5,10,15,20",
                        "--steps", "2000"],
         "Part III: RNN and LSTM, accuracy vs T (T = 4..20), 2,000 steps", 2.5),
    ],
    "study": [  # measured end to end (docs/results/study-profile); VGG less its 31 min of
        # other work that shared the cores
        ("toy", ["toy", "--dataset", "all"],
         "Part I: NumPy vs PyTorch MLP, study setting, moons/circles/blobs", 0.2),
        ("cifar-mlp", ["cifar-mlp", "--recipe", "study"],
         "Part I.3: the study's MLP on CIFAR-10, 20 epochs", 2.5),
        ("cifar-cnn", ["cifar-cnn", "--optimizer", "both", "--precision", "fp32"],
         "Part II: VGGReduced, Adam lr 1e-3 vs SGD lr 1e-2, 100 epochs, batch 64", 212.0),
        ("palindrome", ["palindrome", "--cell", "rnn,lstm", "--lengths",
                        "4,5,10,15,20,30,40", "--steps", "10000"],
         "Part III: RNN and LSTM, RMSprop, accuracy vs T, 10,000 steps", 20.0),
    ],
}


def _minutes(cost: str) -> float:
    """'40-60 min' -> 60.0, '5-15 min' -> 15.0: the upper end of a recorded cost."""
    import re

    return max(float(n) for n in re.findall(r"\d+(?:\.\d+)?", cost))


PROFILE_RUNS["full"] = PROFILE_RUNS["study"] + [  # a documented result the study has: once
    (name, argv, what, _minutes(cost))
    for name, (argv, what, cost) in RESULTS.items()
    if argv not in [part[1] for part in PROFILE_RUNS["study"]]]
PROFILES = tuple(PROFILE_RUNS)

# What the `full` parts beyond the study cost when the whole profile was measured
# (docs/results/full-profile/profile.json, wall minutes): a 2-core Intel Xeon with
# AVX-512-BF16/AMX, where the CIFAR recipes train in bf16. The plan uses these on a CPU with
# native bf16; elsewhere bf16 is emulated, those recipes train in fp32, and the
# recorded costs (upper ends, from AVX2 machines) stand.
FULL_MINUTES_NATIVE_BF16: dict[str, float] = {
    "toy-sgd": 0.8, "toy-adam": 0.4, "palindrome-study-10k": 54.8, "palindrome-study": 13.1,
    "palindrome-long-sweep": 5.0, "palindrome-long-rnn": 15.1, "palindrome-long-lstm": 9.2,
    "palindrome-ablation-full": 0.5, "palindrome-ablation-no-curriculum": 0.4,
    "palindrome-ablation-default-init": 0.2, "palindrome-ablation-scalar-input": 0.2,
    "palindrome-ablation-none": 0.4, "cifar-mlp-best": 21.1, "cifar-mlp-study": 8.7,
    "cifar-mlp-best-d0-38ep": 22.4, "cifar-cnn-study-10ep": 13.3,
    "cifar-cnn-improved-10ep-adam": 6.2, "cifar-cnn-improved-10ep-sgd": 5.0,
    "cifar-speedrun-cpu": 5.8, "cifar-speedrun-cpu-muon": 5.5, "speedrun-ablation-full": 0.3,
    "speedrun-ablation-default-init": 0.3, "speedrun-ablation-bias-lr-1": 0.3,
    "speedrun-ablation-old-lr-wd": 0.4, "speedrun-ablation-first-version": 0.4,
    "palindrome-push-rnn": 15.1, "palindrome-push-lstm": 15.6,
}
MEASURED_ON = "on a Xeon with native bf16, like this CPU"


def measured_minutes() -> dict[str, float]:
    """FULL_MINUTES_NATIVE_BF16 on a CPU with native bf16 (what the times were measured on),
    else {}: there only the recorded costs apply."""
    from nnlab.device import cpu_has_native_bf16

    return FULL_MINUTES_NATIVE_BF16 if cpu_has_native_bf16() else {}


# --------------------------------------------------------------------------- running them


def needs_cifar(argv: list[str]) -> bool:
    """Whether the experiment that ``nnlab run ARGV`` runs needs CIFAR-10 (its record says)."""
    from nnlab import experiments

    return experiments.get(argv[0]).needs_cifar


Runner = Callable[[list[str]], None]  # `nnlab run ARGV`: the CLI gives its own


def run_part(name: str, argv: list[str], out: Path, fresh: bool, data: str | None,
             again: list[str], run: Runner) -> str:
    """Run one result into ``out`` with ``run`` (``nnlab run ARGV``): 'done' when it holds
    metrics.json (unless ``fresh``), resumed when it holds a started run, else from the
    start. Returns what it did."""
    extra = ["--data", data] if data and needs_cifar(argv) else []
    if (out / "metrics.json").exists() and not fresh:
        return "done"
    if (out / "config.json").exists() and not fresh:
        command, what = ["run", argv[0], "--resume", str(out), *extra], "resumed"
    else:
        command, what = ["run", *argv, *extra, "--out", str(out)], "ran"
        if out.exists():
            command.append("--overwrite")
    try:
        run(command)
    except Interrupted as e:
        e.resume = shlex.join(again)
        raise
    except NnlabError as e:
        raise NnlabError(f"[{name}] {e}") from None
    return what


def reproduce(args: argparse.Namespace, run: Runner) -> None:
    """``nnlab reproduce [NAME ...]`` (and ``--profile P``, see :func:`profile`), each part
    run by ``run`` (``nnlab run ARGV``)."""
    if args.profile is not None:
        return profile(args, run)
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
        done = run_part(name, argv, out, args.overwrite, args.data,
                        ["nnlab", "reproduce", *args.names], run)
        if done == "done":
            print(f"[{name}] done: {out} holds its results (--overwrite re-runs it)")


def _parts(text: str, known: list[str], flag: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    if unknown := sorted(names - set(known)):
        raise NnlabError(f"{flag}: unknown part {unknown[0]!r}; the profile has "
                         f"{', '.join(known)}")
    return names


def warn_if_busy(threshold: float = 0.5) -> None:
    """One line when other processes already keep about ``threshold`` of a core or more busy:
    the parts will take longer than planned, and the run's timings say less."""
    from nnlab.device import busy_cores

    busy = busy_cores()
    if busy is not None and busy >= threshold:
        print(f"note: other processes keep about {busy:.1f} of this machine's "
              f"{os.cpu_count()} cores busy: the parts will take longer than planned, and "
              "their timings will say so (one heavy job per machine: docs/long-runs.md)",
              flush=True)


def profile(args: argparse.Namespace, run: Runner) -> None:
    """The study as one command: a plan, then one line per part; resumable."""
    # The plan's minutes: on a CPU with native bf16, what the full profile's parts took on one.
    measured = measured_minutes() if args.profile == "full" else {}
    parts = [(n, a, w, needs_cifar(a), measured.get(n, m))
             for n, a, w, m in PROFILE_RUNS[args.profile]]
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

    from nnlab.engine.files import read_json, write_json_atomic

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
             "measured on 2-core CPUs") + ")"
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
    warn_if_busy()
    if clash:
        name, argv = next(iter(clash.items()))
        raise NnlabError(f"{out / name} holds a run of `nnlab {shlex.join(['run', *argv])}`, not "
                         f"this profile's: pick another --out, or --force {name} to replace it")
    with locked(out):  # one reproduce (or run) at a time in a profile's folder
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
                    did = run_part(name, argv, out / name, name in force, args.data, again,
                                   run)
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
