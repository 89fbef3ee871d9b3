"""Input checks shared by the public entry points.

Public functions validate once, here; private helpers trust their inputs. Every message names
the argument, says what was expected and what was received, and where possible how to fix it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from .backend import get_namespace


class TNTRefWarning(UserWarning):
    """Warnings raised by tnt-ref (numerical trouble that was handled, not hidden)."""


def warn(message: str, stacklevel: int = 3) -> None:
    """Emit a :class:`TNTRefWarning` pointing at the caller of the public function."""
    warnings.warn(message, TNTRefWarning, stacklevel=stacklevel)


def check_dtype(x: Any, name: str) -> None:
    """Refuse arrays whose dtype is not real floating or integer (complex, object, bool, strings)."""
    xp = get_namespace(x)
    dt = x.dtype
    if isinstance(dt, np.dtype) and dt.kind not in "fiu":  # object, str, bytes, datetime: no isdtype for them
        raise TypeError(f"`{name}` must hold real floating-point or integer numbers; got dtype {dt}.")
    if not xp.isdtype(dt, ("real floating", "integral")):
        raise TypeError(f"`{name}` must hold real floating-point or integer numbers; got dtype {dt}.")


def check_array(x: Any, name: str, *, ndim: int | None = None, min_ndim: int | None = None, finite: bool = True):
    """Check that ``x`` is a real (floating or integer) array with the expected number of axes and
    finite entries (``finite=False`` skips the finiteness read, e.g. on the hot path of a step)."""
    if not array_api_compat.is_array_api_obj(x):
        raise TypeError(f"`{name}` must be an array (numpy, cupy or array-api-strict); got {type(x).__name__}.")
    check_dtype(x, name)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} axes; got shape {tuple(x.shape)} ({x.ndim} axes).")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"`{name}` must have at least {min_ndim} axes; got shape {tuple(x.shape)}.")
    if finite:
        check_finite(x, name)
    return x


def check_finite(x: Any, name: str) -> None:
    """Raise if ``x`` holds NaN or Inf (nothing returns NaN silently)."""
    xp = get_namespace(x)
    if xp.isdtype(x.dtype, ("real floating", "complex floating")) and not bool(xp.all(xp.isfinite(x))):
        n_bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise ValueError(f"`{name}` contains {n_bad} NaN or Inf entries; all entries must be finite.")


def check_mode(mode: int, ndim: int, name: str = "mode") -> int:
    """Check a 0-based mode index against a tensor of ``ndim`` axes."""
    mode = check_int(mode, name)  # NumPy integers accepted
    if not 0 <= mode < ndim:
        raise ValueError(f"`{name}` must be in [0, {ndim - 1}] for a tensor with {ndim} modes; got {name}={mode}.")
    return mode


def check_number(value: Any, name: str) -> float:
    """A real scalar (Python or NumPy number, or a 0-d real array) as a float; strings and bools are refused."""
    if isinstance(value, (bool, np.bool_)) or not (
        isinstance(value, numbers.Real) or (array_api_compat.is_array_api_obj(value) and getattr(value, "ndim", 1) == 0)
    ):
        raise TypeError(f"`{name}` must be a real number; got {value!r} ({type(value).__name__}).")
    if array_api_compat.is_array_api_obj(value):
        check_dtype(value, name)
    return float(value)


def check_int(value: Any, name: str, *, min_value: int | None = None) -> int:
    """An integer (Python ``int`` or a NumPy integer; not ``bool``, not a float) as an ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; got {value!r} ({type(value).__name__}).")
    v = int(value)
    if min_value is not None and v < min_value:
        want = "a positive int" if min_value == 1 else f"an integer >= {min_value}"
        raise ValueError(f"`{name}` must be {want}; got {name}={v}.")
    return v


def check_unit_interval(value: Any, name: str) -> float:
    """A decay or momentum coefficient in ``[0, 1)``."""
    v = check_number(value, name)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"`{name}` must be in [0, 1); got {name}={value!r}.")
    return v


