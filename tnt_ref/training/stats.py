"""Statistics over seeds: intervals that stay in their quantity's range, differences and ratios, verdicts.

Every interval is a two-sided Student-t interval over seeds, taken on the scale where the
quantity is unbounded and mapped back, so that it never leaves the quantity's range:

==========  ==================================  ===============================================
``scale``   for                                 center and interval
==========  ==================================  ===============================================
``log``     positive quantities: losses,        geometric mean ``exp(mean log x)``; t-interval of
            seconds, epochs                     ``log x`` mapped by ``exp`` (never below 0)
``logit``   proportions: accuracies             ``expit(mean logit x)``; t-interval of ``logit x``
                                                mapped by ``expit`` (inside (0, 1)); a value of
                                                exactly 0 or 1 is read as 0.5 / n or 1 - 0.5 / n
                                                with ``n`` the number of test images (``trials``)
``linear``  unbounded quantities                arithmetic mean; t-interval
==========  ==================================  ===============================================

Comparisons (:func:`difference_ci`, :func:`verdict`) use the same scales: on ``log`` the ratio
``a / b`` (geometric means) with a Welch interval of the difference of logs, mapped by ``exp``; on
``logit`` the difference of the centers ``expit(La) - expit(Lb)`` with the Welch interval of
``La - Lb`` mapped at ``b``'s center (``expit(Lb + d) - expit(Lb)``, inside (-1, 1)); on ``linear``
the Welch interval of the difference of means. :data:`METHODS` names each, for tables and docs.

Used by the comparison protocol (:mod:`tnt_ref.training.protocol`) and by the summaries of
``tnt-ref train --seeds``; imports NumPy and SciPy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["mean_ci", "difference_ci", "verdict", "SCALES", "METHODS"]

SCALES = ("log", "logit", "linear")

#: How each scale's center and interval are computed, in the words the tables use.
METHODS = {
    "log": "geometric mean [95% Student-t interval on the log scale]",
    "logit": "mean on the logit scale [95% Student-t interval on the logit scale]",
    "linear": "mean [95% Student-t interval]",
}


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"`scale` must be one of {SCALES}; got scale={scale!r}.")


def _transform(v: np.ndarray, scale: str, trials: int | None, name: str) -> np.ndarray:
    """Values on the scale where the interval is taken (checked against the quantity's range)."""
    if scale == "linear":
        return v
    if scale == "log":
        if np.any(~(v > 0)):
            raise ValueError(f"`{name}` must be positive for scale='log' (losses, seconds, epochs); got {v.tolist()}.")
        return np.log(v)
    if np.any((v < 0) | (v > 1)) or np.any(np.isnan(v)):
        raise ValueError(f"`{name}` must be proportions in [0, 1] for scale='logit'; got {v.tolist()}.")
    edge = (v == 0) | (v == 1)
    if np.any(edge):
        if trials is None:
            raise ValueError(f"`{name}` holds a proportion of exactly 0 or 1, whose logit is infinite: give `trials` "
                             "(the number of test images) to read it as 0.5 / trials or 1 - 0.5 / trials.")
        v = np.where(v == 0, 0.5 / trials, np.where(v == 1, 1 - 0.5 / trials, v))
    return np.log(v) - np.log1p(-v)


def _back(x: float, scale: str) -> float:
    if scale == "log":
        return math.exp(x)
    if scale == "logit":
        return 1.0 / (1.0 + math.exp(-x))
    return x


def mean_ci(values: Sequence[float], level: float = 0.95, *, scale: str = "linear", trials: int | None = None) -> dict:
    """Center and two-sided Student-t confidence interval over seeds, on ``scale`` (see the module's table).

    Returns ``{"mean", "ci_low", "ci_high", "n", "scale", "arithmetic_mean"}``: ``mean`` is the
    center on the interval's scale (the geometric mean for ``"log"``), so the interval always
    holds it; ``arithmetic_mean`` is the plain mean, for reference. With fewer than 2 values the
    interval is ``None`` (unknown), with none the center is ``None`` too.

    Raises
    ------
    ValueError
        A value outside the scale's range (``log``: not positive; ``logit``: outside [0, 1], or
        exactly 0 or 1 without ``trials``).

    >>> r = mean_ci([1.0, 2.0, 3.0]); round(r["mean"], 12), round(r["ci_high"] - 2.0, 6)  # t_{0.975, 2} = 4.302653
    (2.0, 2.484138)
    >>> r = mean_ci([0.01, 0.1, 1.0], scale="log"); round(r["mean"], 12), r["ci_low"] > 0  # a loss never below 0
    (0.1, True)
    >>> r = mean_ci([0.9, 0.99, 1.0], scale="logit", trials=300); r["ci_high"] < 1  # an accuracy never above 1
    True
    """
    from scipy import stats  # noqa: PLC0415

    _check_scale(scale)
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    n = int(v.size)
    base = {"scale": scale}
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0, **base, "arithmetic_mean": None}
    z = _transform(v, scale, trials, "values")
    center = float(z.mean())
    out = {"mean": _back(center, scale), "n": n, **base, "arithmetic_mean": float(v.mean())}
    if n < 2:
        return {**out, "ci_low": None, "ci_high": None}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * z.std(ddof=1) / math.sqrt(n))
    return {**out, "ci_low": _back(center - half, scale), "ci_high": _back(center + half, scale)}


