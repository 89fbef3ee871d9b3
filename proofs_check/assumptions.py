"""AS.1-AS.4 of the reconstructed convergence analysis (spec section 7), checked numerically on
small problems, each with a negative control that breaks the assumption and must fail."""

from __future__ import annotations

import itertools
import math

import numpy as np

from tnt_ref.fisher import tensor_shape

from .registry import register
from .variant import SmallProblem, flat, run_variant, softmax_regression, tanh_mlp

__all__ = ["lipschitz_check", "as2_exact", "as3_check", "as4_check"]


def _sizes(profile):
    return {"n": 120, "N": 12, "m": 8} if profile == "quick" else {"n": 400, "N": 40, "m": 16}


# --------------------------------------------------------------------------- AS.1
def _power_hessian_norm(grad_fn, x: np.ndarray, rng, iters: int = 30, h: float = 1e-5) -> float:
    """||Hessian|| at x by power iteration on finite-difference Hessian-vector products."""
    v = rng.standard_normal(x.size)
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(iters):
        hv = (grad_fn(x + h * v) - grad_fn(x - h * v)) / (2 * h)
        lam = float(np.linalg.norm(hv))
        if lam == 0:
            return 0.0
        v = hv / lam
    return lam


def lipschitz_check(f_fn, grad_fn, points, *, f_low, L, rng, scales=(1e-2, 1e-3, 1e-4, 1e-5)) -> tuple[bool, dict]:
    """AS.1 at the given points: ``f >= f_low``; secant ratios ``||grad(x+hv) - grad(x)|| / (h ||v||)``
    at every scale stay ``<= L`` and agree across scales (a smooth gradient's ratios converge as
    ``h -> 0``; at a kink they grow like ``1/h``)."""
    f_min = min(f_fn(x) for x in points)
    worst, spread = 0.0, 0.0
    for x in points:
        v = rng.standard_normal(x.size)
        v /= np.linalg.norm(v)
        g0 = grad_fn(x)
        ratios = [float(np.linalg.norm(grad_fn(x + h * v) - g0) / h) for h in scales]
        worst = max(worst, max(ratios))
        spread = max(spread, max(ratios) / max(min(ratios), 1e-300))
    ok = f_min >= f_low and worst <= L * (1 + 1e-6) and spread <= 1.5
    return ok, {"f_min": f_min, "f_low": f_low, "L": L, "max_secant_ratio": worst, "max_ratio_spread_over_scales": spread}


def _prob_fns(prob: SmallProblem):
    keys = list(prob.params0)
    shapes = {k: prob.params0[k].shape for k in keys}

    def unflat(x):
        out, i = {}, 0
        for k in keys:
            s = math.prod(shapes[k])
            out[k] = x[i : i + s].reshape(shapes[k])
            i += s
        return out

    return (lambda x: prob.f(unflat(x))), (lambda x: flat(prob.grad(unflat(x)))), unflat


def _trajectory(make_problem, profile):
    """A problem, its f and grad f on flat vectors, and the iterates of a short run of the variant."""
    sz = _sizes(profile)
    prob = make_problem(sz["n"])
    tr = run_variant(prob, N=sz["N"], m=sz["m"], alpha=0.05, eps=0.5)
    f_fn, g_fn, _ = _prob_fns(prob)
    return prob, f_fn, g_fn, [flat(p) for p in tr.iterates]


@register("AS.1.softmax", "f >= 0 and grad f is L-Lipschitz with the closed-form L along the trajectory (softmax regression)",
          "reconstructed", "numeric")
def as1_softmax(profile):
    prob, f_fn, g_fn, pts = _trajectory(softmax_regression, profile)
    rng = np.random.default_rng(1)
    pts = pts + [flat(prob.params0) + rng.standard_normal(flat(prob.params0).size) for _ in range(3)]
    ok, meas = lipschitz_check(f_fn, g_fn, pts, f_low=0.0, L=prob.L_bound, rng=rng)
    meas["power_iteration_max"] = max(_power_hessian_norm(g_fn, x, rng) for x in pts[:4])
    return ok and meas["power_iteration_max"] <= prob.L_bound * (1 + 1e-4), meas


