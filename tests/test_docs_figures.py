"""Every figure the docs show can be redrawn from its JSON by the current code, and none is older than that code.

``docs/redraw.py`` maps each figure to the JSON it is drawn from; each PNG carries the fingerprints of the code
that drew it and of the data it drew (:func:`tnt_ref.plots.figure_stamp`).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from tnt_ref.plots import code_fingerprint, data_fingerprint, figure_stamp

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_spec = importlib.util.spec_from_file_location("docs_redraw", DOCS / "redraw.py")
redraw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(redraw)


def _shown() -> set:
    """Every image the docs and the README show (markdown image links), relative to docs/."""
    out = set()
    for md in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md.read_text()):
            p = (md.parent / link).resolve()
            out.add(str(p.relative_to(DOCS)))
    return out


def test_every_figure_the_docs_show_has_a_source():
    missing = _shown() - set(redraw.FIGURES)
    assert not missing, f"figures shown in docs/ with no JSON source in docs/redraw.py FIGURES: {sorted(missing)}"
    assert all((DOCS / src).exists() for _, src in redraw.FIGURES.values())


@pytest.mark.parametrize("figure", sorted(redraw.FIGURES))
def test_figure_redraws_from_its_json_and_is_current(figure, tmp_path):
    kind, source = redraw.FIGURES[figure]
    draw, data, drawer = redraw.drawer_and_data(kind, DOCS / source)
    out = draw(tmp_path / "again.png")
    stamp = figure_stamp(out)
    assert stamp["code"] == code_fingerprint(drawer) and stamp["data"] == data_fingerprint(data)
    why = redraw.stale(figure)
    assert not why, f"docs/{figure} is stale ({why}): run `PYTHONPATH=$PWD python docs/redraw.py {figure}` and commit it"


def test_a_stale_figure_is_found(tmp_path):
    """Mutation: a figure drawn from other data, or by other code, is reported stale."""
    figure = "figures/fisher_cnn.png"
    kind, source = redraw.FIGURES[figure]
    draw, data, _ = redraw.drawer_and_data(kind, DOCS / source)
    (tmp_path / "results").mkdir()
    (tmp_path / "figures").mkdir()
    (tmp_path / source).write_text((DOCS / source).read_text().replace('"rel_error": 0.', '"rel_error": 0.0', 1))
    draw(tmp_path / figure)  # drawn from the original data: stale against the changed copy
    assert "drawn from other data" in redraw.stale(figure, tmp_path)
    (tmp_path / figure).write_bytes(b"")  # no stamp at all
    with pytest.raises(Exception):
        figure_stamp(tmp_path / figure)
    assert redraw.stale("figures/fisher_mlp.png", tmp_path) == "missing"


def test_a_budget_comparison_is_found_and_redrawn_by_plot_budget(tmp_path):
    """A results.json under a process-time budget (issue 23; docs/results/fashion-mnist-autoencoder/ will hold one) is a
    figure of docs/ like any comparison: found, drawn by plot_budget (as compare draws it) and stamped, then current."""
    from tnt_ref.plots import plot_budget, plot_training

    def rec(o, s, loss):
        hist = [{"epoch": e, "step": 10 * e, "train_loss": loss / e, "test_loss": loss / e + 1, "test_accuracy": None,
                 "val_loss": loss / e + 2, "val_accuracy": None, "wall_time": 2.0 * e, "process_time": 1.0 * e}
                for e in (1, 2, 2.5)]
        return {"optimizer": o, "learning_rate": 0.1, "seed": s, "opt_kwargs": {}, "diverged": False, "message": "",
                "config": {"warm_start_process_time": 0.0}, "initial_train_loss": 2 * loss, "history": hist}

    res = {"schema": "tnt-ref compare 3", "problem": "mnist-autoencoder",
           "config": {"epochs": None, "budget_seconds": 2.5, "report_seeds": [1000, 1001],
                      "data": {"name": "fashion-mnist"}},
           "runs": [rec(o, s, loss + s) for o, loss in (("sgd", 30.0), ("tnt", 20.0)) for s in (0, 1)]}
    folder = tmp_path / "results" / "fashion-mnist-autoencoder"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(res))
    (tmp_path / "results" / "mlp").mkdir()
    (tmp_path / "results" / "mlp" / "results.json").write_text((DOCS / "results" / "mlp" / "results.json").read_text())
    found = redraw.figures(tmp_path)
    fig = "results/fashion-mnist-autoencoder/loss.png"
    assert found[fig] == ("comparison", "results/fashion-mnist-autoencoder/results.json")
    assert redraw.stale(fig, tmp_path) == "missing"
    draw, data, drawer = redraw.drawer_and_data(*found[fig][:1], tmp_path / found[fig][1])
    assert drawer is plot_budget and redraw.drawer_and_data("comparison", tmp_path / "results/mlp/results.json")[2] is plot_training
    stamp = figure_stamp(draw(tmp_path / fig))
    assert stamp["drawer"] == "tnt_ref.plots.plot_budget" and stamp["code"] == code_fingerprint(plot_budget)
    assert redraw.stale(fig, tmp_path) == ""
