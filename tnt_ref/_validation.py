"""Input checks shared by the public entry points.

Public functions validate once, here; private helpers trust their inputs. Every message names
the argument, says what was expected and what was received, and where possible how to fix it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
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
        check_statistics_dtype(u, f"{name}[{i}]")
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
        lam = xp.linalg.eigvalsh((u + u.T) / 2)
        if not ok:
            lam_min = float(lam[0])
            tol = lam.shape[0] * 100 * float(xp.finfo(lam.dtype).eps) * float(xp.max(xp.abs(lam)))
            kind = "it is indefinite" if lam_min < -tol else "it is rank-deficient: singular to working precision"
            raise ValueError(
                f"factor {i} of `{name}` must be symmetric positive definite; its Cholesky factorization "
                f"failed ({kind}: smallest eigenvalue {lam_min:.3g}). Add damping (U + eps*I) or check the factor."
            )
        # Cholesky can succeed on a factor that is singular to working precision (a rank-1 estimate from one
        # sample): its densities and KL divergences would be huge finite numbers instead of +inf. Refuse it.
        check_definite(lam, f"{name}[{i}]", "factor",
                       "a tensor normal needs positive definite factors: add samples, or damping (U + eps*I)")
        chols.append(lower)
    return chols


def check_samples(samples: Any, name: str = "samples", *, min_n: int = 1):
    """Check a stack of sample tensors of shape ``(n, d_1, ..., d_k)``."""
    check_array(samples, name, min_ndim=2)
    check_statistics_dtype(samples, name)
    if samples.shape[0] < min_n:
        raise ValueError(
            f"`{name}` must hold at least {min_n} sample(s) along axis 0 (shape (n, d_1, ..., d_k)); "
            f"got shape {tuple(samples.shape)}."
        )
    if any(d < 1 for d in samples.shape[1:]):
        raise ValueError(f"`{name}` must have non-empty modes; got shape {tuple(samples.shape)}.")
    return samples


# ----------------------------------------------------------------------------- kinds added by issue 24
def check_real(value: Any, name: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """A finite real number in ``[low, high]`` (``low_open``/``high_open``: the open end); NaN and
    Inf are refused with the argument's name (a NaN tolerance would make every comparison false)."""
    v = check_number(value, name)
    lo_ok = low is None or (v > low if low_open else v >= low)
    hi_ok = high is None or (v < high if high_open else v <= high)
    if not (math.isfinite(v) and lo_ok and hi_ok):
        lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
        rng_ = f" in {lo or '(-inf'}, {hi or 'inf)'}" if (low is not None or high is not None) else ""
        raise ValueError(f"`{name}` must be a finite number{rng_}; got {name}={value!r}.{(' ' + hint) if hint else ''}")
    return v


def check_tolerance(value: Any, name: str = "tol") -> float:
    """A convergence or comparison tolerance: finite, in ``(0, 1)`` (NaN would never converge)."""
    return check_real(value, name, low=0.0, high=1.0, low_open=True, high_open=True,
                      hint="A tolerance is a small positive relative error such as 1e-10.")


def check_seed(value: Any, name: str = "seed") -> int:
    """A random seed: a non-negative integer (``numpy.random.default_rng`` refuses negative ones
    without naming the argument)."""
    return check_int(value, name, min_value=0)


def check_size(value: Any, name: str, *, min_value: int = 1) -> int:
    """A size, count, width, stride or kernel: an integer (not ``2.5``, which would be truncated)
    ``>= min_value`` (1 by default: zero classes, zero stride or an empty kernel are refused)."""
    return check_int(value, name, min_value=min_value)


def check_unique(names: Sequence[str], what: str, fix: str = "give each one its own name") -> None:
    """Refuse repeated names (two layers called ``fc1`` would share one parameter)."""
    seen, dup = set(), []
    for n in names:
        if n in seen and n not in dup:
            dup.append(n)
        seen.add(n)
    if dup:
        raise ValueError(f"{what} must be unique; {dup} appear more than once: {fix}.")


#: Floating types too narrow for second moments: float16's largest value is 65504, so the mode
#: moments of a few hundred entries of size 10 already overflow.
_NARROW_FLOATS = ("float16", "bfloat16")


def check_statistics_dtype(x: Any, name: str) -> None:
    """Refuse floating types that cannot hold the statistics formed from ``x`` (float16: its
    squares overflow at 256 and its sums at 65504); float32 and float64 are accepted."""
    dt = getattr(x, "dtype", None)
    if dt is not None and str(dt).rsplit(".", 1)[-1] in _NARROW_FLOATS:
        raise TypeError(f"`{name}` has dtype {dt}, which cannot hold its second moments (largest value "
                        f"{float(np.finfo(np.float16).max):g}: they overflow to inf); convert it to float32 or float64.")


