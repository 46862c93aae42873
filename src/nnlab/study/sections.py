"""The report's sections: what each shows of a run folder. The study's four parts, nnlab's
additions, the full profile's other results in groups, and a section for any other finished
run folder; which folder each reads is declared in :mod:`nnlab.study.layout`.

Every number comes from a run's ``metrics.json`` or ``history*.csv``, every figure from its
folder; each section names the command and folder it came from and the machine that ran it
(the provenance in ``config.json``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnlab.engine.files import read_json
from nnlab.engine.history import History, flatten
from nnlab.errors import NnlabError
from nnlab.experiments.configs.toy import GRADCHECK_WRONG, gradient_error
from nnlab.study import tables
from nnlab.study.claims import (
    claim_adam_faster,
    claim_mlp_overfits,
    claim_pytorch_faster_and_stabler,
    claim_rnn_fails_beyond_10,
)
from nnlab.study.render import UNSAFE, Section
from nnlab.study.reproduce import RESULTS
from nnlab.study.tables import Table

MARKER = ".nnlab-report"  # written first into a report's folder: a half-written one is ours


def finished(folder: Path) -> bool:
    """A finished run folder whose metrics.json can be read (a damaged one is skipped)."""
    if not (folder / "metrics.json").exists():
        return False
    try:
        read_json(folder / "metrics.json")
    except NnlabError:
        return False
    return True


def guarded(make: Callable[[], Section | None], folder: Path, title: str,
             skipped: list[tuple[Path, str]]) -> Section | None:
    """``make()``, or, when a file in ``folder`` is damaged so that its section cannot be
    built, a section that says so, the folder and the reason added to ``skipped``. Every
    file a report reads comes from run folders it does not trust."""
    try:
        return make()
    except Exception as e:  # noqa: BLE001 - a damaged file may break any builder
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        why = f"{type(e).__name__}: {why}" if not isinstance(e, NnlabError) else why
        skipped.append((folder, why))
        s = Section(f"skipped-{folder.name}".translate(UNSAFE), title)
        s.text(f"*`{folder}` could not be read ({why}).*")
        return s


def source(folder: Path) -> str:
    """'`nnlab run ...` → folder; CPU X, torch V': where a section's numbers come from. The
    command is the part's own (from profile.json) when a profile ran it, else the one that
    started the run."""
    prov = read_json(folder / "config.json").get("provenance", {})
    argv = tables.profile_argv(folder)
    command = "nnlab run " + " ".join(argv) if argv else prov.get("command", "?")
    return f"`{command}` → `{folder}`; {machine(folder)}"


def machine(folder: Path) -> str:
    """'CPU X, 2 threads, cpu fp32, torch V, nnlab V (commit)', from config.json."""
    prov = read_json(folder / "config.json").get("provenance", {})
    machine = prov.get("gpu") or prov.get("cpu", "unknown machine")
    return (f"{machine}, {prov.get('threads', '?')} threads, {prov.get('device', '?')} "
            f"{prov.get('precision', '')}, torch {prov.get('torch', '?')}, nnlab "
            f"{prov.get('nnlab', '?')} ({(prov.get('git_commit') or 'no git')[:12]})")


def opened(s: Section, folder: Path, missing: str = "") -> bool:
    """Start a part's section: its source line, or why it has none (not run, not finished)."""
    if not finished(folder):
        s.text(f"*Not run yet, or not finished (no metrics.json in `{folder}`){missing}.*")
        return False
    s.text(f"Source: {source(folder)}")
    if code := whose_code(folder):
        s.text(code)
    return True


