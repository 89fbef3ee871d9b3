"""Adam (Kingma & Ba 2015) with decoupled weight decay (AdamW, Loshchilov & Hutter 2019)."""

from __future__ import annotations

from typing import NamedTuple

from .._validation import check_param_dict, check_positive, check_unit_interval
from ..backend import get_namespace
from .base import Optimizer, check_hyper

__all__ = ["AdamState", "adam"]


class AdamState(NamedTuple):
    """step: int, updates done; mu: dict of first moments; nu: dict of second moments (parameter shapes)."""

    step: int
    mu: dict
    nu: dict


def adam(learning_rate: float, *, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """``m = b1 m + (1-b1) g``; ``n = b2 n + (1-b2) g^2``; ``W -= alpha (m_hat / (sqrt(n_hat) + eps) + gamma W)``."""
    check_hyper(learning_rate=learning_rate, weight_decay=weight_decay)
    b1, b2 = check_unit_interval(b1, "b1"), check_unit_interval(b2, "b2")
    eps = check_positive(eps, "eps")
    alpha, gamma = float(learning_rate), float(weight_decay)

    def init(params: dict) -> AdamState:
        check_param_dict(params)
        z = {k: get_namespace(p).zeros_like(p) for k, p in params.items()}
        return AdamState(0, z, dict(z))

    def update(grads: dict, state: AdamState, params: dict):
        t = state.step + 1
        m = {k: b1 * state.mu[k] + (1 - b1) * g for k, g in grads.items()}
        n = {k: b2 * state.nu[k] + (1 - b2) * g * g for k, g in grads.items()}
        c1, c2 = 1 - b1**t, 1 - b2**t
        upd = {}
        for k, p in params.items():
            xp = get_namespace(p)
            upd[k] = -alpha * ((m[k] / c1) / (xp.sqrt(n[k] / c2) + eps) + gamma * p)
        return upd, AdamState(t, m, n)

    hyper = dict(learning_rate=alpha, b1=b1, b2=b2, eps=eps, weight_decay=gamma)
    return Optimizer("adam", init, update, hyper=hyper)
