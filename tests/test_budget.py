"""The paper's process-time protocol: a budget checked after every step, best-within-budget scores, summaries, figure."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

import tnt_ref.training.runner as R
from tnt_ref.plots import _curves, plot_budget
from tnt_ref.training import RunSpec, compare, results_table, run, summarize


@pytest.fixture
def clock(monkeypatch):
    """A fake clock for the runner: every training step costs exactly 1 s of process (and wall) time; a warm start 100 s."""
    t = [0.0]
    monkeypatch.setattr(R, "time", types.SimpleNamespace(process_time=lambda: t[0], perf_counter=lambda: t[0]))
    step = R.train_step

    def timed_step(*a, **k):
        t[0] += 1.0
        return step(*a, **k)

    warm = R._warm_start

    def timed_warm(*a, **k):
        t[0] += 100.0
        return warm(*a, **k)

    monkeypatch.setattr(R, "train_step", timed_step)
    monkeypatch.setattr(R, "_warm_start", timed_warm)
    return t


def test_budget_is_checked_after_every_step(clock):
    # the digits autoencoder trains on 1497 images in batches of 100: 14 steps per epoch
    r = run("autoencoder", "sgd", 0.03, epochs=None, budget_seconds=3.5, progress=False)
    assert [(h["epoch"], h["step"], h["process_time"]) for h in r.history] == [(round(4 / 14, 6), 4, 4.0)]
    r = run("autoencoder", "sgd", 0.03, epochs=None, budget_seconds=20, progress=False)
    assert [(h["epoch"], h["step"], h["process_time"]) for h in r.history] == [(1, 14, 14.0), (round(1 + 6 / 14, 6), 20, 20.0)]


def test_warm_start_is_not_counted_but_recorded(clock):
    r = run("autoencoder", "tnt", 1e-4, epochs=None, budget_seconds=2, progress=False)
    assert r.history[-1]["process_time"] == 2.0 and r.history[-1]["step"] == 2
    assert r.config["warm_start_process_time"] == 100.0
    assert run("autoencoder", "sgd", 0.03, epochs=1, progress=False).config["warm_start_process_time"] == 0.0


def test_budget_run_resumes_to_the_same_end(clock, tmp_path):
    full = run("autoencoder", "tnt", 1e-4, epochs=None, budget_seconds=20, seed=2, progress=False)
    ck = tmp_path / "ck.npz"
    run("autoencoder", "tnt", 1e-4, epochs=1, budget_seconds=20, seed=2, checkpoint=ck, progress=False)
    cont = run("autoencoder", "tnt", 1e-4, epochs=None, budget_seconds=20, seed=2, checkpoint=ck, resume=True, progress=False)
    assert cont.history == full.history and cont.config["warm_start_process_time"] == 100.0
    for k in full.params:
        np.testing.assert_array_equal(cont.params[k], full.params[k])


def test_budget_argument_checked():
    with pytest.raises(ValueError, match="`budget_seconds` must be positive and finite; got budget_seconds=0"):
        run("mlp", "sgd", 0.1, epochs=None, budget_seconds=0)
    with pytest.raises(ValueError, match="give `epochs` or `budget_seconds`"):
        compare("autoencoder", "/tmp/never-written", epochs=2, budget_seconds=1.0)
    with pytest.raises(ValueError, match="`budget_seconds` must be positive and finite; got budget_seconds=-1.0"):
        compare("autoencoder", "/tmp/never-written", budget_seconds=-1.0)
    with pytest.raises(ValueError, match="`budget_seconds` must be positive and finite; got budget_seconds=inf"):
        compare("autoencoder", "/tmp/never-written", budget_seconds=float("inf"))
    with pytest.raises(TypeError, match="budget_seconds"):
        run("mlp", "sgd", 0.1, epochs=None, budget_seconds=True)


def test_runspec_identity_unchanged_for_old_runs_and_grows_with_budget_and_data():
    s = RunSpec.make("autoencoder", "tnt", 1e-4, 3, 5, {"damping": 0.01}, dtype="float64", val_size=297, divergence_factor=10.0)
    assert s.key() == "tnt_lr0.0001_damping0.01_s3_73e83d8425"  # the key tnt-ref wrote before budgets existed
    b = RunSpec.make("autoencoder", "tnt", 1e-4, 3, None, {"damping": 0.01}, val_size=297, budget_seconds=5.0)
    d = RunSpec.make("autoencoder", "tnt", 1e-4, 3, None, {"damping": 0.01}, val_size=297, budget_seconds=5.0,
                     data_id="abc", data="/some/where")
    d2 = RunSpec.make("autoencoder", "tnt", 1e-4, 3, None, {"damping": 0.01}, val_size=297, budget_seconds=5.0,
                      data_id="abc", data="/else/where")
    assert b.identity()["budget_seconds"] == 5.0 and "data_id" not in b.identity()
    assert len({s.key(), b.key(), d.key()}) == 3 and d.key() == d2.key() and d == d2  # the folder is not the identity


def _rec(o, seed, rows, diverged=False, warm=0.0):
    """A report run with history rows ``(epoch, step, train_loss, process_time)``."""
    hist = [{"epoch": e, "step": s, "train_loss": tl, "test_loss": tl + 1, "test_accuracy": None, "val_loss": tl + 2,
             "val_accuracy": None, "wall_time": 2 * p, "process_time": p} for e, s, tl, p in rows]
    return {"optimizer": o, "learning_rate": 0.1, "seed": seed, "opt_kwargs": {}, "diverged": diverged, "message": "",
            "config": {"warm_start_process_time": warm}, "initial_train_loss": 10.0, "history": hist}


def _gm(*v):
    """Geometric mean: the center of the log-scale intervals (tnt_ref.training.stats)."""
    return float(np.exp(np.mean(np.log(v))))


def test_summary_under_a_budget_scores_the_best_loss():
    runs = [_rec("sgd", 0, [(1, 10, 5.0, 2.0), (2, 20, 4.0, 4.0), (2.5, 25, 4.5, 5.0)]),
            _rec("sgd", 1, [(1, 10, 6.0, 2.2), (2, 20, 3.0, 4.4), (2.3, 23, 3.5, 5.1)]),
            _rec("tnt", 0, [(1, 10, 3.0, 4.0), (1.2, 12, 2.0, 5.0)], warm=7.0),
            _rec("tnt", 1, [(0.6, 6, 3.6, 5.2)], warm=9.0)]
    res = {"problem": "mnist-autoencoder", "config": {"budget_seconds": 5.0}, "runs": runs}
    out = summarize(res)
    # sgd's best losses 4.0 and 3.0, not its final 4.5 and 3.5; losses and times on the log scale (geometric means)
    assert out["target"]["value"] == pytest.approx(_gm(4.0, 3.0))
    t = out["summary"]["tnt"]
    assert t["best_train_loss"]["mean"] == pytest.approx(_gm(2.0, 3.6))
    assert t["process_seconds_per_step"]["mean"] == pytest.approx(_gm(5.0 / 12, 5.2 / 6))
    # per epoch from whole epochs only: tnt seed 0 has one (4.0 s), seed 1 none
    assert t["process_seconds_per_epoch"]["mean"] == 4.0 and t["process_seconds_per_epoch"]["runs_with_a_full_epoch"] == 1
    assert t["steps"]["mean"] == pytest.approx(_gm(12, 6)) and t["epochs"]["mean"] == pytest.approx(_gm(1.2, 0.6))
    assert t["warm_start_process_time"]["mean"] == pytest.approx(_gm(7.0, 9.0))
    assert out["summary"]["sgd"]["warm_start_process_time"] is None  # no warm start: no interval of zeros
    # time to sgd's best (3.46) is process time: tnt seed 0 reaches it at epoch 1 (4.0 s), seed 1 never
    assert t["seconds_to_target"]["mean"] == 4.0 and t["seconds_to_target"]["reached"] == 1
    assert out["summary"]["sgd"]["process_seconds_per_epoch"]["mean"] == pytest.approx(_gm(2.0, 2.2))
    # after the first epoch: (4.0 - 2.0) / 10 and (4.4 - 2.2) / 10 steps; tnt has no second whole epoch
    steady = out["summary"]["sgd"]["process_seconds_per_step_after_epoch_1"]
    assert steady["mean"] == pytest.approx(_gm(0.2, 0.22)) and steady["runs_with_two_full_epochs"] == 2
    assert t["process_seconds_per_step_after_epoch_1"]["runs_with_two_full_epochs"] == 0
    c = next(c for c in out["claims"] if c["b"] == "sgd")
    assert c["metric"] == "best_train_loss" and "best training loss within 5 s" in c["statement"]
    assert c["difference"]["kind"] == "ratio" and c["difference"]["mean"] == pytest.approx(_gm(2.0, 3.6) / _gm(4.0, 3.0))
    # an epoch budget keeps the final loss as the score
    res_ep = {"problem": "mnist-autoencoder", "config": {"budget_seconds": None}, "runs": runs}
    assert summarize(res_ep)["target"]["value"] == pytest.approx(_gm(4.5, 3.5))


def test_budget_intervals_stay_in_range_and_edge_caveats_apply():
    """Issue 25 on issue 23's budget summaries: every budget quantity on the log scale, so its interval stays above 0
    where a Student-t interval on the values would not; a claim against an optimizer tuned to its grid's edge says so."""
    rng = np.random.default_rng(0)
    runs = []
    for o in ("sgd", "tnt"):
        for s in range(3):
            best = float(np.exp(rng.normal(0.0, 1.5)))  # losses spread over orders of magnitude
            sec = float(np.exp(rng.normal(0.0, 1.5)))
            runs.append(_rec(o, s, [(1, 10, 2 * best, sec), (2, 20, best, 2 * sec), (2.5, 25, 1.5 * best, 2.5 * sec)],
                             warm=sec if o == "tnt" else 0.0))
    res = {"problem": "mnist-autoencoder", "config": {"budget_seconds": 5.0}, "runs": runs,
           "tuning": {"sgd": {"lr_at_edge": True, "damping_at_edge": None}, "tnt": {"lr_at_edge": False}}}
    out = summarize(res)
    lin = np.array([min(h["train_loss"] for h in r["history"]) for r in runs if r["optimizer"] == "tnt"])
    from scipy import stats

    assert lin.mean() - stats.t.ppf(0.975, 2) * lin.std(ddof=1) / np.sqrt(3) < 0  # the old interval leaves the range
    keys = ("best_train_loss", "steps", "epochs", "process_seconds_per_step", "process_seconds_per_epoch",
            "process_seconds_per_step_after_epoch_1", "seconds_to_target", "final_test_loss")
    for o in ("sgd", "tnt"):
        for k in keys:
            s = out["summary"][o][k]
            if s.get("ci_low") is not None:
                assert s["scale"] == "log" and 0 < s["ci_low"] <= s["mean"] <= s["ci_high"], (o, k, s)
    w = out["summary"]["tnt"]["warm_start_process_time"]
    assert w["scale"] == "log" and w["ci_low"] > 0
    for c in out["claims"]:
        assert (c["caveat"] is not None) == (c["b"] == "sgd"), c
        assert c["difference"]["kind"] == "ratio" and c["difference"]["ci_low"] > 0
    assert "sgd's learning rate at the edge of its grid" in next(c["caveat"] for c in out["claims"] if c["b"] == "sgd")