def whose_code(folder: Path) -> str:
    """'Trained with your code ...' when the run (or one of its sub-runs) was made with
    ``--impl DIR``: the folder and each file's hash, from config.json; '' otherwise."""
    records = [read_json(p).get("impl_code") for p in
               [folder / "config.json", *sorted(folder.glob("*/config.json"))]]
    records = [r for r in records if r]
    if not records:
        return ""
    files = {f: h for r in records for f, h in (r.get("files") or {}).items()}
    listed = ", ".join(f"`{f}` ({h})" for f, h in sorted(files.items())) or "its files"
    return (f"**Trained with your code** (`--impl {records[0]['path']}`): {listed}. The "
            "claims below are checked on these runs; `nnlab compare` draws them beside "
            "nnlab's.")


def part_toy(folder: Path) -> Section:
    s = Section("part-1", "Part I — an MLP from scratch in NumPy and in PyTorch")
    if not opened(s, folder):
        return s
    metrics = read_json(folder / "metrics.json")
    datasets = [d for d in ("moons", "circles", "blobs") if d in metrics]
    cfg = read_json(folder / "config.json")
    s.text(f"The same MLP (hidden {cfg.get('hidden')}) written from scratch in NumPy and in "
           f"PyTorch, trained from the same initial weights with {cfg.get('optimizer')} "
           f"lr {cfg.get('lr')}, {cfg.get('epochs')} epochs, batch {cfg.get('batch_size')}. "
           "The study captions its Figures 1–2 \"CIFAR-10 MLP\", but they sit in its make_moons "
           "section and show the moons runs: this report follows the section.")
    histories = {d: History.load_csv(folder / d / "history.csv") for d in datasets}
    if failed := [d for d in datasets if "gradient_check" in metrics[d]
                  and gradient_error(metrics[d]["gradient_check"]) > GRADCHECK_WRONG]:
        s.text(f"**The gradient check FAILS** on {', '.join(failed)}: the NumPy MLP's "
               "hand-written backward is wrong (`nnlab course check DIR` says where), so its "
               "curves below trained on wrong gradients.")
    s.table(tables.toy(folder))
    for d in datasets:
        s.figure(folder / d / "curves.png", f"{d}: loss and accuracy of both implementations "
                                            "(the study's Figures 1–2 for moons, 3–6 for "
                                            "circles and blobs)")
        s.figure(folder / d / "dataset.png", f"{d}: the data")
    s.claim(claim_pytorch_faster_and_stabler({d: metrics[d] for d in datasets}, histories))
    return s


def part_mlp(folder: Path) -> Section:
    s = Section("part-1-3", "Part I.3 — an MLP on CIFAR-10")
    if not opened(s, folder, ": it needs CIFAR-10"):
        return s
    split = "test" if "test_acc" in read_json(folder / "metrics.json") else "val"
    s.table(tables.cifar_mlp(folder))
    s.figure(folder / "curves.png", "loss and accuracy by epoch (the study's Figure 7)")
    s.figure(folder / "confusion.png", "confusion matrix on the held-out split")
    s.claim(claim_mlp_overfits(History.load_csv(folder / "history.csv"), split))
    return s


def part_cnn(folder: Path) -> Section:
    s = Section("part-2", "Part II — the reduced VGG on CIFAR-10, Adam vs SGD")
    if not opened(s, folder, ": it needs CIFAR-10, and at the study's length it resumes "
                              "when `nnlab reproduce` runs again"):
        return s
    split = "test" if "n_test" in read_json(folder / "metrics.json") else "val"
    histories = {opt: History.load_csv(folder / f"history-{opt}.csv") for opt in ("adam", "sgd")
                 if (folder / f"history-{opt}.csv").exists()}
    s.table(tables.vgg(folder))
    s.figure(folder / "curves.png", "Adam and SGD from the same initial weights, shared axes "
                                    "(the study's Figures 9–10)")
    for opt in histories:
        s.figure(folder / f"curves-{opt}.png", f"{opt} alone")
    if len(histories) == 2:
        s.claim(claim_adam_faster(histories["adam"], histories["sgd"], split))
    return s


