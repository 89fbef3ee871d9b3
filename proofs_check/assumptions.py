"""AS.1-AS.4 of the reconstructed convergence analysis (spec section 7), checked numerically on
small problems, each with a negative control that breaks the assumption and must fail."""

from __future__ import annotations

import itertools
import math

import numpy as np

from tnt_ref.tensor import tensor_shape
from tnt_ref.tensor import kron

from . import variant
from .registry import register
from .variant import SmallProblem, flat, run_variant, softmax_regression, tanh_mlp

__all__ = ["lipschitz_check", "as2_exact", "as2_sampled", "as3_check", "applied_H", "step_oracle", "kappa_bounds", "as4_check"]


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


@register("AS.1.mlp", "f >= 0 and the secant ratios of grad f along the trajectory stay below an L estimated by power iteration "
          "at held-out points (other runs' iterates), not at the checked points (tanh MLP)", "reconstructed", "numeric")
def as1_mlp(profile):
    """No valid global bound exists: the curvature of a tanh MLP's cross-entropy with respect to the
    first layer grows like ``||W_2||^2 max ||x||^2``, unbounded on R^D. ``L`` is therefore estimated at
    held-out points (the iterates of two runs with other seeds, plus perturbations of radius 1), and
    the check claims only that the checked trajectory shows no curvature above that estimate (and no
    kink): consistency with AS.1 on the visited region, not a proof of it."""
    sz = _sizes(profile)
    prob = tanh_mlp(sz["n"])
    f_fn, g_fn, _ = _prob_fns(prob)
    pts = [flat(p) for p in run_variant(prob, N=sz["N"], m=sz["m"], alpha=0.05, eps=0.5, seed=0).iterates]
    rng = np.random.default_rng(2)
    held = []
    for seed in (11, 12):
        held += [flat(p) for p in run_variant(prob, N=sz["N"], m=sz["m"], alpha=0.05, eps=0.5, seed=seed).iterates[::3]]
    held += [h + rng.standard_normal(h.size) / math.sqrt(h.size) for h in held[:4]]
    L_est = max(_power_hessian_norm(g_fn, x, rng) for x in held)
    ok, meas = lipschitz_check(f_fn, g_fn, pts, f_low=0.0, L=L_est, rng=rng, scales=(1e-3, 1e-4, 1e-5))
    meas["L_source"] = f"max power-iteration estimate at {len(held)} held-out points (no global bound exists)"
    meas["secant_ratio_over_L"] = meas["max_secant_ratio"] / L_est
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
def _full_grad_and_sigma2(prob, params) -> tuple[np.ndarray, float]:
    """``grad f(x)`` and ``sigma^2(x) = (1/n) sum_i ||g_i(x) - grad f(x)||^2`` from per-example gradients
    (``prob.per_example``: a code path independent of the mini-batch gradient ``prob.grad`` the variant calls)."""
    pe = prob.per_example(params)
    n = prob.n
    G = np.concatenate([np.asarray(v).reshape(n, -1) for v in pe.values()], axis=1)
    full = G.mean(axis=0)
    return full, float(np.mean(np.sum((G - full) ** 2, axis=1)))


def as2_exact(prob, trace, m: int) -> tuple[bool, dict]:
    """At every iterate ``x_k`` the variant visited, enumerate all ``n^m`` mini-batches (uniform, with
    replacement) and call the variant's own gradient ``prob.grad(x_k, batch)``: the mean must equal
    ``grad f(x_k)`` and the mean squared deviation ``sigma^2(x_k) / m`` (to round-off). The recorded
    ``g_k`` must be the oracle's value on the recorded batch (the step used that gradient)."""
    n = prob.n
    worst_bias, worst_var, worst_rec = 0.0, 0.0, 0.0
    for x, idx, g in zip(trace.iterates, trace.batches, trace.grads):
        full, sigma2 = _full_grad_and_sigma2(prob, x)
        mean = np.zeros_like(full)
        second = 0.0
        count = 0
        for batch in itertools.product(range(n), repeat=m):
            gb = flat(prob.grad(x, np.array(batch)))
            mean += gb
            second += float(np.sum((gb - full) ** 2))
            count += 1
        mean /= count
        second /= count
        worst_bias = max(worst_bias, float(np.linalg.norm(mean - full) / np.linalg.norm(full)))
        worst_var = max(worst_var, abs(second / (sigma2 / m) - 1))
        worst_rec = max(worst_rec, float(np.linalg.norm(flat(g) - flat(prob.grad(x, idx)))))
    ok = worst_bias <= 1e-10 and worst_var <= 1e-10 and worst_rec == 0.0
    return ok, {"n": n, "m": m, "iterates": len(trace.grads), "batches_per_iterate": n**m,
                "max_relative_bias": worst_bias, "max_abs(variance/(sigma^2/m) - 1)": worst_var,
                "recorded_g_k_mismatch": worst_rec}


