"""A fuzz suite over the public API (issue 12), under the deterministic hypothesis profile of conftest.

The property, for every call: it either returns finite results of the documented shapes, or raises
``ValueError`` / ``TypeError`` whose message names one of the arguments of the call. Inputs: small
shapes including zero-size axes, real and non-real dtypes (complex, bool, object, strings), NaN and
Inf, tiny and huge magnitudes, indefinite and asymmetric matrices, out-of-range hyperparameters.

NumPy's own ``RuntimeWarning`` (overflow in an intermediate) is ignored inside a call: what counts is
the result, which must then be finite, or the error.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tnt_ref.fisher import exact_fisher_blocks
from tnt_ref.kronecker import KroneckerMatrix
from tnt_ref.models import mlp
from tnt_ref.optim import OPTIMIZERS, make_optimizer
from tnt_ref.tensor import fold, mode_product, unfold
from tnt_ref.tensor_normal import TensorNormal, mode_moments, normalize, tnt_factors, tnt_factors_from_moments
from tnt_ref.tensor_normal_mle import mle
from tnt_ref.training import train_step

#: examples per test; CI uses 100 under the deterministic profile (conftest). A longer hunt off CI:
#: TNT_REF_FUZZ_EXAMPLES=2000 TNT_REF_FUZZ_RANDOM=1 (fresh random inputs each run)
FUZZ = settings(max_examples=int(os.environ.get("TNT_REF_FUZZ_EXAMPLES", "100")),
                derandomize=os.environ.get("TNT_REF_FUZZ_RANDOM", "0") != "1", database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)

_SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e-200, -1e-200, 1e200, 5e-324])
_MODERATE = st.floats(-10, 10, allow_nan=False, width=64)


def _elements(huge: bool):
    # mostly moderate values, sometimes a special one; huge magnitudes only where the API promises to rescale
    special = _SPECIAL if huge else st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e-200])
    return st.one_of(_MODERATE, _MODERATE, _MODERATE, special)


_DTYPES = st.sampled_from(["float64", "float64", "float64", "float32", "int64", "complex128", "bool", "object", "U2"])


@st.composite
def arrays(draw, shape, huge=False):
    a = draw(hnp.arrays(np.float64, shape, elements=_elements(huge)))
    dtype = draw(_DTYPES)
    if dtype == "float32":
        with np.errstate(over="ignore"):
            return a.astype(np.float32)  # 1e200 becomes inf: one more special value
    if dtype == "int64":
        return np.nan_to_num(a, nan=0.0, posinf=3.0, neginf=-3.0).clip(-50, 50).astype(np.int64)
    return a.astype(dtype)


def _names_argument(err: BaseException, names) -> bool:
    msg = str(err)
    return any(re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", msg) for n in names)


def call(f, names, *args, **kwargs):
    """Run ``f``; return its result, or None after checking that a refusal names an argument."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return f(*args, **kwargs)
    except (ValueError, TypeError) as err:
        assert _names_argument(err, names), f"{type(err).__name__} does not name any of {names}: {err}"
        return None


def _finite(*arrays_):
    for a in arrays_:
        assert np.all(np.isfinite(np.asarray(a))), a


_SHAPES = st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple)
_N = st.integers(0, 5)


# ----------------------------------------------------------------------------- tensor normal
@FUZZ
@given(st.data(), _N, _SHAPES)
def test_fuzz_tnt_factors_and_mode_moments(data, n, shape):
    G = data.draw(arrays((n, *shape), huge=True))
    for f in (tnt_factors, mode_moments):
        out = call(f, ["samples"], G)
        if out is not None:
            assert [u.shape for u in out] == [(d, d) for d in shape]
            _finite(*out)
            for u in out:
                assert np.all(np.linalg.eigvalsh(u) >= -1e-8 * max(1e-300, np.abs(u).max()))


@FUZZ
@given(st.data(), st.integers(1, 12), st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
       st.one_of(st.integers(-2, 6), st.floats(allow_nan=True), st.just("5")),
       st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(None)))
