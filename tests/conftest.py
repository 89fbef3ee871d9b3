"""Shared fixtures: the ``xp`` backend fixture (as SciPy's conftest), a deterministic hypothesis profile, and the
package's BLAS-thread policy for the whole session (:func:`tnt_ref.runtime.blas_threads`: one thread unless
``TNT_REF_BLAS_THREADS`` says otherwise), as every command applies it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

from tnt_ref.backend import cupy_available, namespace_for, to_numpy
from tnt_ref.runtime import blas_threads

settings.register_profile("ci", derandomize=True, max_examples=25, deadline=None, print_blob=True)
settings.load_profile("ci")

_BACKENDS = [
    "numpy",
    "array-api-strict",
    pytest.param("cupy", marks=pytest.mark.skipif(not cupy_available(), reason="CuPy with a GPU is not available")),
]


@pytest.fixture(scope="session", autouse=True)
def _blas_threads():
    """The suite runs under the same thread policy as the commands (measured: faster on 2 shared cores)."""
    with blas_threads() as n:
        yield n


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


def write_idx(path, array, *, gz: bool = False, type_byte: int = 0x08) -> None:
    """Write ``array`` as an IDX file by hand (big-endian header, row-major data): the tests' own writer,
    independent of :mod:`tnt_ref.data.idx`. ``type_byte`` 0x08 writes ``uint8``."""
    import gzip as _gzip  # noqa: PLC0415
    import struct  # noqa: PLC0415

    codes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    a = np.asarray(array)
    raw = bytes([0, 0, type_byte, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(codes[type_byte]).tobytes()
    with open(path, "wb") as f:
        f.write(_gzip.compress(raw) if gz else raw)


def write_mnist_folder(folder, *, n_train: int = 40, n_test: int = 20, size: int = 28, gz: bool = True, seed: int = 0):
    """A tiny MNIST-format folder (random uint8 images, labels 0..9); returns the four arrays by role."""
    from pathlib import Path  # noqa: PLC0415

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng(seed)
    arrays = {"train_images": r.integers(0, 256, (n_train, size, size), dtype=np.uint8),
              "train_labels": r.integers(0, 10, n_train, dtype=np.uint8),
              "test_images": r.integers(0, 256, (n_test, size, size), dtype=np.uint8),
              "test_labels": r.integers(0, 10, n_test, dtype=np.uint8)}
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    for role, a in arrays.items():
        write_idx(folder / (names[role] + (".gz" if gz else "")), a, gz=gz)
    return arrays