@register("AS.2.exact", "E[g_k | past] = grad f(x_k) and E||g_k - grad f(x_k)||^2 = sigma^2(x_k)/m at every iterate the variant "
          "visited, by enumerating all mini-batches through the variant's own gradient (tanh MLP, 6 examples, m = 2, 3)",
          "reconstructed", "numeric")
def as2_exact_check(profile):
    prob = tanh_mlp(6)
    out, ok = {}, True
    for m in (2, 3):
        tr = run_variant(prob, N=4 if profile == "quick" else 10, m=m, alpha=0.05, eps=0.5, seed=m)
        ok_m, out[f"m={m}"] = as2_exact(prob, tr, m)
        ok = ok and ok_m
    return ok, out


def as2_sampled(prob, traces, m: int) -> tuple[bool, dict]:
    """The recorded ``g_k`` of runs of the variant, against ``grad f(x_k)`` and ``sigma^2(x_k)``.

    With ``z_k = g_k - grad f(x_k)`` (martingale differences under AS.2), ``T = ||sum z_k||^2 /
    sum sigma_k^2/m`` has expectation 1 and ``V = sum ||z_k||^2 / sum sigma_k^2/m`` has expectation 1.
    Pass: ``T <= 9`` (chi-square with one degree of freedom exceeds 9 with probability 0.3%) and ``|V - 1| <= 4 se(V)``. A biased sampler makes ``T`` grow like the number
    of steps."""
    zs, s2, sq = [], [], []
    for tr in traces:
        for x, g in zip(tr.iterates, tr.grads):
            full, sigma2 = _full_grad_and_sigma2(prob, x)
            z = flat(g) - full
            zs.append(z)
            s2.append(sigma2 / m)
            sq.append(float(z @ z))
    zs, s2, sq = np.array(zs), np.array(s2), np.array(sq)
    T = float(np.sum(zs.sum(axis=0) ** 2) / s2.sum())
    V = float(sq.sum() / s2.sum())
    se = float(np.std(sq / s2) / math.sqrt(len(sq)))
    ok = T <= 9.0 and abs(V - 1) <= 4 * se
    return ok, {"steps": len(sq), "m": m, "bias_statistic_T (E = 1)": T, "variance_ratio_V (E = 1)": V, "V_se": se}


def _as2_runs(profile, sampler=None):
    sz = _sizes(profile)
    prob = softmax_regression(sz["n"])
    R = 20 if profile == "quick" else 40
    traces = [run_variant(prob, N=sz["N"], m=sz["m"], alpha=0.05, eps=0.5, seed=100 + r, sampler=sampler) for r in range(R)]
    return prob, traces, sz["m"]


@register("AS.2.sampled", "the variant's recorded mini-batch gradients g_k are unbiased with E||g_k - grad f(x_k)||^2 = sigma^2(x_k)/m "
          "(softmax regression, many short runs)", "reconstructed", "numeric")
def as2_sampled_check(profile):
    prob, traces, m = _as2_runs(profile)
    return as2_sampled(prob, traces, m)


