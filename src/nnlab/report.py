"""Run folders -> the study's report: ``report/index.md`` and one self-contained
``report/index.html`` (figures embedded, no network), in the study's order.

Every number comes from a run's ``metrics.json`` or ``history*.csv``, every figure from its
folder; each section names the command and folder it came from and the machine that ran it
(the provenance in ``config.json``). Each of the study's claims is checked against the data
by a small function below, which says whether this run agrees, with the numbers.

Expected layout (what ``nnlab reproduce --profile P`` writes): ``RUNS/toy`` (a toy run with
``--dataset all``), ``RUNS/cifar-mlp``, ``RUNS/cifar-cnn``, ``RUNS/palindrome`` (a sweep);
any may be missing, and a missing part is said to be missing. After them, nnlab's additions:
the toy runs' gradient checks and decision boundaries, and, where the ``full`` profile ran
them, ``RUNS/cifar-speedrun-cpu`` (time to accuracy) and the long-memory palindrome runs;
then a table for each kind of the full profile's other parts (``RUNS/<documented result>``),
and a section for every other finished run folder, of any experiment (metrics, figures,
command).
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from nnlab import tables
from nnlab.engine.checkpoint import read_json, write_atomic
from nnlab.engine.history import History
from nnlab.errors import NnlabError
from nnlab.tables import Table, pct

VERDICTS = ("agrees", "partly agrees", "disagrees", "cannot tell")


@dataclass
class Claim:
    """One of the study's claims and what this run's data says about it."""

    text: str  # the study's words
    verdict: str  # one of VERDICTS
    evidence: str  # the numbers behind the verdict


def _verdict(agrees: bool | None) -> str:
    return "cannot tell" if agrees is None else "agrees" if agrees else "disagrees"


@dataclass
class Text:
    """A paragraph: Markdown with `code`, **bold** and *italics* only."""

    markdown: str


@dataclass
class Figure:
    path: Path
    caption: str


Block = Text | Figure | Table | Claim


@dataclass
class Section:
    """One part of the report: its anchor, title and blocks, in order."""

    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    docs: tuple[str, str] | None = None  # the documentation page's title and address

    def text(self, markdown: str) -> None:
        self.blocks.append(Text(markdown))

    def figure(self, path: Path, caption: str) -> None:
        if path.exists():
            self.blocks.append(Figure(Path(path), caption))

    def table(self, table: Table) -> None:
        if table.rows:
            self.blocks.append(table)

    def claim(self, claim: Claim) -> None:
        self.blocks.append(claim)


# --------------------------------------------------------------------------- the docs pages

DOCS_PAGES = {  # a section's anchor -> its page in the documentation (docs/<page>.md)
    "part-1": ("part-1-toy", "Part I: NumPy and PyTorch MLPs on toy data"),
    "part-1-3": ("part-1-3-cifar-mlp", "Part I.3: the strongest pure MLP on CIFAR-10"),
    "part-2": ("part-2-vgg", "Part II: the study's reduced VGG"),
    "additions": ("part-2-fast-cnn", "Part II: the fast CNN recipe"),
    "part-3": ("part-3-palindromes", "Part III: palindromes"),
    "rest": ("lab-notes", "Lab notes"),
}


def docs_link(page: str, title: str) -> tuple[str, str]:
    """(title, address) of a documentation page: under ``$NNLAB_DOCS_URL`` when set (a
    published site), else the built site's page in this checkout (``make docs``), else the
    page's source, ``docs/<page>.md``."""
    if url := os.environ.get("NNLAB_DOCS_URL"):
        return title, f"{url.rstrip('/')}/{page}/"
    root = Path(__file__).resolve().parents[2]
    built = root / "site" / page / "index.html"
    source = root / "docs" / f"{page}.md"
    for path in (built, source):
        if path.is_file():
            return title, path.as_uri()
    return title, f"docs/{page}.md"


# --------------------------------------------------------------------------- reading runs


def _finished(folder: Path) -> bool:
    """A finished run folder whose metrics.json can be read (a damaged one is skipped)."""
    if not (folder / "metrics.json").exists():
        return False
    try:
        read_json(folder / "metrics.json")
    except NnlabError:
        return False
    return True


