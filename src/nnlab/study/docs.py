"""Regenerate the results tables of the documentation (``docs/*.md`` and ``README.md``)
from the run folders under ``docs/results/``, or check that they are current.

A table is a block in a page::

    <!-- table: speedrun docs/results/A docs/results/B milestones=80,84 -->
    ...generated...
    <!-- end table -->

The first word names a builder of :mod:`nnlab.study.tables` (the ones ``nnlab report`` uses), the
rest are run folders or files relative to the repository's root, and ``key=value`` options.
``python -m nnlab.docs`` rewrites every block; ``--check`` rewrites nothing and exits 1 naming
each block that differs (edited by hand, or gone stale because the runs changed).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from nnlab.errors import NnlabError
from nnlab.study import report
from nnlab.study.tables import BUILDERS as TABLES
from nnlab.study.tables import bench_caption, markdown, setting

BUILDERS = {**TABLES, "claims": report.claims_table}  # the tables, and the report's verdicts

BLOCK = re.compile(r"(<!-- table: (?P<spec>[^\n]*?) -->\n)(?P<body>.*?)(<!-- end table -->)",
                   re.S)


def render(spec: str, root: Path) -> str:
    """The Markdown a block's spec generates: the table and a line naming its source."""
    name, *words = spec.split()
    if name not in BUILDERS:
        raise NnlabError(f"table '{name}': no such builder (known: {', '.join(BUILDERS)})")
    paths = [w for w in words if "=" not in w]
    options = dict(w.split("=", 1) for w in words if "=" in w)
    for p in paths:
        if not (root / p).exists():
            raise NnlabError(f"table '{spec}': {p} does not exist")
    table = BUILDERS[name](*(root / p for p in paths), **options)
    if not table.rows:
        raise NnlabError(f"table '{spec}': its runs hold nothing to show")
    source = ", ".join(f"`{p}`" for p in paths)
    note = (f"Measured: {bench_caption(root / paths[0])}. " if name == "bench" else "")
    if ran := table.setting or setting(*(root / p for p in paths)):
        note = f"Setting: {ran}. {note}"
    return (f"\n{markdown(table)}\n\n*{note}Generated from {source} by "
            "`python -m nnlab.docs`.*\n\n")


def _vgg_figure(run: Path, out: Path) -> None:
    """Both optimizers' curves of a cifar-cnn run on shared axes (the study's Figure 10)."""
    from nnlab.engine.history import History
    from nnlab.plots import plot_curves

    both = History()
    for opt in ("adam", "sgd"):
        if (run / f"history-{opt}.csv").exists():
            for r in History.load_csv(run / f"history-{opt}.csv"):
                both.log(**{**r, "optimizer": opt})
    plot_curves(both, out, group="optimizer", splits=("train", "val"),
                title="VGGReduced, the study's setting (batch 64, Adam lr 1e-3, SGD lr 1e-2), "
                      "from the same initial weights")


def _speedrun_figure(*runs: Path, out: Path, milestones: tuple[float, ...]) -> None:
    """Every seed's validation accuracy against minutes, each run in its own colour."""
    from nnlab.plots import plot_time_to_accuracy
    from nnlab.study.tables import seed_folders

    histories, labels, colors = [], [], []
    for i, run in enumerate(runs):
        seeds = seed_folders(run)
        histories += [s / "history.csv" for s in seeds]
        labels += [run.name] * len(seeds)
        colors += [i] * len(seeds)
    plot_time_to_accuracy(histories, out, milestones, labels=labels, colors=colors,
                          title="speedrun: every seed of each")


def _budget_figure(runs: list[Path], out: Path) -> None:
    """Accuracy against budget: what the planner expects on the runs' machine (from the
    costs its probe measured there) and what each planned run reached."""
    from nnlab.engine.budget import Cost, choose
    from nnlab.engine.files import read_json
    from nnlab.experiments.cifar_speedrun import BUDGET_SIZES
    from nnlab.plots import plot_accuracy_vs_budget

    plans = [read_json(r / "config.json")["time_budget"] for r in runs]
    costs = {c["size"]: Cost(c["epoch_s"], c["fixed_s"]) for c in plans[0]["considered"]}
    expected = []
    for minutes in [m / 4 for m in range(8, 241)]:
        try:
            size, _, _, acc, _ = choose(minutes * 60, plans[0]["spent_before_s"], BUDGET_SIZES,
                                        costs)
        except NnlabError:
            continue
        expected.append((minutes, acc, size.name))
    measured = [(p["budget_s"] / 60, read_json(r / "metrics.json")["val_acc"],
                 f"{p['size']}, {p['epochs']} ep.") for r, p in zip(runs, plans, strict=True)]
    prov = read_json(runs[0] / "config.json")["provenance"]
    plot_accuracy_vs_budget(expected, measured, out, title=f"cifar-speedrun --time-budget, "
                            f"{prov['cpu']}, {prov['threads']} threads")


