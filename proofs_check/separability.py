"""A test of the tensor-normal assumption itself: is ``Cov(vec G)`` a Kronecker product?

The likelihood-ratio test [derived] of ``H0: Cov(vec G) = U_1 kron ... kron U_k`` against an
unrestricted covariance, for zero-mean samples ``G`` of shape ``(n, d_1, ..., d_k)`` with ``n > D``
(``D = prod d_i``; the sample covariance must be non-singular). With ``S = (1/n) sum vec(G) vec(G)^T``
(no centring: the model's mean is zero, as TNT's) and ``K = kron U_i`` the tensor-normal MLE
(:func:`tnt_ref.tensor_normal_mle.mle`)::

    Lambda = n [ log det K - log det S + tr(K^{-1} S) - D ]  >= 0

(``tr(K^{-1} S) = D`` at the flip-flop fixed point; it is kept for iterates short of it). Under
``H0``, ``Lambda`` is asymptotically chi-square with ``df = D (D + 1) / 2 - (sum_i d_i (d_i + 1) / 2 - (k - 1))``
degrees of freedom (Lu & Zimmerman 2005 for k = 2), a poor approximation at ``n`` of a few ``D``
(it rejects far too often; both are reported). The p-value used is a **parametric bootstrap**:
``n_boot`` data sets of ``n`` samples from the fitted ``TN(0; U_1^MLE, ..., U_k^MLE)``, the
statistic of each, ``p = (1 + #{Lambda* >= Lambda}) / (n_boot + 1)``.

``Lambda`` is invariant under ``G -> G x_1 A_1 ... x_k A_k`` for invertible ``A_i`` (both MLEs are
equivariant) [derived], so under ``H0`` its law does not depend on the true factors: the bootstrap
is an exact Monte Carlo test, whatever the fitted factors (tested in ``tests/test_separability.py``).
One caveat: a sample covariance singular to working precision (:data:`NULL_RTOL`) is given
``Lambda = +inf``, and that numerical rule is not invariant under ``G x_i A_i``, so for such blocks
the p-value is exact only up to it.

The bootstrap statistics come from :func:`batched_lrt_statistics`, a vectorised flip-flop over many
data sets at once, checked against the project's :func:`~tnt_ref.tensor_normal_mle.mle` in the tests.

This module holds the test and its own checks (size, power, their controls); the study of the
digits models' gradients that uses it is :mod:`proofs_check.digits_study`, which imports this
module and never the other way.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from tnt_ref._validation import check_covariance
from tnt_ref.tensor_normal import TensorNormal
from tnt_ref.tensor_normal_mle import mle

from .registry import register

__all__ = ["lrt_statistic", "batched_lrt_statistics", "separability_df", "separability_test", "size_power_study",
           "nonseparable_covariance", "kl_gap", "null_directions", "mc_pvalue"]


def separability_df(shape) -> int:
    """Degrees of freedom of the asymptotic chi-square: ``D(D+1)/2 - (sum d_i(d_i+1)/2 - (k-1))``."""
    shape = tuple(int(d) for d in shape)
    D = math.prod(shape)
    return D * (D + 1) // 2 - (sum(d * (d + 1) // 2 for d in shape) - (len(shape) - 1))


def _check_samples(G) -> np.ndarray:
    G = np.asarray(G)
    if G.dtype.kind not in "fiu" or G.ndim < 2:
        raise TypeError(f"`G` must be a real array of shape (n, d_1, ..., d_k); got dtype {G.dtype}, shape {G.shape}.")
    G = G.astype(np.float64)
    n, D = G.shape[0], math.prod(G.shape[1:])
    if n <= D:
        raise ValueError(f"the separability test needs n > D samples (a non-singular sample covariance); "
                         f"got n={n} for shape {G.shape[1:]} (D={D}). Add samples or test a smaller block.")
    if not np.all(np.isfinite(G)):
        raise ValueError("`G` contains NaN or Inf.")
    return G


def _logdet_kron(factors, shape) -> float:
    D = math.prod(shape)
    return float(sum((D / d) * np.linalg.slogdet(u)[1] for u, d in zip(factors, shape)))


def lrt_statistic(G, *, tol: float = 1e-12, max_iter: int = 500) -> tuple[float, list]:
    """``Lambda`` (module docstring) with the project's :func:`mle`; returns ``(Lambda, factors)``."""
    G = _check_samples(G)
    n, shape = G.shape[0], G.shape[1:]
    D = math.prod(shape)
    X = G.reshape(n, D)
    S = X.T @ X / n
    res = mle(G, tol=tol, max_iter=max_iter)
    K = _kron(res.factors)
    null = null_directions(S)
    if null:
        raise ValueError(f"the sample covariance of `G` is singular ({null} of {D} eigenvalues <= {NULL_RTOL:g} x the largest): "
                         "the samples do not span R^D. Under H0 with positive-definite factors this has probability 0 for "
                         "n > D; see `digits_study` for how such a block is reported, or add samples.")
    logdet_S = np.linalg.slogdet(S)[1]
    tr = float(np.trace(np.linalg.solve(K, S)))
    return float(n * (_logdet_kron(res.factors, shape) - logdet_S + tr - D)), res.factors