def _guarded(make: Callable[[], Section | None], folder: Path, title: str,
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
        s = Section(f"skipped-{folder.name}".translate(_UNSAFE), title)
        s.text(f"*`{folder}` could not be read ({why}).*")
        return s


def _source(folder: Path) -> str:
    """'`nnlab run ...` → folder; CPU X, torch V': where a section's numbers come from. The
    command is the part's own (from profile.json) when a profile ran it, else the one that
    started the run."""
    prov = read_json(folder / "config.json").get("provenance", {})
    argv = tables.profile_argv(folder)
    command = "nnlab run " + " ".join(argv) if argv else prov.get("command", "?")
    return f"`{command}` → `{folder}`; {_machine(folder)}"


def _machine(folder: Path) -> str:
    """'CPU X, 2 threads, cpu fp32, torch V, nnlab V (commit)', from config.json."""
    prov = read_json(folder / "config.json").get("provenance", {})
    machine = prov.get("gpu") or prov.get("cpu", "unknown machine")
    return (f"{machine}, {prov.get('threads', '?')} threads, {prov.get('device', '?')} "
            f"{prov.get('precision', '')}, torch {prov.get('torch', '?')}, nnlab "
            f"{prov.get('nnlab', '?')} ({(prov.get('git_commit') or 'no git')[:12]})")


# --------------------------------------------------------------------------- the claims


def claim_pytorch_faster_and_stabler(toy: dict[str, dict], histories: dict[str, History]
                                     ) -> Claim:
    """The study's 2.2.3: "PyTorch outperforms NumPy in speed and stability". Speed: seconds
    of the whole fit per implementation; stability: the largest gap between the two loss
    curves from the same initial weights."""
    ratios = [m["time_ratio_numpy_over_torch"] for m in toy.values()]
    gaps = []
    for h in histories.values():
        a, b = h.column("train_loss", impl="numpy"), h.column("train_loss", impl="torch")
        gaps += [abs(x - y) for x, y in zip(a, b, strict=False)]
    faster = all(r > 1 for r in ratios)  # PyTorch faster on every dataset
    same = max(gaps) < 1e-3  # the curves coincide: neither is the more stable
    evidence = (f"NumPy takes {min(ratios):.2f}–{max(ratios):.2f}× PyTorch's time "
                f"(PyTorch {'faster' if faster else 'not faster'}); from the same weights the "
                f"two training loss curves differ by at most {max(gaps):.1e}"
                + (", so neither is the more stable" if same else ""))
    verdict = ("agrees" if faster and not same else "partly agrees" if faster or not same
               else "disagrees")
    return Claim("PyTorch outperforms NumPy in speed and stability", verdict, evidence)


def claim_mlp_overfits(history: History, split: str) -> Claim:
    """"The MLP overfits CIFAR-10": a train–held-out accuracy gap of 5 points or more at the
    end, or a held-out loss that was lowest before the last epoch."""
    last = history.last
    gap = last["train_acc"] - last[f"{split}_acc"]
    losses = history.column(f"{split}_loss")
    best, _ = history.best(f"{split}_loss", lowest=True)
    overfits = gap >= 0.05 or best < len(losses)
    return Claim("The MLP overfits CIFAR-10", _verdict(overfits),
                 f"after {len(losses)} epochs train accuracy {pct(last['train_acc'])}, "
                 f"{split} {pct(last[f'{split}_acc'])} (gap {100 * gap:.1f} points); {split} "
                 f"loss lowest at epoch {best} of {len(losses)}")


def epochs_to(history: History, column: str, target: float) -> int | None:
    """The first epoch whose ``column`` reached ``target``; None if none did."""
    return next((r["epoch"] for r in history if r[column] >= target), None)


def claim_adam_faster(adam: History, sgd: History, split: str) -> Claim:
    """"Adam converges faster than SGD": epochs each needs to reach 95% of the lower of the
    two best held-out accuracies (a level both reach)."""
    col = f"{split}_acc"
    target = 0.95 * min(max(adam.column(col)), max(sgd.column(col)))
    ea, es = epochs_to(adam, col, target), epochs_to(sgd, col, target)
    agrees = None if ea is None or es is None or ea == es else ea < es  # a tie: can't tell
    return Claim("Adam converges faster than SGD", _verdict(agrees),
                 f"epochs to {pct(target)} {split} accuracy: Adam {ea}, SGD {es}")


CHANCE = 0.1  # ten digits
AT_CHANCE = 2 * CHANCE  # "fails": a mean test accuracy at most twice chance


def claim_rnn_fails_beyond_10(results: dict[str, dict[int, list[float]]]) -> Claim:
    """"The tanh RNN fails beyond T ≈ 10". *Solved* at T: every seed reached 99% test
    accuracy; *fails* at T: the mean test accuracy is at most twice chance (20%; chance is
    10%). Agrees when the longest T solved is 15 or less and every longer T tried fails;
    partly agrees when accuracy falls from 99% by T = 20 but stays above twice chance at some
    longer T (it degrades rather than fails); disagrees when T = 20 or longer is solved;
    cannot tell when nothing is solved or nothing longer than the longest solved was tried."""
    text = "The tanh RNN fails beyond T ≈ 10"
    rnn = results.get("rnn", {})
    solved = [T for T, accs in sorted(rnn.items()) if min(accs) >= 0.99]
    longest = max(solved, default=None)
    beyond = {T: sum(a) / len(a) for T, a in sorted(rnn.items())
              if longest is not None and T > longest}
    if not rnn or longest is None or not beyond:
        why = ("no tanh RNN runs" if not rnn else "no length solved: too short a run to say"
               if longest is None else f"nothing longer than T = {longest} was tried")
        return Claim(text, "cannot tell", why)
    failed = [T for T, a in beyond.items() if a <= AT_CHANCE]
    if longest >= 20:
        verdict = "disagrees"
    elif len(failed) == len(beyond):
        verdict = "agrees"
    else:
        verdict = "partly agrees"
    means = ", ".join(f"{pct(a)} at T = {T}" for T, a in beyond.items())
    lstm = results.get("lstm", {})
    lstm_longest = max((T for T, a in lstm.items() if min(a) >= 0.99), default=None)
    evidence = (f"the tanh RNN solves (≥ 99% test accuracy, every seed) up to T = {longest}; "
                f"beyond it, mean test accuracy {means} (chance 10%; \"fails\" here means at "
                f"most {pct(AT_CHANCE)}"
                + (f", which {len(failed)} of these {len(beyond)} lengths meet" if failed
                   else ", which none of them meets") + ")"
                + (f"; the LSTM solves up to T = {lstm_longest}" if lstm_longest else ""))
    return Claim(text, verdict, evidence)


# --------------------------------------------------------------------------- the parts


def _opened(s: Section, folder: Path, missing: str = "") -> bool:
    """Start a part's section: its source line, or why it has none (not run, not finished)."""
    if not _finished(folder):
        s.text(f"*Not run yet, or not finished (no metrics.json in `{folder}`){missing}.*")
        return False
    s.text(f"Source: {_source(folder)}")
    return True


def _part_toy(folder: Path) -> Section:
    s = Section("part-1", "Part I — an MLP from scratch in NumPy and in PyTorch")
    if not _opened(s, folder):
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
    s.table(tables.toy(folder))
    for d in datasets:
        s.figure(folder / d / "curves.png", f"{d}: loss and accuracy of both implementations "
                                            "(the study's Figures 1–2 for moons, 3–6 for "
                                            "circles and blobs)")
        s.figure(folder / d / "dataset.png", f"{d}: the data")
    s.claim(claim_pytorch_faster_and_stabler({d: metrics[d] for d in datasets}, histories))
    return s


def _part_mlp(folder: Path) -> Section:
    s = Section("part-1-3", "Part I.3 — an MLP on CIFAR-10")
    if not _opened(s, folder, ": it needs CIFAR-10"):
        return s
    split = "test" if "test_acc" in read_json(folder / "metrics.json") else "val"
    s.table(tables.cifar_mlp(folder))
    s.figure(folder / "curves.png", "loss and accuracy by epoch (the study's Figure 7)")
    s.figure(folder / "confusion.png", "confusion matrix on the held-out split")
    s.claim(claim_mlp_overfits(History.load_csv(folder / "history.csv"), split))
    return s


def _part_cnn(folder: Path) -> Section:
    s = Section("part-2", "Part II — the reduced VGG on CIFAR-10, Adam vs SGD")
    if not _opened(s, folder, ": it needs CIFAR-10, and at the study's length it resumes "
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


def _part_palindrome(folder: Path) -> Section:
    s = Section("part-3", "Part III — a tanh RNN (and an LSTM) on palindromes")
    if not _opened(s, folder):
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


PARTS = {"toy": _part_toy, "cifar-mlp": _part_mlp, "cifar-cnn": _part_cnn,
         "palindrome": _part_palindrome}

# nnlab's results beyond the study that the report shows when the `full` profile ran them
# (part folders; the long-memory parts are one palindrome run each).
SPEEDRUN = "cifar-speedrun-cpu"
SPEEDRUN_MUON = "cifar-speedrun-cpu-muon"
LONG_MEMORY = ("palindrome-long-rnn", "palindrome-long-lstm", "palindrome-push-rnn",
               "palindrome-push-lstm")


def additions(runs: Path, profile_json: dict) -> Section:
    """What nnlab adds to the study: its gradients proven exact, decision boundaries, the
    fast CNN recipe's time to accuracy and recurrent cells that remember across hundreds of
    steps: each from its part's folder, and a line for each part this profile did not run."""
    s = Section("additions", "nnlab's additions")
    missing = []
    toy = runs / "toy"
    if _finished(toy):
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
    speedruns = [runs / n for n in (SPEEDRUN, SPEEDRUN_MUON) if _finished(runs / n)]
    if speedruns:
        s.text("**A fast CNN recipe: time to accuracy** (validation):")
        s.table(tables.speedrun(*speedruns))
        for folder in speedruns:
            s.figure(folder / "time_to_accuracy.png", f"{folder.name}: validation accuracy "
                                                      "against minutes since the start, every "
                                                      "seed")
        _where_from(s, runs, [f.name for f in speedruns], profile_json)
    missing += [n for n in (SPEEDRUN, SPEEDRUN_MUON) if not _finished(runs / n)]
    long = [runs / n for n in LONG_MEMORY if _finished(runs / n)]
    missing += [n for n in LONG_MEMORY if not _finished(runs / n)]
    if long:
        s.text("**Memory across hundreds of steps** (the long recipe: one-hot digits, a "
               "curriculum on T, recurrent init and lr per cell; test accuracy on held-out "
               "palindromes):")
        s.table(tables.long_memory(*long))
        for folder in long:
            m = read_json(folder / "metrics.json")
            s.figure(folder / "curves.png", f"{folder.name}: {m['cell']} at T = {m['T']}")
        _where_from(s, runs, [f.name for f in long], profile_json)
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        s.text(f"Not finished yet: {names} (`nnlab reproduce --profile full` again continues)."
               if profile_json.get("profile") == "full" else
               f"Not in this profile: {names} (`nnlab reproduce --profile full` runs them).")
    return s


def _rest(runs: Path, profile_json: dict) -> Section | None:
    """The full profile's other parts (every documented result beyond the study and the
    additions), grouped by experiment, one table each from their metrics.json, and a table of
    where each came from; None when none of them is finished."""
    from nnlab.reproduce import RESULTS

    names = [n for n in RESULTS if n not in (SPEEDRUN, SPEEDRUN_MUON, *LONG_MEMORY)
             and _finished(runs / n)]
    if not names:
        return None
    s = Section("rest", "The full profile's other results")
    s.text("The documentation's other results, each from its part's `metrics.json`: accuracy "
           "on the validation split carved from CIFAR-10's train, or on held-out points and "
           "palindromes, as mean ± standard deviation over the seeds where a part ran several. "
           "Where each came from: the table at the end.")
    metrics = {n: read_json(runs / n / "metrics.json") for n in names}
    kind = {n: RESULTS[n][0][0] for n in names}
    group = [runs / n for n in names if kind[n] == "toy"]
    if group:
        s.text("**Part I over seeds** (NumPy and PyTorch from the same weights; test points):")
        s.table(tables.toy_seeds(*group))
    group = [runs / n for n in names if kind[n] == "cifar-mlp"]
    if group:
        s.text("**Part I.3: MLPs on CIFAR-10** (validation):")
        s.table(tables.cifar_mlp(*group))
    group = [runs / n for n in names if kind[n] == "cifar-cnn"]
    if group:
        s.text("**Part II: the study's VGG for 10 epochs, as the study trains it and improved** "
               "(validation; the end's with TTA where the part uses it, the best epoch's "
               "without):")
        s.table(tables.vgg_short(*group))
    group = [runs / n for n in names if kind[n] == "cifar-speedrun"]
    if group:
        s.text("**Part II: what each part of the speedrun recipe buys** (10,000 training "
               "images, 4 epochs, one change at a time; validation):")
        s.table(tables.ablation(*group, base="speedrun-ablation-full"))
    group = [runs / n for n in names if kind[n] == "palindrome" and "cell" in metrics[n]]
    if group:
        s.text("**Part III: what each choice of the long recipe buys** (the tanh RNN at T = 60, "
               "2,000 steps; test accuracy on held-out palindromes):")
        s.table(tables.ablation(*group, base="palindrome-ablation-full", key="test_acc"))
    for n in (n for n in names if kind[n] == "palindrome" and "cell" not in metrics[n]):
        s.text(f"**`{n}`: {RESULTS[n][1].split(': ', 1)[-1]}** (test accuracy on held-out "
               "palindromes, mean ± sd over the seeds where it ran several):")
        s.table(tables.palindrome_grid(runs / n))
        s.figure(runs / n / "acc_vs_T.png", f"{n}: test accuracy against T")
    _where_from(s, runs, names, profile_json)
    return s


MARKER = ".nnlab-report"  # written first into a report's folder: a half-written one is ours
REPORT_FILES = ("index.md", "index.html", ".*.tmp", MARKER)  # and figures/, of PNGs


def _holds_a_report(out: Path) -> bool:
    """Our marker, or an index.html of ours (a report older than the marker)."""
    index = out / "index.html"
    return (out / MARKER).is_file() or (index.is_file() and not index.is_symlink()
                                        and TITLE in index.read_text(errors="replace"))


def _not_a_report(out: Path) -> list[str]:
    """What in ``out`` an nnlab report does not write, or, for a folder that holds no report
    of ours (neither its marker nor an index.html of ours), everything in it. A report, even
    a half-written one, is rebuilt in place; anything else is not nnlab's to replace."""
    if not out.is_dir() or not any(out.iterdir()):
        return []
    if not _holds_a_report(out):
        return sorted(p.name for p in out.iterdir())
    foreign = []
    for path in sorted(out.iterdir()):
        if path.name == "figures" and path.is_dir() and not path.is_symlink():
            foreign += [f"figures/{p.name}" for p in sorted(path.iterdir())
                        if p.suffix != ".png" or not p.is_file() or p.is_symlink()]
        elif path.is_symlink() or not path.is_file() or \
                not any(path.match(pattern) for pattern in REPORT_FILES):
            foreign.append(path.name)
    return foreign


def _others(runs: Path, scratch: Path, skipped: list[tuple[Path, str]]) -> list[Section]:
    """A section for each finished run folder in ``runs`` that no other section reads: any
    experiment nnlab knows, a plugin's or a file's included. Each gives the experiment's
    description, its command and machine, every metric in a table, its figures, and its
    curves from history.csv (drawn into ``scratch``) when it drew none."""
    from nnlab.reproduce import RESULTS

    known = {*PARTS, *RESULTS, "report"}
    sections = []
    for folder in _run_folders(runs, skip=known):
        if not _finished(folder):
            skipped.append((folder, "its metrics.json cannot be read"
                            if (folder / "metrics.json").exists() else
                            "not finished (no metrics.json)"))
            continue
        title = str(folder.relative_to(runs))
        made = _guarded(lambda f=folder, t=title: _other(f, scratch, t), folder, title,
                        skipped)
        if made is not None:
            sections.append(made)
    return sections


def _run_folders(root: Path, skip: set[str] = frozenset()) -> list[Path]:
    """Every run folder under ``root`` at any depth (``runs/NAME/TIMESTAMP`` included), in
    order; a run's own sub-runs (seeds, datasets, lengths) are its, not found again, and the
    top-level runs named in ``skip`` (the study's parts, which have sections of their own)
    and reports are passed over."""
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if (path / MARKER).is_file() or path.name == "report":
            continue
        if (path / "config.json").is_file():
            if path.name not in skip:
                found.append(path)
        else:  # runs/NAME/TIMESTAMP, or any folder of folders
            found += _run_folders(path)
    return found


def _other(folder: Path, scratch: Path, title: str) -> Section:
    """The section of one finished run folder of any experiment (``title``: its path under
    the folder of runs)."""
    from nnlab.api import experiment_of
    from nnlab.plots import plot_history
    from nnlab.seeds import flatten

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
    s = Section(f"run-{title}".translate(_UNSAFE), f"{title}: {name}")
    s.text(f"**{name}**: {about}. From {_source(folder)}.")
    metrics = flatten(read_json(folder / "metrics.json"))
    s.table(Table(["metric", "value"], [[k, f"{v:.4g}"] for k, v in metrics.items()]))
    pngs = sorted(folder.glob("*.png"))
    if not any(p.name.startswith("curves") for p in pngs) and \
            (folder / "history.csv").is_file():
        pngs.insert(0, plot_history(History.load_csv(folder / "history.csv"),
                                    scratch / f"{title.translate(_UNSAFE)}-curves.png", name))
    for png in pngs:
        s.figure(png, f"{folder.name}: {png.stem.removeprefix(folder.name + '-')}"
                 .replace("_", " "))
    return s


def _where_from(s: Section, runs: Path, names: list[str], profile_json: dict) -> None:
    """A table of each part's command, folder, machine and, when a profile timed it, the
    wall time it took (every invocation summed)."""
    from nnlab.reproduce import RESULTS

    seconds = profile_json.get("seconds", {})
    s.text("**Where each came from:**")
    s.table(Table(["part", "command", "folder", "machine", "wall time"],
            [[n, f"nnlab run {' '.join(RESULTS[n][0])}", str(runs / n), _machine(runs / n),
              _duration(seconds[n]) if n in seconds else "—"] for n in names]))


# --------------------------------------------------------------------------- writing


def build(runs: str | Path, out: str | Path | None = None) -> Path:
    """Write ``out/index.md`` (figures copied beside it) and ``out/index.html`` (figures
    embedded); ``out`` defaults to ``runs/report``. Returns the HTML page's path."""
    runs = Path(runs)
    if not runs.is_dir():
        raise NnlabError(f"{runs}: no such folder of runs")
    out = Path(out) if out is not None else runs / "report"
    if foreign := _not_a_report(out):
        what = "an nnlab report and files no report writes" if _holds_a_report(out) else \
            "no nnlab report"
        raise NnlabError(f"{out}: a folder that holds {what} ({', '.join(foreign[:3])}), and "
                         "the report would replace its figures/; pick a new or empty --out")
    try:
        profile_json = read_json(runs / "profile.json")
    except NnlabError as e:
        print(f"nnlab: warning: {e}; the report goes on without it", file=sys.stderr)
        profile_json = {}
    skipped: list[tuple[Path, str]] = []
    sections = [_guarded(lambda m=make, n=name: m(runs / n), runs / name, name, skipped)
                for name, make in PARTS.items()]
    sections.append(_guarded(lambda: additions(runs, profile_json), runs, "nnlab's additions",
                             skipped))
    sections.append(_guarded(lambda: _rest(runs, profile_json), runs, "Lab notes", skipped))
    sections = [s for s in sections if s is not None]
    with tempfile.TemporaryDirectory() as scratch:
        others = _others(runs, Path(scratch), skipped)
        for folder, why in skipped:
            print(f"nnlab: warning: {folder}: left out of the report: {why}", file=sys.stderr)
        if not others and not any(_finished(runs / name) for name in PARTS):
            raise NnlabError(f"{runs}: no finished run folder in it (the study's parts are "
                             f"{', '.join(PARTS)}); run nnlab reproduce --profile quick first")
        if not any(_finished(runs / name) for name in PARTS):
            sections = []  # runs of other experiments only: no empty study sections
        for s in sections:
            if s.anchor in DOCS_PAGES:
                s.docs = docs_link(*DOCS_PAGES[s.anchor])
        return _write(runs, out, profile_json, sections + others)


def _write(runs: Path, out: Path, profile_json: dict, sections: list[Section]) -> Path:
    profile = profile_json.get("profile")
    title = TITLE
    label = (f"Profile **{profile}**" + (": every part at a reduced size, a preview — not the "
             "study's settings, so its numbers are not the study's." if profile == "quick"
             else ".")) if profile else "Runs from " + str(runs)
    label += _measured(runs, profile_json)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / MARKER, b"nnlab report\n", durable=False)
    figures = out / "figures"
    if figures.exists():
        shutil.rmtree(figures)
    figures.mkdir()
    _write_markdown(out / "index.md", title, label, sections, figures)
    return _write_html(out / "index.html", title, label, sections)


TITLE = "nnlab: the study, reproduced"  # also how a folder shows it holds one of our reports


def _measured(runs: Path, profile_json: dict) -> str:
    """' The 4 parts took 4 h 21 min: ...' when reproduce timed every finished part of its
    profile (the study's four, or all of them), else ''."""
    seconds = profile_json.get("seconds", {})
    names = [p["name"] for p in profile_json.get("parts", [])] or list(PARTS)
    done = [name for name in names if _finished(runs / name)]
    if not done or any(name not in seconds for name in done):
        return ""
    listed = [n for n in done if n in PARTS]  # the study's own; the rest in their tables
    others = [n for n in done if n not in PARTS]
    return (f" The {len(done)} parts took {_duration(sum(seconds[n] for n in done))} of wall "
            "time (every invocation that worked on them summed): "
            + ", ".join(f"{n} {_duration(seconds[n])}" for n in listed)
            + (f"{', and' if listed else ''} the {len(others)} others "
               f"{_duration(sum(seconds[n] for n in others))} (each in the tables of where its "
               "results came from)" if others else "") + ".")


def _duration(s: float) -> str:
    """4 -> '4 s', 294 -> '4 min 54 s', 15660 -> '4 h 21 min'."""
    s = round(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _claims(sections: list[Section]) -> list[Claim]:
    """Every section's claims, in order: the report's summary."""
    return [b for s in sections for b in s.blocks if isinstance(b, Claim)]


_UNSAFE = {c: "-" for c in range(128) if not (chr(c).isalnum() or chr(c) in ".-")}


def _figure_name(path: Path) -> str:
    return "-".join(path.parts[-3:]).translate(_UNSAFE)


CSS = """
body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:60rem;padding:0 1rem 3rem;color:#1b1b1b;overflow-wrap:anywhere}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.9rem;color:#555}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
.claim{border-left:4px solid #999;background:#f6f6f6;padding:.5rem .8rem;margin:1rem 0}
.agrees{border-color:#2e7d32}.disagrees{border-color:#c62828}
code{font-size:.85em;background:#f2f2f2;padding:0 .2em}
.close{display:none}figure:target{position:fixed;inset:0;margin:0;z-index:9;display:flex;
flex-direction:column;align-items:center;justify-content:center;background:rgba(0,0,0,.9)}
figure:target img{max-width:100vw;max-height:90vh}figure:target figcaption{color:#eee}
figure:target .open{display:none}figure:target .close{display:inline;color:#fff;margin-left:1em}
"""


def inline_html(markdown: str) -> Markup:
    """The little Markdown the report's texts use (`code`, **bold**, *italics*) as HTML: the
    text is split on its markers and each piece escaped; no HTML is rewritten."""
    out = []
    for i, piece in enumerate(markdown.split("`")):
        if i % 2:  # between backticks
            out.append(Markup("<code>{}</code>").format(piece))
            continue
        for j, bold in enumerate(piece.split("**")):
            words = [Markup("<em>{}</em>").format(w) if k % 2 else escape(w)
                     for k, w in enumerate(bold.split("*"))]
            joined = Markup("").join(words)
            out.append(Markup("<strong>{}</strong>").format(joined) if j % 2 else joined)
    return Markup("").join(out)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("nnlab", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "html.j2"]),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["inline"] = inline_html
    env.tests.update(text=lambda b: isinstance(b, Text), figure=lambda b: isinstance(b, Figure),
                     table=lambda b: isinstance(b, Table), claim=lambda b: isinstance(b, Claim))
    return env


def _write_markdown(path: Path, title: str, label: str, sections: list[Section],
                    figures: Path) -> None:
    """index.md, each figure copied into ``figures`` beside it."""
    names = {}
    for b in (b for s in sections for b in s.blocks if isinstance(b, Figure)):
        names[b.path] = _figure_name(b.path)
        write_atomic(figures / names[b.path], b.path.read_bytes(), durable=False)
    write_atomic(path, _environment().get_template("report.md.j2").render(
        title=title, label=label, sections=sections, claims=_claims(sections),
        names=names).encode())


def _write_html(path: Path, title: str, label: str, sections: list[Section]) -> Path:
    """index.html: one page, each figure embedded once (a click opens it full size)."""
    images = {b.path: base64.b64encode(b.path.read_bytes()).decode()
              for s in sections for b in s.blocks if isinstance(b, Figure)}
    write_atomic(path, _environment().get_template("report.html.j2").render(
        title=title, label=label, sections=sections, claims=_claims(sections), images=images,
        css=Markup(CSS)).encode())
    return path