def biased_sampler(n: int, m: int):
    """Mini-batches drawn uniformly from the first tenth of the examples only: breaks AS.2."""
    return lambda rng: rng.integers(0, max(n // 10, 1), m)


@register("AS.2.biased_sampler", "the variant run with a sampler that draws only from the first tenth of the examples gives "
          "unbiased g_k (must fail)", "reconstructed", "negative-control", expected="fail")
def as2_biased(profile):
    sz = _sizes(profile)
    prob, traces, m = _as2_runs(profile, sampler=biased_sampler(sz["n"], sz["m"]))
    return as2_sampled(prob, traces, m)


# --------------------------------------------------------------------------- AS.3
def kappa_bounds(shapes: dict, B: dict, eps: float) -> tuple[float, float]:
    """``kappa_hi = max_l eps^{-k_l}``, ``kappa_lo = min_l prod_i (d_i (B_l^2/D_l)^{1/k_l} + eps)^{-1}`` (spec section 7)."""
    hi = max(eps ** (-len(s)) if eps > 0 else math.inf for s in shapes.values())
    lo = math.inf
    for name, s in shapes.items():
        k, D = len(s), math.prod(s)
        lo = min(lo, math.prod(1.0 / (d * (B[name] ** 2 / D) ** (1.0 / k) + eps) for d in s))
    return lo, hi


def applied_H(K: list, tshape: tuple) -> np.ndarray:
    """The dense matrix of the map the variant's step applies to a block (:func:`variant.precondition`
    probed on the basis vectors): ``H[:, j] = precondition(e_j)``."""
    D = math.prod(tshape)
    return variant.precondition(np.eye(D), K, tshape, batched=True).T  # row j of the batch is H e_j


def as3_check(trace, shapes: dict, kappa_lo: float, kappa_hi: float | None) -> tuple[bool, dict]:
    """The spectrum of the ``H_k`` the variant applied (probed, not clipped) lies in ``[kappa_lo, kappa_hi]``.

    Failures, each reported by name: ``H_k`` not finite (a singular factor without damping), not
    symmetric, with an eigenvalue ``<= 0`` (an indefinite ``U``), below ``kappa_lo``, above ``kappa_hi``.
    ``kappa_hi = None`` (no a priori bound, ``eps = 0``): ``H_k`` must still be numerically the
    inverse of a non-singular matrix, ``lambda_max / lambda_min <= 1 / (D eps_machine)``; a finite
    ``H_k`` with ``U = I`` passes, a rank-deficient ``U`` fails.
    """
    s_min, s_max = math.inf, 0.0
    reasons: dict[str, int] = {}
    first: list[str] = []

    def fail(why, k, name):
        reasons[why] = reasons.get(why, 0) + 1
        if len(first) < 3:
            first.append(f"step {k}, {name}: {why}")

    for k, K in enumerate(trace.inverses):
        for name, ks in K.items():
            ts = shapes[name]
            H = applied_H(ks, ts)
            if not np.all(np.isfinite(H)):
                fail("H_k not finite (does not exist)", k, name)
                s_max = math.inf
                continue
            if np.linalg.norm(H - H.T) > 1e-10 * np.linalg.norm(H):
                fail("H_k not symmetric", k, name)
            lam = np.linalg.eigvalsh((H + H.T) / 2)
            s_min, s_max = min(s_min, float(lam[0])), max(s_max, float(lam[-1]))
            if lam[0] <= 0:
                fail("eigenvalue <= 0 (H_k not positive definite)", k, name)
            elif kappa_hi is None and lam[-1] / lam[0] > 1.0 / (math.prod(ts) * np.finfo(float).eps):
                fail("H_k numerically singular (lambda_max/lambda_min > 1/(D eps_machine)): unbounded", k, name)
            if lam[0] < kappa_lo * (1 - 1e-9):
                fail("eigenvalue below kappa_lo", k, name)
            if kappa_hi is not None and lam[-1] > kappa_hi * (1 + 1e-9):
                fail("eigenvalue above kappa_hi", k, name)
    ok = not reasons and len(trace.inverses) > 0
    return ok, {"kappa_lo": kappa_lo, "kappa_hi": "none (eps = 0)" if kappa_hi is None else kappa_hi,
                "spectrum_min": s_min, "spectrum_max": s_max, "steps": len(trace.inverses), "failures": reasons,
                "first_failures": first, "stopped_on_non_finite_iterate": trace.stopped}


def _as3(prob, profile, eps, m=None, use_apriori=True):
    sz = _sizes(profile)
    tr = run_variant(prob, N=sz["N"], m=m or sz["m"], alpha=0.05, eps=eps)
    shapes = {k: tensor_shape(v.shape) for k, v in prob.params0.items()}
    B = prob.B_bound if (use_apriori and prob.B_bound) else tr.grad_norms
    lo, hi = kappa_bounds(shapes, B, eps)
    ok, meas = as3_check(tr, shapes, lo, hi if eps > 0 else None)
    meas["B"] = B
    meas["B_source"] = "a priori bound" if (use_apriori and prob.B_bound) else "measured max over the run"
    return ok, meas


@register("AS.3.softmax", "kappa_lo I <= H_k <= kappa_hi I for the H_k the variant applied at every iterate, kappa from the a priori "
          "and from the measured gradient bound (softmax regression)", "reconstructed", "numeric")
def as3_softmax(profile):
    ok_a, apriori = _as3(softmax_regression(_sizes(profile)["n"]), profile, eps=0.1)
    ok_m, measured = _as3(softmax_regression(_sizes(profile)["n"]), profile, eps=0.1, use_apriori=False)
    return ok_a and ok_m, {"a_priori_B": apriori, "measured_B": measured}


@register("AS.3.mlp", "kappa_lo I <= H_k <= kappa_hi I for the H_k the variant applied, kappa from the measured gradient bound B_l (tanh MLP)",
          "reconstructed", "numeric")
def as3_mlp(profile):
    return _as3(tanh_mlp(_sizes(profile)["n"]), profile, eps=0.1, use_apriori=False)


@register("AS.3.no_damping", "without damping (eps = 0) and a rank-deficient factor (m = 1), the H_k the variant applies is "
          "bounded (must fail: observed H_k is numerically singular or not finite)",
          "reconstructed", "negative-control", expected="fail")
def as3_no_damping(profile):
    return _as3(tanh_mlp(_sizes(profile)["n"]), profile, eps=0.0, m=1, use_apriori=False)


def step_oracle(trace, shapes: dict) -> tuple[bool, dict]:
    """``x_{k+1} = x_k - alpha (kron_i (U_i + eps I))^{-1} g_k`` at every recorded step, with a dense
    ``numpy.linalg.solve`` on the recorded factors ``U`` and gradients ``g_k`` (the ``H`` AS.3 bounds
    is the damped inverse, and it is what moved the iterates)."""
    worst = 0.0
    for k, (U, g) in enumerate(zip(trace.factors, trace.grads)):
        x, x1 = trace.iterates[k], trace.iterates[k + 1]
        for name, us in U.items():
            Kd = kron(*[u + trace.eps * np.eye(u.shape[0]) for u in us])
            want = x[name].reshape(-1) - trace.alpha * np.linalg.solve(Kd, g[name].reshape(-1))
            err = float(np.linalg.norm(x1[name].reshape(-1) - want) / max(np.linalg.norm(x[name] - x1[name]), 1e-300))
            worst = max(worst, err)
    ok = worst <= 1e-8 and len(trace.factors) > 0
    return ok, {"steps": len(trace.factors), "max_relative_step_error": worst}


@register("AS.3.step_oracle", "every iterate moved by x_{k+1} = x_k - alpha (kron_i (U_i + eps I))^{-1} g_k (dense solve on the "
          "recorded factors and gradients: the H bounded by AS.3 is what ran)", "reconstructed", "numeric")
def as3_step_oracle(profile):
    sz = _sizes(profile)
    out, ok = {}, True
    for make in (softmax_regression, tanh_mlp):
        prob = make(sz["n"])
        tr = run_variant(prob, N=min(sz["N"], 8), m=sz["m"], alpha=0.05, eps=0.1)
        ok_p, out[prob.name] = step_oracle(tr, {k: tensor_shape(v.shape) for k, v in prob.params0.items()})
        ok = ok and ok_p
    return ok, out


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