def test_fuzz_mle(data, n, shape, max_iter, tol):
    G = data.draw(arrays((n, *shape)))
    kwargs = {"max_iter": max_iter} | ({} if tol is None else {"tol": tol})
    res = call(mle, ["samples", "max_iter", "tol"], G, **kwargs)
    if res is not None:
        assert [u.shape for u in res.factors] == [(d, d) for d in shape]
        _finite(*res.factors, res.loglik)


@st.composite
def factor_lists(draw, max_d=3):
    """Lists of matrices: mostly symmetric (PSD, indefinite, singular), sometimes asymmetric or misshaped."""
    k = draw(st.integers(0, 3))
    out = []
    for _ in range(k):
        d = draw(st.integers(0, max_d))
        kind = draw(st.sampled_from(["psd", "psd", "indefinite", "singular", "asym", "raw", "rect"]))
        A = draw(arrays((d, d)))
        if kind == "rect":
            out.append(draw(arrays((d, d + 1))))
            continue
        if A.dtype.kind == "f" and kind != "raw":
            B = np.nan_to_num(A.astype(np.float64), nan=1.0, posinf=2.0, neginf=-2.0)  # specials stay in "raw"
            if kind == "psd":
                A = (B @ B.T + np.eye(d)).astype(A.dtype)
            elif kind == "indefinite":
                A = ((B + B.T) / 2 - 30 * np.eye(d) * (np.arange(d) % 2)).astype(A.dtype)
            elif kind == "singular":
                A = (B[:, :1] @ B[:, :1].T).astype(A.dtype)
        out.append(A)
    return draw(st.sampled_from([out, tuple(out), "notalist"])) if k else out


@FUZZ
@given(factor_lists())
def test_fuzz_normalize_and_tnt_factors_from_moments(factors):
    for f, name in ((normalize, "factors"), (tnt_factors_from_moments, "moments")):
        out = call(f, [name], factors)
        if out is not None:
            assert [u.shape for u in out] == [np.shape(u) for u in factors]
            _finite(*out)


@FUZZ
@given(factor_lists(), st.data(), st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just("1e-3"), st.integers(-1, 2)))
def test_fuzz_kronecker_matrix(factors, data, lam):
    K = call(KroneckerMatrix, ["factors"], factors)
    if K is None:
        return
    shape = K.tensor_shape
    X = data.draw(arrays(shape))
    v = data.draw(arrays((int(np.prod(shape)),)))
    for method, args, names, expect in (
        ("matvec", (v,), ["v"], v.shape),
        ("apply", (X,), ["X"], X.shape),
        ("solve_damped", (X, lam), ["X", "lam", "factors"], X.shape),
        ("logdet", (), ["factors"], None),
        ("damped_inverse", (lam,), ["eps", "factors", "damping"], None),
    ):
        out = call(getattr(K, method), names, *args)
        if out is None:
            continue
        if isinstance(out, KroneckerMatrix):
            _finite(*out.factors)
            assert out.tensor_shape == shape
        elif method == "logdet":
            assert out == -np.inf or np.isfinite(out)
        else:
            assert out.shape == expect
            _finite(out)


@FUZZ
@given(factor_lists(), st.one_of(st.integers(-1, 4), st.floats(0, 3), st.just(np.int64(2))),
       st.sampled_from([np.random.default_rng(0), None, 0]), st.data())
def test_fuzz_tensor_normal(factors, n, rng, data):
    tn = call(TensorNormal, ["factors"], factors)
    if tn is None:
        return
    S = call(tn.sample, ["n", "rng"], n, rng)
    if S is not None:
        assert S.shape == (int(n), *tn.shape)
        _finite(S)
    X = data.draw(arrays(tn.shape))
    lp = call(tn.logpdf, ["X"], X)
    if lp is not None:
        _finite(lp)


# ----------------------------------------------------------------------------- tensor algebra
@FUZZ
@given(st.data(), _SHAPES, st.one_of(st.integers(-2, 3), st.just(1.0), st.just(np.int64(0))))
def test_fuzz_tensor_algebra(data, shape, mode):
    X = data.draw(arrays(shape))
    M = call(unfold, ["X", "mode"], X, mode)
    if M is not None:
        _finite(M)
        back = call(fold, ["M", "mode", "shape"], M, mode, shape)
        assert back is not None and back.shape == shape
    A = data.draw(arrays((2, shape[0])))
    Y = call(mode_product, ["X", "A", "mode"], X, A, mode)
    if Y is not None:
        _finite(Y)