#: Relative eigenvalue threshold below which a covariance direction counts as null: about 10^2-10^4 times the
#: float64 round-off of an eigensolver on blocks of 10^2-10^3 rows. The digits blocks' smallest eigenvalues that
#: count as genuine lie at 1e-10 to 1e-9 relative (cnn conv1 after training); for cnn conv2 late in training the
#: spectrum runs through the threshold, so there the number of null directions depends on it (docs/theory.md).
NULL_RTOL = 1e-12


def null_directions(C, rtol: float = NULL_RTOL) -> int:
    """Number of eigenvalues of the symmetric PSD ``C`` at most ``rtol`` times the largest."""
    lam = np.linalg.eigvalsh((C + C.T) / 2)
    return int(np.sum(lam <= rtol * max(lam[-1], 0.0)))


def _kron(factors):
    out = np.ones((1, 1))
    for u in factors:
        out = np.kron(out, u)
    return out


def _mode_apply(X, mats, mode: int):
    """``X x_mode M`` for a batch: ``X`` ``(B, n, d_1, ..., d_k)``, ``mats`` ``(B, d, d)``."""
    ax = 2 + mode
    Xm = np.moveaxis(X, ax, -1)  # (B, n, ..., d)
    Y = Xm @ np.swapaxes(mats, -1, -2).reshape(mats.shape[0], *([1] * (Xm.ndim - 3)), *mats.shape[1:])
    return np.moveaxis(Y, -1, ax)


def batched_lrt_statistics(Gs, *, tol: float = 1e-12, max_iter: int = 500) -> np.ndarray:
    """``Lambda`` for each of ``B`` data sets at once: ``Gs`` of shape ``(B, n, d_1, ..., d_k)``.

    Gauss-Seidel flip-flop (the update of :func:`tnt_ref.tensor_normal_mle.mle`), vectorised over the
    data sets, until the mean log-likelihood of every set changes by at most ``tol`` (relative).
    A set whose sample covariance is singular (:func:`null_directions`) gets ``+inf``: its
    log-likelihood under an unrestricted covariance is unbounded.
    """
    Gs = np.asarray(Gs, dtype=np.float64)
    B, n, shape = Gs.shape[0], Gs.shape[1], Gs.shape[2:]
    k, D = len(shape), math.prod(shape)
    if n <= D:
        raise ValueError(f"the separability test needs n > D samples; got n={n} for shape {shape} (D={D}).")
    X = Gs.reshape(B, n, D)
    S = np.einsum("bni,bnj->bij", X, X) / n
    lam_S = np.linalg.eigvalsh(S)
    singular = lam_S[:, 0] <= NULL_RTOL * lam_S[:, -1]  # such a set's statistic is +inf (see digits_study)
    logdet_S = np.sum(np.log(np.maximum(lam_S, np.finfo(np.float64).tiny)), axis=1)
    U = [np.broadcast_to(np.eye(d), (B, d, d)).copy() for d in shape]
    inv = [u.copy() for u in U]
    prev = None
    for _ in range(max_iter):
        for i in range(k):
            W = Gs
            for j in range(k):
                if j != i:
                    W = _mode_apply(W, inv[j], j)
            Gi = np.moveaxis(Gs, 2 + i, 2).reshape(B, n, shape[i], -1)
            Wi = np.moveaxis(W, 2 + i, 2).reshape(B, n, shape[i], -1)
            U[i] = (shape[i] / D) * np.einsum("bnir,bnjr->bij", Gi, Wi) / n
            U[i] = (U[i] + np.swapaxes(U[i], -1, -2)) / 2
            inv[i] = np.linalg.inv(U[i])
        W = Gs
        for j in range(k):
            W = _mode_apply(W, inv[j], j)
        tr = np.sum((Gs * W).reshape(B, -1), axis=1) / n  # tr(K^{-1} S)
        logdet_K = sum((D / d) * np.linalg.slogdet(u)[1] for u, d in zip(U, shape))
        ll = -0.5 * (logdet_K + tr)
        if prev is not None and np.all(np.abs(ll - prev) <= tol * np.maximum(1.0, np.abs(ll))):
            break
        prev = ll
    return np.where(singular, np.inf, n * (logdet_K - logdet_S + tr - D))


