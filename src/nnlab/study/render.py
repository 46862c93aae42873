"""The report as pages: its blocks (text, figures, tables, claims) in sections, written as
``index.md`` (figures copied beside it) and one self-contained ``index.html`` (figures
embedded, no network) from the Jinja templates in ``templates/``."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from nnlab.engine.files import write_atomic
from nnlab.study.claims import Claim
from nnlab.study.tables import Table


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


def docs_link(page: str, title: str) -> tuple[str, str]:
    """(title, address) of a documentation page: under ``$NNLAB_DOCS_URL`` when set (a
    published site), else the built site's page in this checkout (``make docs``), else the
    page's source, ``docs/<page>.md``."""
    if url := os.environ.get("NNLAB_DOCS_URL"):
        return title, f"{url.rstrip('/')}/{page}/"
    root = Path(__file__).resolve().parents[3]  # src/nnlab/study/render.py -> the checkout
    built = root / "site" / page / "index.html"
    source = root / "docs" / f"{page}.md"
    for path in (built, source):
        if path.is_file():
            return title, path.as_uri()
    return title, f"docs/{page}.md"


UNSAFE = {c: "-" for c in range(128) if not (chr(c).isalnum() or chr(c) in ".-")}


def _figure_name(path: Path) -> str:
    return "-".join(path.parts[-3:]).translate(UNSAFE)


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
    env = jinja2.Environment(loader=jinja2.PackageLoader("nnlab.study", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "html.j2"]),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["inline"] = inline_html
    env.tests.update(text=lambda b: isinstance(b, Text), figure=lambda b: isinstance(b, Figure),
                     table=lambda b: isinstance(b, Table), claim=lambda b: isinstance(b, Claim))
    return env


def write_markdown(path: Path, title: str, label: str, sections: list[Section],
                    figures: Path) -> None:
    """index.md, each figure copied into ``figures`` beside it."""
    names = {}
    for b in (b for s in sections for b in s.blocks if isinstance(b, Figure)):
        names[b.path] = _figure_name(b.path)
        write_atomic(figures / names[b.path], b.path.read_bytes(), durable=False)
    write_atomic(path, _environment().get_template("report.md.j2").render(
        title=title, label=label, sections=sections, claims=claims(sections),
        names=names).encode())


def write_html(path: Path, title: str, label: str, sections: list[Section]) -> Path:
    """index.html: one page, each figure embedded once (a click opens it full size)."""
    images = {b.path: base64.b64encode(b.path.read_bytes()).decode()
              for s in sections for b in s.blocks if isinstance(b, Figure)}
    write_atomic(path, _environment().get_template("report.html.j2").render(
        title=title, label=label, sections=sections, claims=claims(sections), images=images,
        css=Markup(CSS)).encode())
    return path


def claims(sections: list[Section]) -> list[Claim]:
    """Every section's claims, in order: the report's summary."""
    return [b for s in sections for b in s.blocks if isinstance(b, Claim)]