# ----------------------------------------------------------------------------- optimizers
_HYPER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 30), st.just("0.1"), st.just(None), st.just(True),
    st.sampled_from([np.float32(0.5), np.int64(3), np.float64(-1.0)]),
)
_KEYS = {
    "sgd": ["momentum", "weight_decay"],
    "adam": ["b1", "b2", "eps", "weight_decay"],
    "tnt": ["momentum", "decay", "damping", "T1", "T2", "weight_decay"],
    "tnt-ef": ["momentum", "decay", "damping", "T1", "T2"],
    "kfac": ["momentum", "decay", "damping", "T1", "T2", "weight_decay"],
    "shampoo": ["momentum", "decay", "damping", "T1", "T2", "weight_decay"],
    "kl-shampoo": ["momentum", "decay", "damping", "T1", "T2", "weight_decay"],
    "soap": ["b1", "b2", "eps", "decay", "T1", "T2", "weight_decay"],
}


@FUZZ
@given(st.sampled_from(list(OPTIMIZERS)), _HYPER, st.data())
def test_fuzz_optimizer_hyperparameters(name, lr, data):
    keys = data.draw(st.lists(st.sampled_from(_KEYS[name]), max_size=2, unique=True))
    kwargs = {k: data.draw(_HYPER) for k in keys}
    opt = call(make_optimizer, ["learning_rate", *keys], name, lr, **kwargs)
    if opt is not None:
        for k, v in opt.hyper.items():
            assert not isinstance(v, (float, int)) or np.isfinite(v), (k, v)


# ----------------------------------------------------------------------------- models, training, fisher
_NET = mlp([3, 4, 2])
_PARAMS = _NET.init(np.random.default_rng(0))


@FUZZ
@given(
    st.sampled_from(["sgd", "tnt", "kfac", "adam", "shampoo", "kl-shampoo", "soap"]),
    st.data(),
    st.integers(0, 4),
    st.sampled_from([3, 3, 3, 2]),
    st.sampled_from(["ok", "ok", "missing", "nan", "shape"]),
    st.sampled_from([np.random.default_rng(1), None, 7]),
)
def test_fuzz_train_step(name, data, m, width, pcase, rng):
    X = data.draw(arrays((m, width)))
    y = data.draw(st.one_of(
        hnp.arrays(np.int64, (m,), elements=st.integers(-2, 3)),
        hnp.arrays(np.float64, (m,), elements=_MODERATE),
        hnp.arrays(np.int64, (m + 1,), elements=st.integers(0, 1)),
    ))
    params = dict(_PARAMS)
    if pcase == "missing":
        params.pop("fc2.bias")
    elif pcase == "nan":
        params["fc1.weight"] = params["fc1.weight"] * np.nan
    elif pcase == "shape":
        params["fc2.weight"] = params["fc2.weight"][:, :3]
    opt = make_optimizer(name, 0.1)
    state = call(opt.init, ["params"], params)
    if state is None:
        return
    out = call(train_step, ["X", "y", "params", "rng"] + [f"params['{k}']" for k in _PARAMS], _NET, opt, params, state, X, y, rng)
    if out is not None:
        loss, new, _ = out
        assert np.isfinite(loss) and list(new) == list(_PARAMS)
        for k in new:
            assert new[k].shape == _PARAMS[k].shape
            _finite(new[k])


@FUZZ
@given(st.data(), st.integers(0, 4), st.one_of(st.integers(-2, 5), st.just(2.0), st.just(np.int64(2))),
       st.sampled_from(["ok", "nan"]))
