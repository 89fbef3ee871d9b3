"""A test of the tensor-normal assumption itself: is ``Cov(vec G)`` a Kronecker product?

The likelihood-ratio test [derived] of ``H0: Cov(vec G) = U_1 kron ... kron U_k`` against an
unrestricted covariance, for zero-mean samples ``G`` of shape ``(n, d_1, ..., d_k)`` with ``n > D``
(``D = prod d_i``; the sample covariance must be non-singular). With ``S = (1/n) sum vec(G) vec(G)^T``
(no centring: the model's mean is zero, as TNT's) and ``K = kron U_i`` the tensor-normal MLE
(:func:`tnt_ref.tensor_normal.mle`)::

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

The bootstrap statistics come from :func:`batched_lrt_statistics`, a vectorised flip-flop over many
data sets at once, checked against the project's :func:`~tnt_ref.tensor_normal.mle` in the tests.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from tnt_ref.tensor_normal import TensorNormal, mle

from .registry import register

__all__ = ["lrt_statistic", "batched_lrt_statistics", "separability_df", "separability_test", "size_power_study",
           "nonseparable_covariance", "kl_gap", "digits_study"]


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
    sign, logdet_S = np.linalg.slogdet(S)
    if sign <= 0:
        raise ValueError("the sample covariance of `G` is singular; the samples do not span R^D. Add samples.")
    tr = float(np.trace(np.linalg.solve(K, S)))
    return float(n * (_logdet_kron(res.factors, shape) - logdet_S + tr - D)), res.factors


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

    Gauss-Seidel flip-flop (the update of :func:`tnt_ref.tensor_normal.mle`), vectorised over the
    data sets, until the mean log-likelihood of every set changes by at most ``tol`` (relative).
    """
    Gs = np.asarray(Gs, dtype=np.float64)
    B, n, shape = Gs.shape[0], Gs.shape[1], Gs.shape[2:]
    k, D = len(shape), math.prod(shape)
    if n <= D:
        raise ValueError(f"the separability test needs n > D samples; got n={n} for shape {shape} (D={D}).")
    X = Gs.reshape(B, n, D)
    S = np.einsum("bni,bnj->bij", X, X) / n
    logdet_S = np.linalg.slogdet(S)[1]
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
    return n * (logdet_K - logdet_S + tr - D)


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
    return {"statistic": lam, "p_bootstrap": float((1 + np.sum(boot >= lam)) / (n_boot + 1)),
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
    F = np.asarray(F, dtype=np.float64)
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


@register("tn.separability.power",
          "the same test on a non-separable covariance of the same size (0.3 I + 0.7 W W^T / D, W Gaussian) "
          "rejects at level 0.05 in at least 90% of replications",
          "derived", "numeric")
def separability_power(profile):
    s = _study(profile)
    r = s["power"]
    return r["rejection_rate"] >= 0.9, {**r, "shape": s["shape"], "n": s["n"], "kl_gap": s["power_case_kl_gap"]}


# --------------------------------------------------------------------------- the digits study
#: (problem, parameter) pairs small enough for n > D with all 1797 digits: D = 640 and D = 72.
DIGITS_LAYERS = (("mlp", "fc2.weight"), ("cnn", "conv1.weight"))


def _bootstrap_stats(factors, n: int, shape, n_boot: int, rng) -> np.ndarray:
    """``n_boot`` statistics from the fitted tensor normal, in chunks that bound memory."""
    D = math.prod(shape)
    tn = TensorNormal(factors)
    per = max(1, int(2e7 // (n * D)))
    out = []
    for start in range(0, n_boot, per):
        b = min(per, n_boot - start)
        out.append(batched_lrt_statistics(tn.sample(b * n, rng).reshape(b, n, *shape)))
    return np.concatenate(out)


def mode_ranges(G, rtol: float = 1e-9) -> list:
    """Orthonormal bases ``Q_i`` ``(d_i, r_i)`` of the ranges of the mode moments of ``G``.

    Softmax-output layers have gradients with ``1^T G_(out) = 0`` (the class probabilities sum to
    one), so ``Cov(vec G)`` is singular and the LRT needs the samples in the support. Projecting
    mode by mode (``G x_i Q_i^T``) keeps a Kronecker covariance Kronecker
    (``(Q_1 kron Q_2)^T (A kron B) (Q_1 kron Q_2) = Q_1^T A Q_1 kron Q_2^T B Q_2``), so ``H0`` is
    tested on the support without changing its meaning [derived].
    """
    from tnt_ref.tensor_normal import mode_moments  # noqa: PLC0415

    out = []
    for S in mode_moments(G):
        lam, V = np.linalg.eigh((S + S.T) / 2)
        out.append(V[:, lam > rtol * lam.max()])
    return out


def _project(G, Qs):
    from tnt_ref.tensor import mode_products  # noqa: PLC0415

    return np.stack([mode_products(g, [Q.T for Q in Qs]) for g in G])


def digits_study(profile: str = "full", *, draws: int = 1, seed: int = 0, log=None) -> dict:
    """The tensor-normal assumption on the digits models, at initialization, midway and the end of a
    TNT training run (``tnt_ref.training.run``; 4 epochs quick, 20 full, at the middle of the
    problem's learning-rate grid).

    For each layer of :data:`DIGITS_LAYERS` and each point: the per-example sampled-label gradients
    over all 1797 digits (``draws`` label draws each, so ``n = 1797 draws``), projected mode by mode
    onto their support (:func:`mode_ranges`; the softmax mode loses one dimension), the LRT statistic, its
    bootstrap p-value (``n_boot`` = 19 quick, 99 full: the smallest possible p is ``1/(n_boot+1)``),
    the null's mean and s.d. (so ``z = (Lambda - mean) / sd``), the chi-square p-value, the sample
    gap ``Lambda / (2 n) = KL(N(0, S) || N(0, kron U^MLE))`` and the population gap
    ``KL(N(0, F) || N(0, kron U_i^MLE(F)))`` of the exact Fisher block ``F``.
    """
    from tnt_ref.data import load_digits  # noqa: PLC0415
    from tnt_ref.fisher import exact_fisher_blocks, tensor_shape  # noqa: PLC0415
    from tnt_ref.training import get_problem, run  # noqa: PLC0415

    epochs, n_boot = (4, 19) if profile == "quick" else (20, 99)
    rng = np.random.default_rng(seed + 77)
    rows = []
    for problem, name in DIGITS_LAYERS:
        prob = get_problem(problem)
        net = prob.build()
        ds = load_digits(images=prob.images)
        X = np.concatenate([ds.X_train, ds.X_test])
        lr = prob.grids["tnt"][1]
        points = {"init": net.init(np.random.default_rng(seed))}
        points["mid"] = run(problem, "tnt", lr, epochs=epochs // 2, seed=seed, progress=False).params
        end = run(problem, "tnt", lr, epochs=epochs, seed=seed, progress=False)
        points["end"] = end.params
        for when, params in points.items():
            shape = tensor_shape(params[name].shape)
            G = []
            for _ in range(draws):
                ys = net.loss_fn.sample(net.predict(params, X), rng)
                G.append(net.per_example_grads(params, X, ys)[name].reshape(X.shape[0], *shape))
            G = np.concatenate(G)
            n = G.shape[0]
            Qs = mode_ranges(G)
            G = _project(G, Qs)
            full_shape, shape = shape, tuple(q.shape[1] for q in Qs)
            lam, factors = lrt_statistic(G)
            boot = _bootstrap_stats(factors, n, shape, n_boot, rng)
            F = exact_fisher_blocks(net, params, X, names=[name])[name]
            P = _kron(Qs)  # (D, D'): the same mode-wise projection for the exact block
            gap, _ = kl_gap(P.T @ F @ P, shape)
            df = separability_df(shape)
            row = {"problem": problem, "layer": name, "point": when, "epochs_done": {"init": 0, "mid": epochs // 2, "end": epochs}[when],
                   "tensor_shape": list(full_shape), "support_shape": list(shape), "n": n, "D": math.prod(shape), "statistic": lam,
                   "p_bootstrap": float((1 + np.sum(boot >= lam)) / (n_boot + 1)), "n_boot": n_boot,
                   "null_mean": float(boot.mean()), "null_sd": float(boot.std(ddof=1)),
                   "z": float((lam - boot.mean()) / boot.std(ddof=1)), "p_chi2": float(stats.chi2.sf(lam, df)), "df": df,
                   "sample_gap": lam / (2 * n), "population_gap": gap,
                   "train_loss_end": end.history[-1]["train_loss"] if when == "end" else None}
            rows.append(row)
            if log:
                log(row)
    return {"profile": profile, "draws": draws, "epochs": epochs, "rows": rows}
