"""Redraw every figure the docs show from the JSON beside it, with the current code.

    PYTHONPATH=$PWD python docs/redraw.py            # redraw all (or name some: results/mlp/loss.png ...)
    PYTHONPATH=$PWD python docs/redraw.py --check    # list figures older than their code or data; exit 1 if any
    PYTHONPATH=$PWD python docs/redraw.py --resummarize   # first recompute the comparisons' summaries and tables

Each PNG carries the fingerprint of the code that drew it and of the data it drew
(:func:`tnt_ref.plots.figure_stamp`); ``tests/test_docs_figures.py`` fails when a figure the docs
show is missing here, cannot be redrawn from its JSON, or is older than its code or its data.
After changing a drawing function, run this script and commit the figures.

The theory figures are drawn from the measured values of one check each in ``results/theory.json``
(``theorem1.tnt``, ``tn.digits.study``), as ``python -m proofs_check`` draws them with its report.

``--resummarize`` recomputes the ``target``, ``summary``, ``claims`` and ``intervals`` of each
comparison's ``results.json`` (by epochs or under a budget) from its runs (no training: every run's history is
in the file) with the current :func:`tnt_ref.training.summarize`, and rewrites ``table.md`` beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent

#: kind -> the check of theory.json whose measured values the figure draws
_THEORY = {"theorem": "theorem1.tnt", "digits": "tn.digits.study"}


def figures(root: Path = DOCS) -> dict:
    """figure (relative to ``root``) -> (kind, JSON it is drawn from, relative to ``root``), found on disk:

    * every comparison, ``results/**/results.json`` -> the ``loss.png`` beside it (kind ``"comparison"``: by epochs
      or under a process-time budget, as the JSON says);
    * every ladder, ``results/fisher_<model>.json`` -> ``figures/fisher_<model>.png`` (kind ``"fisher"``);
    * the theory figures, ``results/theory.json`` -> ``figures/theorem1.png`` and ``figures/tn_digits.png``.
    """
    out = {}
    for res in sorted((root / "results").rglob("results.json")):
        out[res.with_name("loss.png").relative_to(root).as_posix()] = ("comparison", res.relative_to(root).as_posix())
    for js in sorted((root / "results").glob("fisher_*.json")):
        out[f"figures/{js.stem}.png"] = ("fisher", js.relative_to(root).as_posix())
    if (root / "results" / "theory.json").exists():
        out["figures/theorem1.png"] = ("theorem", "results/theory.json")
        out["figures/tn_digits.png"] = ("digits", "results/theory.json")
    return out


#: The figures of docs/ (:func:`figures`).
FIGURES = figures()


def drawer_and_data(kind: str, source: Path):
    """``(draw, data, drawer)``: ``draw(path)`` draws the figure from ``data`` (what the stamp fingerprints); ``drawer``
    is the function whose code the stamp fingerprints."""
    from tnt_ref.plots import plot_budget, plot_fisher, plot_results, plot_training

    doc = json.loads(source.read_text())
    if kind == "comparison":  # what compare draws: plot_budget under a process-time budget, plot_training otherwise
        drawer = plot_budget if (doc.get("config") or {}).get("budget_seconds") else plot_training
        return (lambda path: plot_results(doc, path)), doc, drawer
    if kind == "fisher":
        return (lambda path: plot_fisher(doc, path)), doc, plot_fisher
    if kind in _THEORY:
        from proofs_check.figures import digits_figure, theorem_figure

        fn = theorem_figure if kind == "theorem" else digits_figure
        measured = next(c["measured"] for c in doc["checks"] if c["name"] == _THEORY[kind])
        return (lambda path: fn(measured, path)), measured, fn
    raise ValueError(f"unknown figure kind {kind!r}")


def stale(figure: str, root: Path = DOCS) -> str:
    """Why ``figure`` is older than its code or data (``""`` when it is current)."""
    from tnt_ref.plots import code_fingerprint, data_fingerprint, figure_stamp

    kind, source = figures(root).get(figure) or FIGURES[figure]
    png = root / figure
    if not png.exists():
        return "missing"
    _, data, drawer = drawer_and_data(kind, root / source)
    stamp = figure_stamp(png)
    if not stamp:
        return "no provenance stamp (drawn by older code)"
    why = []
    if stamp.get("code") != code_fingerprint(drawer):
        why.append(f"drawn by other code than the current {drawer.__module__}.{drawer.__name__}")
    if stamp.get("data") != data_fingerprint(data):
        why.append(f"drawn from other data than {source}")
    return "; ".join(why)


def resummarize(root: Path = DOCS) -> list[Path]:
    from tnt_ref.files import atomic_write_json, atomic_write_text
    from tnt_ref.training import results_table, summarize

    out = []
    for figure, (kind, source) in FIGURES.items():
        if kind != "comparison":
            continue
        path = root / source
        results = json.loads(path.read_text())
        for key in ("target", "summary", "claims", "intervals"):
            results.pop(key, None)
        results.update(summarize(results))
        results["schema"] = "tnt-ref compare 3"
        out += [atomic_write_json(path, results), atomic_write_text(path.with_name("table.md"), results_table(results))]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python docs/redraw.py", description=__doc__.split("\n\n")[0])
    p.add_argument("figures", nargs="*", help=f"figures to redraw, relative to docs/ (default: all {len(FIGURES)})")
    p.add_argument("--check", action="store_true", help="only list the stale figures (exit 1 if any)")
    p.add_argument("--resummarize", action="store_true",
                   help="recompute the comparisons' summaries and tables before drawing (default: off)")
    args = p.parse_args(argv)
    unknown = [f for f in args.figures if f not in FIGURES]
    if unknown:
        print(f"{p.prog}: error: unknown figures {unknown}; known: {list(FIGURES)}", file=sys.stderr)
        return 2
    names = args.figures or list(FIGURES)
    if args.check:
        bad = {f: why for f in names if (why := stale(f))}
        for f, why in bad.items():
            print(f"stale: docs/{f}: {why}")
        print(f"{len(names) - len(bad)} of {len(names)} figures current")
        return 1 if bad else 0
    if args.resummarize:
        for path in resummarize():
            print(f"wrote {path}")
    for f in names:
        kind, source = FIGURES[f]
        draw, _, _ = drawer_and_data(kind, DOCS / source)
        print(f"wrote {draw(DOCS / f)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