def test_fuzz_exact_fisher_blocks(data, n, chunk, pcase):
    X = data.draw(arrays((n, 3)))
    params = dict(_PARAMS)
    if pcase == "nan":
        params["fc2.bias"] = params["fc2.bias"] + np.nan
    out = call(exact_fisher_blocks, ["X", "chunk", "params['fc2.bias']"], _NET, params, X, chunk=chunk)
    if out is not None:
        for k, F in out.items():
            D = int(np.prod(_PARAMS[k].shape))
            assert F.shape == (D, D)
            _finite(F)
        if n:  # the output bias's block is diag(p) - p p^T averaged: never zero
            assert np.any(out["fc2.bias"] != 0)


def test_property_checker_can_fail():
    """The checker itself: an error that names no argument, or a non-finite result, is caught."""
    with pytest.raises(AssertionError, match="does not name"):
        call(lambda: (_ for _ in ()).throw(ValueError("something went wrong")), ["samples"])
    with pytest.raises(AssertionError):
        _finite(np.array([1.0, np.nan]))


# ----------------------------------------------------------------------------- issue 24: constructors, state pairing, ownership
_SIZE = st.one_of(st.integers(-2, 5), st.sampled_from([0, 2.5, 3.0, np.int64(3), "3", None, True, np.nan]))


@FUZZ
@given(st.lists(_SIZE, min_size=0, max_size=4), st.sampled_from(["tanh", "relu", "nope", 3]),
       st.sampled_from(["softmax_cross_entropy", "sigmoid_cross_entropy", "squared_error", "x"]))
def test_fuzz_mlp_constructor(sizes, act, loss):
    """A model is built with exactly the widths given (never truncated) or refused naming the argument."""
    net = call(mlp, ["sizes", "sizes[0]", "sizes[1]", "sizes[2]", "sizes[3]", "activation", "loss"], sizes, act, loss)
    if net is None:
        return
    assert all(isinstance(s, int) and s >= 1 for s in sizes[:1]) or True
    assert [net.param_shapes[f"fc{i + 1}.weight"] for i in range(len(sizes) - 1)] == \
        [(int(sizes[i + 1]), int(sizes[i])) for i in range(len(sizes) - 1)]
    assert all(not isinstance(s, (float, bool, str)) for s in sizes)


@FUZZ
@given(_SIZE, _SIZE, _SIZE, _SIZE, st.lists(_SIZE, min_size=0, max_size=2))
def test_fuzz_cnn_constructor(kernel, stride, padding, n_classes, channels):
    from tnt_ref.models import cnn

    names = ["kernel", "kernel[0]", "stride", "padding", "n_classes", "channels", "channels[0]", "channels[1]", "input"]
    net = call(cnn, names, (1, 8, 8), channels, kernel, n_classes, "relu", "softmax_cross_entropy", stride, padding)
    if net is None:
        return
    assert net.n_outputs == n_classes >= 1
    X = np.zeros((2, 1, 8, 8))
    z = net.predict(net.init(np.random.default_rng(0)), X)
    assert z.shape == (2, n_classes) and np.all(np.isfinite(z))


_STATE_OPTS = {"tnt": lambda: make_optimizer("tnt", 0.1), "sgd": lambda: make_optimizer("sgd", 0.1),
               "adam": lambda: make_optimizer("adam", 0.1), "kfac": lambda: make_optimizer("kfac", 0.1),
               "shampoo": lambda: make_optimizer("shampoo", 0.1), "kl-shampoo": lambda: make_optimizer("kl-shampoo", 0.1),
               "soap": lambda: make_optimizer("soap", 0.1)}


@FUZZ
@given(st.sampled_from(sorted(_STATE_OPTS)), st.sampled_from(sorted(_STATE_OPTS)),
       st.sampled_from(["same", "missing", "extra", "wider"]), st.sampled_from(["same", "missing", "wider"]))
