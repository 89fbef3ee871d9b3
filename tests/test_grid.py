"""The grid engine: identical histories however runs are scheduled, resume, and the statistics over seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import special, stats

import tnt_ref.training.grid as G
from tnt_ref.training import TIMING_FIELDS, RunSpec, difference_ci, mean_ci, run_grid, verdict

SPECS = [RunSpec.make("mlp", o, lr, s, 2, kw, val_size=297)
         for o, lr, kw in [("sgd", 0.1, {}), ("tnt", 1e-4, {"damping": 0.03})] for s in (0, 1)]


def _strip(records):
    """Histories without the timing fields (measurements of the machine, not results)."""
    return [[{k: v for k, v in h.items() if k not in TIMING_FIELDS} for h in r["history"]] for r in records]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return run_grid(SPECS, tmp_path_factory.mktemp("serial"), jobs=1)


def test_jobs2_histories_equal_serial_exactly(serial, tmp_path):
    par = run_grid(SPECS, tmp_path, jobs=2)
    assert _strip(par) == _strip(serial)
    assert [r["spec"] for r in par] == [s.identity() for s in SPECS]
    # the check can fail: another seed gives another history
    assert _strip(serial)[0] != _strip(serial)[1]
    assert serial[2]["config"]["hyper"]["damping"] == 0.03


def test_dask_local_cluster_histories_equal_serial(serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        dask = run_grid(SPECS, tmp_path, scheduler=client)
        assert len(client.scheduler_info()["workers"]) == 2
    assert _strip(dask) == _strip(serial)


def test_records_written_as_they_finish_and_resume_skips_them(serial, tmp_path, monkeypatch):
    real = G.run_one
    calls = []

    def interrupt_third(spec, threads=1):
        calls.append(spec)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(spec, threads)

    monkeypatch.setattr(G, "run_one", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        run_grid(SPECS, tmp_path, jobs=1)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(f"{s.key()}.json" for s in SPECS[:2])
    calls.clear()
    monkeypatch.setattr(G, "run_one", lambda spec, threads=1: (calls.append(spec), real(spec, threads))[1])
    resumed = run_grid(SPECS, tmp_path, jobs=1)
    assert calls == SPECS[2:]  # only the runs not yet written
    assert _strip(resumed) == _strip(serial)
    # resume=False reruns everything; a corrupted record is redone
    (tmp_path / f"{SPECS[0].key()}.json").write_text("{not json")
    calls.clear()
    run_grid(SPECS, tmp_path, jobs=1)
    assert calls == SPECS[:1]
    calls.clear()
    run_grid(SPECS[:1], tmp_path, jobs=1, resume=False)
    assert calls == SPECS[:1]


def test_record_of_a_diverged_run_keeps_its_good_epochs(tmp_path):
    rec = run_grid([RunSpec.make("autoencoder", "sgd", 0.1, 0, 6, val_size=297)], tmp_path)[0]
    assert rec["diverged"] is True and "diverged" in rec["message"]
    assert rec["last_good_epoch"] == len(rec["history"]) >= 1
    assert all(h["train_loss"] <= 10 * rec["initial_train_loss"] for h in rec["history"])


def test_bad_grid_arguments(tmp_path):
    with pytest.raises(ValueError, match="`jobs` must be a positive int; got jobs=0"):
        run_grid(SPECS, tmp_path, jobs=0)
    with pytest.raises(ValueError, match="`--scheduler` 'tcp://127.0.0.1:1': cannot connect"):
        with G.connect("tcp://127.0.0.1:1", timeout=2):
            pass


def test_mean_ci_against_scipy():
    rng = np.random.default_rng(0)
    for n in (2, 5, 9):
        v = rng.standard_normal(n) * 3 + 1
        r = mean_ci(v)
        lo, hi = stats.t.interval(0.95, n - 1, loc=v.mean(), scale=stats.sem(v))
        assert r["n"] == n and r["mean"] == pytest.approx(v.mean(), rel=1e-14)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
    one = mean_ci([2.0])
    assert (one["mean"], one["ci_low"], one["ci_high"], one["n"]) == (2.0, None, None, 1)
    assert mean_ci([])["mean"] is None


def test_log_and_logit_intervals_are_scipy_t_intervals_mapped_back():
    """The oracle: scipy's t-interval of log x (or logit x), through exp (expit)."""
    rng = np.random.default_rng(3)
    for n in (2, 3, 5):
        v = np.exp(rng.standard_normal(n))
        r = mean_ci(v, scale="log")
        lo, hi = stats.t.interval(0.95, n - 1, loc=np.log(v).mean(), scale=stats.sem(np.log(v)))
        assert r["scale"] == "log" and r["mean"] == pytest.approx(np.exp(np.log(v).mean()), rel=1e-13)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((np.exp(lo), np.exp(hi)), rel=1e-12)
        assert r["arithmetic_mean"] == pytest.approx(v.mean(), rel=1e-14)
        p = rng.uniform(0.6, 0.99, n)
        r = mean_ci(p, scale="logit")
        z = np.log(p / (1 - p))
        lo, hi = stats.t.interval(0.95, n - 1, loc=z.mean(), scale=stats.sem(z))
        assert (r["ci_low"], r["mean"], r["ci_high"]) == pytest.approx(tuple(special.expit([lo, z.mean(), hi])), rel=1e-12)


