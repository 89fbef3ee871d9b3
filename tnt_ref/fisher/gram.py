"""The exact block Fisher without the block: every ladder metric from ``F = (1/n) V V^T``.

For one parameter tensor with ``D`` entries, the exact true Fisher block (spec section 5) is

    F = (1/n) sum_x J^T Lambda(x) J = (1/n) V V^T,      V = [ v_1 ... v_N ]  (D, N)

with one column ``v_j = J^T r_c`` per input ``x`` and per column ``r_c`` of ``Lambda(x) = R R^T``
(``N = n C`` for softmax and Bernoulli outputs with ``C`` outputs) [derived]. For a linear weight
``v_j = vec(delta_j a_j^T)``, so ``V`` is never formed: ``V^T V = (Delta Delta^T) * (A A^T)`` (an
elementwise product of two Gram matrices). Every metric of :func:`tnt_ref.fisher.ladder.compare_to_exact`
is then exact at ``O(N^2 + sum_i d_i^2)`` memory, never ``O(D^2)`` (derivations: ``docs/fisher.md``):

* ``||F||_F^2 = ||V^T V||_F^2 / n^2`` and ``<F, kron U_i> = (1/n) sum_j <X_j, X_j x_1 U_1 ... x_k U_k>``
  (``X_j`` the tensor of ``v_j``), so ``||F - K||_F^2 = ||F||^2 - 2 <F, K> + ||K||^2`` [derived];
* ``logdet(F + lam I) = D log lam + logdet(I_N + V^T V / (n lam))`` (Sylvester) and
  ``(F + lam I)^{-1} g = (g - V (n lam I + V^T V)^{-1} V^T g) / lam`` (Woodbury) [derived];
* for ``K = kron U_i`` with ``U_i = Q_i diag(s_i) Q_i^T``:
  ``tr((K + lam I)^{-1} F) = (1/n) sum_j sum (X_j x_i Q_i^T)^2 / (s_1 o ... o s_k + lam)``, and
  ``logdet(K + lam I) = sum log(s_1 o ... o s_k + lam)`` (``o`` the outer product) [derived].

Convolution weights have columns that are sums over output positions; they are formed explicitly
(``(N, D)`` floats, refused above ``max_v_bytes``). Biases (``k = 1``) have ``d_1 = D``, so their
block is within the ``sum d_i^2`` budget and is formed (the dense comparison is used for them).

Limit of the subtraction formula: near an exact fit, ``||F - K||_F / ||F||_F`` carries an absolute
round-off of about ``sqrt(eps) ~ 1.5e-8`` (the three terms cancel); KL and cosine do not cancel.

The third room of :mod:`tnt_ref.fisher`: it imports ``blocks`` (the memory guard, chunks) and the
core modules; only the ladder imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from ..backend import to_numpy
from ..models.layers import OuterGrad
from ..tensor import _mode_products, tensor_shape
from ..tensor_normal import _normalize
from .blocks import BlockTooLargeError, _chunks

__all__ = ["LowRankBlock", "DEFAULT_MAX_V_BYTES", "lowrank_blocks", "lowrank_metrics", "ExactSide", "exact_side",
           "frobenius_fit_lowrank", "mle_lowrank", "top_spectrum", "reshaped", "small_block"]

#: Largest explicit ``V`` (bytes) formed for convolution weights unless the caller raises it.
DEFAULT_MAX_V_BYTES = 1 << 30

_LOG_2PI = math.log(2 * math.pi)

#: As :data:`tnt_ref.fisher.ladder.SINGULAR_RTOL` (defined here, the lower room, and imported there).
SINGULAR_RTOL = 100 * float(np.finfo(np.float64).eps)

#: Largest cache of per-input moments ``G_i`` ``(n, out, out)`` kept by a factored block.
_GI_BYTES = 3 << 30


@dataclass
class LowRankBlock:
    """``F = (1/n) sum_j vec(X_j) vec(X_j)^T`` for one parameter tensor, host float64.

    Either *outer* (linear weights): ``delta`` ``(n, C, out)`` and ``a`` ``(n, in)``, column
    ``(i, c)`` is ``delta[i, c] a[i]^T``; or *explicit*: ``X`` ``(N, *tshape)``.
    """

    tshape: tuple
    n: int
    delta: np.ndarray | None = None
    a: np.ndarray | None = None
    X: np.ndarray | None = None

    @property
    def outer(self) -> bool:
        return self.X is None

    @property
    def N(self) -> int:
        return self.delta.shape[0] * self.delta.shape[1] if self.outer else self.X.shape[0]

    @property
    def D(self) -> int:
        return math.prod(self.tshape)

    def _gi(self):
        """Per-input output-side moments ``G_i = sum_c delta_ic delta_ic^T`` ``(n, out, out)``, cached when
        they take at most :data:`_GI_BYTES` (they make every product with a Kronecker factor ``C``
        times cheaper than going through ``Delta``); ``None`` otherwise."""
        if not hasattr(self, "_gi_cache"):
            n, C, out = self.delta.shape
            ok = n * out * out * 8 <= _GI_BYTES and out < C * 4
            self._gi_cache = np.matmul(np.swapaxes(self.delta, 1, 2), self.delta) if ok else None
        return self._gi_cache

    def _q1(self, U1):
        """``sum_c delta_ic^T U_1 delta_ic`` per input ``(n,)``; ``U_1 = None``: identity."""
        Gi = self._gi()
        if U1 is None:
            return np.sum(self.delta**2, axis=(1, 2))
        if Gi is not None:
            return np.tensordot(Gi, U1, axes=([1, 2], [0, 1]))
        return np.sum((self.delta @ U1) * self.delta, axis=(1, 2))

    def _dl(self):
        return self.delta.reshape(-1, self.delta.shape[2])  # (N, out), rows (i, c)

    def gram(self) -> np.ndarray:
        """``V^T V`` ``(N, N)``: ``(Delta Delta^T) * (A A^T)`` for a linear weight."""
        if not self.outer:
            Xf = self.X.reshape(self.X.shape[0], -1)  # (N, D)
            return Xf @ Xf.T
        n, C, _ = self.delta.shape
        Dl = self._dl()
        G = Dl @ Dl.T  # (N, N)
        Ga = self.a @ self.a.T  # (n, n): a does not depend on the output column
        G.reshape(n, C, n, C)[...] *= Ga[:, None, :, None]
        return G

    def diag(self) -> np.ndarray:
        """``diag(F)`` as a tensor ``tshape``."""
        if not self.outer:
            return np.sum(self.X * self.X, axis=0) / self.n
        return np.sum(self.delta**2, axis=1).T @ (self.a**2) / self.n  # (out, in)

    def inner_kron(self, U) -> float:
        """``<F, kron U_i> = (1/n) sum_j <X_j, X_j x_i U_i>`` (``U_i`` symmetric)."""
        if not self.outer:
            return float(np.sum(self.X * _mode_products(self.X, U, offset=1))) / self.n
        q1 = self._q1(U[0])  # (n,): sum_c delta^T U_1 delta
        q2 = np.sum((self.a @ U[1]) * self.a, axis=1)  # (n,): a^T U_2 a
        return float(np.sum(q1 * q2)) / self.n

    def mode_moment(self, i: int, W=None) -> np.ndarray:
        """``(1/n) sum_j X_j(i) (kron_{l != i} W_l) X_j(i)^T`` (``W_l`` symmetric; ``None``: identities).

        With identities these are the exact mode moments ``E[G_(i) G_(i)^T]``; with other matrices
        they are the products with ``F`` the Frobenius fit and the MLE need [derived].
        """
        k = len(self.tshape)
        W = [None] * k if W is None else list(W)
        if not self.outer:
            Y = _mode_products(self.X, [None if l == i else W[l] for l in range(k)], offset=1)
            others = [0] + [l + 1 for l in range(k) if l != i]
            M = np.tensordot(self.X, Y, axes=(others, others)) / self.n
            return (M + M.T) / 2
        n, C, out = self.delta.shape
        if i == 0:
            w = np.sum(self.a * self.a, axis=1) if W[1] is None else np.sum((self.a @ W[1]) * self.a, axis=1)  # (n,)
            Gi = self._gi()
            if Gi is not None:
                M = np.tensordot(w, Gi, axes=1) / self.n  # sum_i w_i G_i
            else:
                Dl = self._dl()
                M = (Dl * np.repeat(w, C)[:, None]).T @ Dl / self.n
        else:
            q = self._q1(W[0])  # (n,)
            M = (self.a * q[:, None]).T @ self.a / self.n
        return (M + M.T) / 2

    def quad_inv(self, Q, M) -> float:
        """``(1/n) sum_j sum((X_j x_i Q_i^T)^2 * M)``: ``tr(B^{-1} F)`` for ``B = (kron Q_i) diag(1/M) (kron Q_i)^T``."""
        if not self.outer:
            Y = self.X if Q is None else _mode_products(self.X, [q.T for q in Q], offset=1)
            return float(np.sum(Y * Y * M[None])) / self.n
        P = self.delta if Q is None else self.delta @ Q[0]  # (n, C, out)
        R = self.a if Q is None else self.a @ Q[1]  # (n, in)
        return float(np.sum(((P * P) @ M) * (R * R)[:, None, :])) / self.n

    def rotated_diag(self, Q) -> np.ndarray:
        """``diag((kron Q_i)^T F (kron Q_i)) = (1/n) sum_j (X_j x_1 Q_1^T ... x_k Q_k^T)^2`` as a tensor ``tshape``
        (SOAP's second moment, :mod:`tnt_ref.estimators`); for a linear weight ``(1/n) sum_{i,c} (Q_1^T delta)^2 (Q_2^T a)^2``."""
        if not self.outer:
            Y = _mode_products(self.X, [q.T for q in Q], offset=1)
            return np.sum(Y * Y, axis=0) / self.n
        P = self.delta @ Q[0]  # (n, C, out)
        R = self.a @ Q[1]  # (n, in)
        return np.sum(P * P, axis=1).T @ (R * R) / self.n  # (out, in)

    def vt(self, g) -> np.ndarray:
        """``V^T vec(g)`` ``(N,)``."""
        if not self.outer:
            return self.X.reshape(self.X.shape[0], -1) @ g.reshape(-1)
        return np.sum((self.delta @ g) * self.a[:, None, :], axis=2).reshape(-1)

    def v(self, y) -> np.ndarray:
        """``V y`` as a tensor ``tshape``, for ``y`` ``(N,)``."""
        if not self.outer:
            return (self.X.reshape(self.X.shape[0], -1).T @ y).reshape(self.tshape)
        n, C, _ = self.delta.shape
        Yd = np.sum(self.delta * y.reshape(n, C, 1), axis=1)  # (n, out)
        return Yd.T @ self.a


@dataclass
class ExactSide:
    """What the metrics need from the exact block, computed once: ``||F||_F^2``, ``tr F``,
    ``logdet(F + lam I)`` and ``u = (F + lam I)^{-1} g``."""

    norm2: float
    trace: float
    logdet: float
    u: np.ndarray
    spectrum: np.ndarray


def exact_side(blk: LowRankBlock, g, damping: float, n_spectrum: int = 2048) -> ExactSide:
    """The exact block's share of the metrics, from ``V^T V`` (Sylvester and Woodbury) [derived]."""
    n, lam, D = blk.n, float(damping), blk.D
    G = blk.gram()  # (N, N)
    N = G.shape[0]
    norm2 = float(np.sum(G * G)) / n**2
    trace = float(np.trace(G)) / n
    spectrum = top_spectrum(G, min(n_spectrum, D)) / n
    G.flat[:: N + 1] += n * lam  # n lam I + V^T V, in place
    L = scipy.linalg.cholesky(G, lower=True, overwrite_a=True, check_finite=False)
    logdet = D * math.log(lam) + 2 * float(np.sum(np.log(np.diag(L)))) - N * math.log(n * lam)
    g = np.asarray(g, dtype=np.float64).reshape(blk.tshape)
    w = scipy.linalg.cho_solve((L, True), blk.vt(g), check_finite=False)
    u = (g - blk.v(w)) / lam
    return ExactSide(norm2, trace, logdet, u, spectrum)


def top_spectrum(G, k: int) -> np.ndarray:
    """The ``k`` largest eigenvalues of the PSD ``F = (1/n) V V^T`` times ``n``, from ``G = V^T V``
    (same nonzero eigenvalues), descending, padded with zeros when ``N < k``. Dense for ``N <= 4096``,
    else Lanczos for the top ``min(k, 64)``."""
    N = G.shape[0]
    if N <= 4096:
        lam = np.sort(scipy.linalg.eigvalsh(G, check_finite=False))[::-1]
    else:
        kk = min(k, 64)
        lam = np.sort(scipy.sparse.linalg.eigsh(G, k=kk, which="LA", return_eigenvectors=False))[::-1]
        k = kk
    lam = np.maximum(lam[:k], 0.0)
    return np.concatenate([lam, np.zeros(max(0, k - lam.shape[0]))])


def _kron_eig(U):
    """Eigen-decompositions of symmetric factors and the tensor of eigenvalues of their Kronecker product."""
    Qs, lam = [], np.ones(())
    for u in U:
        s, q = np.linalg.eigh((u + u.T) / 2)
        Qs.append(q)
        lam = np.multiply.outer(lam, s)
    return Qs, lam


def lowrank_metrics(blk: LowRankBlock, ex: ExactSide, approx, g, damping: float) -> dict:
    """:func:`tnt_ref.fisher.ladder.compare_to_exact` for ``approx = ("kron", [U_i])``, ``("diag", d)`` or
    ``("eigen", (Q, v))`` (``(kron Q_i) diag(vec v) (kron Q_i)^T``, SOAP's), block-free."""
    kind, val = approx
    lam, D = float(damping), blk.D
    if kind == "kron":
        U = [np.asarray(u, dtype=np.float64) for u in val]
        U = [(u + u.T) / 2 for u in U]
        blk = reshaped(blk, [u.shape[0] for u in U])  # e.g. KFAC's 2-way view of a 3-way kernel
        inner = blk.inner_kron(U)
        normK2 = math.prod(float(np.sum(u * u)) for u in U)
        Q, eig = _kron_eig(U)
    elif kind == "diag":
        d = np.asarray(val, dtype=np.float64).reshape(blk.tshape)
        inner, normK2 = float(np.sum(d * blk.diag())), float(np.sum(d * d))
        Q, eig = None, d
    elif kind == "eigen":  # <F, Q diag(v) Q^T> = <diag(Q^T F Q), v>
        Q = [np.asarray(q, dtype=np.float64) for q in val[0]]
        eig = np.asarray(val[1], dtype=np.float64).reshape(blk.tshape)
        inner, normK2 = blk.quad_inv(Q, eig), float(np.sum(eig * eig))
    else:
        raise ValueError(f"unknown approximation kind {kind!r}; expected 'kron', 'diag' or 'eigen'.")
    rel = math.sqrt(max(ex.norm2 - 2 * inner + normK2, 0.0) / ex.norm2)

    def kl_to(shift: float) -> float:  # KL(N(0, F + lam I) || N(0, K + shift I))
        if float(np.min(eig)) + shift <= 0:  # indefinite or singular: no Gaussian to compare with
            return float("inf")
        if shift == 0.0 and float(np.min(eig)) <= SINGULAR_RTOL * D * max(float(np.max(eig)), 0.0):
            return float("inf")  # singular to working precision (as the dense path decides)
        Mi = 1.0 / (eig + shift)  # eigenvalues of (K + shift I)^{-1}, as a tensor
        tr = lam * float(np.sum(Mi)) + blk.quad_inv(Q, Mi)  # tr((K + shift I)^{-1} (F + lam I))
        return 0.5 * (tr - D + float(np.sum(np.log(eig + shift))) - ex.logdet)

    kl, kl_proj = kl_to(lam), kl_to(0.0)
    if not math.isfinite(kl):
        return {"rel_error": rel, "kl": kl, "kl_proj": kl_proj, "cosine": float("nan")}
    M = 1.0 / (eig + lam)  # eigenvalues of (K + lam I)^{-1}, as a tensor
    u = ex.u.reshape(blk.tshape)
    v = _apply_inv(Q, M, np.asarray(g, dtype=np.float64).reshape(blk.tshape))
    denom = float(np.linalg.norm(u) * np.linalg.norm(v))
    return {"rel_error": rel, "kl": kl, "kl_proj": kl_proj,
            "cosine": float(np.sum(u * v)) / denom if denom > 0 else float("nan")}


def _apply_inv(Q, M, g):
    """``(K + lam I)^{-1} g`` for ``K = (kron Q_i) diag(1/M - lam) (kron Q_i)^T``, by mode products."""
    if Q is None:
        return M * g
    t = _mode_products(g, [q.T for q in Q])
    return _mode_products(M * t, Q)


def frobenius_fit_lowrank(blk: LowRankBlock, *, tol: float = 1e-13, max_iter: int = 1000) -> list:
    """Frobenius-optimal Kronecker product of ``F`` (as :func:`tnt_ref.kronecker.frobenius_kron_fit`), block-free.

    The rearranged ``F`` (Van Loan–Pitsianis) is only touched through its products with a
    Kronecker vector, ``R(F) x_{-i} = mode_moment(i, x_{-i})`` [derived]; alternating power iteration
    (for ``k = 2`` the leading singular pair, the exact optimum) from the mode moments, until every
    unit factor moves by less than ``tol``. Signs and normalization as the dense fit.
    """
    k = len(blk.tshape)
    if k == 1:
        raise ValueError("frobenius_fit_lowrank needs k >= 2; for k = 1 the fit is the block itself.")
    xs = [blk.mode_moment(i) for i in range(k)]
    if not all(np.any(x) for x in xs):  # F = 0 (a zero mode moment means a zero block): the optimum is 0
        return [np.zeros((d, d)) for d in blk.tshape]
    xs = [x / np.linalg.norm(x) for x in xs]
    for _ in range(max_iter):
        moved = 0.0
        for i in range(k):
            y = blk.mode_moment(i, xs)
            y = y / np.linalg.norm(y)
            moved = max(moved, float(np.linalg.norm(y - xs[i])))
            xs[i] = y
        if moved <= tol:
            break
    sigma = blk.inner_kron(xs)  # <R(F), x_1 o ... o x_k> = <F, kron x_i>
    sign = 1.0 if sigma >= 0 else -1.0
    for i, A in enumerate(xs):
        if float(np.trace(A)) < 0:
            xs[i], sign = -A, -sign
    xs[0] = xs[0] * (sign * abs(sigma))
    xs = [(A + A.T) / 2 for A in xs]
    if all(float(np.trace(A)) >= 0 for A in xs):
        xs = _normalize(xs)
    return xs


def _inv_checked(u, i):
    inv = np.linalg.inv(u)
    if not np.all(np.isfinite(inv)):
        raise ValueError(f"flip-flop update of mode {i} is singular.")
    return inv


def _flipflop(blk: LowRankBlock, ridge: float, tol: float, max_iter: int) -> list:
    k, D, shape = len(blk.tshape), blk.D, blk.tshape
    U = [np.eye(d) for d in shape]
    loglik: list[float] = []
    for _ in range(max_iter):
        invs = [_inv_checked(u, i) for i, u in enumerate(U)]
        new = list(U)
        for i in range(k):
            M = blk.mode_moment(i, invs)
            if ridge:
                M = M + ridge * math.prod(float(np.trace(invs[j])) for j in range(k) if j != i) * np.eye(shape[i])
            new[i] = (shape[i] / D) * M
            invs[i] = _inv_checked(new[i], i)
        U = new
        chols = [np.linalg.cholesky(u) for u in U]  # LinAlgError if a factor is not positive definite
        logdet = sum((D / d) * 2 * float(np.sum(np.log(np.diag(c)))) for d, c in zip(shape, chols))
        invs = [np.linalg.inv(u) for u in U]
        quad = blk.inner_kron(invs) + ridge * math.prod(float(np.trace(v)) for v in invs)
        loglik.append(-0.5 * (D * _LOG_2PI + logdet) - 0.5 * quad)
        if len(loglik) > 1 and abs(loglik[-1] - loglik[-2]) <= tol * max(1.0, abs(loglik[-1])):
            break
    return _normalize(U)


def mle_lowrank(blk: LowRankBlock, damping: float, *, tol: float = 1e-10, max_iter: int = 100) -> list:
    """Tensor-normal MLE (KL projection) of ``F`` by Gauss–Seidel flip-flop, block-free [derived].

    The mode update ``U_i = (d_i / D) partial-trace[F (kron_{j != i} U_j^{-1})]`` is
    ``(d_i / D) mode_moment(i, U^{-1})``, and the expected log-likelihood needs
    ``tr(F kron U_i^{-1}) = <F, kron U_i^{-1}>``; the same stopping rule as
    :func:`tnt_ref.tensor_normal_mle.mle`. As :func:`tnt_ref.fisher.ladder._mle_block`: if the undamped ``F`` is too
    singular, the projection of ``F + damping I`` (its products add ``damping prod tr(W_j)``).
    """
    for ridge in (0.0, float(damping)):
        try:
            return _flipflop(blk, ridge, tol, max_iter)
        except (ValueError, np.linalg.LinAlgError):
            continue
    raise ValueError(f"the tensor-normal MLE of a block of shape {blk.tshape} failed even with damping {damping}.")


def lowrank_blocks(net, params, X, names, *, conv_modes: int = 3, max_v_bytes: int = DEFAULT_MAX_V_BYTES,
                   chunk: int = 256, log=None) -> dict:
    """:class:`LowRankBlock` of each named parameter tensor from one pass over the pseudo-gradients
    ``J^T r_c`` (``Lambda = R R^T``: the exact expectation over labels), host float64.

    Linear weights keep ``(delta, a)``; other tensors (convolution kernels, biases) are formed as
    ``(N, *tshape)``, refused above ``max_v_bytes`` (:class:`tnt_ref.fisher.BlockTooLargeError`).
    Trusts its inputs (the public functions validate).
    """
    n = X.shape[0]
    shapes = {nm: tensor_shape(net.param_shapes[nm], conv_modes) for nm in names}
    parts: dict = {nm: [] for nm in names}  # per chunk: (delta (nb, C, out), a (nb, in)) or X (nb, C, D)
    for sl in _chunks(n, chunk):
        nb = sl.stop - sl.start
        cols: dict = {nm: [] for nm in names}
        a_of: dict = {}
        for c, gd in enumerate(net.fisher_pseudo_grads(params, X[sl, ...], per_example="factored")):
            for nm in names:
                g = gd[nm]
                if isinstance(g, OuterGrad) and g.delta.shape[2] == 1 and len(shapes[nm]) == 2:
                    cols[nm].append(np.asarray(to_numpy(g.delta[:, :, 0]), dtype=np.float64))  # (nb, out)
                    if c == 0:  # a does not depend on the output column
                        a_of[nm] = np.asarray(to_numpy(g.a[:, :, 0]), dtype=np.float64)  # (nb, in)
                else:
                    gm = g.materialize() if isinstance(g, OuterGrad) else g
                    cols[nm].append(np.asarray(to_numpy(gm), dtype=np.float64).reshape(nb, -1))  # (nb, D)
        R = len(next(iter(cols.values()))) if cols else 0
        for nm in names:
            if nm not in a_of:
                D = math.prod(shapes[nm])
                need = n * R * D * 8
                if need > max_v_bytes:
                    raise BlockTooLargeError(
                        f"the explicit Gram factor V of {nm!r} (D = {D}, N = {n * R}) needs {need:,} bytes, above "
                        f"max_v_bytes={max_v_bytes:,}. Use fewer inputs `n`, pass fewer `names`, or raise `max_v_bytes`."
                    )
            stacked = np.stack(cols[nm], axis=1)  # (nb, C, out) or (nb, C, D)
            parts[nm].append((stacked, a_of.get(nm)))
    out = {}
    for nm in names:
        st = np.concatenate([p[0] for p in parts[nm]])
        if parts[nm][0][1] is not None:
            out[nm] = LowRankBlock(shapes[nm], n, delta=st, a=np.concatenate([p[1] for p in parts[nm]]))
        else:
            out[nm] = LowRankBlock(shapes[nm], n, X=st.reshape(-1, *shapes[nm]))
        if log is not None:
            log(f"{nm}: V collected (N = {out[nm].N}, D = {out[nm].D}, {'factored' if out[nm].outer else 'explicit'})")
    return out


def reshaped(blk: LowRankBlock, shape) -> LowRankBlock:
    """The same block viewed with another row-major tensor shape (e.g. KFAC's ``(C_out, C_in kh kw)``)."""
    shape = tuple(int(s) for s in shape)
    if shape == blk.tshape:
        return blk
    if math.prod(shape) != blk.D:
        raise ValueError(f"cannot view a block of tensor shape {blk.tshape} as {shape}.")
    X = blk.X
    if X is None:  # factored: materialize (only reached for 2-way linear weights, never in the ladder)
        X = np.einsum("icp,iq->icpq", blk.delta, blk.a).reshape(-1, *blk.tshape)
    return LowRankBlock(shape, blk.n, X=X.reshape(X.shape[0], *shape))


def small_block(blk: LowRankBlock) -> np.ndarray:
    """The dense ``(D, D)`` block, for ``k = 1`` tensors (biases) whose ``d_1^2 = D^2`` is in the budget."""
    Xf = blk.X.reshape(blk.X.shape[0], -1) if blk.X is not None else None
    if Xf is None:
        raise ValueError("small_block is for explicit (k = 1) blocks.")
    return Xf.T @ Xf / blk.n