def difference_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95, *, scale: str = "linear",
                  trials: int | None = None) -> dict:
    """``a`` against ``b`` with a Welch interval (unequal variances) on ``scale``.

    Returns ``{"mean", "ci_low", "ci_high", "scale", "kind"}``: ``kind`` is ``"ratio"`` on the
    log scale (``mean`` is the ratio of geometric means ``a / b``, the interval stays positive) and
    ``"difference"`` otherwise (``a - b``; on the logit scale a difference of proportions, inside
    (-1, 1)). ``None`` bounds below 2 values on either side.

    >>> d = difference_ci([2.0, 2.2, 1.8], [1.0, 1.1, 0.9], scale="log"); d["kind"], round(d["mean"], 3), d["ci_low"] > 0
    ('ratio', 2.0, True)
    """
    from scipy import stats  # noqa: PLC0415

    _check_scale(scale)
    kind = "ratio" if scale == "log" else "difference"
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = {"scale": scale, "kind": kind}
    if a.size == 0 or b.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, **out}
    za, zb = _transform(a, scale, trials, "a"), _transform(b, scale, trials, "b")
    d = float(za.mean() - zb.mean())
    lb = float(zb.mean())

    def back(x: float) -> float:  # a difference on the transformed scale, in the quantity's terms
        if scale == "log":
            return math.exp(x)
        if scale == "logit":
            return _back(lb + x, "logit") - _back(lb, "logit")
        return x

    est = back(d)
    if a.size < 2 or b.size < 2:
        return {"mean": est, "ci_low": None, "ci_high": None, **out}
    va, vb = za.var(ddof=1) / a.size, zb.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return {"mean": est, "ci_low": est, "ci_high": est, **out}
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof) * se)
    return {"mean": est, "ci_low": back(d - half), "ci_high": back(d + half), **out}


def verdict(a: Sequence[float], b: Sequence[float], *, better: str, margin: float = 0.0, scale: str = "linear",
            trials: int | None = None) -> dict:
    """Does ``a`` beat ``b`` (``better="lower"`` or ``"higher"``), up to ``margin``? Judged by :func:`difference_ci`'s 95% interval.

    The claim, by scale: ``linear`` and ``logit`` (``margin`` absolute, e.g. 0.01 = one accuracy
    point): ``a < b + margin`` (lower) or ``a > b - margin`` (higher); ``log`` (``margin``
    relative, e.g. 0.05 = 5%): ``a / b < 1 + margin`` (lower) or ``a / b > 1 - margin`` (higher).
    ``"holds"`` when the whole interval is on the claim's side of its threshold, ``"does not
    hold"`` when it is wholly on the other side, ``"not resolved at this scale"`` otherwise (or
    with fewer than 2 seeds on a side). The result carries ``threshold``, the bound the interval
    was compared with (a ratio on the log scale, a difference otherwise).

    >>> verdict([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], better="lower")["verdict"]
    'holds'
    >>> verdict([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], better="higher")["verdict"]
    'does not hold'
    >>> verdict([1.0, 3.0, 2.0], [2.0, 2.5, 1.5], better="lower")["verdict"]
    'not resolved at this scale'
    >>> verdict([1.02, 1.03, 1.01], [1.0, 1.01, 0.99], better="lower", margin=0.05, scale="log")["verdict"]
    'holds'
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"`better` must be 'lower' or 'higher'; got better={better!r}.")
    d = difference_ci(a, b, scale=scale, trials=trials)
    sign = 1.0 if better == "lower" else -1.0
    threshold = 1.0 + sign * margin if scale == "log" else sign * margin
    out = {"difference": d, "margin": float(margin), "threshold": threshold, "better": better, "scale": scale,
           "n_a": len(a), "n_b": len(b)}
    if d["ci_low"] is None:
        return {**out, "verdict": "not resolved at this scale"}
    if better == "lower":
        ok, bad = d["ci_high"] < threshold, d["ci_low"] > threshold
    else:
        ok, bad = d["ci_low"] > threshold, d["ci_high"] < threshold
    return {**out, "verdict": "holds" if ok else "does not hold" if bad else "not resolved at this scale"}
