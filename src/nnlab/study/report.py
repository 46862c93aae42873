"""Run folders -> the study's report: ``report/index.md`` and one self-contained
``report/index.html`` (figures embedded, no network), in the study's order.

The sections are declared in :mod:`nnlab.study.layout` (the study's four parts, nnlab's
additions, the full profile's other results), made by :mod:`nnlab.study.sections` and written
by :mod:`nnlab.study.render`; the study's claims are checked in :mod:`nnlab.study.claims`.
Expected layout (what ``nnlab reproduce --profile P`` writes): ``RUNS/<part>`` for each of
the study's parts, any of which may be missing (a missing part is said to be missing), then
``RUNS/<documented result>`` for the full profile's; every other finished run folder, at any
depth (``runs/NAME/TIMESTAMP`` included), gets a section of its own (metrics, figures,
command).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from nnlab.engine.files import read_json, write_atomic
from nnlab.errors import NnlabError
from nnlab.study import layout, tables
from nnlab.study.claims import Claim
from nnlab.study.render import Section, docs_link, write_html, write_markdown
from nnlab.study.reproduce import RESULTS
from nnlab.study.sections import (
    MARKER,
    additions,
    duration,
    finished,
    guarded,
    others,
    rest,
)
from nnlab.study.tables import Table

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
    study = layout.STUDY
    sections = [guarded(lambda m=make, n=name: m(runs / n), runs / name, name, skipped)
                for name, make in study.items()]
    sections.append(guarded(lambda: additions(runs, profile_json, layout.SPEEDRUNS,
                                              layout.LONG_MEMORY),
                            runs, "nnlab's additions", skipped))
    sections.append(guarded(lambda: rest(runs, profile_json, layout.REST, layout.SHOWN), runs,
                            "Lab notes", skipped))
    sections = [s for s in sections if s is not None]
    with tempfile.TemporaryDirectory() as scratch:
        rest_of_them = others(runs, Path(scratch), skipped, {*study, *RESULTS, "report"})
        for folder, why in skipped:
            print(f"nnlab: warning: {folder}: left out of the report: {why}", file=sys.stderr)
        if not rest_of_them and not any(finished(runs / name) for name in study):
            raise NnlabError(f"{runs}: no finished run folder in it (the study's parts are "
                             f"{', '.join(study)}); run nnlab reproduce --profile quick first")
        if not any(finished(runs / name) for name in study):
            sections = []  # runs of other experiments only: no empty study sections
        for s in sections:
            if s.anchor in layout.DOCS_PAGES:
                s.docs = docs_link(*layout.DOCS_PAGES[s.anchor])
        return _write(runs, out, profile_json, sections + rest_of_them)


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
    write_markdown(out / "index.md", title, label, sections, figures)
    return write_html(out / "index.html", title, label, sections)


TITLE = "nnlab: the study, reproduced"  # also how a folder shows it holds one of our reports


def _measured(runs: Path, profile_json: dict) -> str:
    """' The 4 parts took 4 h 21 min: ...' when reproduce timed every finished part of its
    profile (the study's four, or all of them), else ''."""
    seconds = profile_json.get("seconds", {})
    names = [p["name"] for p in profile_json.get("parts", [])] or list(layout.STUDY)
    done = [name for name in names if finished(runs / name)]
    if not done or any(name not in seconds for name in done):
        return ""
    listed = [n for n in done if n in layout.STUDY]  # the study's own; the rest in tables
    rest_of_them = [n for n in done if n not in layout.STUDY]
    return (f" The {len(done)} parts took {duration(sum(seconds[n] for n in done))} of wall "
            "time (every invocation that worked on them summed): "
            + ", ".join(f"{n} {duration(seconds[n])}" for n in listed)
            + (f"{', and' if listed else ''} the {len(rest_of_them)} others "
               f"{duration(sum(seconds[n] for n in rest_of_them))} (each in the tables of "
               "where its results came from)" if rest_of_them else "") + ".")


def claims_table(folder: Path) -> Table:
    """The study's claims as ``nnlab report`` checks them on a profile's run folders: the
    claim, the verdict and the numbers behind it."""
    rows = []
    for name, make in layout.STUDY.items():
        for b in make(folder / name).blocks:
            if isinstance(b, Claim):
                rows.append([f"\"{b.text}\"", f"**{b.verdict}**", b.evidence])
    profile = read_json(folder / "profile.json").get("profile", "?") \
        if (folder / "profile.json").is_file() else None
    ran = [folder / n for n in layout.STUDY if finished(folder / n)]
    cpus = "; ".join(sorted({tables.cpu(f) for f in ran}))
    return Table(["the study's claim", "verdict", "the data"], rows,
                 setting=("one run of each part, seed 0, as the study ran them "
                          + (f"(`nnlab reproduce --profile {profile}`)" if profile else "")
                          + f", {cpus}"))
