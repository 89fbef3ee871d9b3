"""Array backends: the namespace comes from the inputs, as in SciPy.

Every numerical function of :mod:`tnt_ref` starts with ``xp = get_namespace(x)`` and then uses
only the subset of NumPy that the array API standard, CuPy and ``array-api-strict`` share
(``tensordot``, ``matmul``, ``moveaxis``, ``linalg.eigh``, ``linalg.cholesky``, ...). There is no
global backend switch: the command line's ``--backend cupy`` only decides where data and
parameters are created (:func:`asarray`).

This is the only module that imports CuPy, and it does so lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "BACKENDS",
    "BackendError",
    "get_namespace",
    "scipy_namespace",
    "to_numpy",
    "asarray",
    "namespace_for",
    "is_numpy",
    "is_cupy",
    "cupy_available",
]

#: Names accepted by :func:`namespace_for` and the command line's ``--backend``.
BACKENDS = ("numpy", "cupy", "array-api-strict")


class BackendError(RuntimeError):
    """A requested array backend cannot be used on this machine."""


def get_namespace(*arrays: Any):
    """Return the array-API namespace of ``arrays`` (via array-api-compat).

    Python scalars and ``None`` are ignored. Mixing backends is an error.
    """
    arrs = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool, complex))]
    if not arrs:
        return array_api_compat.array_namespace(np.empty(0))
    try:
        return array_api_compat.array_namespace(*arrs)
    except TypeError as err:
        kinds = sorted({type(a).__module__ + "." + type(a).__name__ for a in arrs})
        raise TypeError(
            f"expected arrays of one array-API backend (numpy, cupy or array-api-strict); got {kinds}. "
            "Convert all inputs with tnt_ref.backend.asarray(x, backend) first."
        ) from err


def is_numpy(xp) -> bool:
    """True if ``xp`` is NumPy (or array-api-compat's NumPy wrapper)."""
    return array_api_compat.is_numpy_namespace(xp)


def is_cupy(xp) -> bool:
    """True if ``xp`` is CuPy (or array-api-compat's CuPy wrapper)."""
    return array_api_compat.is_cupy_namespace(xp)


def scipy_namespace(xp):
    """Return ``scipy`` for NumPy-like namespaces and ``cupyx.scipy`` for CuPy.

    ``array-api-strict`` has no SciPy; callers that need SciPy for it convert with
    :func:`to_numpy` (only :meth:`tnt_ref.kronecker.KroneckerMatrix.as_linear_operator` does).
    """
    if is_cupy(xp):
        import cupyx.scipy  # noqa: PLC0415  (lazy: CuPy is optional)
        import cupyx.scipy.sparse.linalg  # noqa: F401,PLC0415

        return cupyx.scipy
    import scipy  # noqa: PLC0415
    import scipy.sparse.linalg  # noqa: F401,PLC0415

    return scipy


def to_numpy(x: Any) -> np.ndarray:
    """Copy any backend's array (or a Python scalar) to a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    mod = type(x).__module__
    if mod.startswith("cupy"):
        return x.get()
    if array_api_compat.is_array_api_obj(x):
        xp = array_api_compat.array_namespace(x)
        if "array_api_strict" in getattr(xp, "__name__", ""):
            # array-api-strict arrays live on a CPU "device"; DLPack is the standard way out.
            return np.array(np.from_dlpack(x), copy=True)
        return np.asarray(x)
    return np.asarray(x)


def cupy_available() -> bool:
    """True if CuPy imports and sees at least one CUDA device."""
    try:
        cp = importlib.import_module("cupy")
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  (any failure means: not usable here)
        return False


def namespace_for(backend: str):
    """Return the array namespace named ``backend`` (one of :data:`BACKENDS`).

    Raises
    ------
    ValueError
        ``backend`` is not a known name.
    BackendError
        CuPy was asked for but is not installed or sees no GPU.
    """
    if backend == "numpy":
        return array_api_compat.array_namespace(np.empty(0))
    if backend == "array-api-strict":
        try:
            return importlib.import_module("array_api_strict")
        except ImportError as err:
            raise BackendError(
                "backend 'array-api-strict' needs the package array-api-strict; "
                'install it with: pip install "tnt-ref[test]".'
            ) from err
    if backend == "cupy":
        try:
            cp = importlib.import_module("cupy")
        except ImportError as err:
            raise BackendError(
                'backend "cupy" needs CuPy, which is not installed. On a machine with an NVIDIA GPU install it with '
                'pip install "tnt-ref[gpu-cuda12]" or "tnt-ref[gpu-cuda13]" (the CUDA major version of the driver, '
                'nvidia-smi); or use --backend numpy.'
            ) from err
        try:
            n_dev = cp.cuda.runtime.getDeviceCount()
        except Exception as err:  # noqa: BLE001
            raise BackendError(
                f"backend 'cupy': CuPy is installed but no CUDA device is usable ({err}). "
                "Use --backend numpy on this machine."
            ) from err
        if n_dev < 1:
            raise BackendError("backend 'cupy': CuPy sees no GPU. Use --backend numpy on this machine.")
        return array_api_compat.array_namespace(cp.empty(0))
    raise ValueError(f"`backend` must be one of {BACKENDS}; got backend={backend!r}.")


def asarray(x: Any, backend: str | Any = "numpy", dtype=None):
    """Create an array on ``backend`` (a name from :data:`BACKENDS` or a namespace) from host data."""
    xp = namespace_for(backend) if isinstance(backend, str) else backend
    if not isinstance(x, np.ndarray) and array_api_compat.is_array_api_obj(x):
        x = to_numpy(x)
    x = np.asarray(x)
    if dtype is None:
        return xp.asarray(x)
    return xp.asarray(x, dtype=dtype)
