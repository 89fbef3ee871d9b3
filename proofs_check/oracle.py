"""A dense oracle of Algorithm 2's step, written from the spec (sections 3 and 7) with NumPy only.

It shares nothing with :mod:`tnt_ref` but the recorded inputs: the mode moments by explicit
unfoldings, the EMA over the warm start and the sampled-label gradients of the batches *before*
``k``, TNT's scale rule (spec section 3: ``c = (tau / D)^(1/k)``, ``U_i = S_i / (c^(k-1) D / d_i)``),
the damped Kronecker product formed densely, and ``numpy.linalg.solve``. :func:`step_oracle`
compares every step the optimizer took with ``x_{k+1} = x_k - alpha (kron_i (U_i + eps I))^{-1} g_k``.
A step that ascends, applies ``U + eps I`` instead of its inverse, adds momentum, reads batch
``k``'s statistics, swaps the EMA weights or uses another ``alpha`` does not match.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["oracle_factors", "oracle_damped", "step_oracle", "tensor_shape_of"]


def tensor_shape_of(shape) -> tuple:
    """Spec section 6: a conv kernel ``(C_out, C_in, kh, kw)`` as ``(C_out, C_in, kh*kw)``; others as they are."""
    shape = tuple(int(s) for s in shape)
    return (shape[0], shape[1], shape[2] * shape[3]) if len(shape) == 4 else shape


def _moments(G) -> list:
    return [np.moveaxis(G, i, 0).reshape(G.shape[i], -1) @ np.moveaxis(G, i, 0).reshape(G.shape[i], -1).T for i in range(G.ndim)]


def oracle_factors(trace, k: int, name: str, beta: float) -> list:
    """``U_i`` of ``H_k`` for parameter ``name``: EMA (weight ``beta`` on the past) of the moments of the
    warm start and of the sampled gradients of steps ``0..k-1``, then TNT's scale rule."""
    ts = tensor_shape_of(trace.iterates[0][name].shape)
    S = _moments(np.reshape(trace.warm[name], ts))
    for j in range(k):
        M = _moments(np.reshape(trace.sampled[j][name], ts))
        S = [beta * s + (1 - beta) * mm for s, mm in zip(S, M)]
    order, D = len(ts), math.prod(ts)
    tau = float(np.trace(S[0]))
    if tau == 0.0:
        return [np.zeros_like(s) for s in S]
    c = (tau / D) ** (1.0 / order)
    return [s / (c ** (order - 1) * D / d) for s, d in zip(S, ts)]


def oracle_damped(trace, k: int, name: str, beta: float, eps: float) -> np.ndarray:
    """Dense ``H_k^{-1} = kron_i (U_i + eps I)`` for parameter ``name``."""
    U = oracle_factors(trace, k, name, beta)
    K = np.ones((1, 1))
    for u in U:
        K = np.kron(K, u + eps * np.eye(u.shape[0]))
    return K


def step_oracle(trace, *, alpha: float, eps: float, beta: float, tol: float = 1e-8) -> tuple[bool, dict]:
    """Every recorded step against the dense oracle: relative error of ``x_{k+1} - x_k`` against
    ``-alpha H_k g_k`` (``alpha``, ``eps``, ``beta`` given by the check, not read from the run)."""
    worst, at = 0.0, None
    for k in range(trace.steps):
        if k + 1 >= len(trace.iterates):
            break
        x, x1, g = trace.iterates[k], trace.iterates[k + 1], trace.grads[k]
        for name in x:
            want = -alpha * np.linalg.solve(oracle_damped(trace, k, name, beta, eps), np.reshape(g[name], -1))
            got = np.reshape(x1[name] - x[name], -1)
            err = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))
            if math.isnan(err) or (not math.isnan(worst) and err > worst):  # NaN counts as the worst, and stays
                worst, at = err, f"step {k}, {name}"
    ok = worst <= tol and trace.steps > 0 and not trace.stopped
    return ok, {"steps": trace.steps, "max_relative_step_error": worst, "worst_at": at, "stopped": trace.stopped}