def part_palindrome(folder: Path) -> Section:
    s = Section("part-3", "Part III — a tanh RNN (and an LSTM) on palindromes")
    if not opened(s, folder):
        return s
    s.table(tables.palindrome(folder))
    s.figure(folder / "acc_vs_T.png", "test accuracy against palindrome length T (the study's "
                                      "Figure 14)")
    for T in (4, 5, 10):  # a sweep's own folder, or its first seed's
        found = sorted(folder.glob(f"rnn-T{T}/curves.png")) or sorted(
            folder.glob(f"seed*/rnn-T{T}/curves.png"))
        if found:
            s.figure(found[0], f"tanh RNN at T = {T}, {found[0].parent.parent.name} "
                               "(the study's Figures 12–13)")
    s.claim(claim_rnn_fails_beyond_10(tables.palindrome_results(folder)))
    return s


def additions(runs: Path, profile_json: dict, speedruns: tuple[str, ...],
              long_memory: tuple[str, ...]) -> Section:
    """What nnlab adds to the study: its gradients proven exact, decision boundaries, the
    fast CNN recipe's time to accuracy and recurrent cells that remember across hundreds of
    steps: each from its part's folder, and a line for each part this profile did not run."""
    s = Section("additions", "nnlab's additions")
    missing = []
    toy = runs / "toy"
    if finished(toy):
        m = read_json(toy / "metrics.json")
        checks = {d: m[d]["gradient_check"] for d in ("moons", "circles", "blobs")
                  if "gradient_check" in m.get(d, {})}
        if checks:
            g = next(iter(checks.values()))
            s.text("**Gradients proven exact.** Each toy run checks the NumPy MLP's hand-written "
                   "backward at its initial weights, in float64, on "
                   f"{g['points']} training points: against centred differences of its own "
                   f"loss (on up to {g['elements']} elements of each parameter) and against "
                   "torch autograd (every element). The largest relative error over all "
                   "parameters (about 1e-7 or less: right; 1e-2 or more: wrong):")
            s.table(tables.gradient_check(toy))
        else:
            s.text("**Gradients proven exact:** this toy run was made before nnlab recorded "
                   "its gradient check; run it again (`nnlab reproduce --profile ... --force "
                   "toy`, seconds) for the table.")
        s.text("**Decision boundaries** of both implementations, on all points (train and "
               "test), from the runs of Part I:")
        for d in ("moons", "circles", "blobs"):
            s.figure(toy / d / "boundary.png", f"{d}: decision boundaries")
    fast = [runs / n for n in speedruns if finished(runs / n)]
    if fast:
        s.text("**A fast CNN recipe: time to accuracy** (validation):")
        s.table(tables.speedrun(*fast))
        for folder in fast:
            s.figure(folder / "time_to_accuracy.png", f"{folder.name}: validation accuracy "
                                                      "against minutes since the start, every "
                                                      "seed")
        where_from(s, runs, [f.name for f in fast], profile_json)
    missing += [n for n in speedruns if not finished(runs / n)]
    long = [runs / n for n in long_memory if finished(runs / n)]
    missing += [n for n in long_memory if not finished(runs / n)]
    if long:
        s.text("**Memory across hundreds of steps** (the long recipe: one-hot digits, a "
               "curriculum on T, recurrent init and lr per cell; test accuracy on held-out "
               "palindromes):")
        s.table(tables.long_memory(*long))
        for folder in long:
            m = read_json(folder / "metrics.json")
            s.figure(folder / "curves.png", f"{folder.name}: {m['cell']} at T = {m['T']}")
        where_from(s, runs, [f.name for f in long], profile_json)
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        s.text(f"Not finished yet: {names} (`nnlab reproduce --profile full` again continues)."
               if profile_json.get("profile") == "full" else
               f"Not in this profile: {names} (`nnlab reproduce --profile full` runs them).")
    return s