def test_fuzz_optimizer_state_pairing(maker, user, state_params, grads_case):
    """``update`` with a state made by another optimizer, or for other parameters, or with gradients that do
    not match, is refused with a TypeError/ValueError naming `state` or `grads`; a matching triple works."""
    params = {"fc1.weight": np.ones((3, 4)), "fc1.bias": np.zeros(3)}
    other = {"same": params, "missing": {"fc1.weight": np.ones((3, 4))},
             "extra": {**params, "fc2.weight": np.ones((2, 3)), "fc2.bias": np.zeros(2)},
             "wider": {"fc1.weight": np.ones((3, 5)), "fc1.bias": np.zeros(3)}}[state_params]
    grads = {"same": params, "missing": {"fc1.weight": np.ones((3, 4))},
             "wider": {"fc1.weight": np.ones((3, 5)), "fc1.bias": np.zeros(3)}}[grads_case]
    grads = {k: 0.1 * v for k, v in grads.items()}
    state = _STATE_OPTS[maker]().init(other)
    opt = _STATE_OPTS[user]()
    extra = {}
    if user == "tnt":
        extra["sampled_grads"] = grads
    if user == "kfac":
        extra["kfac_stats"] = {"fc1.weight": (np.eye(3), np.eye(4))}
    out = call(opt.update, ["state", "grads"], grads, state, params, **extra)
    ok = maker == user and state_params == "same" and grads_case == "same"
    assert (out is not None) == ok
    if ok:
        upd, new = out
        assert type(new) is type(state) and all(np.all(np.isfinite(u)) for u in upd.values())


_OWN_SCRIPT = """
import sys
from tnt_ref.files import Outputs, OutputPathError
outs = Outputs()
try:
    for flag, path in zip(sys.argv[1::2], sys.argv[2::2]):
        (outs.folder if flag == '--out' else outs.file)(path, flag)
    outs.__enter__()
except OutputPathError as err:
    print('refused', err); sys.exit(2)
print('owned'); sys.stdout.flush(); sys.stdin.read()  # hold the locks until told to go
outs.__exit__(None, None, None)
"""


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 12))
@given(st.lists(st.tuples(st.sampled_from(["--out", "--json", "--checkpoint"]),
                          st.sampled_from(["a", "a/x.json", "b/x.json", "b/../a/x.json", "c.npz", "a/sub"])),
                min_size=1, max_size=3),
       st.lists(st.tuples(st.sampled_from(["--out", "--json", "--checkpoint"]),
                          st.sampled_from(["a", "a/x.json", "b/x.json", "c.npz", "a/sub/y.json", "d"])),
                min_size=1, max_size=2))
def test_fuzz_two_commands_racing_for_paths(tmp_path_factory, first, second):
    """Two processes claim outputs; while the first holds its own, the second is refused exactly when it
    would write under one of them (the same file, a file in a folder owned by the first, or a folder
    holding the first's files); it never owns a path the first owns."""
    import subprocess
    import sys
    from pathlib import Path

    tmp = tmp_path_factory.mktemp("own")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def argv(claims):
        return [a for flag, rel in claims for a in (flag, str(tmp / rel))]

    kinds = {}
    for flag, rel in first + second:  # one path is a folder or a file for the whole example, not both
        kinds.setdefault(os.path.normpath(rel), flag == "--out")
        if kinds[os.path.normpath(rel)] != (flag == "--out"):
            return
    p1 = subprocess.Popen([sys.executable, "-c", _OWN_SCRIPT, *argv(first)], env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
    line = p1.stdout.readline()
    try:
        p2 = subprocess.run([sys.executable, "-c", _OWN_SCRIPT, *argv(second)], env=env, input="", capture_output=True,
                            text=True, timeout=60)
    finally:
        p1.communicate("", timeout=60)
    if not line.startswith("owned"):
        return  # the first refused its own claims (two of them resolve to one file)
    def resolved(claims):
        return [((tmp / rel).resolve(), flag == "--out") for flag, rel in claims]

    def overlaps(x, y):
        (px, dx), (py, dy) = x, y
        return px == py or (dx and px in py.parents) or (dy and py in px.parents)

    clash = any(overlaps(x, y) for x in resolved(first) for y in resolved(second))
    own_dup = len({p for p, d in resolved(second) if not d}) < len([p for p, d in resolved(second) if not d])
    assert "Traceback" not in p2.stderr
    if clash or own_dup:
        assert p2.returncode == 2, (first, second, p2.stdout)
    elif p2.returncode != 0:  # refused only at the door (a file where a folder is, ...), never for a live run
        assert p2.returncode == 2 and "live run" not in p2.stdout, (first, second, p2.stdout)
