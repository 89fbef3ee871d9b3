"""Everything that landed after the CuPy backend runs on every backend (issue 27): every optimizer, the
Shampoo-family estimators, the conformance harness judging tnt-ref on a backend, and a run of the
paper's MNIST autoencoder.

Each test is parametrized over ``numpy``, ``array-api-strict`` (a strict CPU stand-in for CuPy: any NumPy
call on its arrays fails) and ``cupy`` (skipped without a GPU), so ``pytest -k cupy`` on a lent GPU
(``benchmarks/gpu_check.sh``) selects them, and CI exercises the same code path on array-api-strict.
The answer on every backend is compared with NumPy's in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import _BACKENDS, write_mnist_folder
from tnt_ref.backend import get_namespace, namespace_for, to_numpy
from tnt_ref.optim import OPTIMIZERS, make_optimizer


def _tol(backend: str) -> float:
    # the same arithmetic on the host for numpy/array-api-strict; a GPU's float64 reductions and eigh
    # round differently, well inside 1e-9 relative on these well-conditioned problems
    return 1e-9 if backend == "cupy" else 1e-12


@pytest.fixture(params=_BACKENDS)
def backend(request):
    return request.param


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_steps_on_the_backend_as_on_numpy(backend, name):
    from tnt_ref.models import mlp
    from tnt_ref.training import train_step

    net = mlp([8, 6, 3], "tanh", "softmax_cross_entropy")
    rng0 = np.random.default_rng(3)
    p = net.init(rng0)
    X, y = rng0.random((20, 8)), rng0.integers(0, 3, 20)
    out = {}
    for b in ("numpy", backend):
        xp = namespace_for(b)
        rng = np.random.default_rng(4)  # the same sampled labels: uniforms from one host rng
        params = {k: xp.asarray(v) for k, v in p.items()}
        opt = make_optimizer(name, 1e-2, T1=1, T2=2) if name not in ("sgd", "adam") else make_optimizer(name, 1e-2)
        st = opt.init(params)
        for _ in range(4):  # two inverse (basis, root) refreshes
            _, params, st = train_step(net, opt, params, st, xp.asarray(X), xp.asarray(y), rng)
        assert get_namespace(*params.values()) is xp
        out[b] = {k: to_numpy(v) for k, v in params.items()}
    for k in p:
        np.testing.assert_allclose(out[backend][k], out["numpy"][k], rtol=_tol(backend), atol=1e-14, err_msg=f"{name} {k}")
        assert not np.array_equal(out["numpy"][k], p[k]), f"{name} {k} did not move"  # the comparison is not vacuous


def test_estimators_on_the_backend_as_on_numpy(backend):
    from tnt_ref import estimators as E
    from tnt_ref.tensor_normal import tnt_factors
    from tnt_ref.tensor_normal_mle import mle

    xp = namespace_for(backend)
    G = np.random.default_rng(5).standard_normal((60, 3, 4))
    fns = {"shampoo": E.shampoo_factors, "power_steps": E.power_step_factors, "soap": E.soap_factors,
           "kl_shampoo": lambda s: E.kl_shampoo_factors(s).factors, "tnt": tnt_factors, "mle": lambda s: mle(s).factors}
    for name, f in fns.items():
        want, got = _arrays(f(G)), _arrays(f(xp.asarray(G)))
        assert len(want) == len(got) > 0, name
        for a, b in zip(want, got):
            assert get_namespace(b) is xp, name  # computed on the backend, not on the host
            np.testing.assert_allclose(to_numpy(b), to_numpy(a), rtol=max(_tol(backend), 1e-10), atol=1e-12, err_msg=name)


def _arrays(obj) -> list:
    """The arrays of a (nested) result: lists, tuples and named tuples walked in order."""
    if isinstance(obj, (list, tuple)):
        return [a for o in obj for a in _arrays(o)]
    return [] if obj is None or isinstance(obj, (int, float, bool, str)) else [obj]


def test_conformance_judges_tnt_ref_on_the_backend(backend, monkeypatch):
    """The harness judges tnt-ref's optimizer run on ``backend`` against tnt-ref on NumPy: it matches under
    the defaults, and the trajectory was really computed on that backend."""
    from tnt_ref.conformance import reference
    from tnt_ref.conformance.adapters import TntRef
    from tnt_ref.conformance.harness import conform

    seen = set()
    apply = reference.apply_updates

    def spy(params, updates):
        seen.add(get_namespace(*params.values()).__name__)
        return apply(params, updates)

    monkeypatch.setattr(reference, "apply_updates", spy)
    rep = conform(TntRef(backend=backend), tol=_tol(backend) * 10)
    assert rep.verdict == "matches", rep.first_difference
    assert rep.quantities["trajectory"] == "checked" and rep.quantities["direction"] == "checked"
    assert rep.setting == TntRef().setting  # the defaults, not another convention that happens to agree
    assert namespace_for(backend).__name__ in seen  # (the harness's own answer runs on NumPy)


def test_conformance_backend_name_checked_at_the_door():
    from tnt_ref.conformance.adapters import TntRef

    with pytest.raises(ValueError, match="`backend` must be one of"):
        TntRef(backend="torch")


def test_mnist_autoencoder_run_on_the_backend_as_on_numpy(backend, tmp_path):
    from tnt_ref.training import run

    write_mnist_folder(tmp_path, n_train=30, n_test=10)
    h = {}
    for b in ("numpy", backend):
        r = run("mnist-autoencoder", "tnt", 1e-4, epochs=1, batch_size=10, val_size=10, data=tmp_path, backend=b,
                progress=False)
        h[b] = r.history[-1]
        assert r.config["backend"] == b
    for key in ("train_loss", "val_loss", "test_loss"):
        assert h[backend][key] == pytest.approx(h["numpy"][key], rel=_tol(backend)), key
