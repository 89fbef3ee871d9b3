"""Theorem 1 [reconstructed] (spec section 7) on a problem where its bound is nearly attained, and
three negative controls that break one assumption each and must make the bound fail.

The tight instance [derived]
----------------------------
``f(x) = (1/n) sum_i (L/2) ||x - c_i||_F^2`` over a parameter ``x`` of shape ``(3, 4)`` (one
Kronecker block, ``k = 2``, ``D = 12``), with ``c_i`` of entries ``+-a`` in antithetic pairs
(``c_{i + n/2} = -c_i``, so ``mean c_i = 0`` exactly). Every constant is exact:

- AS.1: ``grad f(x) = L x``, Hessian ``L I``: ``L`` is the Lipschitz constant, attained in every
  direction; ``f_low = min f = (L/2) a^2 D``, so ``D_f = f(x_1) - f_low = (L/2) ||x_1||^2``.
- AS.2: the mini-batch gradient (``m`` indices uniform with replacement) is
  ``g = L (x - mean_batch c_j)``: unbiased, with ``E||g - grad f||^2 = sigma^2 / m`` exactly for
  ``sigma^2 = (1/n) sum_i ||L c_i||^2 = L^2 a^2 D``.
- AS.3: the statistics' gradient (TNT's sampled-label gradient) of example ``j`` is the gradient
  ``-L s_j c_j`` of ``f_j`` at a label ``x + s_j c_j`` with a random sign ``s_j``, so every
  statistics block has ``||Gbar||_F <= B = L a sqrt(D)``, and spec section 7's ``kappa_lo``,
  ``kappa_hi = eps^-2`` hold a priori (:func:`proofs_check.assumptions.kappa_bounds`). With the
  damping ``eps`` large against ``d_i B / sqrt(D)``, ``kappa_lo / kappa_hi`` is close to 1: the
  preconditioner is pinned near ``eps^-2 I``.
- AS.4: the optimizer is ``tnt_ref.optim.tnt(..., schedule="convergent")`` (statistics after the
  step), run by :func:`proofs_check.runs.run_tnt`.

The statistics here do not depend on ``x`` (the sign-flipped ``c_j`` of the batch), which is what
pins ``H``; :mod:`proofs_check.theorem` holds the instance whose statistics are TNT's own, at the
current iterate, with ``kappa_lo / kappa_hi <= 0.1``.

Why it is tight: Theorem 1's proof uses three inequalities: the descent lemma (an equality for a
quadratic with Hessian ``L I``), ``kappa_lo ||grad f||^2 <= grad f^T H grad f`` and
``||H g|| <= kappa_hi ||g||`` (equalities when ``H = kappa I``), and ``f(x_{N+1}) >= f_low``. With
``H_k = kappa I`` exactly, ``alpha H_k = I / L``, so ``x_{k+1} = -xi_k / L`` and, for ``R`` uniform on
``1..N``::

    E||grad f(x_R)||^2 = (L^2 ||x_1||^2 + (N - 1) sigma^2 / m) / N = bound - sigma^2 / (m N),

the bound minus exactly the dropped remainder ``E f(x_{N+1}) - f_low``. With the damping used here
(``kappa_lo / kappa_hi = 0.93``) the observed value is 0.8 to 0.9 of the bound.

``observed`` is ``E||grad f(x_R)||^2`` with the expectation over ``R`` taken exactly (the mean of
``||grad f(x_k)||^2`` over ``k = 1..N`` of each run; ``R`` is independent of the run) and the
expectation over the noise by the mean over seeds, with its standard error.
"""

from __future__ import annotations

import math

import numpy as np

from typing import NamedTuple

from tnt_ref.optim import Optimizer
from tnt_ref.tensor import tensor_shape

from .assumptions import kappa_bounds
from .registry import register
from .runs import convergent, run_tnt, used_inverses

__all__ = ["TightQuadratic", "tight_constants", "observed_gradnorm", "bound_value", "tight_study",
           "TIGHT_RESULTS", "bisector_H", "bisector_control"]

#: Filled by the last :func:`tight_study` (the report's table).
TIGHT_RESULTS: dict = {}

EPS = 100.0  # damping: kappa_lo / kappa_hi = 0.9335 for shape (3, 4), L a = 1 (L = 2, a = 1/2: powers of L show)