@register("AS.1.mlp", "f >= 0 and grad f is L-Lipschitz along the trajectory, L estimated by power iteration (tanh MLP)",
          "reconstructed", "numeric")
def as1_mlp(profile):
    prob, f_fn, g_fn, pts = _trajectory(tanh_mlp, profile)
    rng = np.random.default_rng(2)
    L_est = max(_power_hessian_norm(g_fn, x, rng) for x in pts)
    ok, meas = lipschitz_check(f_fn, g_fn, pts, f_low=0.0, L=1.05 * L_est, rng=rng, scales=(1e-3, 1e-4, 1e-5))
    meas["L_estimated"] = L_est
    return ok, meas


@register("AS.1.nonsmooth", "the checker on a non-smooth objective, mean |X w - y| at a kink (must fail)",
          "reconstructed", "negative-control", expected="fail")
def as1_nonsmooth(profile):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 5))
    w0 = rng.standard_normal(5)
    y = X @ w0 + rng.standard_normal(20)
    y[0] = X[0] @ w0  # residual 0 at w0: a kink of |.|

    def f_fn(w):
        return float(np.mean(np.abs(X @ w - y)))

    def g_fn(w):
        return X.T @ np.sign(X @ w - y) / 20

    L_est = max(_power_hessian_norm(g_fn, w0 + 1e-3 * rng.standard_normal(5), rng) for _ in range(3))
    return lipschitz_check(f_fn, g_fn, [w0], f_low=0.0, L=max(1.05 * L_est, 1.0), rng=rng, scales=(1e-2, 1e-4, 1e-6))


@register("AS.1.unbounded", "the checker on an unbounded objective, f(w) = -sum(w) claimed >= 0 (must fail)",
          "reconstructed", "negative-control", expected="fail")
def as1_unbounded(profile):
    rng = np.random.default_rng(4)
    pts = [np.full(4, t) for t in (0.0, 1.0, 10.0)]  # a descent path
    return lipschitz_check(lambda w: float(-np.sum(w)), lambda w: -np.ones_like(w), pts, f_low=0.0, L=1.0, rng=rng)


# --------------------------------------------------------------------------- AS.2
def as2_exact(per_example: np.ndarray, m: int, weights: np.ndarray | None = None) -> tuple[bool, dict]:
    """Enumerate every mini-batch of size ``m`` drawn with replacement (``n^m`` of them) with
    per-example sampling probabilities ``weights`` (uniform by default): the mean of the batch
    gradients must equal ``grad f`` and their variance ``sigma^2 / m`` exactly."""
    n = per_example.shape[0]
    w = np.full(n, 1.0 / n) if weights is None else weights
    full = per_example.mean(axis=0)
    sigma2 = float(np.mean(np.sum((per_example - full) ** 2, axis=1)))
    mean = np.zeros_like(full)
    second = 0.0
    for batch in itertools.product(range(n), repeat=m):
        p = float(np.prod(w[list(batch)]))
        gb = per_example[list(batch)].mean(axis=0)
        mean += p * gb
        second += p * float(np.sum((gb - full) ** 2))
    bias = float(np.linalg.norm(mean - full) / np.linalg.norm(full))
    var_ratio = second / (sigma2 / m)
    ok = bias <= 1e-10 and abs(var_ratio - 1) <= 1e-10
    return ok, {"n": n, "m": m, "batches": n**m, "relative_bias": bias, "variance_over_sigma2_by_m": var_ratio}


def _per_example_flat(prob, n):
    pe = prob.net.per_example_grads(prob.params0, prob.X[:n], prob.y[:n])
    return np.concatenate([v.reshape(n, -1) for v in pe.values()], axis=1)


@register("AS.2.exact", "E[g_k] = grad f and E||g_k - grad f||^2 = sigma^2/m, by enumerating all mini-batches (tanh MLP, 6 examples)",
          "reconstructed", "numeric")
def as2_exact_check(profile):
    prob = tanh_mlp(6)
    G = _per_example_flat(prob, 6)
    ok1, m1 = as2_exact(G, 2)
    ok2, m2 = as2_exact(G, 3)
    return ok1 and ok2, {"m=2": m1, "m=3": m2}


