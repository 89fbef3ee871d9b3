"""Theorem 1 [reconstructed] (spec section 7), checked on softmax regression.

With AS.1-AS.4, constant step ``alpha = kappa_lo / (L kappa_hi^2)`` and output ``x_R``, ``R``
uniform on ``1..N``::

    E ||grad f(x_R)||^2 <= 2 L kappa_hi^2 D_f / (N kappa_lo^2) + sigma^2 / m

Every constant is valid a priori on softmax regression: ``L`` from the closed form, ``kappa``
from the a priori gradient bound (:func:`proofs_check.variant.softmax_regression`),
``D_f = f(x_1) - 0`` (cross-entropy is non-negative), and ``sigma^2 <= max_i ||g_i - grad f||^2
<= (2 max ||g_i||)^2`` with ``||g_i|| <= sqrt(2 (||x_i||^2 + 1))``.

This study is loose by three to five orders of magnitude (``(kappa_hi / kappa_lo)^2`` in the first
term, the a priori ``sigma^2`` in the second); :mod:`proofs_check.tight` holds the tight instance.
Output indexing: ``x_1`` is the initial point (``trace.iterates[0]``), ``R`` uniform on ``1..N``
picks ``trace.iterates[R - 1]``, as in the proof (``D_f = f(x_1) - f_low``).

Observation, not a check: at the theory's step the observed value does not decay like the bound's
``1/N`` term at these ``N`` (``decay`` in the measured values: ratio of the observed values at the
largest and smallest ``N`` beside the ratio ``N_min / N_max``).
"""

from __future__ import annotations

import math

import numpy as np

from tnt_ref.tensor import tensor_shape

from .assumptions import kappa_bounds
from .registry import register
from .variant import flat, run_variant, softmax_regression

__all__ = ["theorem_study", "THEOREM_RESULTS"]

#: Filled by the last :func:`theorem_study` (used by the report's figure).
THEOREM_RESULTS: dict = {}


def theorem_study(profile: str, eps: float = 1.0) -> dict:
    """Observed ``E||grad f(x_R)||^2`` (mean and standard error over seeds) against the bound."""
    if profile == "quick":
        n, Ns, ms, seeds = 100, [5, 20], [4, 16], 6
    else:
        n, Ns, ms, seeds = 300, [5, 20, 80, 320], [4, 16, 64], 24
    prob = softmax_regression(n)
    shapes = {k: tensor_shape(v.shape) for k, v in prob.params0.items()}
    lo, hi = kappa_bounds(shapes, prob.B_bound, eps)
    L = prob.L_bound
    alpha = lo / (L * hi**2)
    D_f = prob.f(prob.params0)
    gmax = math.sqrt(2 * (float(np.max(np.sum(prob.X**2, axis=1))) + 1))
    sigma2 = (2 * gmax) ** 2
    def observed(step, N, m):
        vals = []
        for s in range(seeds):
            tr = run_variant(prob, N=N, m=m, alpha=step, eps=eps, seed=1000 * s + N + m)
            R = int(np.random.default_rng(s).integers(1, N + 1))  # uniform on 1..N; x_R = iterates[R - 1]
            vals.append(float(np.sum(flat(prob.grad(tr.iterates[R - 1])) ** 2)))
        return float(np.mean(vals)), float(np.std(vals) / math.sqrt(len(vals)))

    # the usual safe step for an L-smooth f with H <= kappa_hi I, for comparison only (not the theorem's)
    alpha_practical = 1.0 / (L * hi)
    rows = []
    for m in ms:
        for N in Ns:
            obs, se = observed(alpha, N, m)
            obs_p, se_p = observed(alpha_practical, N, m)
            bound = 2 * L * hi**2 * D_f / (N * lo**2) + sigma2 / m
            rows.append({"m": m, "N": N, "observed": obs, "se": se, "bound": bound, "looseness": bound / obs,
                         "observed_practical_step": obs_p, "se_practical_step": se_p})
    out = {"n": n, "eps": eps, "L": L, "kappa_lo": lo, "kappa_hi": hi, "alpha": alpha, "D_f": D_f,
           "alpha_practical": alpha_practical, "sigma2_bound": sigma2, "seeds": seeds, "rows": rows}
    THEOREM_RESULTS.clear()
    THEOREM_RESULTS.update(out)
    return out


@register("theorem1.bound", "E||grad f(x_R)||^2 <= 2 L kappa_hi^2 D_f / (N kappa_lo^2) + sigma^2/m for the convergent variant (softmax regression)",
          "reconstructed", "theorem")
def theorem1(profile):
    res = theorem_study(profile)
    ok = all(r["observed"] + 2 * r["se"] <= r["bound"] for r in res["rows"])
    res["min_looseness"] = min(r["looseness"] for r in res["rows"])
    res["max_looseness"] = max(r["looseness"] for r in res["rows"])
    res["decay"] = _decay(res["rows"])
    return ok, res


def _decay(rows) -> dict:
    """Per ``m``: observed at the largest ``N`` over observed at the smallest, beside ``N_min / N_max``."""
    out = {}
    for m in sorted({r["m"] for r in rows}):
        rs = sorted((r for r in rows if r["m"] == m), key=lambda r: r["N"])
        out[f"m={m}"] = {"observed_ratio": rs[-1]["observed"] / rs[0]["observed"], "1/N_ratio": rs[0]["N"] / rs[-1]["N"]}
    return out