class TightQuadratic:
    """``f(x) = (1/n) sum_i (L/2) ||x - c_i||^2`` with the interface :func:`proofs_check.runs.run_tnt` needs.

    Parameters
    ----------
    shape : tuple of int
        Shape of the one parameter ``"w"`` (``(3, 4)``: one Kronecker block with ``k = 2``).
    n : int
        Number of examples (even; antithetic pairs).
    L, a : float
        Curvature and the entry size of the ``c_i``.
    x1_scale : float
        ``x_1`` has i.i.d. ``N(0, x1_scale^2)`` entries (seed 0); ``0`` starts at the minimiser.
    bias : array of shape ``shape``, optional
        Added to every mini-batch gradient: noise with a non-zero mean (breaks AS.2).
    zero_statistics : bool
        The statistics' gradient is zero: TNT's scale rule then gives ``U = 0`` (spec section 3's
        ``tau = 0`` guard) and the optimizer's ``H_k`` is exactly ``eps^-k I``.
    """

    def __init__(self, shape=(3, 4), n: int = 64, L: float = 2.0, a: float = 0.5, x1_scale: float = 3.0,
                 bias=None, seed: int = 0, zero_statistics: bool = False):
        if n < 2 or n % 2:
            raise ValueError(f"`n` must be an even int >= 2 (antithetic pairs); got n={n!r}.")
        if not (L > 0 and a > 0 and x1_scale >= 0):
            raise ValueError(f"`L`, `a` must be positive and `x1_scale` non-negative; got L={L!r}, a={a!r}, x1_scale={x1_scale!r}.")
        rng = np.random.default_rng(seed)
        self.shape = tuple(int(s) for s in shape)
        half = rng.choice([-a, a], size=(n // 2, *self.shape))
        self.C = np.concatenate([half, -half])  # (n, *shape), mean exactly 0
        self.L, self.a = float(L), float(a)
        self.params0 = {"w": x1_scale * rng.standard_normal(self.shape)}
        self.bias = None if bias is None else np.asarray(bias, dtype=float).reshape(self.shape)
        D = math.prod(self.shape)
        self.D = D
        self.sigma2 = self.L**2 * self.a**2 * D  # (1/n) sum ||L c_i||^2, exact
        self.f_low = 0.5 * self.L * self.a**2 * D
        self.B = {"w": self.L * self.a * math.sqrt(D)}  # a priori bound on every statistics block
        self.zero_statistics = bool(zero_statistics)

    @property
    def n(self) -> int:
        return int(self.C.shape[0])

    def f(self, params) -> float:
        w = params["w"]
        return 0.5 * self.L * (float(np.sum(w**2)) + float(np.mean(np.sum(self.C.reshape(self.n, -1) ** 2, axis=1))))

    def grad(self, params, idx=None) -> dict:
        """``grad f`` (``idx=None``) or the mini-batch gradient of the batch ``idx`` (plus ``bias``, if any)."""
        w = params["w"]
        if idx is None:
            return {"w": self.L * w}
        g = self.L * (w - self.C[idx].mean(axis=0))
        if self.bias is not None:
            g = g + self.bias
        return {"w": g}

    def sampled_grad(self, params, idx, rng: np.random.Generator) -> dict:
        """Mean over the batch of ``-L s_j c_j`` (random signs ``s_j``): norm ``<= L a sqrt(D)``."""
        s = rng.choice([-1.0, 1.0], size=len(idx))
        g = -self.L * np.tensordot(s, self.C[idx], axes=1) / len(idx)
        return {"w": 0.0 * g if self.zero_statistics else g}

    def D_f(self) -> float:
        return self.f(self.params0) - self.f_low


def tight_constants(prob: TightQuadratic, eps: float = EPS) -> dict:
    """The theorem's constants, all a priori: ``L``, ``kappa_lo``, ``kappa_hi``, ``alpha``, ``sigma^2``, ``D_f``."""
    shapes = {k: tensor_shape(v.shape) for k, v in prob.params0.items()}
    lo, hi = kappa_bounds(shapes, prob.B, eps)
    return {"L": prob.L, "kappa_lo": lo, "kappa_hi": hi, "kappa_ratio": lo / hi, "alpha": lo / (prob.L * hi**2),
            "sigma2": prob.sigma2, "D_f": prob.D_f(), "eps": eps}


def bound_value(c: dict, N: int, m: int) -> float:
    """``2 L kappa_hi^2 D_f / (N kappa_lo^2) + sigma^2 / m`` (spec section 7)."""
    return 2 * c["L"] * c["kappa_hi"] ** 2 * c["D_f"] / (N * c["kappa_lo"] ** 2) + c["sigma2"] / m


def observed_gradnorm(prob, *, N: int, m: int, alpha: float, eps: float, seeds: int, seed0: int = 0,
                      make_opt=None, warm_start: bool = True) -> tuple[float, float, dict]:
    """Mean over seeds of ``(1/N) sum_{k=1..N} ||grad f(x_k)||^2`` (= E over R), its standard error,
    and the spectrum range of every ``H_k`` used (``h_min``, ``h_max``). The optimizer is
    ``convergent(alpha, eps)`` unless ``make_opt()`` gives another."""
    make_opt = make_opt or (lambda: convergent(alpha, eps))
    vals, h_min, h_max = [], math.inf, 0.0
    for s in range(seeds):
        tr = run_tnt(prob, make_opt(), N=N, m=m, seed=seed0 + 7919 * s + 31 * N + m, warm_start=warm_start)
        if len(tr.iterates) < N or tr.stopped:  # stopped on a non-finite iterate
            vals.append(math.inf)
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            vals.append(float(np.mean([np.sum(prob.grad(x)["w"] ** 2) for x in tr.iterates[:N]])))
        for k in range(tr.steps):
            spec = _kron_spectrum(used_inverses(tr, k)["w"])
            h_min, h_max = min(h_min, float(spec.min())), max(h_max, float(spec.max()))
    v = np.asarray(vals)
    if not np.all(np.isfinite(v)):
        return math.inf, math.inf, {"h_min": h_min, "h_max": h_max, "non_finite_runs": int(np.sum(~np.isfinite(v)))}
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))), {"h_min": h_min, "h_max": h_max}