def mc_pvalue(boot, lam: float) -> float:
    """Monte Carlo p-value ``(1 + #{Lambda* >= Lambda}) / (B + 1)`` of ``B`` null statistics; an
    infinite ``Lambda`` counts only the infinite (singular) null sets."""
    boot = np.asarray(boot, dtype=np.float64)
    return float((1 + np.sum(boot >= lam)) / (boot.size + 1))


def separability_test(G, *, n_boot: int = 199, rng: np.random.Generator) -> dict:
    """The LRT of ``H0: Cov(vec G) = kron U_i`` with a parametric-bootstrap p-value.

    Parameters
    ----------
    G : array, shape ``(n, d_1, ..., d_k)``
        Zero-mean samples, ``n > D``.
    n_boot : int
        Number of bootstrap data sets drawn from the fitted tensor normal.
    rng : numpy.random.Generator

    Returns
    -------
    dict with ``statistic``, ``p_bootstrap``, ``p_chi2`` (asymptotic, poor at small ``n``), ``df``,
    ``n``, ``D``, ``factors`` (the MLE).
    """
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"`n_boot` must be a positive int; got n_boot={n_boot!r}.")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"`rng` must be a numpy.random.Generator; got {type(rng).__name__}.")
    G = _check_samples(G)
    n, shape = G.shape[0], G.shape[1:]
    lam, factors = lrt_statistic(G)
    tn = TensorNormal(factors)
    boot = batched_lrt_statistics(tn.sample(int(n_boot) * n, rng).reshape(int(n_boot), n, *shape))
    df = separability_df(shape)
    return {"statistic": lam, "p_bootstrap": mc_pvalue(boot, lam),
            "p_chi2": float(stats.chi2.sf(lam, df)), "df": df, "n": n, "D": math.prod(shape), "factors": factors,
            "bootstrap_mean": float(np.mean(boot))}


def nonseparable_covariance(shape=(3, 4), rho: float = 0.7, seed: int = 5) -> np.ndarray:
    """``(1 - rho) I + rho W W^T / D`` with ``W`` a ``D x D`` standard normal matrix (seed ``seed``):
    a generic covariance, not a Kronecker product for ``rho > 0`` (its KL gap to the nearest
    Kronecker product is in the measured values of ``tn.separability.power``)."""
    D = math.prod(shape)
    W = np.random.default_rng(seed).standard_normal((D, D))
    return (1 - rho) * np.eye(D) + rho * W @ W.T / D


def kl_gap(F, shape, *, tol: float = 1e-12, max_iter: int = 1000) -> tuple[float, list]:
    """``KL(N(0, F) || N(0, kron U_i))`` at the KL projection ``U = mle(covariance=F)`` (spec section 4).

    Zero exactly when ``F`` is a Kronecker product of the shape's modes. Returns ``(gap, factors)``.
    """
    shape = tuple(int(d) for d in shape)
    D = math.prod(shape)
    F = check_covariance(np.asarray(F, dtype=np.float64), "F")  # symmetric: a non-symmetric F has no KL gap
    sign, logdet_F = np.linalg.slogdet(F)
    if sign <= 0:
        raise ValueError(f"`F` must be positive definite for the KL gap; got a singular or indefinite ({D}, {D}) matrix. "
                         "Add damping to F or use more samples.")
    res = mle(covariance=F, shape=shape, tol=tol, max_iter=max_iter)
    K = _kron(res.factors)
    gap = 0.5 * (float(np.trace(np.linalg.solve(K, F))) - D + _logdet_kron(res.factors, shape) - logdet_F)
    return max(gap, 0.0), res.factors


def _random_factors(shape, rng):
    out = []
    for d in shape:
        A = rng.standard_normal((d, d))
        out.append(A @ A.T + d * np.eye(d))
    return out


