"""Exact block Fisher matrices, exact mode moments and KFAC's factors (spec section 5).

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
* :func:`kfac_factors` — KFAC's ``G`` and ``A`` (KFC for convolutions).

Every exact quantity comes from one pass, ``_expectation_pass``, over the pseudo-gradients
``J^T s_c``. Imports: :mod:`tnt_ref.fisher.statistics` (below it) and the core modules; the Gram
path and the ladder import this module, never the other way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .._validation import DenseTooLargeError, check_dense_size, check_int, check_rng
from ..backend import get_namespace
from ..models.layers import OuterGrad
from ..models.network import Sequential
from ..tensor import tensor_shape
from ..tensor_normal import _mode_moments
from .statistics import _flat, kfac_sums

__all__ = [
    "DEFAULT_MAX_BLOCK_BYTES",
    "AUTO_BLOCK_BYTES",
    "BlockTooLargeError",
    "exact_fisher_blocks",
    "empirical_fisher_blocks",
    "monte_carlo_fisher_blocks",
    "exact_mode_moments",
    "kfac_factors",
]

#: Largest dense block (bytes) formed unless the caller raises the limit.
DEFAULT_MAX_BLOCK_BYTES = 1 << 30


#: ``exact="auto"`` forms dense blocks up to this size (64 MiB: D <= 2896 in float64).
AUTO_BLOCK_BYTES = 1 << 26

#: Columns of ``V`` buffered before one product ``V^T V`` is added to the dense blocks.
_V_BUFFER_BYTES = 1 << 28


class BlockTooLargeError(DenseTooLargeError):
    """A dense Fisher block would exceed the configured memory limit (a :class:`~tnt_ref.DenseTooLargeError`)."""


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
    check_dense_size((D, D), itemsize, f"the dense Fisher block of {name!r} (D = {D}) needs {D * D * itemsize:,} bytes: it",
                     "Use exact_mode_moments (Kronecker statistics without the block), the Gram path "
                     "(approximation_ladder(..., exact='gram')), pass fewer `names`, or raise `max_block_bytes`.",
                     limit=max_bytes, error=BlockTooLargeError, limit_name="max_block_bytes")
    return D


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

