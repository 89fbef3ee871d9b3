"""Shared fixtures: the ``xp`` backend fixture (as SciPy's conftest) and a deterministic hypothesis profile."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

from tnt_ref.backend import cupy_available, namespace_for, to_numpy

settings.register_profile("ci", derandomize=True, max_examples=25, deadline=None, print_blob=True)
settings.load_profile("ci")

_BACKENDS = [
    "numpy",
    "array-api-strict",
    pytest.param("cupy", marks=pytest.mark.skipif(not cupy_available(), reason="CuPy with a GPU is not available")),
]


@pytest.fixture(params=_BACKENDS)
def xp(request):
    """Every backend-aware test runs on NumPy, array-api-strict, and CuPy when a GPU is present."""
    return namespace_for(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(20211206)


def spd(rng: np.random.Generator, d: int, cond: float = 10.0) -> np.ndarray:
    """A random SPD matrix with eigenvalues spread over [1, cond] (float64, host)."""
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.geomspace(1.0, cond, d) if d > 1 else np.ones(1)
    return (Q * lam) @ Q.T


def on(xp, *arrays):
    """Move host arrays onto backend ``xp``."""
    out = [xp.asarray(np.asarray(a, dtype=np.float64)) for a in arrays]
    return out[0] if len(out) == 1 else out


def np_(x):
    return to_numpy(x)


#: float64 tolerance for exact identities (GUIDE: near 4*sqrt(eps) ~ 6e-8; most hold far tighter).
RTOL64 = 1e-10