def check_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    """A ``numpy.random.Generator`` (randomness is explicit; ``None`` and global seeding are refused)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"`{name}` must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)); got {type(rng).__name__}."
        )
    return rng


def _is_linalg_error(err: BaseException) -> bool:
    return isinstance(err, np.linalg.LinAlgError) or "LinAlgError" in type(err).__name__


@contextlib.contextmanager
def linalg_errors(what: str, remedy: str):
    """Turn a ``LinAlgError`` (of any backend) raised inside the block into a ``ValueError`` that
    names the matrix (``what``) and the fix (``remedy``)."""
    try:
        yield
    except Exception as err:  # noqa: BLE001
        if not _is_linalg_error(err):
            raise
        raise ValueError(f"{what} failed ({err}); {remedy}") from None


def check_psd_factors(factors: Sequence[Any], name: str = "factors", *, definite: bool = False, rtol: float | None = None,
                      eigenvalues: Sequence[Any] | None = None):
    """Refuse factors that are not positive semi-definite (``definite=True``: positive definite).

    A factor passes if its smallest eigenvalue is ``>= -rtol * max|eigenvalue|`` (round-off);
    ``rtol`` defaults to ``d * 100 * eps`` of the dtype. Returns the eigenvalues (ascending) of each
    factor; pass ``eigenvalues`` (ascending, one array per factor) when they are already known.
    """
    xp = get_namespace(*factors)
    out = []
    for i, u in enumerate(factors):
        d = u.shape[0]
        if d == 0:
            out.append(xp.zeros((0,), dtype=u.dtype))
            continue
        uf = u if xp.isdtype(u.dtype, "real floating") else xp.astype(u, xp.float64)
        if eigenvalues is not None:
            lam = eigenvalues[i]
        else:
            with linalg_errors(f"the eigendecomposition of factor {i} of `{name}`",
                               "check that the factor is finite and symmetric."):
                lam = xp.linalg.eigvalsh((uf + uf.T) / 2)
        tol = (rtol if rtol is not None else d * 100 * float(xp.finfo(uf.dtype).eps)) * float(xp.max(xp.abs(lam)))
        lam_min = float(lam[0])
        if lam_min < -tol or (definite and lam_min <= tol):
            want = "positive definite" if definite else "positive semi-definite"
            raise ValueError(
                f"factor {i} of `{name}` must be symmetric {want}; its smallest eigenvalue is {lam_min:.3g} "
                f"(largest {float(lam[-1]):.3g}). An indefinite factor has no meaning here: use mode moments, "
                "tnt_factors or a damped factor (U + eps*I)."
            )
        out.append(lam)
    return out


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    """Check a positive (or non-negative) finite scalar; strings and bools are refused."""
    v = check_number(value, name)
    ok = v >= 0 if allow_zero else v > 0
    if not (ok and math.isfinite(v)):
        want = "non-negative" if allow_zero else "positive"
        raise ValueError(f"`{name}` must be {want} and finite; got {name}={value!r}.")
    return v


def check_param_dict(params: Any, name: str = "params") -> dict:
    """A ``dict`` name -> real array (the optimizers' and models' parameter trees); no host reads."""
    if not isinstance(params, dict):
        raise TypeError(f"`{name}` must be a dict name -> array; got {type(params).__name__}.")
    for k, v in params.items():
        check_array(v, f"{name}[{k!r}]", finite=False)
    return params


def check_square_factors(
    factors: Sequence[Any],
    name: str = "factors",
    *,
    shape: Sequence[int] | None = None,
    symmetric: bool = True,
    rtol: float = 1e-8,
):
    """Check a sequence of square (optionally symmetric) matrices, one per tensor mode."""
    if isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence) or len(factors) == 0:
        raise TypeError(f"`{name}` must be a non-empty list of square matrices; got {type(factors).__name__}.")
    xp = get_namespace(*factors)
    if shape is not None and len(factors) != len(shape):
        raise ValueError(f"`{name}` must have one factor per mode ({len(shape)}); got {len(factors)} factors.")
    for i, u in enumerate(factors):
        check_array(u, f"{name}[{i}]", ndim=2)
        if u.shape[0] != u.shape[1]:
            raise ValueError(f"factor {i} of `{name}` must be square; got shape {tuple(u.shape)}.")
        if u.shape[0] == 0:
            raise ValueError(f"factor {i} of `{name}` is empty (shape (0, 0)); every mode needs size >= 1.")
        if shape is not None and u.shape[0] != shape[i]:
            raise ValueError(
                f"factor {i} of `{name}` has shape {tuple(u.shape)}, expected ({shape[i]}, {shape[i]}) "
                f"to match mode {i} of the tensor (size {shape[i]})."
            )
        if symmetric:
            asym = float(xp.max(xp.abs(u - u.T))) if u.shape[0] else 0.0
            scale = float(xp.max(xp.abs(u))) if u.shape[0] else 0.0
            if asym > rtol * max(scale, 1e-300):
                raise ValueError(
                    f"factor {i} of `{name}` must be symmetric; max |U - U^T| = {asym:.3g} "
                    f"(relative {asym / max(scale, 1e-300):.3g} > {rtol:g}). Symmetrize it with (U + U.T) / 2."
                )
    # integer factors are accepted and computed with in float64 (no integer finfo, no integer overflow)
    return [u if xp.isdtype(u.dtype, "real floating") else xp.astype(u, xp.float64) for u in factors]


def cholesky_factors(factors: Sequence[Any], name: str = "factors"):
    """Check that every factor is symmetric positive definite; return their lower Cholesky factors.

    NumPy raises ``LinAlgError`` on an indefinite matrix while CuPy returns NaN; both become the
    same ``ValueError`` that reports the smallest eigenvalue of the offending factor.
    """
    xp = get_namespace(*factors)
    chols = []
    for i, u in enumerate(factors):
        try:
            lower = xp.linalg.cholesky(u)
            ok = bool(xp.all(xp.isfinite(lower)))
        except Exception as err:  # noqa: BLE001  (LinAlgError and its backend equivalents)
            if not _is_linalg_error(err) and "linalg" not in type(err).__module__.lower():
                raise
            ok = False
        if not ok:
            lam_min = float(xp.min(xp.linalg.eigvalsh(u)))
            raise ValueError(
                f"factor {i} of `{name}` must be symmetric positive definite; its Cholesky factorization "
                f"failed (smallest eigenvalue {lam_min:.3g}). Add damping (U + eps*I) or check the factor."
            )
        chols.append(lower)
    return chols


def check_samples(samples: Any, name: str = "samples", *, min_n: int = 1):
    """Check a stack of sample tensors of shape ``(n, d_1, ..., d_k)``."""
    check_array(samples, name, min_ndim=2)
    if samples.shape[0] < min_n:
        raise ValueError(
            f"`{name}` must hold at least {min_n} sample(s) along axis 0 (shape (n, d_1, ..., d_k)); "
            f"got shape {tuple(samples.shape)}."
        )
    if any(d < 1 for d in samples.shape[1:]):
        raise ValueError(f"`{name}` must have non-empty modes; got shape {tuple(samples.shape)}.")
    return samples
