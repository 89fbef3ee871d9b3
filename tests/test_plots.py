"""Figures that tell the truth: raw losses with the best marked, accuracies never past 1, honest titles, weights only
in the Fisher ladder; provenance stamps that change with the drawing code and the data."""

from __future__ import annotations

import numpy as np
import pytest

import tnt_ref.plots as P


def _results(n_seeds=3, classifier=True, epochs=4):
    rng = np.random.default_rng(0)
    runs = []
    for o, base in (("tnt", 16.06), ("kfac", 15.96), ("sgd", 16.9)):
        for s in range(n_seeds):
            hist = []
            for e in range(1, epochs + 1):
                loss = base + 30.0 / e + 0.05 * rng.standard_normal()
                acc = min(1.0, 0.93 + 0.02 * e + 0.02 * rng.standard_normal()) if classifier else None
                hist.append({"epoch": e, "train_loss": loss, "test_loss": loss + 0.5, "test_accuracy": acc,
                             "val_loss": None, "val_accuracy": None, "wall_time": 0.1 * e, "process_time": 0.1 * e})
            hist[-1]["test_accuracy"] = 1.0 if classifier and s == 0 else hist[-1]["test_accuracy"]
            runs.append({"optimizer": o, "learning_rate": 1e-3 / 3, "seed": 1000 + s, "opt_kwargs": {}, "diverged": False,
                         "history": hist, "config": {"n_test": 300}})
    return {"problem": "mlp" if classifier else "autoencoder", "config": {"report_seeds": list(range(n_seeds))},
            "runs": runs, "tuning": {"sgd": {"lr_at_edge": True}}}


@pytest.fixture
def drawn(monkeypatch):
    figs = []

    def capture(fig, path, *, drawer, data, title=""):
        fig.suptitle(title)
        figs.append(fig)
        return path

    monkeypatch.setattr(P, "save_figure", capture)
    return figs


def test_training_figure_draws_raw_losses_marks_the_best_and_caps_accuracy(drawn, tmp_path):
    res = _results()
    P.plot_training(res, tmp_path / "x.png")
    fig = drawn[0]
    ax1, ax2, ax3, ax4 = fig.axes
    # (a): raw training losses, the geometric mean over seeds (not "loss minus the best reached")
    kfac = [ln for ln in ax1.get_lines() if ln.get_label().startswith("kfac")][0]
    raw = np.array([[h["train_loss"] for h in r["history"]] for r in res["runs"] if r["optimizer"] == "kfac"])
    assert np.allclose(kfac.get_ydata(), np.exp(np.log(raw).mean(axis=0)), rtol=1e-12)
    best = [ln for ln in ax1.get_lines() if ln.get_label().startswith("best final")]
    assert best and best[0].get_label().startswith("best final: kfac")
    assert "training loss" in ax1.get_ylabel() and "minus" not in ax1.get_ylabel()
    # labels: 3 significant digits of the learning rate, the edge flag
    assert any(ln.get_label() == "sgd (lr=0.000333 (edge))" for ln in ax1.get_lines())
    # (d): the accuracy axis stops at 1, every band stays below 1
    assert ax4.get_ylim()[1] <= 1.0
    for poly in ax4.collections:
        ys = np.concatenate([p.vertices[:, 1] for p in poly.get_paths()])
        assert ys.max() < 1.0
    assert "geometric mean and 95% interval over 3 fresh seeds" in fig._suptitle.get_text()


def test_training_figure_with_one_seed_says_so(drawn, tmp_path):
    P.plot_training(_results(n_seeds=1, classifier=False), tmp_path / "x.png")
    fig = drawn[0]
    assert "one seed (no interval)" in fig._suptitle.get_text() and "95%" not in fig._suptitle.get_text()
    assert fig.axes[3].get_title().startswith("(d) final test loss")


def _ladder_rows():
    rows = []
    for layer, shape in (("fc1.weight", [8, 4]), ("fc1.bias", [8]), ("fc2.weight", [3, 8]), ("fc2.bias", [3])):
        for m, e in (("tnt-exact", 0.3), ("mle", 0.7), ("kfac", 0.33)):
            rows.append({"layer": layer, "shape": shape, "method": m, "rel_error": e if len(shape) == 2 else 0.0,
                         "kl": 1.0 if m != "kfac" else -1e-14, "cosine": 0.9, "exact_path": "dense"})
    return rows


