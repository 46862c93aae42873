"""The documentation: README as a front page, every results table generated from the run
folders under docs/results/ (and caught when edited by hand or stale), the site's words, and
its pages in a browser at a phone's and a laptop's width."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnlab.study import docs, tables

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
HISTORY = {"lab-notes.md"}  # results kept as history, marked as not regenerated


def test_every_generated_table_is_current():
    stale = [f"{page.name}: {spec}" for page in PAGES for spec in docs.update(page, ROOT)[1]]
    assert not stale, f"run `python -m nnlab.docs`: {stale}"


def test_a_table_edited_by_hand_or_gone_stale_fails_the_check(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# x\n")
    results = tmp_path / "docs" / "results"
    shutil.copytree(ROOT / "docs" / "results" / "full-profile" / "toy", results / "toy")
    page = tmp_path / "docs" / "page.md"
    page.write_text("Intro.\n\n<!-- table: gradient-check docs/results/toy -->\n"
                    "<!-- end table -->\n\nAfter.\n")
    assert docs.main(["--root", str(tmp_path)]) == 0
    written = page.read_text()
    assert "| moons | 2.0e-07 | 4.5e-15 |" in written and written.endswith("After.\n")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
    page.write_text(written.replace("2.0e-07", "1.0e-09"))  # edited by hand
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "page.md: gradient-check docs/results/toy" in capsys.readouterr().err
    docs.main(["--root", str(tmp_path)])
    metrics = json.loads((results / "toy" / "metrics.json").read_text())
    metrics["moons"]["gradient_check"]["max_vs_autograd"] = 3e-9  # the run changed
    (results / "toy" / "metrics.json").write_text(json.dumps(metrics))
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert docs.main(["--root", str(tmp_path)]) == 0
    assert "| moons | 2.0e-07 | 3.0e-09 |" in page.read_text()


def test_a_block_naming_a_missing_run_is_one_line(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("<!-- table: toy docs/results/nope -->\n"
                                        "<!-- end table -->\n")
    assert docs.main(["--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "nnlab.docs: table 'toy docs/results/nope': docs/results/nope does not exist")


def _tables_outside_blocks(text: str) -> list[str]:
    """The first line of each Markdown table that is neither generated (inside a table or
    flag-reference block) nor marked as a description (not results)."""
    text = docs.BLOCK.sub("", text)
    text = re.sub(r"<!-- cli-reference: start -->.*?<!-- cli-reference: end -->", "", text,
                  flags=re.S)
    found, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not previous.startswith("|") and \
                previous.strip() != "<!-- description table -->":
            found.append(line)
        previous = line
    return found


@pytest.mark.parametrize("page", [p for p in PAGES if p.name not in HISTORY],
                         ids=lambda p: p.name)
def test_no_results_table_is_typed_by_hand(page):
    assert _tables_outside_blocks(page.read_text()) == []


def test_the_check_for_hand_typed_tables_finds_one():
    typed = "text\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n"
    assert _tables_outside_blocks(typed) == ["| a | b |"]
    assert _tables_outside_blocks("<!-- description table -->\n" + typed.split("\n\n")[1]) == []


def test_lab_notes_say_they_are_not_regenerated():
    assert "not regenerated" in (ROOT / "docs" / "lab-notes.md").read_text()


def test_the_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    first_block = text.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
    assert text.index("make demo") < 200 and "pip install -e ." in text
    assert "## Results at a glance" in text and "<!-- table: glance docs/results -->" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_words_about_how_the_work_was_organised(page):
    words = re.findall(r"[^.\n]*\b(?:the issue|this session|sessions?|targets? (?:set|was|were|"
                       r"is|met|missed)|the target)\b[^.\n]*", page.read_text(), flags=re.I)
    assert words == []


def test_the_glance_table_reads_every_part():
    table = tables.glance(ROOT / "docs" / "results")
    assert [r[0].split(":")[0] for r in table.rows] == ["I", "I.3", "II", "II", "II", "III"]
    assert all("±" in r[2] or "best epoch" in r[2] for r in table.rows)
    record = table.rows[4]  # nnlab's default beside the record's port: both means, the ratio
    assert "beside the public record" in record[0] and record[2].count("±") == 2
    assert re.search(r"in 0\.\d\d× the port's whole-process time", record[2])


# --------------------------------------------------------------------------- the site


RESULTS_PAGES = ["part-1-toy", "part-1-3-cifar-mlp", "part-2-vgg", "part-2-fast-cnn",
                 "part-3-palindromes", "performance", "long-runs", "lab-notes", ""]

CHECK = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const vw = document.documentElement.clientWidth;
  const scrolls = el => { for (let e = el; e; e = e.parentElement) {
    const s = getComputedStyle(e); if (["auto", "scroll"].includes(s.overflowX) &&
      e !== document.documentElement && e !== document.body) return true; } return false; };
  const wide = [...document.querySelectorAll(".md-content *")]
    .filter(el => !scrolls(el.parentElement) && el.getBoundingClientRect().right > vw + 1)
    .map(el => el.tagName + "." + el.className);
  const result = {vw, wide: wide.slice(0, 5), page: document.documentElement.scrollWidth};
  parent.postMessage(JSON.stringify(result), "*");
}, 300));
</script>"""


@pytest.mark.slow
def test_the_site_has_no_horizontal_overflow_at_390_and_1280_px(tmp_path, chromium):
    """The built site's results pages in headless Chromium, in a frame 390 px (a phone) and
    1280 px (a laptop) wide: nothing in the content reaches past the window's right edge
    unless it sits in something that scrolls (a table's or a code block's wrapper)."""
    import os

    pytest.importorskip("mkdocs")
    browser = chromium
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    failures = []
    for name in RESULTS_PAGES:
        page = site / name / "index.html"
        checked = page.with_name("checked.html")
        checked.write_text(page.read_text().replace("<head>", "<head>" + CHECK, 1))
        for width in (390, 1280):
            harness = page.with_name(f"harness-{width}.html")
            harness.write_text(
                f'<!doctype html><html><body style="margin:0"><iframe src="checked.html" '
                f'style="width:{width}px;height:900px;border:0"></iframe><script>'
                'window.addEventListener("message", e => document.body.insertAdjacentHTML('
                '"beforeend", "<pre id=browser-check>" + e.data + "</pre>"));</script>'
                "</body></html>")
            dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                                  "--hide-scrollbars", "--allow-file-access-from-files",
                                  f"--window-size={width + 100},1000",
                                  "--virtual-time-budget=10000", "--dump-dom",
                                  harness.as_uri()], capture_output=True, text=True,
                                 timeout=120)
            found = dom.stdout.split('<pre id="browser-check">')[-1].split("</pre>")[0]
            result = json.loads(found.replace("&quot;", '"'))
            assert result["vw"] == width, (name, result)
            if result["wide"] or result["page"] > width:
                failures.append((name or "index", width, result))
    assert not failures, failures


def test_docs_results_keeps_a_figure_only_where_a_page_shows_it():
    """docs/results/ holds the run folders the tables are checked against (their json and
    csv); a figure there is kept only when a page shows it: the other runs' figures are
    drawn again by ``nnlab report`` from their histories."""
    shown = {ROOT / "docs" / m.group(1) for page in PAGES
             for m in re.finditer(r"(?:docs/)?(results/[^)\s\"']+\.png)", page.read_text())}
    unshown = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "results").rglob("*.png")
                     if p not in shown)
    assert not unshown, f"{len(unshown)} figures no page shows, e.g. {unshown[:3]}"
    assert shown and all(p.is_file() for p in shown), "a page shows a figure that is not there"
