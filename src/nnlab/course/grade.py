"""``nnlab course grade SUBMISSIONS/``: every submission folder checked as ``nnlab course
check`` checks it, in a temporary copy (the student's code runs there, never in the
submission), each check in its own process with a time and a memory limit, one seed for all
(every student gets the same draws); one bad submission never stops the rest. The result:
a CSV with a cell per check and student, and a Markdown summary beside it."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nnlab.course.checks import chosen, run_checks
from nnlab.errors import NnlabError

MEMORY_MB = 8192  # address space of the checks' process (importing torch maps about 4 GB)


def grade(submissions: str | Path, out: str | Path, seed: int | None = None,
          say: Callable[[str], None] = print, memory_mb: int = MEMORY_MB,
          part: str = "all", jobs: int = 1) -> Path:
    """Grade each folder in ``submissions`` (sorted) into ``out`` (a .csv; the summary goes
    to the same name with .md) on the checks of ``part`` ('1', '2', '3' or 'all'; a file a
    submission lacks fails its checks), ``jobs`` submissions at a time (each check's time
    limit is wall time: more jobs than cores slow every check). Returns the CSV's path."""
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise NnlabError(f"{submissions}: no such folder (one folder per submission in it)")
    folders = sorted(p for p in submissions.iterdir() if p.is_dir())
    if not folders:
        raise NnlabError(f"{submissions}: no submission folders in it")
    if out.exists():
        raise NnlabError(f"{out} exists: grades are never written over; give another --out")
    if jobs < 1:
        raise NnlabError(f"--jobs {jobs}: at least 1")
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    names = chosen(None, part=part)

    def graded(folder: Path) -> dict[str, str]:
        with tempfile.TemporaryDirectory(prefix="nnlab-grade-") as tmp:
            copy = Path(tmp) / folder.name
            shutil.copytree(folder, copy, symlinks=True)
            results = {r.name: r for r in run_checks(copy, names, seed, memory_mb)}
        results = {n: results[n] for n in names}
        passed = sum(r.passed for r in results.values())
        say(f"{folder.name}: {passed} of {len(names)} checks pass")
        return {"submission": folder.name,
                **{n: "pass" if r.passed else "fail" for n, r in results.items()},
                "passed": str(passed),
                "note": "; ".join(f"{n}: {r.said}" for n, r in results.items()
                                  if not r.passed)[:500]}

    # each submission's checks are processes of their own: threads only wait on them
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(graded, folders))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["submission", *names, "passed", "note"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Grades: {submissions} (seed {seed})", "",
             "| submission | passed | failed checks |", "| --- | --- | --- |"]
    lines += [f"| {r['submission']} | {r['passed']} of {len(names)} | "
              + (", ".join(n for n in names if r[n] == "fail") or "none") + " |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return out