def check_covariance(C: Any, name: str, *, definite: bool = False, rtol: float = 1e-8):
    """A covariance matrix: square, finite, symmetric (``max|C - C^T| <= rtol * max|C|``) and positive
    semi-definite (``definite=True``: positive definite to working precision).

    An indefinite matrix (a negative eigenvalue beyond round-off) and a rank-deficient one (PSD,
    singular to working precision) are told apart in the message. Returns ``C`` symmetrized.
    """
    check_array(C, name, ndim=2)
    check_statistics_dtype(C, name)
    if C.shape[0] != C.shape[1] or C.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty square covariance matrix; got shape {tuple(C.shape)}.")
    xp = get_namespace(C)
    Cf = C if xp.isdtype(C.dtype, "real floating") else xp.astype(C, xp.float64)
    scale = float(xp.max(xp.abs(Cf)))
    asym = float(xp.max(xp.abs(Cf - Cf.T)))
    if asym > rtol * max(scale, 1e-300):
        raise ValueError(f"`{name}` must be symmetric (a covariance); max |C - C^T| = {asym:.3g}, relative "
                         f"{asym / max(scale, 1e-300):.3g} > {rtol:g}. Symmetrize it with (C + C.T) / 2 if the "
                         "asymmetry is round-off; otherwise it is not a covariance.")
    S = (Cf + Cf.T) / 2
    with linalg_errors(f"the eigendecomposition of `{name}`", "check that it is finite and symmetric."):
        lam = xp.linalg.eigvalsh(S)
    if definite:
        check_definite(lam, name, "covariance", "add samples, or damping (C + eps*I)")
    else:
        d, lam_min = lam.shape[0], float(lam[0])
        if lam_min < -d * 100 * float(xp.finfo(lam.dtype).eps) * float(xp.max(xp.abs(lam))):
            raise ValueError(f"covariance `{name}` is indefinite (smallest eigenvalue {lam_min:.3g}, largest "
                             f"{float(lam[-1]):.3g}): it is not a covariance; check how it was formed.")
    return S


def check_definite(lam: Any, name: str, what: str = "factor", remedy: str = "add samples or damping (U + eps*I)") -> None:
    """Given the ascending eigenvalues ``lam`` of a symmetric matrix, refuse an indefinite one and a
    rank-deficient one (singular to working precision: ``lam_min <= d * 100 * eps * lam_max``) with
    different messages: the first is not a covariance at all, the second needs more samples."""
    xp = get_namespace(lam)
    d = lam.shape[0]
    lam_min, lam_max = float(lam[0]), float(lam[-1])
    tol = d * 100 * float(xp.finfo(lam.dtype).eps) * max(abs(lam_min), abs(lam_max))
    if lam_min < -tol:
        raise ValueError(f"{what} `{name}` is indefinite (smallest eigenvalue {lam_min:.3g}, largest {lam_max:.3g}): "
                         "it is not a covariance; check how it was formed (a damped or moment estimate is PSD).")
    if lam_min <= tol:
        raise ValueError(f"{what} `{name}` is rank-deficient (positive semi-definite but singular to working "
                         f"precision: smallest eigenvalue {lam_min:.3g}, largest {lam_max:.3g}); {remedy}.")


# ----------------------------------------------------------------------------- the memory guard
class DenseTooLargeError(ValueError):
    """A dense array would exceed :data:`MAX_DENSE_BYTES`; raised before anything is allocated."""


def _env_limit() -> int:
    text = os.environ.get("TNT_REF_MAX_DENSE_BYTES", "")
    try:
        return int(float(text)) if text else 1 << 30
    except ValueError:
        warn(f"TNT_REF_MAX_DENSE_BYTES={text!r} is not a number of bytes; using 1 GiB.")
        return 1 << 30


#: Largest dense array (bytes) a public function forms before refusing with
#: :class:`DenseTooLargeError`: 1 GiB unless the environment variable ``TNT_REF_MAX_DENSE_BYTES``
#: says otherwise; change it for a block of code with :func:`dense_limit`, or assign
#: ``tnt_ref._validation.MAX_DENSE_BYTES``.
MAX_DENSE_BYTES: int = _env_limit()


@contextlib.contextmanager
def dense_limit(max_bytes: int):
    """Raise (or lower) :data:`MAX_DENSE_BYTES` inside a ``with`` block::

        with tnt_ref.dense_limit(8 << 30):
            K = KroneckerMatrix(factors).dense()
    """
    global MAX_DENSE_BYTES
    new = check_int(max_bytes, "max_bytes", min_value=1)
    old, MAX_DENSE_BYTES = MAX_DENSE_BYTES, new
    try:
        yield new
    finally:
        MAX_DENSE_BYTES = old


