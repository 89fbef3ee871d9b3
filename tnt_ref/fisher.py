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
    "AUTO_BLOCK_BYTES",
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


#: ``exact="auto"`` forms dense blocks up to this size (64 MiB: D <= 2896 in float64).
AUTO_BLOCK_BYTES = 1 << 26

#: Columns of ``V`` buffered before one product ``V^T V`` is added to the dense blocks.
_V_BUFFER_BYTES = 1 << 28


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
    block_names: Iterable[str] | None = None,
) -> dict:
    """One pass over the pseudo-gradients ``J^T s_c`` of every input and column ``c`` of ``S``
    (``Lambda = S S^T``: the exact expectation over labels), accumulating what is asked for:
    dense blocks ``(1/n) sum vec g vec g^T``, mode moments ``(1/n) sum g_(i) g_(i)^T`` (closed form
    for linear weights), and KFAC's ``(G, A)``. Trusts its inputs (the public functions validate)."""
    xp = get_namespace(X)
    n = X.shape[0]
    F = _zero_blocks(net, params, names if block_names is None else list(block_names), max_block_bytes, xp) if blocks else {}
    shapes = {nm: tensor_shape(net.param_shapes[nm], conv_modes) for nm in names}
    S = {nm: [xp.zeros((d, d), dtype=params[nm].dtype) for d in shapes[nm]] for nm in names} if moments else {}
    weights = [nm for nm in names if len(net.param_shapes[nm]) in (2, 4)] if kfac else []
    G: dict = {}
    A: dict = {}
    mode = "factored" if (kfac or (moments and closed_form)) else True
    block_names = set(names if block_names is None else block_names) if blocks else set()
    cols: dict = {nm: [] for nm in block_names}  # pending columns of V, (nb, D) per chunk and output column
    pending = 0  # bytes in cols

    def flush():
        for nm in block_names:  # the block as one product V V^T (SYRK), not one per column
            if cols[nm]:
                V = xp.concat(cols[nm], axis=0)  # (rows, D)
                F[nm] = F[nm] + xp.matmul(V.T, V)
                cols[nm] = []

    for sl in _chunks(n, chunk):
        nb = sl.stop - sl.start
        for c, gd in enumerate(net.fisher_pseudo_grads(params, X[sl, ...], per_example=mode)):
            for nm in names:
                g = gd[nm]
                if nm in block_names:
                    cols[nm].append(_flat(g, nb))  # (nb, D)
                    pending += nb * math.prod(net.param_shapes[nm]) * 8
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
        if pending > _V_BUFFER_BYTES:
            flush()
            pending = 0
    flush()
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
    """Factors of the KL projection of ``F`` (of ``F + damping I`` if the undamped one is singular), ``k >= 2``."""
    D = F.shape[0]
    for ridge in (0.0, damping):
        try:
            return mle(covariance=F + ridge * np.eye(D), shape=tshape, tol=1e-10, max_iter=100).factors
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
    exact: str = "dense",
    max_v_bytes: int | None = None,
    methods: Iterable[str] | None = None,
    log=None,
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

    ``exact`` chooses how the exact block enters the metrics, per parameter tensor: ``"dense"``
    forms the ``(D, D)`` block (refused above ``max_block_bytes``); ``"gram"`` never forms it and
    computes the same metrics from ``F = (1/n) V V^T`` (:mod:`tnt_ref.fisher_gram`; biases, whose
    ``D^2`` is within the ``sum d_i^2`` budget, still use their small dense block); ``"auto"``:
    dense when the block fits in ``min(max_block_bytes, AUTO_BLOCK_BYTES)`` (64 MiB: beyond it the
    dense metrics' ``O(D^3)`` factorizations cost more than the gram path), gram otherwise. Each row records its
    ``exact_path``. ``methods`` restricts the ladder (default :data:`METHODS`); ``log`` is called
    with one progress line per layer and stage.
    """
    from . import fisher_gram as fg  # noqa: PLC0415

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
    dense_names = [nm for nm in names if path[nm] == "dense"]
    gram_names = [nm for nm in names if path[nm] == "gram"]
    say(f"exact pass: mode moments, KFAC factors{', dense blocks of ' + str(dense_names) if dense_names else ''}")
    exact_stats = _expectation_pass(net, params, X, names, blocks=bool(dense_names), moments=True, kfac=True,
                                    conv_modes=conv_modes, max_block_bytes=max_block_bytes, block_names=dense_names)
    F_all, moments, kfac = exact_stats["blocks"], exact_stats["moments"], exact_stats["kfac"]
    lowrank = {}
    if gram_names:
        say(f"gram pass: V of {gram_names}")
        lowrank = fg.lowrank_blocks(net, params, X, gram_names, conv_modes=conv_modes, max_v_bytes=max_v_bytes, log=say)
    # data-label gradients (Shampoo's statistics and the mini-batch gradient g), factored
    emp = net.per_example_grads_factored(params, X, y)
    grad = {nm: _mean_grad(emp[nm], n, net.param_shapes[nm]) for nm in names}
    L_emp = {nm: [s / n for s in _sum_moments(emp[nm], shapes[nm], n)] for nm in names}
    del emp
    # sampled-label statistics, accumulated as mode-moment sums (never the per-example stack)
    per_ex = {nm: [0.0] * len(shapes[nm]) for nm in names}
    batch = {nm: [0.0] * len(shapes[nm]) for nm in names}
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
            n_batches += 1
    out = LadderResult()
    for nm in names:
        shape, tshape = net.param_shapes[nm], shapes[nm]
        k = len(tshape)
        say(f"{nm} {tuple(shape)}: {path[nm]} metrics")
        blk = lowrank.get(nm)
        F = np.asarray(to_numpy(F_all[nm]), dtype=np.float64) if blk is None else None
        g = np.asarray(to_numpy(grad[nm]), dtype=np.float64).reshape(-1)
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
        if "frobenius" in methods:
            if k == 1:
                approx["frobenius"] = ("dense", F)
            else:
                approx["frobenius"] = ("kron", _frobenius_dense(F, tshape) if blk is None else fg.frobenius_fit_lowrank(blk))
        if nm in kfac:
            approx["kfac"] = ("kron", [to_numpy(m) for m in kfac[nm]])
        elif k == 1:
            approx["kfac"] = ("dense", F)
        L = _host(L_emp[nm])
        sh = [_matrix_power_psd(li, 1.0 / k) for li in L]
        tr_sh = math.prod(float(np.trace(u)) for u in sh)
        tr_F = float(np.trace(F)) if blk is None else float(np.sum(blk.diag()))
        approx["shampoo"] = ("kron", [sh[0] * (tr_F / tr_sh), *sh[1:]] if tr_sh > 0 else sh)
        approx["diagonal"] = ("diag", np.diag(F).copy() if blk is None else blk.diag().reshape(-1))
        if blk is None:
            out.spectra[nm] = {"exact": _top(np.linalg.eigvalsh(F))}
        else:
            ex = fg.exact_side(blk, g, damping, n_spectrum=_N_SPECTRUM)
            out.spectra[nm] = {"exact": ex.spectrum}
        for method in methods:
            if method not in approx:
                continue
            kind, val = approx[method]
            row = {"layer": nm, "shape": list(shape), "tensor_shape": list(tshape), "method": method,
                   "exact_path": path[nm]}
            if blk is None:
                row.update(compare_to_exact(F, _dense_of(kind, val), g, damping))
            else:
                row.update(fg.lowrank_metrics(blk, ex, (kind, val), g, damping))
            out.rows.append(row)
            out.spectra[nm][method] = _spectrum_of(kind, val)
    return out


#: Spectra keep the largest this many eigenvalues (all of them for the small models' blocks).
_N_SPECTRUM = 2048


def _top(lam, k: int = _N_SPECTRUM):
    lam = np.sort(np.asarray(lam, dtype=np.float64).reshape(-1))[::-1]
    return lam[:k]


def _spectrum_of(kind, val):
    if kind == "kron":
        lam = np.ones(())
        for u in val:
            lam = np.multiply.outer(lam, np.linalg.eigvalsh((u + u.T) / 2))
        return _top(lam)
    if kind == "diag":
        return _top(val)
    return _top(np.linalg.eigvalsh((val + val.T) / 2))


def _dense_of(kind, val):
    if kind == "kron":
        return kron(*val)
    if kind == "diag":
        return np.diag(np.asarray(val).reshape(-1))
    return val


def _frobenius_dense(F, tshape):
    """:func:`frobenius_kron_fit`, with the ``k >= 3`` power iteration run to ``1e-15`` (its default
    ``1e-13`` on the singular value leaves the factors ~1e-8 from the optimum)."""
    return frobenius_kron_fit(F, tshape, tol=1e-15, max_iter=2000) if len(tshape) >= 3 else frobenius_kron_fit(F, tshape)


def _host(mats):
    return [np.asarray(to_numpy(m), dtype=np.float64) for m in mats]


def _mean_grad(g, n: int, shape):
    """The mean of per-example gradients (array or :class:`OuterGrad`): the mini-batch gradient."""
    if isinstance(g, OuterGrad):
        xp = get_namespace(g.delta)
        _, out, T = g.delta.shape
        d2 = xp.reshape(xp.permute_dims(g.delta, (1, 0, 2)), (out, n * T))  # (out, n T)
        a2 = xp.reshape(xp.permute_dims(g.a, (1, 0, 2)), (g.a.shape[1], n * T))  # (in, n T)
        return xp.reshape(xp.matmul(d2, a2.T), tuple(shape)) / n
    return get_namespace(g).mean(g, axis=0)


def _sum_moments(g, tshape, n: int) -> list:
    """``sum_x G_(i) G_(i)^T`` for per-example gradients (array ``(n, *shape)`` or :class:`OuterGrad`);
    closed form ``(sum ||a||^2 delta delta^T, sum ||delta||^2 a a^T)`` for linear weights [derived]."""
    if isinstance(g, OuterGrad) and g.delta.shape[2] == 1 and len(tshape) == 2:
        xp = get_namespace(g.delta)
        d = xp.reshape(g.delta, (n, -1))  # (n, out)
        a = xp.reshape(g.a, (n, -1))  # (n, in)
        S1 = xp.matmul((d * xp.sum(a * a, axis=1, keepdims=True)).T, d)
        S2 = xp.matmul((a * xp.sum(d * d, axis=1, keepdims=True)).T, a)
        return [(S1 + S1.T) / 2, (S2 + S2.T) / 2]
    Gf = _flat(g, n)  # (n, D)
    xp = get_namespace(Gf)
    Gt = xp.reshape(Gf, (n, *tshape))  # (n, d_1, ..., d_k)
    ms = _mode_moments(Gt)
    return [m * n for m in ms] if n > 1 else ms