def test_intervals_never_leave_their_range():
    """The issue's cases: Student-t gave a loss of 0.0478 [-0.1851, 0.2807] and an accuracy of 0.935 [0.744, 1.126]."""
    losses = [0.005, 0.01, 0.2]  # mean 0.0717; the linear t-interval goes below 0
    assert mean_ci(losses)["ci_low"] < 0  # the old interval (the mutation the log scale guards against)
    r = mean_ci(losses, scale="log")
    assert 0 < r["ci_low"] < r["mean"] < r["ci_high"]
    acc = [0.99, 1.0, 0.8]
    assert mean_ci(acc)["ci_high"] > 1
    r = mean_ci(acc, scale="logit", trials=300)
    assert 0 < r["ci_low"] < r["mean"] < r["ci_high"] < 1
    r = mean_ci([1.0, 1.0, 1.0], scale="logit", trials=300)  # all perfect: read as 1 - 0.5/300, never 1
    assert r["mean"] == pytest.approx(1 - 0.5 / 300) and r["ci_high"] < 1
    with pytest.raises(ValueError, match="give `trials`"):
        mean_ci([1.0, 0.9], scale="logit")
    with pytest.raises(ValueError, match="must be positive for scale='log'"):
        mean_ci([0.1, -0.1], scale="log")
    with pytest.raises(ValueError, match=r"proportions in \[0, 1\]"):
        mean_ci([0.5, 1.5], scale="logit", trials=10)
    with pytest.raises(ValueError, match="`scale` must be one of"):
        mean_ci([1.0, 2.0], scale="sqrt")
    # differences: a ratio stays positive, a difference of accuracies inside (-1, 1)
    d = difference_ci(losses, [0.3, 0.31, 0.29], scale="log")
    assert d["kind"] == "ratio" and 0 < d["ci_low"] < d["mean"] < d["ci_high"]
    d = difference_ci([0.999, 1.0, 0.2], [0.0, 0.01, 0.8], scale="logit", trials=300)
    assert -1 < d["ci_low"] < d["mean"] < d["ci_high"] < 1