def test_curves_interpolate_from_the_initial_loss():
    rs = [_rec("sgd", 0, [(1, 10, 5.0, 2.0), (2, 20, 4.0, 4.0)]), _rec("sgd", 1, [(1, 10, 6.0, 3.0)])]
    grid, loss = _curves(rs, "process_time", n_grid=4)
    np.testing.assert_allclose(grid, [0.0, 1.0, 2.0, 3.0])  # up to the shorter run's end
    # raw losses, interpolated in log(loss) from the initial loss (10) at 0
    np.testing.assert_allclose(loss[0], np.exp(np.interp(grid, [0, 2, 4], np.log([10.0, 5.0, 4.0]))))
    np.testing.assert_allclose(loss[1], np.exp(np.interp(grid, [0, 3], np.log([10.0, 6.0]))))


def test_budget_figure_raw_losses_best_marked_bands_in_range(monkeypatch, tmp_path):
    """plot_budget: raw training losses (not their distance to the best), bands from the log-scale intervals (never
    below 0), the lowest best-within-budget loss marked, the budget marked, the title naming the seeds and scale."""
    import tnt_ref.plots as P

    figs = []
    monkeypatch.setattr(P, "save_figure", lambda fig, path, *, drawer, data, title="": (fig.suptitle(title), figs.append(fig)))
    runs = [_rec("sgd", s, [(1, 10, 5.0 + s, 2.0), (2, 20, 4.0 + s, 4.0), (2.5, 25, 4.5 + s, 5.0)]) for s in range(3)]
    runs += [_rec("tnt", s, [(1, 10, 3.0 + 0.5 * s, 2.5), (1.8, 18, 0.01 * (1 + s), 5.0)]) for s in range(3)]
    res = {"problem": "mnist-autoencoder", "config": {"budget_seconds": 5.0, "report_seeds": [1000, 1001, 1002],
                                                      "data": {"name": "fashion-mnist"}}, "runs": runs}
    P.plot_budget(res, tmp_path / "b.png")
    fig = figs[0]
    a1, a2, a3 = fig.axes
    assert "fashion-mnist" in fig._suptitle.get_text() and "5 s of process time per run" in fig._suptitle.get_text()
    assert "geometric mean and 95% interval over 3 fresh seeds" in fig._suptitle.get_text()
    for ax in (a1, a2):
        assert ax.get_yscale() == "log"  # 0.01 .. 10: more than a factor of 10
        for poly in ax.collections:
            ys = np.concatenate([p.vertices[:, 1] for p in poly.get_paths()])
            assert ys.min() > 0
        best = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert len(best) == 1 and best[0].get_ydata()[0] == pytest.approx(_gm(0.01, 0.02, 0.03))
        curve = next(ln for ln in ax.get_lines() if ln.get_label().startswith("tnt"))
        assert curve.get_ydata()[0] == pytest.approx(10.0)  # the raw initial loss, not a gap to the best
    assert any(ln.get_linestyle() == ":" for ln in a2.get_lines())  # the budget
    assert [t.get_text() for t in a3.get_yticklabels()][0] == "tnt  (lowest)"