def _mlp_time_figure(groups: dict[str, list[Path]], out: Path) -> None:
    """Validation accuracy (the recipe's TTA) against each finished run's wall seconds, one
    line per recipe (each point a schedule run to its end, not an interrupted one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.engine.files import read_json
    from nnlab.plots import COLORS

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (label, runs) in enumerate(groups.items()):
        metrics = [read_json(r / "metrics.json") for r in runs]
        points = sorted((m["wall_s"] / 60, m["val_acc"], m["epochs"]) for m in metrics)
        ax.plot([p[0] for p in points], [100 * p[1] for p in points], "o-",
                color=COLORS[i % len(COLORS)], label=label)
        for minutes, acc, epochs in points:
            ax.annotate(f"{epochs} ep.", (minutes, 100 * acc), textcoords="offset points",
                        xytext=(4, -10), fontsize=7)
    prov = read_json(next(iter(groups.values()))[0] / "config.json")["provenance"]
    ax.set_xlabel("wall minutes per run (seed 0, one thread)")
    ax.set_ylabel("validation accuracy, %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"cifar-mlp: accuracy against training time, {prov['cpu']}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


BUDGET_RUNS = ("5m", "10m", "20m", "40m")
MLP_TIME = {  # docs/results/mlp-long/...: each line's finished runs (seed 0)
    "--recipe best --dropout 0 --zca-eps 0.3, by --epochs":
        ("pilots/base-19ep", "seeds/best-38ep/seed0", "seeds/long-72ep/seed0"),
    "the same, 72 epochs, with --crop 0.35": ("pilots/crop-0.35",),
    "inverted-bottleneck blocks (512 x 6), 72 epochs": ("pilots/bottleneck",)}


def draw_figures(root: Path) -> list[Path]:
    """The documentation's figures that combine run folders, drawn again from docs/results."""
    results, figures = root / "docs" / "results", root / "docs" / "figures"
    _vgg_figure(results / "cifar-cnn-study-100ep", figures / "cifar-cnn-study-100ep.png")
    _speedrun_figure(results / "speedrun-cpu-muon-7ep" / "recipe",
                     results / "speedrun-cpu-muon-7ep" / "muon",
                     out=figures / "cifar-speedrun-cpu-muon.png", milestones=(0.80, 0.84))
    _speedrun_figure(results / "speedrun-full-muon" / "recipe",
                     results / "speedrun-full-muon" / "muon",
                     out=figures / "cifar-speedrun-full-muon.png",
                     milestones=(0.80, 0.85, 0.88, 0.89))
    ideas = sorted((results / "mlp-ablations" / "full-38ep").glob("*/history.csv"))
    if ideas:
        from nnlab.plots import plot_seed_curves

        plot_seed_curves(ideas, figures / "cifar-mlp-38ep-ideas.png",
                         title="cifar-mlp --dropout 0, 38 epochs: each idea (seed 0, fp32)")
    time_runs = {label: [results / "mlp-long" / n for n in names
                         if (results / "mlp-long" / n / "metrics.json").exists()]
                 for label, names in MLP_TIME.items()}
    if all(time_runs.values()):
        _mlp_time_figure(time_runs, figures / "cifar-mlp-time.png")
    budget = [results / "time-budget" / b for b in BUDGET_RUNS
              if (results / "time-budget" / b / "metrics.json").exists()]
    if budget:
        _budget_figure(budget, figures / "time-budget.png")
    return [figures / n for n in ("cifar-cnn-study-100ep.png", "cifar-speedrun-cpu-muon.png",
                                  "cifar-speedrun-full-muon.png", "time-budget.png",
                                  "cifar-mlp-38ep-ideas.png", "cifar-mlp-time.png")]


def update(page: Path, root: Path) -> tuple[str, list[str]]:
    """The page with every block regenerated, and the specs of the blocks that changed."""
    text = page.read_text()
    changed: list[str] = []

    def replace(match: re.Match) -> str:
        body = render(match["spec"], root)
        if body != match["body"]:
            changed.append(match["spec"])
        return match.group(1) + body + match.group(4)
    return BLOCK.sub(replace, text), changed


def notebook_page(notebook: Path) -> str:
    """A notebook as a Markdown page of the docs site: its Markdown cells as they are, its code
    cells fenced (without outputs: they differ each run), and where to get it."""
    import json

    cells = json.loads(notebook.read_text())["cells"]
    parts = [f"<!-- generated from {notebook.name} by `python -m nnlab.docs`: edit the notebook"
             " -->", ""]
    for cell in cells:
        text = "".join(cell["source"]).rstrip()
        parts += ([text, ""] if cell["cell_type"] == "markdown" else ["```python", text, "```", ""])
    parts.insert(4, f"*The notebook: [`docs/notebooks/{notebook.name}`]({notebook.name}); run "
                    "it with Jupyter from a folder of your own (it writes your files there).*\n")
    return "\n".join(parts)


def notebook_pages(root: Path) -> dict[Path, str]:
    """{docs/notebooks/<name>.md: its text} for every notebook there."""
    return {nb.with_suffix(".md"): notebook_page(nb)
            for nb in sorted((root / "docs" / "notebooks").glob("*.ipynb"))}


def pages(root: Path) -> list[Path]:
    """The pages that may hold tables: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnlab.docs",
        description="Regenerate the documentation's results tables from docs/results/.")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming each table that is not current")
    parser.add_argument("--figures", action="store_true",
                        help="also draw again the figures that combine run folders")
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="the repository's root (default: the current folder)")
    args = parser.parse_args(argv)
    stale = []
    try:
        for page in pages(args.root):
            text, changed = update(page, args.root)
            stale += [f"{page.relative_to(args.root)}: {spec}" for spec in changed]
            if changed and not args.check:
                page.write_text(text)
        for page, text in notebook_pages(args.root).items():
            if not page.is_file() or page.read_text() != text:
                stale.append(f"{page.relative_to(args.root)}: its notebook")
                if not args.check:
                    page.write_text(text)
    except NnlabError as e:
        print(f"nnlab.docs: {e}", file=sys.stderr)
        return 2
    if args.figures:
        for path in draw_figures(args.root):
            print(f"figure: {path}")
    if args.check and stale:
        print("not current (edited by hand, or the runs changed); run python -m nnlab.docs:",
              *stale, sep="\n  ", file=sys.stderr)
        return 1
    print(f"{'checked' if args.check else 'wrote'}: {len(stale)} table(s) "
          f"{'stale' if args.check else 'regenerated'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