@register("AS.2.sampled", "unbiasedness and variance sigma^2/m by sampling mini-batches on the whole subset (softmax regression at a random point)",
          "reconstructed", "numeric")
def as2_sampled(profile):
    sz = _sizes(profile)
    prob = softmax_regression(sz["n"])
    rng = np.random.default_rng(5)
    prob.params0 = {k: 0.1 * rng.standard_normal(v.shape) for k, v in prob.params0.items()}
    G = _per_example_flat(prob, sz["n"])
    full = G.mean(axis=0)
    sigma2 = float(np.mean(np.sum((G - full) ** 2, axis=1)))
    S, m = (2000 if profile == "quick" else 20000), sz["m"]
    batches = rng.integers(0, sz["n"], (S, m))
    gb = G[batches].mean(axis=1)  # (S, D)
    dev = gb.mean(axis=0) - full
    # ||mean deviation||^2 has expectation sigma^2 / (m S): allow 5x that plus fluctuation
    bias_stat = float(np.sum(dev**2) / (sigma2 / (m * S)))
    var_ratio = float(np.mean(np.sum((gb - full) ** 2, axis=1)) / (sigma2 / m))
    se_var = float(np.std(np.sum((gb - full) ** 2, axis=1)) / math.sqrt(S) / (sigma2 / m))
    ok = bias_stat <= 5.0 and abs(var_ratio - 1) <= 5 * se_var
    return ok, {"S": S, "m": m, "bias_chi2_over_dof_like": bias_stat, "variance_ratio": var_ratio, "variance_ratio_se": se_var}


@register("AS.2.biased_sampler", "a sampler that favours some examples (probability ~ 1 + index) is unbiased (must fail)",
          "reconstructed", "negative-control", expected="fail")
def as2_biased(profile):
    prob = tanh_mlp(6)
    G = _per_example_flat(prob, 6)
    w = np.arange(1.0, 7.0)
    return as2_exact(G, 2, weights=w / w.sum())


# --------------------------------------------------------------------------- AS.3
def kappa_bounds(shapes: dict, B: dict, eps: float) -> tuple[float, float]:
    """``kappa_hi = max_l eps^{-k_l}``, ``kappa_lo = min_l prod_i (d_i (B_l^2/D_l)^{1/k_l} + eps)^{-1}`` (spec section 7)."""
    hi = max(eps ** (-len(s)) if eps > 0 else math.inf for s in shapes.values())
    lo = math.inf
    for name, s in shapes.items():
        k, D = len(s), math.prod(s)
        lo = min(lo, math.prod(1.0 / (d * (B[name] ** 2 / D) ** (1.0 / k) + eps) for d in s))
    return lo, hi


def as3_check(trace, shapes: dict, eps: float, B: dict) -> tuple[bool, dict]:
    """At every step the spectrum of H_k (products of 1/(lambda(U_i) + eps)) lies in [kappa_lo, kappa_hi]."""
    lo, hi = kappa_bounds(shapes, B, eps)
    s_min, s_max = math.inf, 0.0
    with np.errstate(divide="ignore"):
        for U in trace.factors:
            for name, us in U.items():
                lams = [1.0 / (np.clip(np.linalg.eigvalsh(u), 0, None) + eps) for u in us]
                prods = lams[0]
                for l in lams[1:]:
                    prods = np.multiply.outer(prods, l)
                s_min, s_max = min(s_min, float(np.min(prods))), max(s_max, float(np.max(prods)))
    ok = math.isfinite(hi) and math.isfinite(s_max) and s_min >= lo * (1 - 1e-9) and s_max <= hi * (1 + 1e-9)
    return ok, {"kappa_lo": lo, "kappa_hi": hi, "spectrum_min": s_min, "spectrum_max": s_max, "steps": len(trace.factors),
                "stopped_on_non_finite_iterate": trace.stopped}