def size_power_study(profile: str, *, shape=(3, 4), n: int = 40, level: float = 0.05) -> dict:
    """Rejection rates at ``level`` on tensor-normal samples (size) and on a non-separable covariance (power)."""
    reps, n_boot = ({"size": 200, "power": 100}, 49) if profile == "quick" else ({"size": 400, "power": 200}, 199)
    rng = np.random.default_rng(2021)
    D = math.prod(shape)
    C = nonseparable_covariance(shape)
    Lc = np.linalg.cholesky(C)
    out = {}
    for case in ("size", "power"):
        p_boot, p_chi2 = [], []
        for _ in range(reps[case]):
            if case == "size":
                G = TensorNormal(_random_factors(shape, rng)).sample(n, rng)
            else:
                G = (rng.standard_normal((n, D)) @ Lc.T).reshape(n, *shape)
            r = separability_test(G, n_boot=n_boot, rng=rng)
            p_boot.append(r["p_bootstrap"])
            p_chi2.append(r["p_chi2"])
        p_boot, p_chi2 = np.array(p_boot), np.array(p_chi2)
        rate = float(np.mean(p_boot <= level))
        out[case] = {"rejection_rate": rate, "se": math.sqrt(rate * (1 - rate) / reps[case]),
                     "rejection_rate_chi2": float(np.mean(p_chi2 <= level)), "replications": reps[case], "n_boot": n_boot}
    out.update({"shape": list(shape), "n": n, "D": D, "df": separability_df(shape), "level": level,
                "power_case_kl_gap": kl_gap(C, shape)[0]})
    return out


_STUDY: dict = {}


def _study(profile):
    if _STUDY.get("profile") != profile:
        _STUDY.clear()
        _STUDY.update(size_power_study(profile), profile=profile)
    return _STUDY


@register("tn.separability.size",
          "LRT of Cov(vec G) = kron U_i with a parametric-bootstrap p-value: on tensor-normal samples ((3, 4), n = 40) "
          "the rejection rate at level 0.05 over >= 200 replications lies in [0.02, 0.09]",
          "derived", "numeric")
def separability_size(profile):
    s = _study(profile)
    r = s["size"]
    meas = {**r, "shape": s["shape"], "n": s["n"], "df": s["df"]}
    return 0.02 <= r["rejection_rate"] <= 0.09 and r["replications"] >= 200, meas


@register("tn.separability.size.chi2",
          "the same size check with the asymptotic chi-square(df) calibration instead of the bootstrap: the rejection "
          "rate at 0.05 lies in [0.02, 0.09] (must fail: at n = 40 the chi-square is far too liberal)",
          "derived", "negative-control", expected="fail")
def separability_size_chi2(profile):
    s = _study(profile)
    r = s["size"]
    return 0.02 <= r["rejection_rate_chi2"] <= 0.09, {"rejection_rate_chi2": r["rejection_rate_chi2"],
                                                       "rejection_rate": r["rejection_rate"], "replications": r["replications"],
                                                       "df": s["df"], "n": s["n"]}


@register("tn.separability.power",
          "the same test on a non-separable covariance of the same size (0.3 I + 0.7 W W^T / D, W Gaussian) "
          "rejects at level 0.05 in at least 90% of replications",
          "derived", "numeric")
def separability_power(profile):
    s = _study(profile)
    r = s["power"]
    return r["rejection_rate"] >= 0.9, {**r, "shape": s["shape"], "n": s["n"], "kl_gap": s["power_case_kl_gap"]}


@register("tn.separability.power.separable",
          "the power criterion (rejection rate at 0.05 >= 0.9) applied to the size check's tensor-normal samples, where "
          "H0 is true (must fail; a test that rejected everything would pass it and be caught here)",
          "derived", "negative-control", expected="fail")
def separability_power_on_separable(profile):
    r = _study(profile)["size"]
    return r["rejection_rate"] >= 0.9, {"rejection_rate": r["rejection_rate"], "replications": r["replications"]}


# --------------------------------------------------------------------------- the digits study


def _bootstrap_stats(factors, n: int, shape, n_boot: int, rng, *, covariance=None) -> np.ndarray:
    """``n_boot`` statistics of data sets of ``n`` samples from the fitted tensor normal (or, given
    ``covariance``, from ``N(0, covariance)``), in chunks that bound memory."""
    D = math.prod(shape)
    if covariance is None:
        draw = TensorNormal(factors).sample
    else:
        L = np.linalg.cholesky(covariance)

        def draw(m, rng):
            return (rng.standard_normal((m, D)) @ L.T).reshape(m, *shape)
    per = max(1, int(2e7 // (n * D)))
    out = []
    for start in range(0, n_boot, per):
        b = min(per, n_boot - start)
        out.append(batched_lrt_statistics(draw(b * n, rng).reshape(b, n, *shape)))
    return np.concatenate(out)