@dataclass(frozen=True)
class Group:
    """Results of one experiment that the full profile's section shows together: the runs
    of ``experiment`` (as ``reproduce.RESULTS`` names it) whose metrics pass ``where``, under
    ``heading``, in one ``table`` of them all, or with ``each``, one table per run (the
    heading's ``{name}`` and ``{what}``: the run and what it makes) with its ``figure``."""

    experiment: str
    heading: str
    table: Callable[..., Table]
    where: Callable[[dict], bool] = lambda metrics: True
    each: bool = False
    figure: str = ""


def rest(runs: Path, profile_json: dict, groups: Sequence[Group], shown: Sequence[str]
         ) -> Section | None:
    """The full profile's other parts (every documented result that ``shown`` leaves out),
    in ``groups``, each from its metrics.json, and a table of where each came from; None
    when none of them is finished."""
    names = [n for n in RESULTS if n not in shown and finished(runs / n)]
    if not names:
        return None
    s = Section("rest", "The full profile's other results")
    s.text("The documentation's other results, each from its part's `metrics.json`: accuracy "
           "on the validation split carved from CIFAR-10's train, or on held-out points and "
           "palindromes, as mean ± standard deviation over the seeds where a part ran several. "
           "Where each came from: the table at the end.")
    s.text("Their settings are not the study parts' above (more seeds, other lengths of "
           "training): where a number here and one above measure the same thing, the setting "
           "is why they differ. Where some seeds solve a palindrome length and others do not, "
           "one run (the parts above) can land anywhere in the spread shown here.")
    metrics = {n: read_json(runs / n / "metrics.json") for n in names}
    for g in groups:
        members = [n for n in names if RESULTS[n][0][0] == g.experiment and g.where(metrics[n])]
        if members and not g.each:
            s.text(g.heading)
            s.table(g.table(*(runs / n for n in members)))
        for n in members if g.each else ():
            s.text(g.heading.format(name=n, what=RESULTS[n][1].split(": ", 1)[-1]))
            s.table(g.table(runs / n))
            s.figure(runs / n / g.figure, f"{n}: test accuracy against T")
    where_from(s, runs, names, profile_json)
    return s


def others(runs: Path, scratch: Path, skipped: list[tuple[Path, str]], known: set[str]
           ) -> list[Section]:
    """A section for each finished run folder in ``runs`` that no other section reads: any
    experiment nnlab knows, a plugin's or a file's included. Each gives the experiment's
    description, its command and machine, every metric in a table, its figures, and its
    curves from history.csv (drawn into ``scratch``) when it drew none."""
    sections = []
    for folder in run_folders(runs, skip=known):
        title = str(folder.relative_to(runs))
        if (folder / "sweep.json").is_file():
            if not (folder / "best.json").is_file():
                skipped.append((folder, "a sweep not finished (no best.json): nnlab sweep "
                                        "--resume goes on"))
                continue
            made = guarded(lambda f=folder, t=title: sweep_section(f, t), folder, title,
                           skipped)
            sections.append(made)
            continue
        if not finished(folder):
            skipped.append((folder, "its metrics.json cannot be read"
                            if (folder / "metrics.json").exists() else
                            "not finished (no metrics.json)"))
            continue
        made = guarded(lambda f=folder, t=title: other(f, scratch, t), folder, title,
                        skipped)
        if made is not None:
            sections.append(made)
    return sections


def run_folders(root: Path, skip: set[str] = frozenset()) -> list[Path]:
    """Every run folder under ``root`` at any depth (``runs/NAME/TIMESTAMP`` included), in
    order; a run's own sub-runs (seeds, datasets, lengths) are its, not found again, and the
    top-level runs named in ``skip`` (the study's parts, which have sections of their own)
    and reports are passed over."""
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if (path / MARKER).is_file() or path.name == "report":
            continue
        if (path / "sweep.json").is_file():  # a sweep: one section, its trials in it
            found.append(path)
        elif (path / "config.json").is_file():
            if path.name not in skip:
                found.append(path)
        else:  # runs/NAME/TIMESTAMP, or any folder of folders
            found += run_folders(path)
    return found


