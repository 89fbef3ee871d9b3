"""AS.1-AS.3 of the reconstructed convergence analysis (spec section 7), checked numerically on
small problems, each with a negative control that breaks the assumption and must fail (AS.4 is
:mod:`proofs_check.as4`).

Every run is the shipped optimizer: ``tnt_ref.optim.tnt(..., schedule="convergent")`` (Algorithm 2)
through ``tnt_ref.training.train_step`` (:mod:`proofs_check.runs`). The checks read what it received
(``g_k``, the iterates) and what it applied (:func:`proofs_check.runs.applied`)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from tnt_ref.tensor import tensor_shape

from .oracle import step_oracle
from .problems import SmallProblem, biased_sampler, flat, softmax_regression, tanh_mlp
from .registry import register
from .runs import applied, convergent, received_grads, run_tnt, used_inverses

__all__ = ["lipschitz_check", "as2_exact", "as2_sampled", "as3_check", "kappa_bounds", "ALPHA", "BETA"]

#: The step and EMA decay of the assumption checks' runs (Algorithm 2 at a practical step; Theorem 1's step is
#: :mod:`proofs_check.theorem`'s); the step oracle judges the runs with these values, not with the optimizer's.
ALPHA, BETA = 0.05, 0.9


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


def _run(prob, profile, eps, *, m=None, seed=0, N=None, **kw):
    sz = _sizes(profile)
    return run_tnt(prob, convergent(ALPHA, eps, decay=BETA), N=N or sz["N"], m=m or sz["m"], seed=seed, **kw)


def _trajectory(make_problem, profile):
    """A problem, its f and grad f on flat vectors, and the iterates of a short run of Algorithm 2."""
    sz = _sizes(profile)
    prob = make_problem(sz["n"])
    tr = _run(prob, profile, 0.5)
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
    pts = [flat(p) for p in _run(prob, profile, 0.5, seed=0).iterates]
    rng = np.random.default_rng(2)
    held = []
    for seed in (11, 12):
        held += [flat(p) for p in _run(prob, profile, 0.5, seed=seed).iterates[::3]]
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
    (``prob.per_example``: a code path independent of the mini-batch gradient ``train_step`` computes)."""
    pe = prob.per_example(params)
    n = prob.n
    G = np.concatenate([np.asarray(v).reshape(n, -1) for v in pe.values()], axis=1)
    full = G.mean(axis=0)
    return full, float(np.mean(np.sum((G - full) ** 2, axis=1)))


def as2_exact(prob, trace, m: int) -> tuple[bool, dict]:
    """At every iterate ``x_k`` the optimizer visited, enumerate all ``n^m`` mini-batches (uniform, with
    replacement) and take the gradient ``train_step`` hands the optimizer for each
    (:func:`proofs_check.runs.received_grads`): the mean must equal ``grad f(x_k)`` and the mean squared
    deviation ``sigma^2(x_k) / m`` (to round-off). The recorded ``g_k`` must be that gradient on the
    recorded batch (the step used it)."""
    n = prob.n
    worst_bias, worst_var, worst_rec = 0.0, 0.0, 0.0
    for x, idx, g in zip(trace.iterates, trace.batches, trace.grads):
        full, sigma2 = _full_grad_and_sigma2(prob, x)
        mean = np.zeros_like(full)
        second = 0.0
        count = 0
        for batch in itertools.product(range(n), repeat=m):
            gb = flat(received_grads(prob, x, np.array(batch)))
            mean += gb
            second += float(np.sum((gb - full) ** 2))
            count += 1
        mean /= count
        second /= count
        worst_bias = max(worst_bias, float(np.linalg.norm(mean - full) / np.linalg.norm(full)))
        worst_var = max(worst_var, abs(second / (sigma2 / m) - 1))
        worst_rec = max(worst_rec, float(np.linalg.norm(flat(g) - flat(received_grads(prob, x, idx)))))
    ok = worst_bias <= 1e-10 and worst_var <= 1e-10 and worst_rec == 0.0
    return ok, {"n": n, "m": m, "iterates": len(trace.grads), "batches_per_iterate": n**m,
                "max_relative_bias": worst_bias, "max_abs(variance/(sigma^2/m) - 1)": worst_var,
                "recorded_g_k_mismatch": worst_rec}


@register("AS.2.exact", "E[g_k | past] = grad f(x_k) and E||g_k - grad f(x_k)||^2 = sigma^2(x_k)/m at every iterate Algorithm 2 "
          "(tnt_ref's convergent schedule) visited, by enumerating all mini-batches through the gradient train_step hands the "
          "optimizer (tanh MLP, 6 examples, m = 2, 3)",
          "reconstructed", "numeric")
def as2_exact_check(profile):
    prob = tanh_mlp(6)
    out, ok = {}, True
    for m in (2, 3):
        tr = _run(prob, profile, 0.5, N=4 if profile == "quick" else 10, m=m, seed=m)
        ok_m, out[f"m={m}"] = as2_exact(prob, tr, m)
        ok = ok and ok_m
    return ok, out