def _as3(prob, profile, eps, m=None, use_apriori=True):
    sz = _sizes(profile)
    tr = run_variant(prob, N=sz["N"], m=m or sz["m"], alpha=0.05, eps=eps)
    shapes = {k: tensor_shape(v.shape) for k, v in prob.params0.items()}
    B = prob.B_bound if (use_apriori and prob.B_bound) else tr.grad_norms
    ok, meas = as3_check(tr, shapes, eps, B)
    meas["B"] = B
    meas["B_source"] = "a priori bound" if (use_apriori and prob.B_bound) else "measured max over the run"
    return ok, meas


@register("AS.3.softmax", "kappa_lo I <= H_k <= kappa_hi I at every iterate, kappa from the measured and from the a priori gradient bound (softmax regression)",
          "reconstructed", "numeric")
def as3_softmax(profile):
    ok_a, apriori = _as3(softmax_regression(_sizes(profile)["n"]), profile, eps=0.1)
    ok_m, measured = _as3(softmax_regression(_sizes(profile)["n"]), profile, eps=0.1, use_apriori=False)
    return ok_a and ok_m, {"a_priori_B": apriori, "measured_B": measured}


@register("AS.3.mlp", "kappa_lo I <= H_k <= kappa_hi I at every iterate, kappa from the measured gradient bound B_l (tanh MLP)",
          "reconstructed", "numeric")
def as3_mlp(profile):
    return _as3(tanh_mlp(_sizes(profile)["n"]), profile, eps=0.1, use_apriori=False)


@register("AS.3.no_damping", "without damping (eps = 0) and a rank-deficient factor (m = 1), H_k is bounded (must fail)",
          "reconstructed", "negative-control", expected="fail")
def as3_no_damping(profile):
    return _as3(tanh_mlp(_sizes(profile)["n"]), profile, eps=0.0, m=1, use_apriori=False)


# --------------------------------------------------------------------------- AS.4
def as4_check(prob, *, stats: str, N: int, m: int, k: int, seed: int = 0) -> tuple[bool, dict]:
    """Run twice with the same randomness except the k-th mini-batch; AS.4 holds if the
    preconditioner used at step k is bit-identical in both runs."""
    rng = np.random.default_rng(seed)
    n = prob.X.shape[0]
    batches = [rng.integers(0, n, m) for _ in range(N)]
    other = [b.copy() for b in batches]
    other[k] = (batches[k] + 1 + rng.integers(0, n - 1, m)) % n  # a different batch at step k only
    a = run_variant(prob, N=N, m=m, alpha=0.05, eps=0.1, stats=stats, batches=batches, seed=seed)
    b = run_variant(prob, N=N, m=m, alpha=0.05, eps=0.1, stats=stats, batches=other, seed=seed)
    same_k = all(np.array_equal(x, y) for p in a.inverses[k] for x, y in zip(a.inverses[k][p], b.inverses[k][p]))
    same_next = all(np.array_equal(x, y) for p in a.inverses[k + 1] for x, y in zip(a.inverses[k + 1][p], b.inverses[k + 1][p]))
    return same_k, {"stats": stats, "k": k, "H_k_bit_identical": same_k, "H_k+1_bit_identical": same_next}


@register("AS.4.variant", "H_k depends only on batches before k: bit-identical when only batch k changes (statistics after the step)",
          "reconstructed", "numeric")
def as4_variant(profile):
    sz = _sizes(profile)
    ok1, m1 = as4_check(softmax_regression(sz["n"]), stats="after", N=6, m=sz["m"], k=3)
    ok2, m2 = as4_check(tanh_mlp(sz["n"]), stats="after", N=6, m=sz["m"], k=3)
    # and the check is sensitive: batch k does change H_{k+1}
    return ok1 and ok2 and not m1["H_k+1_bit_identical"], {"softmax": m1, "mlp": m2}


@register("AS.4.algorithm1_T1_1", "Algorithm 1 with T1 = 1 (statistics include the current batch) satisfies AS.4 (must fail)",
          "reconstructed", "negative-control", expected="fail")
def as4_alg1(profile):
    sz = _sizes(profile)
    return as4_check(tanh_mlp(sz["n"]), stats="before", N=6, m=sz["m"], k=3)