def test_ladder_shows_weights_and_the_largest_weight_block(drawn, tmp_path):
    rows = _ladder_rows()
    spectra = {nm: {"exact": [3.0, 2.0, 1.0], "kfac": [3.0, 1.0, 0.5]} for nm in ("fc1.weight", "fc1.bias", "fc2.weight")}
    spectra["fc1.bias"]["exact"] = list(range(50, 0, -1))  # the longest stored spectrum is a bias's: not shown
    P.plot_ladder(rows, spectra, tmp_path / "x.png")
    ax1, axk, ax2 = drawn[0].axes
    assert [t.get_text() for t in ax1.get_xticklabels()] == ["fc1.weight", "fc2.weight"]
    assert ax1.get_yscale() == "linear" and ax1.get_ylim()[0] == 0 and ax1.get_ylim()[1] >= 1.0
    assert ax2.get_title().startswith("spectra, fc1.weight (D = 32")
    # the damped KL per weight layer on a log axis, a round-off KL floored (never negative, off the axis)
    assert "KL" in axk.get_title() and axk.get_yscale() == "log"
    assert [t.get_text() for t in axk.get_xticklabels()] == ["fc1.weight", "fc2.weight"]
    assert min(p.get_height() for p in axk.patches) >= 1e-16 and axk.get_ylim()[0] > 1e-16
    # without stored spectra (a copy that dropped them): no spectrum panel
    P.plot_ladder(rows, {}, tmp_path / "y.png")
    assert len(drawn[1].axes) == 2 and "KL" in drawn[1].axes[1].get_title()


def test_fingerprints_follow_the_drawing_code_and_the_data(monkeypatch):
    before = (P.code_fingerprint(P.plot_training), P.code_fingerprint(P.plot_fisher))
    monkeypatch.setattr(P, "_OPT_COLORS", {**P._OPT_COLORS, "tnt": "#000000"})  # a constant plot_training uses
    after = (P.code_fingerprint(P.plot_training), P.code_fingerprint(P.plot_fisher))
    assert after[0] != before[0] and after[1] == before[1]
    assert P.code_fingerprint(P.plot_fisher) != P.code_fingerprint(P.plot_ladder)  # plot_fisher's own title counts
    d = {"a": [1.0, float("inf")], "b": (2, 3)}
    assert P.data_fingerprint(d) == P.data_fingerprint({"b": [2, 3], "a": [1.0, "inf"]})  # as its JSON holds it
    assert P.data_fingerprint(d) != P.data_fingerprint({"a": [1.0, 2.0], "b": [2, 3]})


def test_saved_figures_carry_their_stamp(tmp_path):
    out = P.plot_fisher({"config": {"model": "mlp", "n": 5}, "rows": _ladder_rows(), "spectra": {}}, tmp_path / "f.png")
    stamp = P.figure_stamp(out)
    assert stamp["drawer"] == "tnt_ref.plots.plot_fisher" and stamp["code"] == P.code_fingerprint(P.plot_fisher)


def test_theory_figures_say_what_they_show(drawn, tmp_path):
    """Theorem 1: every legend entry shown below the axes (nothing hidden behind it), one marker per m; the digits
    figure over one seed says so instead of "mean +- s.d."."""
    import proofs_check.figures as F

    rows = [{"m": m, "N": N, "observed": 0.2, "se": 1e-3, "bound": 1e3 / N, "observed_algorithm1": 0.1 / N,
             "se_algorithm1": 1e-3} for m in (4, 16, 64) for N in (5, 20)]
    F.theorem_figure({"rows": rows}, tmp_path / "t.png")
    ax = drawn[0].axes[0]
    leg = ax.get_legend()
    assert len(leg.get_texts()) == 9 and leg.get_bbox_to_anchor().y0 < ax.get_window_extent().y0  # below the axes
    xs = [tuple(np.round(ln.get_xdata(), 6)) for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(set(xs)) == 3  # the three bounds are drawn at shifted N, so none hides another
    traj = {"seeds": [0], "summary": [{"problem": "mlp", "layer": "fc2.weight", "epoch": e, "singular_seeds": 0,
                                       "gap_per_dim_mean": 0.1 * (e + 1), "gap_per_dim_min": 0.1 * (e + 1),
                                       "gap_per_dim_max": 0.1 * (e + 1), "mle_rel_frobenius_mean": 0.5,
                                       "mle_rel_frobenius_sd": None} for e in (0, 2, 4)]}
    F.digits_figure({"trajectory": traj}, tmp_path / "d.png")
    titles = [a.get_title() for a in drawn[1].axes]
    assert all("one seed: no spread" in t for t in titles) and not any("s.d." in t for t in titles)