def as2_sampled(prob, traces, m: int) -> tuple[bool, dict]:
    """The recorded ``g_k`` of runs of Algorithm 2, against ``grad f(x_k)`` and ``sigma^2(x_k)``.

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
    traces = [_run(prob, profile, 0.5, seed=100 + r, sampler=sampler) for r in range(R)]
    return prob, traces, sz["m"]


@register("AS.2.sampled", "the mini-batch gradients g_k the optimizer received are unbiased with E||g_k - grad f(x_k)||^2 = sigma^2(x_k)/m "
          "(softmax regression, many short runs)", "reconstructed", "numeric", cost=0.9)
def as2_sampled_check(profile):
    prob, traces, m = _as2_runs(profile)
    return as2_sampled(prob, traces, m)


@register("AS.2.biased_sampler", "Algorithm 2 run with a sampler that draws only from the first tenth of the examples gives "
          "unbiased g_k (must fail)", "reconstructed", "negative-control", expected="fail")
def as2_biased(profile):
    sz = _sizes(profile)
    prob, traces, m = _as2_runs(profile, sampler=biased_sampler(sz["n"], sz["m"]))
    return as2_sampled(prob, traces, m)


# --------------------------------------------------------------------------- AS.3
def kappa_bounds(shapes: dict, B: dict, eps: float) -> tuple[float, float]:
    """``kappa_hi = max_l eps^{-k_l}``, ``kappa_lo = min_l prod_i (d_i (B_l^2/D_l)^{1/k_l} + eps)^{-1}`` (spec section 7).

    The checker's own statement of the bounds, independent of :func:`tnt_ref.optim.theory_step_size`
    (which a test compares with it)."""
    hi = max(eps ** (-len(s)) if eps > 0 else math.inf for s in shapes.values())
    lo = math.inf
    for name, s in shapes.items():
        k, D = len(s), math.prod(s)
        lo = min(lo, math.prod(1.0 / (d * (B[name] ** 2 / D) ** (1.0 / k) + eps) for d in s))
    return lo, hi


def _dense_kron(K) -> np.ndarray:
    out = np.ones((1, 1))
    for x in K:
        out = np.kron(out, x)
    return out


def as3_check(trace, shapes: dict, kappa_lo: float, kappa_hi: float | None, *, probes: int = 2, seed: int = 0) -> tuple[bool, dict]:
    """The spectrum of every ``H_k`` the optimizer applied lies in ``[kappa_lo, kappa_hi]``.

    ``H_k`` of a block is ``kron_i K_i`` with the factor inverses the step returned
    (:func:`proofs_check.runs.used_inverses`); that this is the map the step *applied* is checked on
    ``probes`` random directions per step (:func:`proofs_check.runs.applied` against
    ``-alpha kron_i K_i v``, dense; relative error ``<= 1e-10``). Its eigenvalues are the products
    of the factors' (not clipped). Failures, each reported by name: ``H_k`` does not exist (the
    optimizer refused, or not finite), the applied map is not ``kron_i K_i``, not symmetric, an
    eigenvalue ``<= 0``, below ``kappa_lo``, above ``kappa_hi``. ``kappa_hi = None`` (no a priori bound,
    damping below working precision): ``H_k`` must still be numerically the inverse of a
    non-singular matrix, ``lambda_max / lambda_min <= 1 / (D eps_machine)``.
    """
    s_min, s_max = math.inf, 0.0
    reasons: dict[str, int] = {}
    first: list[str] = []
    rng = np.random.default_rng(seed)

    def fail(why, k, name):
        reasons[why] = reasons.get(why, 0) + 1
        if len(first) < 3:
            first.append(f"step {k}, {name}: {why}")

    done = min(trace.steps, len(trace.states) - 1)
    for k in range(done):
        K = used_inverses(trace, k)
        x = trace.iterates[k]
        with np.errstate(all="ignore"):
            for _ in range(probes):
                v = {p: rng.standard_normal(np.shape(a)) for p, a in x.items()}
                got = applied(trace, k, v)
                for name in x:
                    want = -trace.alpha * (_dense_kron(K[name]) @ v[name].reshape(-1))
                    err = np.linalg.norm(np.reshape(got[name], -1) - want) / max(np.linalg.norm(want), 1e-300)
                    if not err <= 1e-10:
                        fail("the applied map is not kron_i K_i (alpha H_k differs from the returned inverses)", k, name)
        for name, ks in K.items():
            ks = [np.asarray(a) for a in ks]
            if not all(np.all(np.isfinite(a)) for a in ks):
                fail("H_k not finite (does not exist)", k, name)
                s_max = math.inf
                continue
            if any(np.linalg.norm(a - a.T) > 1e-10 * np.linalg.norm(a) for a in ks):
                fail("H_k not symmetric", k, name)
            lam = np.ones(1)
            for a in ks:
                lam = np.multiply.outer(lam, np.linalg.eigvalsh((a + a.T) / 2)).reshape(-1)
            lam = np.sort(lam)
            s_min, s_max = min(s_min, float(lam[0])), max(s_max, float(lam[-1]))
            if lam[0] <= 0:
                fail("eigenvalue <= 0 (H_k not positive definite)", k, name)
            elif kappa_hi is None and lam[-1] / lam[0] > 1.0 / (math.prod(shapes[name]) * np.finfo(float).eps):
                fail("H_k numerically singular (lambda_max/lambda_min > 1/(D eps_machine)): unbounded", k, name)
            if lam[0] < kappa_lo * (1 - 1e-9):
                fail("eigenvalue below kappa_lo", k, name)
            if kappa_hi is not None and lam[-1] > kappa_hi * (1 + 1e-9):
                fail("eigenvalue above kappa_hi", k, name)
    if done < trace.steps or (trace.stopped and "ValueError" in trace.stopped):
        fail(f"H_k does not exist (the optimizer refused: {trace.stopped})", done, "-")
    ok = not reasons and done > 0
    return ok, {"kappa_lo": kappa_lo, "kappa_hi": "none (no damping)" if kappa_hi is None else kappa_hi,
                "spectrum_min": s_min, "spectrum_max": s_max, "steps": done, "failures": reasons,
                "first_failures": first, "stopped": trace.stopped}


def _as3(prob, profile, eps, m=None, use_apriori=True, bounded=True):
    tr = _run(prob, profile, eps, m=m)
    shapes = {k: tensor_shape(v.shape) for k, v in prob.params0.items()}
    B = prob.B_bound if (use_apriori and prob.B_bound) else _measured_B(tr)
    lo, hi = kappa_bounds(shapes, B, eps)
    ok, meas = as3_check(tr, shapes, lo, hi if bounded else None)
    meas["B"] = B
    meas["B_source"] = "a priori bound" if (use_apriori and prob.B_bound) else "measured max over the run"
    return ok, meas


def _measured_B(trace) -> dict:
    """``max ||Gbar||_F`` over the statistics the optimizer received (the warm start and every step)."""
    gs = [trace.warm] + [s for s in trace.sampled if s is not None]
    return {p: max(float(np.linalg.norm(g[p])) for g in gs) for p in trace.iterates[0]}


#: "No damping" for the optimizer, which refuses ``damping = 0``: far below the round-off of every factor.
NO_DAMPING = 1e-30


@register("AS.3.softmax", "kappa_lo I <= H_k <= kappa_hi I for the H_k the optimizer applied at every iterate (Algorithm 2, "
          "kappa from the a priori and from the measured gradient bound; softmax regression)", "reconstructed", "numeric")
def as3_softmax(profile):
    ok_a, apriori = _as3(softmax_regression(_sizes(profile)["n"]), profile, eps=0.1)
    ok_m, measured = _as3(softmax_regression(_sizes(profile)["n"]), profile, eps=0.1, use_apriori=False)
    return ok_a and ok_m, {"a_priori_B": apriori, "measured_B": measured}


@register("AS.3.mlp", "kappa_lo I <= H_k <= kappa_hi I for the H_k the optimizer applied (Algorithm 2, kappa from the measured "
          "gradient bound B_l; tanh MLP)", "reconstructed", "numeric")
def as3_mlp(profile):
    return _as3(tanh_mlp(_sizes(profile)["n"]), profile, eps=0.1, use_apriori=False)


@register("AS.3.no_damping", "with damping 1e-30 (none, to working precision) and a rank-deficient factor (m = 1), the H_k the "
          "optimizer applies is bounded (must fail: observed H_k numerically singular, not finite, or refused by the optimizer)",
          "reconstructed", "negative-control", expected="fail")
def as3_no_damping(profile):
    return _as3(tanh_mlp(_sizes(profile)["n"]), profile, eps=NO_DAMPING, m=1, use_apriori=False, bounded=False)


@register("AS.3.step_oracle", "every step the optimizer took is x_{k+1} = x_k - alpha (kron_i (U_i + eps I))^{-1} g_k with U from the "
          "statistics of the warm start and of the batches before k (EMA, spec section 3's scale rule), recomputed densely "
          "from the recorded sampled gradients (Algorithm 2 with the check's alpha, eps, beta)", "reconstructed", "numeric")
def as3_step_oracle(profile):
    sz = _sizes(profile)
    out, ok = {}, True
    for make in (softmax_regression, tanh_mlp):
        prob = make(sz["n"])
        tr = _run(prob, profile, 0.1, N=min(sz["N"], 8))
        ok_p, out[prob.name] = step_oracle(tr, alpha=ALPHA, eps=0.1, beta=BETA)
        ok = ok and ok_p
    return ok, out
