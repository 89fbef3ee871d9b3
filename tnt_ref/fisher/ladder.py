"""Every Kronecker approximation of each exact Fisher block, with its metrics (spec sections 4, 5, 9).

* :func:`approximation_ladder` — TNT (exact moments, per-example samples, batch-mean samples),
  tensor-normal MLE, Frobenius-optimal Kronecker, KFAC, Shampoo-implied, diagonal, and the Shampoo
  family of :mod:`tnt_ref.estimators` (Shampoo on exact moments, Shampoo^2, SOAP, KL-Shampoo's fixed
  point and its online estimate), against the exact block: relative Frobenius error, KL,
  preconditioned-gradient cosine and spectra. It chooses,
  per tensor, the dense exact block (:mod:`tnt_ref.fisher.blocks`) or the block-free Gram path
  (:mod:`tnt_ref.fisher.gram`).
* :func:`compare_to_exact` — the metrics of one approximation against one dense block.

The top room of :mod:`tnt_ref.fisher`: it imports ``statistics``, ``blocks`` and ``gram`` (and the
estimators outside the package); none of them imports it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from .._validation import check_int, check_positive
from ..backend import get_namespace, to_numpy
from ..estimators.kl_shampoo import _kl_fixed_point, _kl_init, _kl_step
from ..estimators.shampoo import _power_steps, _shampoo_from_moments, _soap, psd_power
from ..estimators.statistics import _Covariance, _Samples
from ..kronecker import frobenius_kron_fit
from ..models.network import Sequential
from ..tensor import kron, tensor_shape
from ..tensor_normal import _normalize, tnt_factors_from_moments
from ..tensor_normal_mle import mle
from . import gram as fg
from .blocks import (
    AUTO_BLOCK_BYTES,
    DEFAULT_MAX_BLOCK_BYTES,
    _expectation_pass,
    _names,
    _validate,
)
from .statistics import _mean_grad, _sum_moments

__all__ = ["compare_to_exact", "approximation_ladder", "LadderResult", "METHODS", "SINGULAR_RTOL"]


def _mle_block(F, tshape, damping: float):
    """Factors of the KL projection of ``F`` (of ``F + damping I`` if the undamped one is singular), ``k >= 2``."""
    D = F.shape[0]
    for ridge in (0.0, damping):
        try:
            return mle(covariance=F + ridge * np.eye(D), shape=tshape, tol=1e-10, max_iter=100).factors
        except (ValueError, np.linalg.LinAlgError):
            continue
    raise ValueError(f"the tensor-normal MLE of a block of shape {tshape} failed even with damping {damping}.")


#: An estimate whose smallest eigenvalue is at most ``SINGULAR_RTOL * D`` times its largest is singular for ``kl_proj``.
SINGULAR_RTOL = fg.SINGULAR_RTOL


def compare_to_exact(F, F_hat, g, damping: float, *, eigenvalues=None) -> dict:
    """Metrics of an approximation ``F_hat`` of the exact block ``F`` (host arrays, float64).

    * ``rel_error``: ``||F - F_hat||_F / ||F||_F``;
    * ``kl``: ``KL(N(0, F + lam I) || N(0, F_hat + lam I))``;
    * ``kl_proj``: ``KL(N(0, F + lam I) || N(0, F_hat))``, the estimate itself undamped: the objective whose
      minimizer over Kronecker products is the MLE of ``F + lam I``, KL-Shampoo's fixed point (spec
      section 4), so every Kronecker row has ``kl_proj`` at least that row's [derived]; ``inf`` when
      ``F_hat`` is singular to working precision (smallest eigenvalue at most ``SINGULAR_RTOL * D`` times the
      largest: there the value is round-off, and the paths would disagree);
    * ``cosine``: between ``(F + lam I)^{-1} g`` and ``(F_hat + lam I)^{-1} g`` (exact damping for
      both, so the comparison is about the curvature model, not the damping form).

    ``eigenvalues`` of ``F_hat``, when known (the ladder has them from the factors), save an eigendecomposition.
    """
    F, F_hat, g = (np.asarray(to_numpy(a), dtype=np.float64) for a in (F, F_hat, g))
    D = F.shape[0]
    A = F + damping * np.eye(D)
    S = (F_hat + F_hat.T) / 2
    La = scipy.linalg.cholesky(A, lower=True)
    rel = float(np.linalg.norm(F - F_hat) / np.linalg.norm(F))

    def kl_to(B):  # KL(N(0, A) || N(0, B)) through Cholesky: tr(B^{-1} A) = ||Lb^{-1} La||_F^2
        try:
            Lb = scipy.linalg.cholesky(B, lower=True)
        except np.linalg.LinAlgError:  # B indefinite or singular: no Gaussian to compare with
            return float("inf"), None
        M = scipy.linalg.solve_triangular(Lb, La, lower=True)
        return 0.5 * float(np.sum(M * M) - D + 2 * np.sum(np.log(np.diag(Lb))) - 2 * np.sum(np.log(np.diag(La)))), Lb

    kl, Lb = kl_to(S + damping * np.eye(D))
    lam_hat = np.sort(np.asarray(eigenvalues, dtype=np.float64).reshape(-1)) if eigenvalues is not None else np.linalg.eigvalsh(S)
    kl_proj = kl_to(S)[0] if lam_hat[0] > SINGULAR_RTOL * D * max(lam_hat[-1], 0.0) else float("inf")
    if Lb is None:
        return {"rel_error": rel, "kl": kl, "kl_proj": kl_proj, "cosine": float("nan")}
    u = scipy.linalg.cho_solve((La, True), g)
    v = scipy.linalg.cho_solve((Lb, True), g)
    denom = np.linalg.norm(u) * np.linalg.norm(v)
    return {"rel_error": rel, "kl": kl, "kl_proj": kl_proj, "cosine": float(u @ v / denom) if denom > 0 else float("nan")}


#: Methods of the approximation ladder, in table order (the Shampoo family of issue 26 after the first eight).
METHODS = ("tnt-exact", "tnt-per-example", "tnt-batch-mean", "mle", "frobenius", "kfac", "shampoo", "diagonal",
           "shampoo-exact", "shampoo2", "soap", "kl-shampoo", "kl-shampoo-batch-mean")

#: Stopping rule of KL-Shampoo's fixed point in the ladder (largest relative change of a factor).
KL_TOL = 1e-10


@dataclass
class LadderResult:
    """Result of :func:`approximation_ladder`.

    ``rows``: one dict per (parameter, method) with ``layer``, ``shape``, ``tensor_shape``,
    ``method``, ``exact_path``, ``rel_error``, ``kl``, ``kl_proj``, ``cosine``. ``spectra``:
    ``name -> method -> eigenvalues`` (descending, host arrays), with the exact block under ``"exact"``.
    ``skipped``: ``{layer, shape, reason}`` for each tensor whose exact block is zero (a dead layer:
    nothing to approximate, no relative error).
    """

    rows: list = field(default_factory=list)
    spectra: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)


def approximation_ladder(
    net: Sequential,
    params: dict,
    X,
    y,
    rng: np.random.Generator,
    *,
    damping: float = 1e-3,
    conv_modes: int = 3,
    batch_size: int = 16,
    n_mc: int = 8,
    names: Iterable[str] | None = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    exact: str = "dense",
    max_v_bytes: int | None = None,
    methods: Iterable[str] | None = None,
    log=None,
    progress=None,
) -> LadderResult:
    """Every Kronecker approximation of each exact Fisher block, with metrics (spec sections 4, 5).

    Methods (:data:`METHODS`), for the parameter viewed as ``tensor_shape(shape, conv_modes)``:

    ``tnt-exact``
        TNT's estimator from the exact mode moments [code; paper].
    ``tnt-per-example``
        TNT from per-example gradients with sampled labels (``n_mc`` draws per input).
    ``tnt-batch-mean``
        TNT from gradients of mini-batch mean losses (``m = batch_size``, ``n_mc`` passes), as the
        authors' code; the estimate (of ``F/m``) is multiplied by ``m`` to compare with ``F``.
    ``mle``
        tensor-normal MLE of ``F`` (the KL projection onto Kronecker products); if ``F`` is too
        singular for it, of ``F + damping I``.
    ``frobenius``
        Frobenius-optimal Kronecker product.
    ``kfac``
        ``kron(G, A)`` for weights; for biases, the exact block (KFAC keeps separate bias blocks).
    ``shampoo``
        ``kron_i L_i^{1/k}`` from empirical per-example moments ``L_i``, trace-matched to ``F``.
    ``diagonal``
        ``diag(F)`` (Adam-like).
    ``shampoo-exact``
        Shampoo's ``kron_i S_i^{1/k}`` from the exact mode moments, trace-matched
        (:func:`~tnt_ref.estimators.shampoo_factors_from_moments`): the power, not the statistics.
    ``shampoo2``
        one power step toward the Frobenius-optimal product from identities, with its Frobenius
        scale (:func:`~tnt_ref.estimators.power_step_factors`; with the trace scale it is ``tnt-exact``).
    ``soap``
        SOAP's ``Q diag(diag(Q^T F Q)) Q^T`` with ``Q`` the eigenvectors of the exact mode moments
        (:func:`~tnt_ref.estimators.soap_factors`): Adam's exact second moment in Shampoo's eigenbasis.
    ``kl-shampoo``
        KL-Shampoo's fixed point on the exact statistics with its damping ``kappa = damping``: the
        MLE of ``F + damping I``, reached by iterating its step (:func:`~tnt_ref.estimators.kl_shampoo_factors`,
        ``beta = (k-1)/k``, until no factor moves by more than :data:`KL_TOL`).
    ``kl-shampoo-batch-mean``
        KL-Shampoo's step run over the same mini-batch mean gradients as ``tnt-batch-mean``
        (multiplied by ``sqrt(m)`` to the per-example scale), one step per mini-batch with weights
        ``1/t`` (a running mean, as ``tnt-batch-mean`` weights its batches equally), damping ``damping``.

    Every row is an estimate of ``F`` itself, whatever power its optimizer applies to it (Adam, SOAP,
    Shampoo and KL-Shampoo precondition with ``-1/2``, TNT and KFAC with ``-1``). Metrics by
    :func:`compare_to_exact` with ``g`` the mini-batch gradient on ``(X, y)``.

    ``exact`` chooses how the exact block enters the metrics, per parameter tensor: ``"dense"``
    forms the ``(D, D)`` block (refused above ``max_block_bytes``); ``"gram"`` never forms it and
    computes the same metrics from ``F = (1/n) V V^T`` (:mod:`tnt_ref.fisher.gram`; biases, whose
    ``D^2`` is within the ``sum d_i^2`` budget, still use their small dense block); ``"auto"``:
    dense when the block fits in ``min(max_block_bytes, AUTO_BLOCK_BYTES)`` (64 MiB: beyond it the
    dense metrics' ``O(D^3)`` factorizations cost more than the gram path), gram otherwise. Each row records its
    ``exact_path``. ``methods`` restricts the ladder (default :data:`METHODS`); ``log`` is called
    with one progress line per layer and stage; ``progress(done, total, note)`` after every stage
    and every method's metrics, with ``done`` and ``total`` in rough flops (so that a time estimate
    follows the work: a dense layer costs ``D^3``, a gram layer ``N^2 (N + D)``, ``N = n x outputs``).
    """
    check_positive(damping, "damping")
    if exact not in ("dense", "gram", "auto"):
        raise ValueError(f"`exact` must be 'dense', 'gram' or 'auto'; got exact={exact!r}.")
    methods = tuple(METHODS if methods is None else methods)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown `methods` {bad}; valid: {list(METHODS)}.")
    n_mc = check_int(n_mc, "n_mc", min_value=1)  # NumPy integers accepted, as everywhere
    _validate(net, params, X, y)
    names = _names(net, names)
    n = X.shape[0]
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    max_v_bytes = fg.DEFAULT_MAX_V_BYTES if max_v_bytes is None else int(max_v_bytes)
    xp = get_namespace(X)
    say = log if log is not None else (lambda msg: None)
    shapes = {nm: tensor_shape(net.param_shapes[nm], conv_modes) for nm in names}
    path = {}
    for nm in names:
        D = math.prod(shapes[nm])
        fits = D * D * (8 if params[nm].dtype == xp.float64 else 4) <= min(max_block_bytes, AUTO_BLOCK_BYTES)
        path[nm] = "dense" if exact == "dense" or (exact == "auto" and fits) or len(shapes[nm]) == 1 else "gram"
    work = _Work(progress, names, shapes, path, n, n * net.n_outputs, methods, n_mc)
    dense_names = [nm for nm in names if path[nm] == "dense"]
    gram_names = [nm for nm in names if path[nm] == "gram"]
    say(f"exact pass: mode moments, KFAC factors{', dense blocks of ' + str(dense_names) if dense_names else ''}")
    exact_stats = _expectation_pass(net, params, X, names, blocks=bool(dense_names), moments=True, kfac=True,
                                    conv_modes=conv_modes, max_block_bytes=max_block_bytes, block_names=dense_names)
    F_all, moments, kfac = exact_stats["blocks"], exact_stats["moments"], exact_stats["kfac"]
    work.done("exact", "exact pass")
    lowrank = {}
    if gram_names:
        say(f"gram pass: V of {gram_names}")
        lowrank = fg.lowrank_blocks(net, params, X, gram_names, conv_modes=conv_modes, max_v_bytes=max_v_bytes, log=say)
        work.done("gram", "gram pass")
    # data-label gradients (Shampoo's statistics and the mini-batch gradient g), factored
    emp = net.per_example_grads_factored(params, X, y)
    grad = {nm: _mean_grad(emp[nm], n, net.param_shapes[nm]) for nm in names}
    L_emp = {nm: [s / n for s in _sum_moments(emp[nm], shapes[nm], n)] for nm in names}
    del emp
    # sampled-label statistics, accumulated as mode-moment sums (never the per-example stack)
    per_ex = {nm: [0.0] * len(shapes[nm]) for nm in names}
    batch = {nm: [0.0] * len(shapes[nm]) for nm in names}
    kl_online: dict = {}  # KL-Shampoo's factors, one step per mini-batch (kl-shampoo-batch-mean)
    online = "kl-shampoo-batch-mean" in methods
    n_batches = 0
    say(f"sampled labels: {n_mc} draws per input, mini-batches of {batch_size}")
    for _ in range(n_mc):
        y_s = net.sample_labels(params, X, rng)
        ge = net.per_example_grads_factored(params, X, y_s)
        for nm in names:
            per_ex[nm] = [a + b for a, b in zip(per_ex[nm], _sum_moments(ge[nm], shapes[nm], n))]
        del ge
        perm = rng.permutation(n)
        for b in range(n // batch_size):
            idx = xp.asarray(perm[b * batch_size : (b + 1) * batch_size])
            Xb = xp.take(X, idx, axis=0)
            _, gb = net._loss_and_grad(params, Xb, net.sample_labels(params, Xb, rng))
            for nm in names:
                batch[nm] = [a + b_ for a, b_ in zip(batch[nm], _sum_moments(gb[nm][None], shapes[nm], 1))]
                if online:  # the batch-mean gradient at per-example scale: sqrt(m) Gbar has covariance F_batch
                    st = _Samples(np.asarray(to_numpy(gb[nm]), dtype=np.float64).reshape(1, *shapes[nm])
                                  * math.sqrt(batch_size))
                    kl_online[nm] = (_kl_init(st, damping) if nm not in kl_online else
                                     _kl_step(st, kl_online[nm], n_batches / (n_batches + 1), damping))
            n_batches += 1
    work.done("sampled", "sampled labels")
    out = LadderResult()
    for nm in names:
        shape, tshape = net.param_shapes[nm], shapes[nm]
        k = len(tshape)
        say(f"{nm} {tuple(shape)}: {path[nm]} metrics")
        blk = lowrank.get(nm)
        F = np.asarray(to_numpy(F_all[nm]), dtype=np.float64) if blk is None else None
        g = np.asarray(to_numpy(grad[nm]), dtype=np.float64).reshape(-1)
        if not np.any(F if blk is None else blk.diag()):  # a dead tensor: F = 0 (every PSD F with zero diagonal is 0)
            say(f"{nm}: the exact block is zero (no input moves this tensor's loss): skipped, no relative error exists")
            out.skipped.append({"layer": nm, "shape": list(shape), "reason": "the exact Fisher block is zero"})
            work.skip(nm, f"{nm}: skipped (zero block)")
            continue
        approx: dict = {}
        approx["tnt-exact"] = ("kron", [to_numpy(u) for u in tnt_factors_from_moments(moments[nm])])
        approx["tnt-per-example"] = ("kron", _host(tnt_factors_from_moments([s / (n * n_mc) for s in per_ex[nm]])))
        if n_batches:
            U = _host(tnt_factors_from_moments([s / n_batches for s in batch[nm]]))
            approx["tnt-batch-mean"] = ("kron", [batch_size * U[0], *U[1:]])
        if "mle" in methods:
            if k == 1:
                approx["mle"] = ("dense", F)  # k = 1: every SPD matrix is in the family
            else:
                approx["mle"] = ("kron", _mle_block(F, tshape, damping) if blk is None else fg.mle_lowrank(blk, damping))
            work.done(nm, f"{nm}: mle fit")
        if "frobenius" in methods:
            if k == 1:
                approx["frobenius"] = ("dense", F)
            else:
                approx["frobenius"] = ("kron", _frobenius_dense(F, tshape) if blk is None else fg.frobenius_fit_lowrank(blk))
            work.done(nm, f"{nm}: frobenius fit")
        if nm in kfac:
            approx["kfac"] = ("kron", [to_numpy(m) for m in kfac[nm]])
        elif k == 1:
            approx["kfac"] = ("dense", F)
        L = _host(L_emp[nm])
        sh = [psd_power(li, 1.0 / k) for li in L]
        tr_sh = math.prod(float(np.trace(u)) for u in sh)
        tr_F = float(np.trace(F)) if blk is None else float(np.sum(blk.diag()))
        approx["shampoo"] = ("kron", [sh[0] * (tr_F / tr_sh), *sh[1:]] if tr_sh > 0 else sh)
        approx["diagonal"] = ("diag", np.diag(F).copy() if blk is None else blk.diag().reshape(-1))
        st = _Covariance(F, tshape) if blk is None else blk  # the exact statistics of the Shampoo family
        if "shampoo-exact" in methods:
            approx["shampoo-exact"] = ("kron", _shampoo_from_moments(_host(moments[nm])))
        if "shampoo2" in methods:
            approx["shampoo2"] = ("kron", _power_steps(st))
            work.done(nm, f"{nm}: shampoo2 fit")
        if "soap" in methods:
            approx["soap"] = ("eigen", _soap(st))
            work.done(nm, f"{nm}: soap fit")
        if "kl-shampoo" in methods:
            res = _kl_fixed_point(st, damping, (k - 1) / k, tol=KL_TOL)
            say(f"{nm}: KL-Shampoo's fixed point after {res.n_steps} steps"
                + ("" if res.converged else f" (NOT converged: last change {res.changes[-1]:.2g})"))
            approx["kl-shampoo"] = ("kron", res.factors)
            work.done(nm, f"{nm}: kl-shampoo fixed point ({res.n_steps} steps)")
        if nm in kl_online:
            approx["kl-shampoo-batch-mean"] = ("kron", _normalize(kl_online[nm]))
        if blk is None:
            out.spectra[nm] = {"exact": _top(np.linalg.eigvalsh(F))}
        else:
            ex = fg.exact_side(blk, g, damping, n_spectrum=_N_SPECTRUM)
            out.spectra[nm] = {"exact": ex.spectrum}
        work.done(nm, f"{nm}: spectrum")
        for method in methods:
            if method not in approx:
                continue
            kind, val = approx[method]
            row = {"layer": nm, "shape": list(shape), "tensor_shape": list(tshape), "method": method,
                   "exact_path": path[nm]}
            spectrum = _spectrum_of(kind, val, keep=None)  # all eigenvalues (kl_proj's singularity test)
            if blk is None:
                row.update(compare_to_exact(F, _dense_of(kind, val), g, damping, eigenvalues=spectrum))
            else:
                row.update(fg.lowrank_metrics(blk, ex, (kind, val), g, damping))
            out.rows.append(row)
            out.spectra[nm][method] = _top(spectrum)
            work.done(nm, f"{nm}: {method}")
    work.finish()
    return out


#: The ladder's fits that factorize or iterate at a layer's size (one progress unit each, as each method's metrics).
_FITS = ("mle", "frobenius", "shampoo2", "soap", "kl-shampoo")


class _Work:
    """Progress of the ladder in rough flops: ``progress(done, total, note)`` after each stage (no-op without it).

    A layer's work is counted in units of one factorization of its size (``D^3`` dense, ``N^2 (N + D)``
    gram): one for its spectrum (with the cheap fits), one per fit of :data:`_FITS` and one per method's
    metrics; the exact, gram and sampled-label passes by their products.
    """

    def __init__(self, progress, names, shapes, path, n, N, methods, n_mc):
        self.progress = progress
        D = {nm: float(math.prod(shapes[nm])) for nm in names}
        units = 1 + len(methods) + sum(m in _FITS for m in methods)
        self.share = {nm: D[nm] ** 3 if path[nm] == "dense" else float(N) ** 2 * (N + D[nm]) for nm in names}
        self.left = {nm: units for nm in names}
        self.step = {"exact": float(N) * sum(D[nm] ** 2 if path[nm] == "dense" else D[nm] for nm in names),
                     "gram": float(N) * sum(D[nm] for nm in names if path[nm] == "gram"),
                     "sampled": float(n_mc) * n * sum(D[nm] * sum(shapes[nm]) for nm in names)}
        has_gram = any(path[nm] == "gram" for nm in names)
        self.total = (units * sum(self.share.values()) + self.step["exact"] + self.step["sampled"]
                      + (self.step["gram"] if has_gram else 0.0))
        self.so_far = 0.0

    def _add(self, amount: float, note: str) -> None:
        self.so_far = min(self.so_far + amount, self.total)
        if self.progress is not None:
            self.progress(self.so_far, self.total, note)

    def done(self, stage: str, note: str) -> None:
        """A pass (``"exact"``, ``"gram"``, ``"sampled"``) or one unit of layer ``stage`` finished."""
        if stage in self.step:
            self._add(self.step[stage], note)
        else:
            self.left[stage] -= 1
            self._add(self.share[stage], note)

    def skip(self, name: str, note: str) -> None:
        """Layer ``name`` skipped: its units all at once."""
        self._add(self.left[name] * self.share[name], note)
        self.left[name] = 0

    def finish(self) -> None:
        """All done (a layer may have fewer rows than methods: its unused units are skipped here)."""
        if self.progress is not None and self.so_far < self.total:
            self.so_far = self.total
            self.progress(self.total, self.total, "done")


_N_SPECTRUM = 2048


def _top(lam, k: int = _N_SPECTRUM):
    lam = np.sort(np.asarray(lam, dtype=np.float64).reshape(-1))[::-1]
    return lam[:k]


def _spectrum_of(kind, val, keep: int | None = _N_SPECTRUM):
    """Eigenvalues of an approximation, descending (the largest ``keep``; ``None``: all)."""
    if kind == "kron":
        lam = np.ones(())
        for u in val:
            lam = np.multiply.outer(lam, np.linalg.eigvalsh((u + u.T) / 2))
    elif kind == "diag":
        lam = val
    elif kind == "eigen":  # (kron Q_i) diag(v) (kron Q_i)^T: the eigenvalues are v
        lam = val[1]
    else:
        lam = np.linalg.eigvalsh((val + val.T) / 2)
    return _top(lam, len(np.asarray(lam).reshape(-1)) if keep is None else keep)


def _dense_of(kind, val):
    if kind == "kron":
        return kron(*val)
    if kind == "diag":
        return np.diag(np.asarray(val).reshape(-1))
    if kind == "eigen":
        Q = kron(*val[0])
        return (Q * np.asarray(val[1]).reshape(-1)) @ Q.T
    return val


def _frobenius_dense(F, tshape):
    """:func:`frobenius_kron_fit`, with the ``k >= 3`` power iteration run to ``1e-15`` (its default
    ``1e-13`` on the singular value leaves the factors ~1e-8 from the optimum)."""
    return frobenius_kron_fit(F, tshape, tol=1e-15, max_iter=2000) if len(tshape) >= 3 else frobenius_kron_fit(F, tshape)


def _host(mats):
    return [np.asarray(to_numpy(m), dtype=np.float64) for m in mats]