def _kron_spectrum(Ks) -> np.ndarray:
    """Eigenvalues of ``kron K_1 ... K_k`` (products of the factors' eigenvalues)."""
    lam = np.ones(1)
    for K in Ks:
        lam = np.multiply.outer(lam, np.linalg.eigvalsh((K + K.T) / 2)).reshape(-1)
    return lam


def _sizes(profile: str) -> dict:
    if profile == "quick":
        return {"Ns": [5, 40], "ms": [1, 16], "seeds": 8}
    return {"Ns": [5, 20, 80, 320], "ms": [1, 4, 16], "seeds": 32}


def tight_study(profile: str, eps: float = EPS) -> dict:
    """``observed``, ``se`` and ``bound`` at every ``(N, m)`` on the tight instance."""
    sz = _sizes(profile)
    prob = TightQuadratic()
    c = tight_constants(prob, eps)
    rows = []
    for m in sz["ms"]:
        for N in sz["Ns"]:
            obs, se, h = observed_gradnorm(prob, N=N, m=m, alpha=c["alpha"], eps=eps, seeds=sz["seeds"])
            b = bound_value(c, N, m)
            rows.append({"m": m, "N": N, "observed": obs, "se": se, "bound": b, "observed_over_bound": obs / b,
                         "h_min": h["h_min"], "h_max": h["h_max"]})
    out = {**c, "shape": list(prob.shape), "n": prob.n, "seeds": sz["seeds"], "rows": rows}
    TIGHT_RESULTS.clear()
    TIGHT_RESULTS.update(out)
    return out


@register("theorem1.tight",
          "on a quadratic with Hessian L I, exact sigma^2 and TNT's preconditioner pinned (kappa_lo/kappa_hi = 0.93), "
          "observed + 2 s.e. <= bound at every (N, m) and observed/bound >= 0.5 somewhere",
          "reconstructed", "theorem")
def theorem1_tight(profile):
    res = tight_study(profile)
    holds = all(r["observed"] + 2 * r["se"] <= r["bound"] for r in res["rows"])
    in_range = all(res["kappa_lo"] * (1 - 1e-9) <= r["h_min"] and r["h_max"] <= res["kappa_hi"] * (1 + 1e-9) for r in res["rows"])
    res["max_observed_over_bound"] = max(r["observed_over_bound"] for r in res["rows"])
    res["min_observed_over_bound"] = min(r["observed_over_bound"] for r in res["rows"])
    res["H_within_kappa"] = in_range
    return holds and in_range and res["max_observed_over_bound"] >= 0.5, res


def _control_rows(prob, c, Ns, m, seeds, eps_run, **kw) -> list:
    rows = []
    for N in Ns:
        obs, se, h = observed_gradnorm(prob, N=N, m=m, alpha=c["alpha"], eps=eps_run, seeds=seeds, **kw)
        b = bound_value(c, N, m)
        rows.append({"m": m, "N": N, "observed": obs, "se": se, "bound": b, "observed_over_bound": obs / b,
                     "h_min": h["h_min"], "h_max": h["h_max"]})
    return rows


def _exceeds(rows) -> bool:
    """Some point has observed - 2 s.e. > bound (a non-finite observation exceeds every bound)."""
    return any((not math.isfinite(r["observed"])) or r["observed"] - 2 * r["se"] > r["bound"] for r in rows)


@register("theorem1.biased_noise",
          "AS.2 broken: gradient noise with mean b (||b||^2 = sigma^2/m) on the tight instance; observed <= bound (must fail)",
          "reconstructed", "negative-control", expected="fail")