def _bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def check_dense_size(shape: Sequence[int], itemsize: int, what: str, remedy: str, *, limit: int | None = None,
                     error: type = DenseTooLargeError, limit_name: str | None = None) -> int:
    """Refuse, before allocating, a dense array of ``shape`` with ``itemsize``-byte entries larger
    than ``limit`` (default :data:`MAX_DENSE_BYTES`). ``what`` names the object, ``remedy`` the way
    around it (the operator, the Gram path, fewer samples); ``limit_name`` the argument that sets
    ``limit`` where it is not the module's. Python integers: no overflow. Returns the bytes."""
    n = 1
    for s in shape:
        n *= int(s)
    need = n * int(itemsize)
    lim = MAX_DENSE_BYTES if limit is None else int(limit)
    if need > lim:
        raise error(
            f"{what} would be a dense array of shape {tuple(int(s) for s in shape)} ({_bytes(need)}), above the limit "
            f"of {_bytes(lim)}. {remedy} "
            + (f"(The limit: `{limit_name}`={lim:,}.)" if limit_name else
               "(The limit: tnt_ref.dense_limit(bytes) for a block of code, or the environment variable "
               "TNT_REF_MAX_DENSE_BYTES.)")
        )
    return need


def itemsize_of(x: Any, default: int = 8) -> int:
    """Bytes per entry of an array's dtype (``default`` for non-arrays)."""
    dt = getattr(x, "dtype", None)
    if dt is None:
        return default
    try:
        return int(np.dtype(dt).itemsize)  # NumPy and CuPy dtypes
    except TypeError:
        pass
    xp = get_namespace(x)  # array-api-strict and other namespaces: from finfo/iinfo
    for info in (xp.finfo, xp.iinfo):
        try:
            return int(info(dt).bits) // 8
        except (TypeError, ValueError):
            continue
    return default


# ----------------------------------------------------------------------------- optimizer state
def check_opt_state(state: Any, state_type: type | None, optimizer: str, params: dict, name: str = "state") -> None:
    """``state`` was made by this optimizer's ``init`` for these ``params``: its type is the
    optimizer's state NamedTuple and its per-parameter dicts are keyed by the parameter names
    (momentum buffers of the parameters' shapes). Otherwise a ``TypeError``/``ValueError`` that names
    both optimizers, never an ``AttributeError`` from inside the update."""
    if state_type is not None and not isinstance(state, state_type):
        got = type(state).__name__
        raise TypeError(f"`{name}` is a {got}, not the {state_type.__name__} of optimizer {optimizer!r}: pass the "
                        f"state made by this optimizer's init (opt.init(params)); a state is not shared between optimizers.")
    if not (isinstance(state, tuple) and hasattr(state, "_fields")):
        raise TypeError(f"`{name}` must be the NamedTuple made by {optimizer}'s init; got {type(state).__name__}.")
    keys = set(params)
    for f in state._fields:
        d = getattr(state, f)
        if not isinstance(d, dict):
            continue
        extra = sorted(set(d) - keys)
        missing = sorted(keys - set(d)) if f in ("momentum", "mu", "nu") else []
        if extra or missing:
            raise ValueError(f"`{name}`.{f} does not match `params`: missing {missing}, unexpected {extra}. The state "
                             "belongs to other parameters (another model); make it with opt.init(params).")
        if f in ("momentum", "mu", "nu"):
            for k, v in d.items():
                if tuple(getattr(v, "shape", ())) != tuple(params[k].shape):
                    raise ValueError(f"`{name}`.{f}[{k!r}] has shape {tuple(getattr(v, 'shape', ()))}, but params[{k!r}] "
                                     f"has shape {tuple(params[k].shape)}: the state belongs to another model; "
                                     "make it with opt.init(params).")


def check_matching_keys(d: Any, params: dict, name: str, *, shapes: bool = True) -> None:
    """``d`` (gradients and the like) is a dict with the same keys as ``params`` and, with ``shapes``,
    arrays of the same shapes."""
    check_param_dict(d, name)
    if set(d) != set(params):
        missing, extra = sorted(set(params) - set(d)), sorted(set(d) - set(params))
        raise ValueError(f"`{name}` must have the keys of `params`; missing {missing}, unexpected {extra}.")
    if shapes:
        for k, v in d.items():
            if tuple(v.shape) != tuple(params[k].shape):
                raise ValueError(f"`{name}`[{k!r}] has shape {tuple(v.shape)}, expected {tuple(params[k].shape)} "
                                 "(the shape of the parameter).")
