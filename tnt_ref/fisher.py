"""Exact block Fisher matrices and every Kronecker approximation compared against them.

The Fisher here is **per parameter tensor** (the block diagonal of the full Fisher), averaged over
the ``n`` inputs (per-example scale), with row-major ``vec`` (spec sections 1 and 5):

* :func:`exact_fisher_blocks` — true Fisher ``F = (1/n) sum_x E_{y~p(.|x)}[vec g vec g^T]``, through
  the output Fisher ``Lambda(x) = S S^T`` (no sampling) [derived];
* :func:`empirical_fisher_blocks` — labels from the data;
* :func:`monte_carlo_fisher_blocks` — labels sampled from the model, at per-example scale
  (estimates ``F``) or batch-mean scale (gradient of a mini-batch *mean* loss of size ``m``, as the
  authors' code; estimates ``F / m``) [paper; code];
* :func:`exact_mode_moments` — ``E[G_(i) G_(i)^T]`` with the exact expectation over labels, never
  forming the block (closed form for linear weights);
* :func:`kfac_factors` — KFAC's ``G`` and ``A`` (KFC for convolutions);
* :func:`approximation_ladder` — TNT (exact moments, per-example samples, batch-mean samples),
  tensor-normal MLE, Frobenius-optimal Kronecker, KFAC, Shampoo-implied and diagonal, against the
  exact block: relative Frobenius error, KL, preconditioned-gradient cosine and spectra.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from ._validation import check_int, check_positive, check_rng
from .backend import get_namespace, to_numpy
from .kronecker import frobenius_kron_fit, safe_eigh
from .models.layers import OuterGrad
from .models.network import Sequential
from .tensor import kron
from .tensor_normal import _mode_moments, mle, tnt_factors, tnt_factors_from_moments

__all__ = [
    "DEFAULT_MAX_BLOCK_BYTES",
    "BlockTooLargeError",
    "tensor_shape",
    "exact_fisher_blocks",
    "empirical_fisher_blocks",
    "monte_carlo_fisher_blocks",
    "exact_mode_moments",
    "kfac_factors",
    "kfac_sums",
    "compare_to_exact",
    "approximation_ladder",
    "LadderResult",
    "METHODS",
]

#: Largest dense block (bytes) formed unless the caller raises the limit.
DEFAULT_MAX_BLOCK_BYTES = 1 << 30


class BlockTooLargeError(ValueError):
    """A dense Fisher block would exceed the configured memory limit."""


def tensor_shape(shape: Sequence[int], conv_modes: int = 3) -> tuple[int, ...]:
    """The tensor shape TNT uses for a parameter of shape ``shape``.

    Convolution kernels ``(C_out, C_in, kh, kw)`` become ``(C_out, C_in, kh*kw)`` for
    ``conv_modes=3`` (the authors' choice), ``(C_out, C_in*kh*kw)`` for 2, and stay 4-way for 4
    [code] (spec section 6). All are row-major reshapes, so ``vec`` and the Fisher block are the
    same; only the Kronecker structure changes. Other shapes are returned unchanged.
    """
    shape = tuple(int(s) for s in shape)
    if conv_modes not in (2, 3, 4):
        raise ValueError(f"`conv_modes` must be 2, 3 or 4; got conv_modes={conv_modes!r}.")
    if len(shape) == 4:
        co, ci, kh, kw = shape
        return {4: shape, 3: (co, ci, kh * kw), 2: (co, ci * kh * kw)}[conv_modes]
    return shape


def _names(net: Sequential, names: Iterable[str] | None) -> list[str]:
    if names is None:
        return net.param_names
    names = list(names)
    bad = [n for n in names if n not in net.param_shapes]
    if bad:
        raise ValueError(f"unknown parameter names {bad}; valid: {net.param_names}.")
    return names


def _check_block(net: Sequential, name: str, itemsize: int, max_bytes: int) -> int:
    D = math.prod(net.param_shapes[name])
    need = D * D * itemsize
    if need > max_bytes:
        raise BlockTooLargeError(
            f"the dense Fisher block of {name!r} (D = {D}) needs {need:,} bytes, above max_block_bytes={max_bytes:,}. "
            "Use exact_mode_moments (Kronecker statistics without the block), pass fewer `names`, "
            "or raise `max_block_bytes`."
        )
    return D


def _flat(g, n: int):
    """Per-example gradients ``(n, D)`` from an array ``(n, *shape)`` or an :class:`OuterGrad`."""
    if isinstance(g, OuterGrad):
        g = g.materialize()
    return get_namespace(g).reshape(g, (n, -1))


def _validate(net: Sequential, params: dict, X, y=None) -> None:
    if not isinstance(net, Sequential):
        raise TypeError(f"`net` must be a tnt_ref.models.Sequential; got {type(net).__name__}.")
    net.check_params(params)
    net.check_inputs(X, y)
    if X.shape[0] < 1:
        raise ValueError("`X` must hold at least one input; got n=0.")


def _chunks(n: int, chunk: int):
    chunk = check_int(chunk, "chunk", min_value=1)  # a chunk <= 0 would skip every input (all-zero blocks)
    return [slice(start, min(n, start + chunk)) for start in range(0, n, chunk)]


def _zero_blocks(net, params, names, max_block_bytes, xp) -> dict:
    """Zero ``(D, D)`` accumulators, after the memory guard."""
    out = {}
    for nm in names:
        itemsize = 8 if params[nm].dtype == xp.float64 else 4
        D = _check_block(net, nm, itemsize, max_block_bytes)
        out[nm] = xp.zeros((D, D), dtype=params[nm].dtype)
    return out


def _accumulate(net, params, X, names, max_block_bytes, grads_of_chunk, chunk):
    """``sum weight * G^T G`` over the per-example gradient dicts that ``grads_of_chunk`` yields."""
    xp = get_namespace(X)
    F = _zero_blocks(net, params, names, max_block_bytes, xp)
    for sl in _chunks(X.shape[0], chunk):
        nb = sl.stop - sl.start
        for gd, weight in grads_of_chunk(sl):
            for nm in names:
                G = _flat(gd[nm], nb)  # (nb, D)
                F[nm] = F[nm] + weight * xp.matmul(G.T, G)
    return F


def _expectation_pass(
    net: Sequential,
    params: dict,
    X,
    names: list[str],
    *,
    blocks: bool = False,
    moments: bool = False,
    kfac: bool = False,
    conv_modes: int = 3,
    closed_form: bool = True,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    chunk: int = 256,
) -> dict:
    """One pass over the pseudo-gradients ``J^T s_c`` of every input and column ``c`` of ``S``
    (``Lambda = S S^T``: the exact expectation over labels), accumulating what is asked for:
    dense blocks ``(1/n) sum vec g vec g^T``, mode moments ``(1/n) sum g_(i) g_(i)^T`` (closed form
    for linear weights), and KFAC's ``(G, A)``. Trusts its inputs (the public functions validate)."""
    xp = get_namespace(X)
    n = X.shape[0]
    F = _zero_blocks(net, params, names, max_block_bytes, xp) if blocks else {}
    shapes = {nm: tensor_shape(net.param_shapes[nm], conv_modes) for nm in names}
    S = {nm: [xp.zeros((d, d), dtype=params[nm].dtype) for d in shapes[nm]] for nm in names} if moments else {}
    weights = [nm for nm in names if len(net.param_shapes[nm]) in (2, 4)] if kfac else []
    G: dict = {}
    A: dict = {}
    mode = "factored" if (kfac or (moments and closed_form)) else True
    for sl in _chunks(n, chunk):
        nb = sl.stop - sl.start
        for c, gd in enumerate(net.fisher_pseudo_grads(params, X[sl, ...], per_example=mode)):
            for nm in names:
                g = gd[nm]
                if blocks:
                    Gf = _flat(g, nb)  # (nb, D)
                    F[nm] = F[nm] + xp.matmul(Gf.T, Gf)
                if moments:
                    if closed_form and isinstance(g, OuterGrad) and g.delta.shape[2] == 1 and len(shapes[nm]) == 2:
                        d = xp.reshape(g.delta, (nb, -1))  # (nb, out)
                        a = xp.reshape(g.a, (nb, -1))  # (nb, in)
                        S[nm][0] = S[nm][0] + xp.matmul((d * xp.sum(a * a, axis=1, keepdims=True)).T, d)
                        S[nm][1] = S[nm][1] + xp.matmul((a * xp.sum(d * d, axis=1, keepdims=True)).T, a)
                    else:
                        Gt = xp.reshape(_flat(g, nb), (nb, *shapes[nm]))
                        S[nm] = [s + nb * m for s, m in zip(S[nm], _mode_moments(Gt))]
                if nm in weights:
                    dd, aa = kfac_sums(g)
                    G[nm] = G.get(nm, 0) + dd
                    if c == 0:  # A does not depend on the label
                        A[nm] = A.get(nm, 0) + aa
    return {
        "blocks": {nm: f / n for nm, f in F.items()},
        "moments": {nm: [s / n for s in S[nm]] for nm in S},
        "kfac": {nm: (G[nm] / n, A[nm] / n) for nm in weights},
    }


def exact_fisher_blocks(
    net: Sequential,
    params: dict,
    X,
    *,
    names: Iterable[str] | None = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    chunk: int = 256,
) -> dict:
    """True Fisher block of each parameter tensor, exact expectation over labels (spec section 5).

    ``F = (1/n) sum_x E_{y ~ p(.|x)}[vec g vec g^T] = (1/n) sum_x J^T Lambda(x) J`` with
    ``Lambda = S S^T`` from the output distribution [derived]: one backward pass per column of
    ``S`` (``C`` for softmax, Bernoulli and Gaussian outputs), no sampling.

    Parameters
    ----------
    net, params : the model and its parameters
    X : array, shape ``(n, *net.input_shape)``
    names : parameter names (default: all)
    max_block_bytes : refuse blocks larger than this (:class:`BlockTooLargeError`)
    chunk : inputs per backward pass (bounds memory)

    Returns
    -------
    dict name -> array ``(D, D)``, per-example scale, row-major ``vec`` of the parameter.
    """
    _validate(net, params, X)
    return _expectation_pass(net, params, X, _names(net, names), blocks=True, max_block_bytes=max_block_bytes,
                             chunk=chunk)["blocks"]


def empirical_fisher_blocks(
    net: Sequential, params: dict, X, y, *, names=None, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, chunk: int = 256
) -> dict:
    """Empirical Fisher ``(1/n) sum_x vec g(x, y) vec g(x, y)^T`` with the data labels ``y`` (spec section 5)."""
    _validate(net, params, X, y)
    names = _names(net, names)
    n = X.shape[0]

    def grads_of_chunk(sl):
        yield net.per_example_grads(params, X[sl, ...], y[sl, ...]), 1.0 / n

    return _accumulate(net, params, X, names, max_block_bytes, grads_of_chunk, chunk)


def monte_carlo_fisher_blocks(
    net: Sequential,
    params: dict,
    X,
    rng: np.random.Generator,
    *,
    n_samples: int = 1,
    scale: str = "per-example",
    batch_size: int | None = None,
    names=None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> dict:
    """Monte-Carlo Fisher blocks from labels sampled from the model [paper; code] (spec section 5).

    ``scale="per-example"``: ``(1/(n S)) sum_{s, x} vec g(x, y~) vec g(x, y~)^T``, an unbiased
    estimate of ``F``. ``scale="batch-mean"``: the inputs are split into mini-batches of
    ``batch_size = m`` (a fresh permutation per repetition, remainder dropped) and the gradient
    ``Gbar`` of the batch *mean* loss with sampled labels is used, as the authors' code does:
    ``E[vec Gbar vec Gbar^T | batch] = F_batch / m``, so this estimates ``F / m``.
    """
    _validate(net, params, X)
    names = _names(net, names)
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    check_rng(rng)
    xp = get_namespace(X)
    n = X.shape[0]
    if scale == "per-example":

        def grads_of_chunk(sl):
            for _ in range(n_samples):
                y_s = net.sample_labels(params, X[sl, ...], rng)
                yield net.per_example_grads(params, X[sl, ...], y_s), 1.0 / (n * n_samples)

        return _accumulate(net, params, X, names, max_block_bytes, grads_of_chunk, chunk=n)
    if scale != "batch-mean":
        raise ValueError(f"`scale` must be 'per-example' or 'batch-mean'; got scale={scale!r}.")
    if batch_size is None or not 1 <= check_int(batch_size, "batch_size") <= n:
        raise ValueError(f"`batch_size` must be in [1, {n}] for scale='batch-mean'; got batch_size={batch_size!r}.")
    m = int(batch_size)
    F = _zero_blocks(net, params, names, max_block_bytes, xp)
    count = 0
    for _ in range(n_samples):
        perm = rng.permutation(n)
        for b in range(n // m):
            idx = xp.asarray(perm[b * m : (b + 1) * m])
            Xb = xp.take(X, idx, axis=0)
            y_s = net.sample_labels(params, Xb, rng)
            _, g = net._loss_and_grad(params, Xb, y_s)
            for nm in names:
                v = xp.reshape(g[nm], (-1, 1))
                F[nm] = F[nm] + xp.matmul(v, v.T)
            count += 1
    return {nm: f / count for nm, f in F.items()}


def exact_mode_moments(
    net: Sequential,
    params: dict,
    X,
    *,
    names: Iterable[str] | None = None,
    conv_modes: int = 3,
    chunk: int = 256,
    closed_form: bool = True,
) -> dict:
    """``S_i = (1/n) sum_x E_{y~p(.|x)}[G_(i) G_(i)^T]`` for each parameter tensor, exactly.

    The expectation over labels is taken through ``Lambda = S S^T`` (as :func:`exact_fisher_blocks`)
    and the dense block is never formed, so this works for tensors far larger than a block could be.
    For a linear weight the per-example gradient is ``delta a^T`` and the moments have the closed
    form ``S_1 = sum ||a||^2 delta delta^T``, ``S_2 = sum ||delta||^2 a a^T`` [derived]
    (``closed_form=False`` uses the generic per-example path, for testing).

    Returns
    -------
    dict name -> list of ``k`` arrays ``(d_i, d_i)`` for ``tensor_shape(param.shape, conv_modes)``.
    """
    _validate(net, params, X)
    return _expectation_pass(net, params, X, _names(net, names), moments=True, conv_modes=conv_modes, chunk=chunk,
                             closed_form=closed_form)["moments"]


def kfac_factors(net: Sequential, params: dict, X, *, names: Iterable[str] | None = None, chunk: int = 256) -> dict:
    """KFAC's factors for linear and convolution weights, exact expectation over labels.

    For a weight of shape ``(out, in)`` (a kernel as ``(C_out, C_in*kh*kw)``) and row-major ``vec``,
    the block is approximated by ``kron(G, A)`` (Martens & Grosse 2015; KFC, Grosse & Martens 2016
    for convolutions)::

        A = (1/n) sum_x sum_t a_t a_t^T
        G = (1/n) sum_x E_y[ sum_t delta_t delta_t^T ] / T

    with ``t`` over the ``T`` output positions (``T = 1`` for linear layers; for convolutions the
    ``1/T`` follows from KFC's spatial homogeneity and uncorrelatedness). ``G`` comes **first** in
    the Kronecker product (spec section 4). Biases are not included (separate blocks).

    Returns
    -------
    dict weight name -> ``(G, A)`` with shapes ``((out, out), (in, in))``.
    """
    _validate(net, params, X)
    return _expectation_pass(net, params, X, _names(net, names), kfac=True, chunk=chunk)["kfac"]


def kfac_sums(g: OuterGrad):
    """``(sum_n sum_t delta_t delta_t^T / T, sum_n sum_t a_t a_t^T)`` of factored per-example gradients.

    ``T`` is the number of output positions (1 for a linear layer); dividing ``G`` by ``T`` is KFC's
    spatial-homogeneity scaling, so that ``kron(G, A)`` approximates the weight's block.
    """
    xp = get_namespace(g.delta)
    n, out, T = g.delta.shape
    d2 = xp.reshape(xp.permute_dims(g.delta, (1, 0, 2)), (out, n * T))  # (out, N*T)
    a2 = xp.reshape(xp.permute_dims(g.a, (1, 0, 2)), (g.a.shape[1], n * T))  # (in, N*T)
    return xp.matmul(d2, d2.T) / T, xp.matmul(a2, a2.T)


def _mle_block(F, tshape, damping: float):
    """``kron`` of the KL projection of ``F`` (of ``F + damping I`` if the undamped one is singular)."""
    D = F.shape[0]
    if len(tshape) == 1:
        return F.copy()  # k = 1: every SPD matrix is in the family, the projection is F itself
    for ridge in (0.0, damping):
        try:
            return kron(*mle(covariance=F + ridge * np.eye(D), shape=tshape, tol=1e-10, max_iter=100).factors)
        except (ValueError, np.linalg.LinAlgError):
            continue
    raise ValueError(f"the tensor-normal MLE of a block of shape {tshape} failed even with damping {damping}.")


def _matrix_power_psd(u, power: float):
    lam, Q = safe_eigh(u, floor=0.0)
    return (Q * lam**power) @ Q.T


def compare_to_exact(F, F_hat, g, damping: float) -> dict:
    """Metrics of an approximation ``F_hat`` of the exact block ``F`` (host arrays, float64).

    * ``rel_error``: ``||F - F_hat||_F / ||F||_F``;
    * ``kl``: ``KL(N(0, F + lam I) || N(0, F_hat + lam I))``;
    * ``cosine``: between ``(F + lam I)^{-1} g`` and ``(F_hat + lam I)^{-1} g`` (exact damping for
      both, so the comparison is about the curvature model, not the damping form).
    """
    F, F_hat, g = (np.asarray(to_numpy(a), dtype=np.float64) for a in (F, F_hat, g))
    D = F.shape[0]
    A = F + damping * np.eye(D)
    B = (F_hat + F_hat.T) / 2 + damping * np.eye(D)
    La = scipy.linalg.cholesky(A, lower=True)
    try:
        Lb = scipy.linalg.cholesky(B, lower=True)
    except np.linalg.LinAlgError:  # F_hat + lam I indefinite: no Gaussian to compare with
        return {"rel_error": float(np.linalg.norm(F - F_hat) / np.linalg.norm(F)), "kl": float("inf"), "cosine": float("nan")}
    # tr(B^{-1} A) = ||Lb^{-1} La||_F^2; logdet = 2 sum log diag(L)
    M = scipy.linalg.solve_triangular(Lb, La, lower=True)
    kl = 0.5 * float(np.sum(M * M) - D + 2 * np.sum(np.log(np.diag(Lb))) - 2 * np.sum(np.log(np.diag(La))))
    u = scipy.linalg.cho_solve((La, True), g)
    v = scipy.linalg.cho_solve((Lb, True), g)
    denom = np.linalg.norm(u) * np.linalg.norm(v)
    return {
        "rel_error": float(np.linalg.norm(F - F_hat) / np.linalg.norm(F)),
        "kl": kl,
        "cosine": float(u @ v / denom) if denom > 0 else float("nan"),
    }


#: Methods of the approximation ladder, in table order.
METHODS = ("tnt-exact", "tnt-per-example", "tnt-batch-mean", "mle", "frobenius", "kfac", "shampoo", "diagonal")


@dataclass
class LadderResult:
    """Result of :func:`approximation_ladder`.

    ``rows``: one dict per (parameter, method) with ``layer``, ``shape``, ``tensor_shape``,
    ``method``, ``rel_error``, ``kl``, ``cosine``. ``spectra``: ``name -> method -> eigenvalues``
    (descending, host arrays), with the exact block under ``"exact"``.
    """

    rows: list = field(default_factory=list)
    spectra: dict = field(default_factory=dict)


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

    Metrics by :func:`compare_to_exact` with ``g`` the mini-batch gradient on ``(X, y)``.
    """
    check_positive(damping, "damping")
    _validate(net, params, X, y)
    names = _names(net, names)
    n = X.shape[0]
    xp = get_namespace(X)
    exact = _expectation_pass(net, params, X, names, blocks=True, moments=True, kfac=True, conv_modes=conv_modes,
                              max_block_bytes=max_block_bytes)  # one pass over the label expectation
    F_all, moments, kfac = exact["blocks"], exact["moments"], exact["kfac"]
    emp = net.per_example_grads(params, X, y)  # data labels, (n, *shape)
    grad = {k: xp.mean(v, axis=0) for k, v in emp.items()}  # the mini-batch gradient: their mean
    # sampled-label statistics
    per_ex = {nm: [] for nm in names}
    batch = {nm: [] for nm in names}
    for _ in range(n_mc):
        y_s = net.sample_labels(params, X, rng)
        ge = net.per_example_grads(params, X, y_s)
        for nm in names:
            per_ex[nm].append(to_numpy(ge[nm]))
        perm = rng.permutation(n)
        for b in range(n // batch_size):
            idx = xp.asarray(perm[b * batch_size : (b + 1) * batch_size])
            Xb = xp.take(X, idx, axis=0)
            _, gb = net._loss_and_grad(params, Xb, net.sample_labels(params, Xb, rng))
            for nm in names:
                batch[nm].append(to_numpy(gb[nm]))
    out = LadderResult()
    for nm in names:
        shape = net.param_shapes[nm]
        tshape = tensor_shape(shape, conv_modes)
        k, D = len(tshape), math.prod(tshape)
        F = np.asarray(to_numpy(F_all[nm]), dtype=np.float64)
        approx: dict[str, np.ndarray] = {}
        approx["tnt-exact"] = kron(*[to_numpy(u) for u in tnt_factors_from_moments(moments[nm])])
        approx["tnt-per-example"] = kron(*tnt_factors(np.concatenate(per_ex[nm]).reshape(-1, *tshape)))
        if batch[nm]:
            approx["tnt-batch-mean"] = batch_size * kron(*tnt_factors(np.stack(batch[nm]).reshape(-1, *tshape)))
        approx["mle"] = _mle_block(F, tshape, damping)
        approx["frobenius"] = kron(*frobenius_kron_fit(F, tshape))
        if nm in kfac:
            approx["kfac"] = kron(*[to_numpy(m) for m in kfac[nm]])
        elif len(shape) == 1:
            approx["kfac"] = F.copy()
        L = _mode_moments(np.asarray(to_numpy(emp[nm])).reshape(-1, *tshape))
        sh = kron(*[_matrix_power_psd(li, 1.0 / k) for li in L])
        approx["shampoo"] = sh * (np.trace(F) / np.trace(sh)) if np.trace(sh) > 0 else sh
        approx["diagonal"] = np.diag(np.diag(F))
        g = to_numpy(grad[nm]).reshape(-1)
        out.spectra[nm] = {"exact": np.sort(np.linalg.eigvalsh(F))[::-1]}
        for method in METHODS:
            if method not in approx:
                continue
            Fh = approx[method]
            row = {"layer": nm, "shape": list(shape), "tensor_shape": list(tshape), "method": method}
            row.update(compare_to_exact(F, Fh, g, damping))
            out.rows.append(row)
            out.spectra[nm][method] = np.sort(np.linalg.eigvalsh((Fh + Fh.T) / 2))[::-1]
    return out