def other(folder: Path, scratch: Path, title: str) -> Section:
    """The section of one finished run folder of any experiment (``title``: its path under
    the folder of runs)."""
    from nnlab.experiments import experiment_of
    from nnlab.plots import plot_history

    config = read_json(folder / "config.json")
    name = str(config.get("experiment", "?"))
    try:
        about = experiment_of(folder)[0].description
    except NnlabError:
        about = ("an experiment defined in Python code and run with nnlab.launch"
                 if config.get("experiment_source") == "python" else
                 "an experiment defined in a file (give it with nnlab eval --experiment)"
                 if config.get("experiment_file") else
                 "an experiment this nnlab does not know (its package is not installed)")
    s = Section(f"run-{title}".translate(UNSAFE), f"{title}: {name}")
    s.text(f"**{name}**: {about}. From {source(folder)}.")
    metrics = flatten(read_json(folder / "metrics.json"))
    s.table(Table(["metric", "value"], [[k, f"{v:.4g}"] for k, v in metrics.items()]))
    pngs = sorted(folder.glob("*.png"))
    if not any(p.name.startswith("curves") for p in pngs) and \
            (folder / "history.csv").is_file():
        pngs.insert(0, plot_history(History.load_csv(folder / "history.csv"),
                                    scratch / f"{title.translate(UNSAFE)}-curves.png", name))
    for png in pngs:
        s.figure(png, f"{folder.name}: {png.stem.removeprefix(folder.name + '-')}"
                 .replace("_", " "))
    return s


def sweep_section(folder: Path, title: str) -> Section:
    """The section of a finished ``nnlab sweep`` folder: what was searched, the best trial
    and its command, every trial in a table, and the sweep's two figures."""
    import csv

    spec, best = read_json(folder / "sweep.json"), read_json(folder / "best.json")
    metric = str(spec.get("metric", "?"))
    s = Section(f"sweep-{title}".translate(UNSAFE), f"{title}: a sweep of {spec['experiment']}")
    searched = ", ".join(f"`{p}`" for p in spec.get("params", []))
    s.text(f"**A sweep of {spec['experiment']}** over {searched}: {spec.get('trials')} "
           f"trials ({spec.get('sampler')} sampler, median pruner), {spec.get('direction')} "
           f"`{metric}`; {best.get('complete')} finished, {best.get('pruned')} pruned, "
           f"{best.get('failed')} failed.")
    if best.get("trial") is not None:
        s.text(f"Best: trial {best['trial']}, `{metric}` {best[metric]:.4f}, in "
               f"`{folder / str(best['folder'])}`; rerun it with `{best['command']}`.")
    if (folder / "trials.csv").is_file():
        with open(folder / "trials.csv", newline="") as f:
            rows = list(csv.reader(f))
        if rows:
            s.table(Table(rows[0], rows[1:]))
    s.figure(folder / "history.png", f"{title}: {metric} trial by trial, and the best so far")
    s.figure(folder / "effect.png", f"{title}: {metric} against each searched flag")
    return s


def where_from(s: Section, runs: Path, names: list[str], profile_json: dict) -> None:
    """A table of each part's command, folder, machine and, when a profile timed it, the
    wall time it took (every invocation summed)."""
    seconds = profile_json.get("seconds", {})
    s.text("**Where each came from:**")
    s.table(Table(["part", "command", "folder", "machine", "wall time"],
            [[n, f"nnlab run {' '.join(RESULTS[n][0])}", str(runs / n), machine(runs / n),
              duration(seconds[n]) if n in seconds else "—"] for n in names]))


def duration(s: float) -> str:
    """4 -> '4 s', 294 -> '4 min 54 s', 15660 -> '4 h 21 min'."""
    s = round(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
