"""AS.4 at every step [reconstructed] (spec section 7): ``H_k`` is determined by the batches before ``k``.

For one run of ``N`` steps with fixed mini-batches, and for each ``k = 0..N-1``, the same run with
only batch ``k`` replaced (same seeds otherwise): ``H_k`` depends on batch ``k`` when the step's
factor inverses (:func:`proofs_check.runs.used_inverses`) or the direction the optimizer applies to
a fixed probe (:func:`proofs_check.runs.applied`, same state and iterate) are not bit-identical.
Reported per schedule: the steps at which ``H_k`` depends on batch ``k``. Algorithm 2
(``schedule="convergent"``) must give the empty set, and batch ``k`` must change ``H_{k+1}`` (the
detector sees dependence where there is some). Algorithm 1 with ``T1`` in {1, 2, 5} (statistics from
the current batch, as the authors ran it; no momentum, warm start) is an observation: its set is
expected to be exactly its statistics steps ``{t > 0: t % T1 == 0}`` (before ``T2``).
"""

from __future__ import annotations

import numpy as np

from .problems import softmax_regression, tanh_mlp
from .registry import register
from .runs import algorithm1, applied, convergent, run_tnt, used_inverses

__all__ = ["dependent_steps", "statistics_steps", "ALG1_T1"]

ALG1_T1 = (1, 2, 5)
EPS, ALPHA = 0.1, 0.05


def _sizes(profile):
    return {"n": 120, "N": 12, "m": 8} if profile == "quick" else {"n": 400, "N": 20, "m": 16}


def _same_H(a, b, k: int, probe: dict) -> bool:
    Ka, Kb = used_inverses(a, k), used_inverses(b, k)
    same = all(np.array_equal(x, y) for p in Ka for x, y in zip(Ka[p], Kb[p]))
    da, db = applied(a, k, probe), applied(b, k, probe)
    return same and all(np.array_equal(da[p], db[p]) for p in da)


def dependent_steps(prob, make_opt, *, N: int, m: int, seed: int = 0, perturb: bool = True) -> dict:
    """Steps ``k`` at which ``H_k`` changes when only batch ``k`` does, and steps at which ``H_{k+1}`` does.

    ``perturb=False`` replaces batch ``k`` by an identical copy (the detector's negative control:
    nothing may change)."""
    rng = np.random.default_rng(seed)
    n = prob.n
    batches = [rng.integers(0, n, m) for _ in range(N)]
    probe = {p: rng.standard_normal(np.shape(v)) for p, v in prob.params0.items()}
    base = run_tnt(prob, make_opt(), N=N, m=m, batches=batches, seed=seed)
    dep, next_dep = [], []
    for k in range(N):
        other = [b.copy() for b in batches]
        if perturb:
            other[k] = (batches[k] + 1 + rng.integers(0, n - 1, m)) % n  # a different batch at step k only
        alt = run_tnt(prob, make_opt(), N=min(k + 2, N), m=m, batches=other, seed=seed)
        if not _same_H(base, alt, k, probe):
            dep.append(k)
        if k + 1 < N and not _same_H(base, alt, k + 1, probe):
            next_dep.append(k)
    return {"N": N, "m": m, "dependent_steps": dep, "batch_k_changes_H_k+1": next_dep,
            "stopped": base.stopped}


def statistics_steps(T1: int, N: int, T2: int = 20) -> list:
    """Algorithm 1 after a warm start: statistics at ``t > 0, t % T1 == 0``, inverses at ``t % (T1 if t < T2 else T2) == 0``;
    ``H_t`` reads batch ``t`` where both happen."""
    return [t for t in range(1, N) if t % T1 == 0 and t % (T1 if t < T2 else T2) == 0]


_CACHE: dict = {}


def _observe(profile: str, perturb: bool = True) -> dict:
    key = (profile, perturb)
    if key not in _CACHE:
        sz = _sizes(profile)
        out = {}
        for name, make in (("softmax-regression", softmax_regression), ("tanh-mlp", tanh_mlp)):
            prob = make(sz["n"])
            rows = {"convergent": dependent_steps(prob, lambda: convergent(ALPHA, EPS), N=sz["N"], m=sz["m"], perturb=perturb)}
            for T1 in ALG1_T1:
                rows[f"algorithm1 T1={T1}"] = dependent_steps(prob, lambda T1=T1: algorithm1(ALPHA, EPS, T1=T1), N=sz["N"],
                                                              m=sz["m"], perturb=perturb)
                rows[f"algorithm1 T1={T1}"]["statistics_steps"] = statistics_steps(T1, sz["N"])
            out[name] = rows
        _CACHE[key] = out
    return _CACHE[key]


@register("AS.4.convergent", "H_k depends only on the batches before k, at every step k of a run: replacing batch k alone leaves the "
          "H_k that tnt_ref's convergent schedule applies bit-identical, for every k (softmax regression and tanh MLP), and the "
          "detector sees dependence (batch k changes H_{k+1})", "reconstructed", "numeric", cost=1.6)
def as4_convergent(profile):
    obs = _observe(profile)
    rows = {p: r["convergent"] for p, r in obs.items()}
    ok = all(not r["dependent_steps"] and r["batch_k_changes_H_k+1"] == list(range(r["N"] - 1)) and not r["stopped"]
             for r in rows.values())
    return ok, rows


@register("AS.4.algorithm1", "observation: Algorithm 1 as the authors ran it (statistics from the current batch every T1 steps, "
          "T1 = 1, 2, 5) reads batch k into H_k exactly at its statistics steps; passes when the observed set equals "
          "{t > 0: t % T1 == 0} for every T1 and both problems", "reconstructed", "observation")
def as4_algorithm1(profile):
    obs = _observe(profile)
    rows = {p: {s: r for s, r in rs.items() if s != "convergent"} for p, rs in obs.items()}
    ok = all(r["dependent_steps"] == r["statistics_steps"] and r["statistics_steps"] for rs in rows.values() for r in rs.values())
    return ok, rows


@register("AS.4.algorithm1.claim", "Algorithm 1 (T1 = 1, 2, 5) satisfies AS.4: H_k does not depend on batch k at any step "
          "(must fail: it breaks AS.4 at its statistics steps)", "reconstructed", "negative-control", expected="fail")
def as4_algorithm1_claim(profile):
    obs = _observe(profile)
    sets = {f"{p}, {s}": r["dependent_steps"] for p, rs in obs.items() for s, r in rs.items() if s != "convergent"}
    return all(not d for d in sets.values()), {"dependent_steps": sets}


@register("AS.4.unperturbed", "the AS.4 detector without a perturbation (batch k replaced by an identical copy) finds Algorithm 1's "
          "statistics steps (must fail: nothing changes, so the observation's criterion cannot be met by chance)",
          "reconstructed", "negative-control", expected="fail", cost=1.6)
def as4_unperturbed(profile):
    obs = _observe(profile, perturb=False)
    found = {f"{p}, {s}": r["dependent_steps"] for p, rs in obs.items() for s, r in rs.items()}
    ok = all(r["dependent_steps"] == r["statistics_steps"] for rs in obs.values() for s, r in rs.items() if s != "convergent")
    return ok, {"dependent_steps": found}
