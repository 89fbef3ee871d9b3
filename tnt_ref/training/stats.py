"""Statistics over seeds: means with Student-t intervals, Welch intervals of differences, verdicts.

Used by the comparison protocol (:mod:`tnt_ref.training.protocol`) and by the summaries of
``tnt-ref train --seeds``; imports NumPy and SciPy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["mean_ci", "difference_ci", "verdict"]


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean and two-sided Student-t confidence interval over seeds.

    Returns ``{"mean", "ci_low", "ci_high", "n"}``; with fewer than 2 values the interval is
    ``None`` (unknown), with none the mean is ``None`` too.

    >>> r = mean_ci([1.0, 2.0, 3.0]); round(r["mean"], 12), round(r["ci_high"] - 2.0, 6)  # t_{0.975, 2} = 4.302653
    (2.0, 2.484138)
    """
    from scipy import stats  # noqa: PLC0415

    v = np.asarray([float(x) for x in values], dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": 1}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def difference_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """``mean(a) - mean(b)`` with a Welch confidence interval (unequal variances); ``None`` bounds below 2 values each."""
    from scipy import stats  # noqa: PLC0415

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None}
    d = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return {"mean": d, "ci_low": None, "ci_high": None}
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return {"mean": d, "ci_low": d, "ci_high": d}
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof) * se)
    return {"mean": d, "ci_low": d - half, "ci_high": d + half}


def verdict(a: Sequence[float], b: Sequence[float], *, better: str, margin: float = 0.0) -> dict:
    """Does ``a`` beat ``b`` (``better="lower"`` or ``"higher"``), up to ``margin``? Judged by the Welch 95% interval.

    The claim is ``mean(a) < mean(b) + margin`` (lower) or ``mean(a) > mean(b) - margin`` (higher).
    ``"holds"`` when the whole interval of ``a - b`` is on the claim's side of the margin, ``"does
    not hold"`` when it is wholly on the other side, ``"not resolved at this scale"`` otherwise
    (or with fewer than 2 seeds on a side).

    >>> verdict([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], better="lower")["verdict"]
    'holds'
    >>> verdict([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], better="higher")["verdict"]
    'does not hold'
    >>> verdict([1.0, 3.0, 2.0], [2.0, 2.5, 1.5], better="lower")["verdict"]
    'not resolved at this scale'
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"`better` must be 'lower' or 'higher'; got better={better!r}.")
    d = difference_ci(a, b)
    out = {"difference": d, "margin": float(margin), "better": better, "n_a": len(a), "n_b": len(b)}
    if d["ci_low"] is None:
        return {**out, "verdict": "not resolved at this scale"}
    if better == "lower":
        ok, bad = d["ci_high"] < margin, d["ci_low"] > margin
    else:
        ok, bad = d["ci_low"] > -margin, d["ci_high"] < -margin
    return {**out, "verdict": "holds" if ok else "does not hold" if bad else "not resolved at this scale"}