def test_difference_ci_is_welch():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(5), rng.standard_normal(7) * 3 + 0.5
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    d = difference_ci(a, b)
    assert d["mean"] == pytest.approx(a.mean() - b.mean(), rel=1e-14)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    # on the log scale: Welch on the logs, through exp
    la, lb = np.exp(a), np.exp(b)
    d = difference_ci(la, lb, scale="log")
    assert d["mean"] == pytest.approx(np.exp(a.mean() - b.mean()), rel=1e-13)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((np.exp(ci.low), np.exp(ci.high)), rel=1e-12)
    # on the logit scale: Welch on the logits, mapped at b's center
    pa, pb = special.expit(a + 2), special.expit(b + 2)
    ci = stats.ttest_ind(a + 2, b + 2, equal_var=False).confidence_interval(0.95)
    d = difference_ci(pa, pb, scale="logit")
    Lb = (b + 2).mean()
    assert (d["ci_low"], d["ci_high"]) == pytest.approx(
        (special.expit(Lb + ci.low) - special.expit(Lb), special.expit(Lb + ci.high) - special.expit(Lb)), rel=1e-12)


def test_verdicts_follow_the_interval_and_margin():
    a, b = [1.0, 1.1, 0.9, 1.05, 0.95], [1.2, 1.3, 1.1, 1.25, 1.15]
    assert verdict(a, b, better="lower")["verdict"] == "holds"
    assert verdict(b, a, better="lower")["verdict"] == "does not hold"
    assert verdict(b, a, better="lower", margin=0.5)["verdict"] == "holds"  # within the margin
    assert verdict(a, a[::-1], better="lower")["verdict"] == "not resolved at this scale"
    acc_a, acc_b = [0.96, 0.965, 0.97, 0.962, 0.968], [0.99, 0.992, 0.988, 0.991, 0.989]
    assert verdict(acc_a, acc_b, better="higher", margin=0.01)["verdict"] == "does not hold"  # ~2.5 points below
    assert verdict(acc_a, acc_b, better="higher", margin=0.04)["verdict"] == "holds"
    assert verdict([1.0], [2.0, 3.0], better="lower")["verdict"] == "not resolved at this scale"
    with pytest.raises(ValueError, match="`better` must be 'lower' or 'higher'"):
        verdict(a, b, better="smaller")


def test_verdicts_on_the_log_and_logit_scales():
    """The same claims on the tables' scales: a relative margin is a ratio threshold, an accuracy margin is in points."""
    a = [16.06, 16.10, 16.02, 16.08, 16.04]
    b = [15.84, 15.88, 15.80, 15.86, 15.82]  # a is ~1.4% above b
    v = verdict(a, b, better="lower", margin=0.05, scale="log")
    assert v["verdict"] == "holds" and v["threshold"] == pytest.approx(1.05)
    assert 1.0 < v["difference"]["ci_low"] < v["difference"]["ci_high"] < 1.05
    assert verdict(a, b, better="lower", margin=0.01, scale="log")["verdict"] == "does not hold"  # 1.4% > 1%
    assert verdict(a, b, better="lower", scale="log")["verdict"] == "does not hold"
    assert verdict(b, a, better="lower", scale="log")["verdict"] == "holds"
    acc_a, acc_b = [0.96, 0.965, 0.97, 0.962, 0.968], [0.99, 0.992, 0.988, 0.991, 0.989]
    assert verdict(acc_a, acc_b, better="higher", margin=0.01, scale="logit", trials=300)["verdict"] == "does not hold"
    assert verdict(acc_a, acc_b, better="higher", margin=0.04, scale="logit", trials=300)["verdict"] == "holds"
    assert verdict(acc_b, acc_a, better="higher", margin=0.0, scale="logit", trials=300)["verdict"] == "holds"


def test_spec_key_is_stable_and_distinct():
    keys = {s.key() for s in SPECS}
    assert len(keys) == len(SPECS)
    assert SPECS[2].key().startswith("tnt_lr0.0001_damping0.03_s0_")
    assert RunSpec.make("mlp", "sgd", 0.1, 0, 2, val_size=297).key() == SPECS[0].key()
    assert json.loads(json.dumps(SPECS[2].identity()))["opt_kwargs"] == {"damping": 0.03}
    widened = RunSpec.make("cnn", "tnt", 1e-5 * 1e-5 / 3e-5, 0, 1, {"damping": 1e-2 / 3})  # a grid widened below 1e-5
    assert widened.label() == "tnt lr=3.33e-06 damping=0.00333 seed 0"  # not 3.33333e-06
