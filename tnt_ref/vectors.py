"""Known-answer test vectors for anyone porting TNT (schema in ``docs/vectors.md``).

Each case is one ``.npz`` file holding a small model with random parameters (not at a symmetric
point), 10-40 inputs, and every quantity the reference computes for it: exact and empirical
Fisher blocks, exact mode moments, TNT and MLE factors, KFAC factors, the gradient and the
TNT-preconditioned gradient. All float64, row-major ``vec``, per-example scale.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .files import atomic_savez
from .fisher import (
    empirical_fisher_blocks,
    exact_fisher_blocks,
    exact_mode_moments,
    kfac_factors,
)
from .kronecker import KroneckerMatrix
from .models import cnn, mlp
from .tensor import tensor_shape
from .tensor_normal import tnt_factors_from_moments
from .tensor_normal_mle import mle

__all__ = ["CASES", "build_case", "write_vectors"]

#: Damping used for the preconditioned direction and the MLE (``fisher + damping * I``).
DAMPING = 1e-2
#: Convolution kernels are treated as 3-way tensors ``(C_out, C_in, kh*kw)``, as the authors.
CONV_MODES = 3


def _case_mlp_softmax(rng):
    net = mlp([6, 5, 4], "tanh", "softmax_cross_entropy")
    X = rng.standard_normal((20, 6))
    return net, X, rng.integers(0, 4, 20)


def _case_autoencoder(rng):
    net = mlp([8, 4, 8], "relu", "sigmoid_cross_entropy")
    X = rng.random((16, 8))
    return net, X, X.copy()


def _case_mlp_squared(rng):
    net = mlp([5, 6, 3], "tanh", "squared_error")
    X = rng.standard_normal((12, 5))
    return net, X, rng.standard_normal((12, 3))


def _case_cnn_softmax(rng):
    net = cnn((1, 6, 6), channels=(3,), kernel=3, n_classes=4, activation="relu", padding=1)
    X = rng.standard_normal((10, 1, 6, 6))
    return net, X, rng.integers(0, 4, 10)


#: Case name -> builder.
CASES = {
    "mlp_tanh_softmax": _case_mlp_softmax,
    "mlp_relu_bernoulli_autoencoder": _case_autoencoder,
    "mlp_tanh_squared_error": _case_mlp_squared,
    "cnn_relu_softmax": _case_cnn_softmax,
}


def build_case(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """All arrays of one case, keyed as in ``docs/vectors.md``."""
    if name not in CASES:
        raise ValueError(f"unknown case {name!r}; valid: {sorted(CASES)}.")
    rng = np.random.default_rng(seed)
    net, X, y = CASES[name](rng)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in net.init(rng).items()}  # off any symmetric point
    spec = dict(net.spec)
    if spec["kind"] == "cnn":
        spec["conv_modes"] = CONV_MODES
    out: dict[str, np.ndarray] = {
        "model": np.array(json.dumps(spec, sort_keys=True)),
        "param_names": np.array(net.param_names),
        "X": X,
        "y": y,
        "damping": np.array(DAMPING),
    }
    F = exact_fisher_blocks(net, params, X)
    E = empirical_fisher_blocks(net, params, X, y)
    M = exact_mode_moments(net, params, X, conv_modes=CONV_MODES)
    K = kfac_factors(net, params, X)
    _, grad = net.loss_and_grad(params, X, y)
    for nm in net.param_names:
        ts = tensor_shape(params[nm].shape, CONV_MODES)
        out[f"params/{nm}"] = params[nm]
        out[f"fisher/{nm}"] = F[nm]
        out[f"empirical_fisher/{nm}"] = E[nm]
        U = tnt_factors_from_moments(M[nm])
        Um = mle(covariance=F[nm] + DAMPING * np.eye(F[nm].shape[0]), shape=ts, tol=1e-13, max_iter=500).factors
        for i, (s, u, um) in enumerate(zip(M[nm], U, Um)):
            out[f"moments/{nm}/{i}"] = s
            out[f"tnt/{nm}/{i}"] = u
            out[f"mle/{nm}/{i}"] = um
        if nm in K:
            out[f"kfac/{nm}/G"], out[f"kfac/{nm}/A"] = K[nm]
        out[f"grad/{nm}"] = grad[nm]
        direction = KroneckerMatrix(U).damped_inverse(DAMPING).apply(np.reshape(grad[nm], ts))
        out[f"direction/{nm}"] = np.reshape(direction, params[nm].shape)
    return out


def write_vectors(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write one ``<case>.npz`` per case into ``out_dir`` (atomically); return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in CASES:
        paths.append(atomic_savez(out_dir / f"{name}.npz", **build_case(name, seed)))
    return paths
