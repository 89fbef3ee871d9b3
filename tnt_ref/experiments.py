"""Studies behind the command line: estimator comparisons now, training runs later.

No argument parsing here (that is :mod:`tnt_ref.cli`) and no plotting (that is :mod:`tnt_ref.plots`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._validation import check_dense_size, check_real, check_seed, check_size
from .data import load_digits, random_spd
from .fisher import approximation_ladder
from .kronecker import frobenius_kron_fit
from .models import cnn, mlp
from .tensor import kron
from .tensor_normal import TensorNormal, tnt_factors
from .tensor_normal_mle import mle, mle_min_samples
from .training.problems import PROBLEMS

__all__ = ["estimator_study", "fisher_study", "FISHER_MODELS", "COMPARE_MODELS", "FISHER_DAMPING"]

#: Damping of the ladder's metrics (``tnt-ref fisher --damping``): the ``eps`` in ``F_hat + eps I``
#: where a metric inverts an approximation, and in the MLE of a singular block. It is not TNT's
#: damping (``tnt(damping=...)``), which damps the optimizer's factors.
FISHER_DAMPING = 1e-3


def _gaussian_kl(S, K) -> float:
    """``KL(N(0, S) || N(0, K))`` for a positive definite ``S``; ``+inf`` when the estimate ``K`` is singular to
    working precision or indefinite (an estimate from too few samples: the divergence does not exist as a
    finite number, and a solve against it would return round-off, e.g. -2.6e17)."""
    D = S.shape[0]
    lam, Q = np.linalg.eigh((K + K.T) / 2)
    if not lam[0] > D * 100 * np.finfo(np.float64).eps * abs(lam[-1]):
        return math.inf
    W = Q.T @ S @ Q
    return 0.5 * float(np.sum(np.diag(W) / lam) - D + np.sum(np.log(lam)) - np.linalg.slogdet(S)[1])


def estimator_study(
    shape: Sequence[int] = (6, 5, 4),
    ns: Sequence[int] = (30, 100, 300, 1000, 3000),
    seed: int = 0,
    cond: float = 20.0,
) -> list[dict]:
    """Compare TNT's estimator, the MLE and the Frobenius fit on tensor-normal samples.

    For each sample size ``n``: draw ``n`` samples of ``TN(0; U_1, ..., U_k)`` with random SPD
    factors (condition number ``cond``), estimate ``kron U_i`` three ways, and report the relative
    Frobenius error to the true covariance and ``KL(true || estimate)``.

    Returns
    -------
    list of dict rows with keys ``n``, ``method``, ``rel_error``, ``kl``, ``sweeps``. ``kl`` is
    ``inf`` where an estimate is singular or indefinite (too few samples for it).
    """
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) == 0:
        raise TypeError(f"`shape` must be a non-empty sequence of mode sizes; got {shape!r}.")
    shape = tuple(check_size(d, f"shape[{i}]") for i, d in enumerate(shape))
    if isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or len(ns) == 0:
        raise TypeError(f"`ns` must be a non-empty sequence of sample sizes; got {ns!r}.")
    ns = [check_size(n, f"ns[{i}]") for i, n in enumerate(ns)]
    seed = check_seed(seed)
    cond = check_real(cond, "cond", low=1.0)
    D = math.prod(shape)
    check_dense_size((D, D), 8, f"estimator_study's dense covariances (shape {shape}, D = {D})",
                     "Choose a smaller `shape` (the study compares dense D x D covariances).")
    check_dense_size((max(ns), D), 8, f"estimator_study's samples (n = {max(ns)}, D = {D})", "Choose smaller `ns`.")
    rng = np.random.default_rng(seed)
    factors = [random_spd(rng, int(d), cond) for d in shape]
    true = kron(*factors)
    tn = TensorNormal(factors)
    rows = []
    for n in ns:
        X = tn.sample(int(n), rng)
        flat = X.reshape(int(n), -1)
        S = flat.T @ flat / n
        res = mle(X, tol=1e-10) if n >= mle_min_samples(shape) else None  # the MLE may not exist below
        ests = {"tnt": (tnt_factors(X), 0), "frobenius": (frobenius_kron_fit(S, shape), 0)}
        if res is not None:
            ests["mle"] = (res.factors, res.n_sweeps)
        for name, (U, sweeps) in ests.items():
            K = kron(*U)
            rows.append(
                {
                    "n": int(n),
                    "method": name,
                    "rel_error": float(np.linalg.norm(K - true) / np.linalg.norm(true)),
                    "kl": _gaussian_kl(true, K),
                    "sweeps": sweeps,
                }
            )
    return rows


#: Models of ``tnt-ref fisher``: name -> (builder, uses images). ``autoencoder-wide`` has the
#: paper's MNIST autoencoder widths (784-1000-500-250-30 mirrored [paper]) on 64-pixel digits:
#: ReLU, a linear 30-unit code, Bernoulli outputs; its targets are its inputs.
FISHER_MODELS = {
    "mlp": (lambda: mlp([64, 32, 10], "tanh", "softmax_cross_entropy"), False),
    "cnn": (lambda: cnn((1, 8, 8), channels=(4, 8), kernel=3, n_classes=10, activation="relu"), True),
    "autoencoder-wide": (
        lambda: mlp([64, 1000, 500, 250, 30, 250, 500, 1000, 64],
                    ["relu", "relu", "relu", "identity", "relu", "relu", "relu"], "sigmoid_cross_entropy"),
        False,
    ),
    # the models of the `compare` study on the digits (tnt_ref.training.problems), so that closeness to the Fisher
    # can be set beside the optimizers' ranking on the same networks (mnist-autoencoder's 784 inputs are not the
    # digits' 64: the ladder runs on the digits only)
    **{f"compare-{p.name}": (p.build, p.images) for p in PROBLEMS.values() if p.data == "digits"},
}

#: The ``--model compare`` group: the networks of the three ``compare`` problems on the digits.
COMPARE_MODELS = tuple(f"compare-{p.name}" for p in PROBLEMS.values() if p.data == "digits")

#: Autoencoders: the targets are the inputs.
_AUTOENCODERS = {"autoencoder-wide", "compare-autoencoder"}

#: Warm-up learning rate of plain gradient descent per model (0.5 for the classifiers; the autoencoders'
#: summed Bernoulli losses need a smaller step; 0.5 kills every ReLU of the compare study's CNN (its loss
#: stays at log 10 and its first convolution's Fisher block is exactly zero), so it takes 0.1, SGD-m's rate
#: there).
_WARMUP_LR = {"autoencoder-wide": 0.01, "compare-autoencoder": 0.01, "compare-cnn": 0.1}


def fisher_study(
    model: str = "mlp",
    n: int = 300,
    damping: float = FISHER_DAMPING,
    seed: int = 0,
    conv_modes: int = 3,
    train_steps: int = 100,
    exact: str = "dense",
    log=None,
    progress=None,
) -> dict:
    """The approximation ladder (:func:`tnt_ref.fisher.approximation_ladder`) on a digits model.

    The model is first trained for ``train_steps`` steps of plain gradient descent from a random
    initialization (so the Fisher is taken at a realistic, non-symmetric point), then the ladder is
    computed on the first ``n`` training images. ``exact`` (``"dense"``, ``"gram"``, ``"auto"``) is
    the exact-block path of :func:`~tnt_ref.fisher.approximation_ladder`; ``log`` receives its
    progress lines and ``progress(done, total, note)`` its progress in rough flops (the warm-up is
    reported as ``progress(0, 1, note)`` before it).

    Returns
    -------
    dict with ``config``, ``rows`` (see ``LadderResult``) and ``spectra`` (lists, descending).
    """
    if model not in FISHER_MODELS:
        raise ValueError(f"unknown model {model!r}; valid: {sorted(FISHER_MODELS)}.")
    n = check_size(n, "n")
    seed = check_seed(seed)
    train_steps = check_size(train_steps, "train_steps", min_value=0)
    damping = check_real(damping, "damping", low=0.0, low_open=True)
    if not 2 <= n <= 1497:
        raise ValueError(f"`n` must be in [2, 1497] (digits training images); got n={n}.")
    build, images = FISHER_MODELS[model]
    net = build()
    ds = load_digits(images=images)
    rng = np.random.default_rng(seed)
    params = net.init(rng)
    if exact not in ("dense", "gram", "auto"):
        raise ValueError(f"`exact` must be 'dense', 'gram' or 'auto'; got exact={exact!r}.")
    Y_train = ds.X_train if model in _AUTOENCODERS else ds.y_train
    X, y = ds.X_train[:n], Y_train[:n]
    lr = _WARMUP_LR.get(model, 0.5)
    if progress is not None:
        progress(0.0, 1.0, f"warm-up: {train_steps} steps of gradient descent")
    for _ in range(train_steps):  # a short warm-up so the Fisher is not taken at initialization
        _, g = net.loss_and_grad(params, ds.X_train[:512], Y_train[:512])
        params = {k: params[k] - lr * g[k] for k in params}
    if log is not None:
        log(f"warm-up: {train_steps} steps of gradient descent (lr {lr}), loss {net.loss(params, X, y):.4g}")
    res = approximation_ladder(net, params, X, y, rng, damping=damping, conv_modes=conv_modes, exact=exact, log=log,
                               progress=progress)
    return {
        "config": {
            "model": model,
            "spec": net.spec,
            "n": n,
            "damping": damping,
            "seed": seed,
            "conv_modes": conv_modes,
            "train_steps": train_steps,
            "warmup_lr": lr,
            "exact": exact,
        },
        # JSON has no infinity: a metric that is not finite (kl_proj of a singular estimate, the cosine of an
        # indefinite one) is written as null
        "rows": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in res.rows],
        "spectra": {nm: {m: [float(v) for v in lam] for m, lam in d.items()} for nm, d in res.spectra.items()},
        "skipped": res.skipped,
    }
