"""Backends: namespace from the inputs, conversions, and clear errors for unusable backends."""

from __future__ import annotations

import numpy as np
import pytest

from tnt_ref.backend import BACKENDS, BackendError, asarray, cupy_available, get_namespace, namespace_for, scipy_namespace, to_numpy
from tnt_ref.cli import main


def test_namespace_from_inputs_and_roundtrip(xp):
    a = asarray(np.arange(6.0).reshape(2, 3), xp)
    assert get_namespace(a) is not None
    np.testing.assert_array_equal(to_numpy(a), np.arange(6.0).reshape(2, 3))
    assert to_numpy(2.5) == 2.5


def test_mixing_backends_is_an_error():
    xs = namespace_for("array-api-strict")
    with pytest.raises(TypeError, match="one array-API backend"):
        get_namespace(np.zeros(2), xs.zeros(2))


def test_scipy_namespace_for_numpy():
    import scipy

    assert scipy_namespace(namespace_for("numpy")) is scipy


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"`backend` must be one of \('numpy', 'cupy', 'array-api-strict'\); got backend='jax'"):
        namespace_for("jax")
    assert BACKENDS == ("numpy", "cupy", "array-api-strict")


@pytest.mark.skipif(cupy_available(), reason="this machine has CuPy and a GPU: the error path cannot be exercised")
def test_cupy_unavailable_message(capsys):
    with pytest.raises(BackendError, match=r'pip install "tnt-ref\[gpu-cuda12\]"|no CUDA device|sees no GPU'):
        namespace_for("cupy")
    assert main(["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--backend", "cupy"]) == 2
    assert "cupy" in capsys.readouterr().err.lower()


def test_missing_cupy_names_the_extras_the_package_and_readme_offer(monkeypatch):
    """Without CuPy the error names install lines that exist: extras of pyproject.toml, the README's spelling."""
    import importlib
    import re
    import tomllib
    from pathlib import Path

    real = importlib.import_module

    def no_cupy(name, *a, **k):
        if name.split(".")[0] == "cupy":
            raise ImportError("No module named 'cupy'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_cupy)
    with pytest.raises(BackendError) as e:
        namespace_for("cupy")
    root = Path(__file__).resolve().parents[1]
    extras = set(tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = re.findall(r'"tnt-ref\[([\w-]+)\]"', str(e.value))
    readme = (root / "README.md").read_text()
    assert named and set(named) <= extras, (named, extras)
    assert all(f'"tnt-ref[{x}]"' in readme for x in named), named