def test_compare_under_a_budget_schema_table_figure(tmp_path):
    res = compare("autoencoder", tmp_path, budget_seconds=0.4, optimizers=["sgd", "tnt"],
                  grids={"sgd": [0.03], "tnt": [1e-4]}, damping_grids={"tnt": [3e-2]}, tune_seeds=1, seeds=2, widen=0,
                  log=lambda *_: None)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data == json.loads(json.dumps(res))
    cfg = data["config"]
    assert cfg["budget_seconds"] == 0.4 and cfg["epochs"] is None and cfg["select_by"] == "best val_loss within the budget"
    for o, t in data["tuning"].items():
        (c,) = t["configs"]
        recs = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob(f"{o}_*_s0_*.json")]
        assert c["score"] == [-min(h["val_loss"] for h in recs[0]["history"])]
    for r in data["runs"]:
        h = r["history"]
        assert h[-1]["process_time"] >= 0.4 and all(a["step"] < b["step"] for a, b in zip(h, h[1:]))
    s = data["summary"]["tnt"]
    assert s["best_train_loss"]["mean"] == pytest.approx(
        _gm(*[min(h["train_loss"] for h in r["history"]) for r in data["runs"] if r["optimizer"] == "tnt"]))
    assert data["schema"] == "tnt-ref compare 3" and s["best_train_loss"]["scale"] == "log"
    table = (tmp_path / "table.md").read_text()
    assert table == results_table(data) and "process s / step" in table and "0.4 s of training process time" in table
    assert (tmp_path / "loss.png").stat().st_size > 10_000
    assert "geometric mean [95% Student-t interval on the log scale]" in table
    from tnt_ref.plots import code_fingerprint, figure_stamp

    stamp = figure_stamp(tmp_path / "loss.png")  # compare draws the budget figure, stamped for docs/redraw.py
    assert stamp["drawer"] == "tnt_ref.plots.plot_budget" and stamp["code"] == code_fingerprint(plot_budget)
    plot_budget(data, tmp_path / "again.png")