def theorem1_biased(profile):
    m = 4
    Ns, seeds = ([80], 8) if profile == "quick" else ([20, 80, 320], 32)
    base = TightQuadratic()
    b = np.ones(base.shape) * math.sqrt(base.sigma2 / m / base.D)  # ||b||^2 = sigma^2 / m
    prob = TightQuadratic(bias=b)
    c = tight_constants(prob)
    rows = _control_rows(prob, c, Ns, m, seeds, EPS)
    for r in rows:  # with the second moment about grad f counted in full, sigma_eff^2/m = sigma^2/m + ||b||^2
        r["bound_with_second_moment"] = r["bound"] + float(np.sum(b**2))
    return not _exceeds(rows), {"bias_norm2": float(np.sum(b**2)), "sigma2_over_m": c["sigma2"] / m, **c, "rows": rows}


def bisector_H(a: np.ndarray, g: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``lo I + (hi - lo) p p^T`` with ``p`` the unit bisector of ``a`` (``grad f``) and ``-g``: the SPD matrix
    in ``[lo I, hi I]`` that minimises ``a^T H g`` (the descent), turning the noise against the gradient."""
    H = lo * np.eye(a.size)
    na, ng = np.linalg.norm(a), np.linalg.norm(g)
    if na > 0 and ng > 0:
        p = a / na - g / ng
        if np.linalg.norm(p) > 0:
            p /= np.linalg.norm(p)
            H = H + (hi - lo) * np.outer(p, p)
    return H


class _ControlState(NamedTuple):
    """inverses: dict name -> (H,), the one-mode ``H_k`` the control applied (read like TNT's)."""

    inverses: dict


def bisector_control(prob, lo: float, hi: float, alpha: float) -> Optimizer:
    """Not TNT: the AS.4-breaking control ``x_{k+1} = x_k - alpha H_k g_k`` with ``H_k = bisector_H``
    chosen *after* ``g_k`` is drawn, for a one-mode parameter ``"w"``; same contract as the optimizers."""

    def init(params):
        return _ControlState({k: (hi * np.eye(v.size),) for k, v in params.items()})

    def update(grads, state, params, **extra):
        H = {k: bisector_H(prob.grad(params)[k].reshape(-1), g.reshape(-1), lo, hi) for k, g in grads.items()}
        return ({k: -alpha * (H[k] @ g.reshape(-1)).reshape(g.shape) for k, g in grads.items()},
                _ControlState({k: (h,) for k, h in H.items()}))

    return Optimizer("bisector-control", init, update)


@register("theorem1.adaptive_H",
          "AS.4 broken: H_k in [kappa_lo, kappa_hi] chosen from the current g_k (turning the noise against grad f), "
          "same objective and noise as the tight instance (block as one mode); observed <= bound (must fail)",
          "reconstructed", "negative-control", expected="fail")
def theorem1_adaptive(profile):
    m = 4
    beta, Ns, seeds = (7.0, [192], 8) if profile == "quick" else (15.0, [256, 768], 16)
    prob = TightQuadratic(shape=(12,), x1_scale=0.0)
    prob.params0["w"][0] = 1e-3  # start next to the minimiser: D_f = 5e-7, the bound is sigma^2/m
    lo, hi = 1.0 / EPS, (1.0 + beta) / EPS
    c = {"L": prob.L, "kappa_lo": lo, "kappa_hi": hi, "kappa_ratio": lo / hi, "alpha": lo / (prob.L * hi**2),
         "sigma2": prob.sigma2, "D_f": prob.D_f(), "eps": EPS}
    rows = _control_rows(prob, c, Ns, m, seeds, EPS, make_opt=lambda: bisector_control(prob, lo, hi, c["alpha"]), warm_start=False)
    in_range = all(lo * (1 - 1e-9) <= r["h_min"] and r["h_max"] <= hi * (1 + 1e-9) for r in rows)
    # for comparison, TNT itself with H_k = kappa_hi I (zero statistics, damping 1/kappa_hi): independent of g_k, below the bound
    pinned = TightQuadratic(shape=(12,), x1_scale=0.0, zero_statistics=True)
    pinned.params0["w"][0] = 1e-3
    fixed = _control_rows(pinned, c, Ns[:1], m, seeds, 1.0 / hi)
    return not _exceeds(rows), {"beta": beta, **c, "H_within_kappa": in_range, "rows": rows,
                                "independent_H_kappa_hi": fixed}


@register("theorem1.unbounded_H",
          "AS.3 broken: H_k built with damping eps/1.5 while kappa, the step and the bound use eps (H_k > kappa_hi); "
          "observed <= bound (must fail)",
          "reconstructed", "negative-control", expected="fail")
def theorem1_unbounded(profile):
    m = 4
    Ns, seeds = ([20], 8) if profile == "quick" else ([10, 20, 40], 32)
    prob = TightQuadratic()
    c = tight_constants(prob)
    rows = _control_rows(prob, c, Ns, m, seeds, EPS / 1.5)
    return not _exceeds(rows), {**c, "eps_run": EPS / 1.5, "rows": rows}
