"""Bad-input hunt over the tnt-ref library (issue 24, round two; docs/validation.md). Each case is a careless user's call.

Verdict per case: ok (a ValueError/TypeError whose message names an argument/keyword, or a correct, finite
result), or bad (another exception type = raw traceback, a silent non-finite or wrong number, a refusal that
names nothing, or a hang). Run: PYTHONPATH=<tree> python lib_hunt.py  -> one line per case + totals by kind.
"""
import json, math, signal, sys, traceback, warnings
import numpy as np

import tnt_ref
from tnt_ref import KroneckerMatrix, TensorNormal, kron, mle, mode_moments, tnt_factors, normalize, frobenius_kron_fit
from tnt_ref import fold, unfold, vec, mode_product, mode_products, tnt_factors_from_moments
from tnt_ref.models import mlp, cnn, Sequential
from tnt_ref.models.layers import Linear, Conv2d, Activation
from tnt_ref.optim import tnt, sgd, adam, kfac, shampoo, make_optimizer, tnt_warm_start
from tnt_ref.training import run, train_step
from tnt_ref.experiments import estimator_study, fisher_study
from tnt_ref.data import random_spd, synthetic_tensor_normal_gradients
from tnt_ref.fisher import exact_fisher_blocks, exact_mode_moments
from tnt_ref.kronecker import safe_eigh
from proofs_check.separability import kl_gap

rng = lambda: np.random.default_rng(0)
CASES = []


def case(kind, name, fn, expect="refuse", words=(), check=None):
    CASES.append((kind, name, fn, expect, words, check))


def finite(x):
    if isinstance(x, dict):
        return all(finite(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(finite(v) for v in x)
    if isinstance(x, (int, float, np.floating, np.ndarray)):
        return bool(np.all(np.isfinite(np.asarray(x, dtype=float))))
    return True


net = mlp([4, 3, 2])
P = net.init(rng())
X = np.ones((5, 4)); Y = np.array([0, 1, 0, 1, 1])
G = rng().standard_normal((30, 3, 4))
spd = lambda d, s=0: random_spd(np.random.default_rng(s), d)

# ---- memory: dense objects of enormous size must be refused before allocation, naming the size
M = "memory"
case(M, "kron 3x eye(2000)", lambda: kron(np.eye(2000), np.eye(2000), np.eye(2000)), words=("TiB", "GiB", "bytes", "mats"))
case(M, "kron eye(100000) x eye(100000)", lambda: kron(np.ones((100000, 1)), np.ones((1, 100000)), np.ones((1000, 1000))), words=("TiB", "GiB", "bytes"))
case(M, "KroneckerMatrix.dense huge", lambda: KroneckerMatrix([np.eye(3000)] * 3).dense(), words=("TiB", "GiB", "bytes", "dense"))
case(M, "KroneckerMatrix.eigvalsh huge", lambda: KroneckerMatrix([np.eye(5000)] * 3).eigvalsh(), words=("TiB", "GiB", "bytes", "eigvalsh"))
case(M, "TensorNormal.covariance huge", lambda: TensorNormal([np.eye(1000)] * 3).covariance(), words=("TiB", "GiB", "covariance"))
case(M, "TensorNormal.sample n=1e13", lambda: TensorNormal([np.eye(3)]).sample(10**13, rng()), words=("TiB", "GiB", "n"))
case(M, "TensorNormal.sample n=1e9 shape 100x100", lambda: TensorNormal([np.eye(100), np.eye(100)]).sample(10**9, rng()), words=("TiB", "GiB", "n"))
case(M, "synthetic grads n=1e12", lambda: synthetic_tensor_normal_gradients((10, 10), 10**12, rng()), words=("TiB", "GiB", "n"))
case(M, "random_spd d=1e6", lambda: random_spd(rng(), 10**6), words=("TiB", "GiB", "d"))
case(M, "mlp width 1e7", lambda: mlp([10**7, 10**6, 2]), words=("TiB", "GiB", "width", "sizes"))
case(M, "cnn channels 1e6", lambda: cnn((1, 8, 8), channels=(10**6, 10**6)), words=("TiB", "GiB", "channels"))
case(M, "tnt.init (1, 5e5) param", lambda: tnt(0.1).init({"w": np.zeros((1, 500000))}), words=("TiB", "GiB", "factor"))
case(M, "kfac.init (2, 3e5) param", lambda: kfac(0.1).init({"fc.weight": np.zeros((2, 300000)), "fc.bias": np.zeros(2)}), words=("TiB", "GiB", "factor"))
case(M, "shampoo.init (1, 4e5)", lambda: shampoo(0.1).init({"w": np.zeros((1, 400000))}), words=("TiB", "GiB", "factor"))
case(M, "estimator_study shape 300^3", lambda: estimator_study(shape=(300, 300, 300), ns=[2]), words=("TiB", "GiB", "shape"))
case(M, "estimator_study huge n", lambda: estimator_study(shape=(3, 2), ns=[10**12]), words=("TiB", "GiB", "ns", "n"))
case(M, "exact_fisher_blocks wide", lambda: exact_fisher_blocks(mlp([4000, 4000, 2]), mlp([4000, 4000, 2]).init(rng()), np.ones((2, 4000)), rng()), words=("bytes", "block", "max_block_bytes", "GiB"))
case(M, "kron small is fine", lambda: kron(np.eye(3), np.eye(4)), expect="value", check=lambda r: r.shape == (12, 12))

# ---- numbers: finite, in range
N = "numbers"
case(N, "mle tol=nan", lambda: mle(G, tol=float("nan")), words=("tol",))
case(N, "mle tol=inf", lambda: mle(G, tol=float("inf")), words=("tol",))
case(N, "mle max_iter=0", lambda: mle(G, max_iter=0), words=("max_iter",))
case(N, "mle max_iter=2.5", lambda: mle(G, max_iter=2.5), words=("max_iter",))
case(N, "frobenius tol nan", lambda: frobenius_kron_fit(np.kron(spd(2), spd(3)), (2, 3), tol=float("nan")), words=("tol",))
case(N, "frobenius tol -1", lambda: frobenius_kron_fit(np.kron(spd(2), spd(3, 1)), (2, 3, 1), tol=-1.0), words=("tol",))
case(N, "frobenius max_iter 0", lambda: frobenius_kron_fit(np.kron(np.kron(spd(2), spd(2, 1)), spd(2, 2)), (2, 2, 2), max_iter=0), words=("max_iter",))
case(N, "tnt_factors_from_moments rtol nan", lambda: tnt_factors_from_moments(mode_moments(G), rtol=float("nan")), words=("rtol",))
case(N, "tnt damping 1e-300 step", lambda: _tnt_step(damping=1e-300), words=("damping",))
case(N, "tnt damping 1e-200 step", lambda: _tnt_step(damping=1e-200), words=("damping",))
case(N, "kfac damping 1e-300 step", lambda: _kfac_step(1e-300), words=("damping",))
case(N, "tnt damping nan", lambda: tnt(0.1, damping=float("nan")), words=("damping",))
case(N, "tnt damping inf", lambda: tnt(0.1, damping=float("inf")), words=("damping",))
case(N, "tnt lr -1", lambda: tnt(-1.0), words=("learning_rate",))
case(N, "tnt lr inf", lambda: tnt(float("inf")), words=("learning_rate",))
case(N, "tnt momentum 1.0", lambda: tnt(0.1, momentum=1.0), words=("momentum",))
case(N, "tnt decay nan", lambda: tnt(0.1, decay=float("nan")), words=("decay",))
case(N, "tnt T1 0", lambda: tnt(0.1, T1=0), words=("T1",))
case(N, "tnt T2 2.5", lambda: tnt(0.1, T2=2.5), words=("T2",))
case(N, "tnt weight_decay -1", lambda: tnt(0.1, weight_decay=-1.0), words=("weight_decay",))
case(N, "tnt conv_modes 5", lambda: tnt(0.1, conv_modes=5), words=("conv_modes",))
case(N, "shampoo floor nan step", lambda: _shampoo_step(float("nan")), words=("floor",))
case(N, "shampoo floor inf", lambda: shampoo(0.1, floor=float("inf")), words=("floor",))
case(N, "shampoo floor -1", lambda: shampoo(0.1, floor=-1.0), words=("floor",))
case(N, "adam eps 0", lambda: adam(0.1, eps=0.0), words=("eps",))
case(N, "adam b2 nan", lambda: adam(0.1, b2=float("nan")), words=("b2",))
case(N, "sgd lr '0.1'", lambda: sgd("0.1"), words=("learning_rate",))
case(N, "run seconds inf", lambda: run("mlp", "sgd", 0.1, epochs=None, seconds=float("inf")), words=("seconds",))
case(N, "run seconds nan", lambda: run("mlp", "sgd", 0.1, epochs=None, seconds=float("nan")), words=("seconds",))
case(N, "run divergence_factor nan", lambda: run("mlp", "sgd", 0.1, epochs=1, divergence_factor=float("nan")), words=("divergence_factor",))
case(N, "run divergence_factor inf", lambda: run("mlp", "sgd", 0.1, epochs=1, divergence_factor=float("inf")), words=("divergence_factor",))
case(N, "run lr nan", lambda: run("mlp", "sgd", float("nan"), epochs=1), words=("learning_rate",))
case(N, "damped_inverse eps nan", lambda: KroneckerMatrix([spd(2), spd(3)]).damped_inverse(float("nan")), words=("eps",))
case(N, "damped_inverse eps 1e-320", lambda: KroneckerMatrix([np.diag([1.0, 0.0]), spd(3)]).damped_inverse(1e-320), words=("eps", "damping"))
case(N, "solve_damped lam nan", lambda: KroneckerMatrix([spd(2)]).solve_damped(np.ones(2), float("nan")), words=("lam",))
case(N, "safe_eigh floor nan", lambda: safe_eigh(spd(3), floor=float("nan")), words=("floor",))
case(N, "random_spd cond nan", lambda: random_spd(rng(), 3, cond=float("nan")), words=("cond",))
case(N, "random_spd cond 0.5", lambda: random_spd(rng(), 3, cond=0.5), words=("cond",))
case(N, "estimator_study cond -1", lambda: estimator_study(shape=(2, 2), ns=[10], cond=-1.0), words=("cond",))
case(N, "fisher_study damping nan", lambda: fisher_study("mlp", n=10, damping=float("nan"), train_steps=1), words=("damping",))
case(N, "kl_gap tol nan", lambda: kl_gap(np.kron(spd(2), spd(2, 1)) + 0.1 * np.eye(4), (2, 2), tol=float("nan")), words=("tol",))
case(N, "tnt fine", lambda: tnt(0.1, damping=1e-3), expect="value", check=lambda r: r.name == "tnt")

# ---- covariances: symmetric, PSD/PD; indefinite vs rank-deficient told apart
C = "covariance"
asym = np.kron(spd(2), spd(2, 1)); asym[0, 3] += 0.7
case(C, "mle covariance non-symmetric", lambda: mle(covariance=asym, shape=(2, 2)), words=("symmetric", "covariance"))
case(C, "kl_gap non-symmetric", lambda: kl_gap(asym, (2, 2)), words=("symmetric", "F"))
case(C, "mle covariance indefinite", lambda: mle(covariance=np.diag([1.0, -1.0, 1.0, 1.0]), shape=(2, 2)), words=("indefinite", "covariance"))
case(C, "kl_gap indefinite", lambda: kl_gap(np.diag([1.0, -1.0, 1.0, 1.0]), (2, 2)), words=("indefinite",))
case(C, "kl_gap singular says rank/singular", lambda: kl_gap(np.diag([1.0, 0.0, 1.0, 1.0]), (2, 2)), words=("singular", "rank-deficient"))
case(C, "TensorNormal indefinite says indefinite", lambda: TensorNormal([np.diag([1.0, -2.0])]), words=("indefinite",))
case(C, "TensorNormal singular says singular", lambda: TensorNormal([np.diag([1.0, 0.0])]), words=("singular", "rank-deficient"))
case(C, "TensorNormal rank-1+eps says rank-deficient", lambda: TensorNormal([np.outer([1., 2, 3], [1., 2, 3]) + 1e-17 * np.eye(3)]), words=("rank-deficient", "singular"))
case(C, "TensorNormal non-symmetric", lambda: TensorNormal([np.array([[2.0, 1.0], [0.0, 2.0]])]), words=("symmetric",))
case(C, "KroneckerMatrix logdet indefinite", lambda: KroneckerMatrix([np.diag([1.0, -1.0])]).logdet(), words=("indefinite", "semi-definite"))
case(C, "normalize indefinite", lambda: normalize([np.diag([1.0, -1.0]), np.eye(2)]), words=("semi-definite", "indefinite"))
case(C, "tnt_factors_from_moments indefinite", lambda: tnt_factors_from_moments([np.diag([2.0, -1.0]), np.diag([0.5, 0.5])]), words=("semi-definite", "indefinite", "moments"))
case(C, "solve_damped indefinite factors", lambda: KroneckerMatrix([np.diag([-1.0, 2.0]), np.diag([-1.0, 3.0])]).solve_damped(np.ones((2, 2)), 1.0), words=("semi-definite", "indefinite"))
case(C, "mle init non-symmetric", lambda: mle(G, init=[np.array([[1.0, 0.5], [0, 1]]) if False else np.triu(np.ones((3, 3))), np.eye(4)]), words=("symmetric", "init"))
case(C, "mle covariance symmetric fine", lambda: mle(covariance=np.kron(spd(2), spd(2, 1)), shape=(2, 2)), expect="value", check=lambda r: len(r.factors) == 2)
case(C, "kl_gap kron -> 0", lambda: kl_gap(np.kron(spd(2), spd(2, 1)), (2, 2))[0], expect="value", check=lambda r: abs(r) < 1e-8)
case(C, "kl_gap nonsep > 0", lambda: kl_gap(np.kron(spd(2), spd(2, 1)) + 0.5 * np.ones((4, 4)), (2, 2))[0], expect="value", check=lambda r: r > 1e-6)

# ---- statistics that cannot exist: +inf or an error, never a large finite number
S_ = "statistics"
tn6 = TensorNormal([np.eye(6), np.eye(5), np.eye(4)])
case(S_, "estimator_study n=1 kl >= 0", lambda: estimator_study(ns=[1]), expect="value", check=lambda rows: all(r["kl"] >= 0 for r in rows) and all(math.isinf(r["kl"]) or r["kl"] < 1e6 for r in rows))
case(S_, "estimator_study n=2 (3,2) kl >= 0", lambda: estimator_study(shape=(3, 2), ns=[1, 2]), expect="value", check=lambda rows: all(r["kl"] >= 0 for r in rows) and all(math.isinf(r["kl"]) or r["kl"] < 1e6 for r in rows))
case(S_, "estimator_study shape (8,1) n=1", lambda: estimator_study(shape=(8, 1), ns=[1, 3]), expect="value", check=lambda rows: all(r["kl"] >= 0 for r in rows) and all(math.isinf(r["kl"]) or r["kl"] < 1e6 for r in rows))
case(S_, "TensorNormal from 1-sample tnt_factors (4,1)", lambda: tn6.kl(TensorNormal(tnt_factors(TensorNormal([np.eye(4), np.eye(1)]).sample(1, rng())) + [])) if False else TensorNormal(tnt_factors(TensorNormal([np.eye(4), np.eye(1)]).sample(1, rng()))).kl(TensorNormal([np.eye(4), np.eye(1)])), words=("rank-deficient", "singular", "factors", "positive definite"))
case(S_, "mle too few samples", lambda: mle(rng().standard_normal((1, 8, 1))), words=("samples", "n"))
case(S_, "mle rank-deficient samples", lambda: mle(np.repeat(rng().standard_normal((1, 3, 3)), 5, axis=0)), words=("rank", "samples", "singular"))
case(S_, "logpdf of 1-sample estimate", lambda: TensorNormal(tnt_factors(np.ones((1, 2, 1)))).logpdf(np.ones((2, 1))), words=("rank-deficient", "singular", "positive definite"))
case(S_, "mode_moments of 0 samples", lambda: mode_moments(np.zeros((0, 2, 3))), words=("samples",))
case(S_, "tnt_factors zero samples block", lambda: tnt_factors(np.zeros((3, 2, 2))), expect="value", check=lambda U: all(np.all(u == 0) for u in U))
case(S_, "kl with itself 0", lambda: tn6.kl(tn6), expect="value", check=lambda r: abs(r) < 1e-10)

# ---- dtypes
D_ = "dtype"
G16 = np.full((400, 4, 4), 12.0, dtype=np.float16)
case(D_, "mode_moments float16", lambda: mode_moments(G16), words=("float16", "dtype", "samples"))
case(D_, "tnt_factors float16", lambda: tnt_factors(G16), words=("float16", "dtype", "samples"))
case(D_, "mle float16", lambda: mle(G16), words=("float16", "dtype", "samples"))
case(D_, "KroneckerMatrix float16", lambda: KroneckerMatrix([np.eye(3, dtype=np.float16)]).logdet(), words=("float16", "dtype"))
case(D_, "TensorNormal float16", lambda: TensorNormal([np.eye(3, dtype=np.float16)]), words=("float16", "dtype"))
case(D_, "tnt init float16", lambda: tnt(0.1).init({"w": np.ones((3, 4), np.float16)}), words=("float16", "dtype"))
case(D_, "shampoo init float16", lambda: shampoo(0.1).init({"w": np.ones((3, 4), np.float16)}), words=("float16", "dtype"))
case(D_, "tnt_factors complex", lambda: tnt_factors(G.astype(complex)), words=("dtype", "samples"))
case(D_, "kron object", lambda: kron(np.eye(2).astype(object)), words=("dtype", "mats"))
case(D_, "mode_moments float32 fine", lambda: mode_moments(G16.astype(np.float32)), expect="value", check=finite)

# ---- sizes: integers, positive
Z = "sizes"
case(Z, "mlp width 32.7", lambda: mlp([4, 32.7, 2]), words=("sizes", "integer"))
case(Z, "mlp width '8'", lambda: mlp([4, "8", 2]), words=("sizes",))
case(Z, "mlp width 0", lambda: mlp([4, 0, 2]), words=("sizes",))
case(Z, "mlp width True", lambda: mlp([4, True, 2]), words=("sizes",))
case(Z, "mlp sizes None", lambda: mlp(None), words=("sizes",))
case(Z, "cnn n_classes 0", lambda: cnn(n_classes=0), words=("n_classes",))
case(Z, "cnn n_classes 2.5", lambda: cnn(n_classes=2.5), words=("n_classes",))
case(Z, "cnn stride 0", lambda: cnn(stride=0), words=("stride",))
case(Z, "cnn stride -1", lambda: cnn(stride=-1), words=("stride",))
case(Z, "cnn kernel 0", lambda: cnn(kernel=0), words=("kernel",))
case(Z, "cnn kernel 2.5", lambda: cnn(kernel=2.5), words=("kernel",))
case(Z, "cnn kernel (3,)", lambda: cnn(kernel=(3,)), words=("kernel",))
case(Z, "cnn padding -1", lambda: cnn(padding=-1), words=("padding",))
case(Z, "cnn channels ()", lambda: cnn(channels=()), words=("channels",))
case(Z, "cnn channels (4.5,)", lambda: cnn(channels=(4.5,)), words=("channels",))
case(Z, "cnn input_shape (8,8)", lambda: cnn(input_shape=(8, 8)), words=("input_shape",))
case(Z, "Conv2d stride 0 forward", lambda: Conv2d("c", 1, 2, 3, stride=0).forward({"c.weight": np.ones((2, 1, 3, 3)), "c.bias": np.zeros(2)}, np.ones((1, 1, 8, 8))), words=("stride",))
case(Z, "Linear d_in 2.5", lambda: Linear("fc", 2.5, 3), words=("d_in",))
case(Z, "TensorNormal.sample n 2.5", lambda: TensorNormal([np.eye(2)]).sample(2.5, rng()), words=("n",))
case(Z, "TensorNormal.sample n 0", lambda: TensorNormal([np.eye(2)]).sample(0, rng()), words=("n",))
case(Z, "frobenius shape (2.5, 2)", lambda: frobenius_kron_fit(np.eye(4), (2.5, 2)), words=("shape",))
case(Z, "mle covariance shape (2.0, 2)", lambda: mle(covariance=np.eye(4), shape=(2.0, 2)), words=("shape",))
case(Z, "fold shape (2.5, 4)", lambda: fold(np.ones((2, 4)), 0, (2.5, 4)), words=("shape",))
case(Z, "random_spd d 2.5", lambda: random_spd(rng(), 2.5), words=("d",))
case(Z, "random_spd d 0", lambda: random_spd(rng(), 0), words=("d",))
case(Z, "synthetic n 3.5", lambda: synthetic_tensor_normal_gradients((2, 2), 3.5, rng()), words=("n",))
case(Z, "estimator_study ns [0]", lambda: estimator_study(shape=(2, 2), ns=[0]), words=("ns", "n"))
case(Z, "estimator_study shape (2.5,2)", lambda: estimator_study(shape=(2.5, 2), ns=[5]), words=("shape",))
case(Z, "estimator_study seed -1", lambda: estimator_study(shape=(2, 2), ns=[5], seed=-1), words=("seed",))
case(Z, "fisher_study n 2.5", lambda: fisher_study("mlp", n=2.5, train_steps=1), words=("n",))
case(Z, "fisher_study seed -4", lambda: fisher_study("mlp", n=10, seed=-4, train_steps=1), words=("seed",))
case(Z, "run seed -1", lambda: run("mlp", "sgd", 0.1, epochs=1, seed=-1), words=("seed",))
case(Z, "run epochs 1.5", lambda: run("mlp", "sgd", 0.1, epochs=1.5), words=("epochs",))
case(Z, "run batch_size 0", lambda: run("mlp", "sgd", 0.1, epochs=1, batch_size=0), words=("batch_size",))
case(Z, "run val_size -3", lambda: run("mlp", "sgd", 0.1, epochs=1, val_size=-3), words=("val_size",))
case(Z, "mlp fine", lambda: mlp([4, 8, 2]), expect="value", check=lambda n: n.param_shapes["fc1.weight"] == (8, 4))

# ---- structure: names, state pairing, parameter dicts
T = "structure"
case(T, "duplicate layer names", lambda: Sequential([Linear("fc", 4, 4), Activation("tanh"), Linear("fc", 4, 2)], "softmax_cross_entropy", (4,)), words=("unique", "name"))
case(T, "layer name 3", lambda: Linear(3, 4, 2), words=("name",))
state_sgd = sgd(0.1).init(P)
grads = {k: np.ones_like(v) for k, v in P.items()}
case(T, "sgd state into tnt", lambda: tnt(0.1).update(grads, state_sgd, P, sampled_grads=grads), words=("state",))
case(T, "sgd state into adam", lambda: adam(0.1).update(grads, state_sgd, P), words=("state",))
case(T, "adam state into sgd", lambda: sgd(0.1).update(grads, adam(0.1).init(P), P), words=("state",))
case(T, "tnt state into kfac", lambda: kfac(0.1).update(grads, tnt(0.1).init(P), P, kfac_stats={}), words=("state",))
case(T, "kfac state into shampoo", lambda: shampoo(0.1).update(grads, kfac(0.1).init(P), P), words=("state",))
case(T, "state is None", lambda: sgd(0.1).update(grads, None, P), words=("state",))
case(T, "state of another model", lambda: sgd(0.1).update(grads, sgd(0.1).init(mlp([4, 5, 2]).init(rng())), P), words=("state", "params", "momentum"))
case(T, "grads missing key", lambda: sgd(0.1).update({"fc1.weight": grads["fc1.weight"]}, state_sgd, P), words=("grads",))
case(T, "grads wrong shape", lambda: sgd(0.1).update({**grads, "fc1.weight": np.ones((2, 2))}, state_sgd, P), words=("grads",))
case(T, "tnt needs(sgd state)", lambda: tnt(0.1).needs(state_sgd), words=("state",))
case(T, "warm start with sgd opt", lambda: tnt_warm_start(sgd(0.1), tnt(0.1).init(P), P, [grads]), words=("opt",))
case(T, "warm start with adam state", lambda: tnt_warm_start(tnt(0.1), adam(0.1).init(P), P, [grads]), words=("state",))
Pm = {k: v for k, v in P.items() if k != "fc1.bias"}
case(T, "net.loss missing key", lambda: net.loss(Pm, X, Y), words=("params",))
case(T, "net.predict missing key", lambda: net.predict(Pm, X), words=("params",))
case(T, "net.forward missing key", lambda: net.forward(Pm, X), words=("params",))
case(T, "net.accuracy missing key", lambda: net.accuracy(Pm, X, Y), words=("params",))
case(T, "net.sample_labels missing key", lambda: net.sample_labels(Pm, X, rng()), words=("params",))
case(T, "net.per_example_grads missing", lambda: net.per_example_grads(Pm, X, Y), words=("params",))
case(T, "net.predict params list", lambda: net.predict(list(P.values()), X), words=("params",))
case(T, "net.predict wrong X", lambda: net.predict(P, np.ones((5, 3))), words=("X",))
case(T, "net.predict extra key", lambda: net.predict({**P, "fc9.weight": np.ones(2)}, X), words=("params",))
case(T, "train_step mismatched state", lambda: train_step(net, sgd(0.1), P, adam(0.1).init(P), X, Y, rng()), words=("state",))
case(T, "train_step missing key", lambda: train_step(net, sgd(0.1), Pm, sgd(0.1).init(Pm), X, Y, rng()), words=("params",))
case(T, "exact_fisher_blocks missing key", lambda: exact_fisher_blocks(net, Pm, X), words=("params",))
case(T, "exact_mode_moments missing key", lambda: exact_mode_moments(net, Pm, X), words=("params",))
case(T, "make_optimizer unknown", lambda: make_optimizer("lbfgs", 0.1), words=("lbfgs", "optimizer"))
case(T, "make_optimizer bad kw", lambda: make_optimizer("sgd", 0.1, damping=1e-3), words=("damping",))
case(T, "sgd pairing fine", lambda: sgd(0.1).update(grads, state_sgd, P), expect="value", check=lambda r: finite(r[0]))


def _tnt_step(damping):
    opt = tnt(0.1, damping=damping)
    st = opt.init(P)
    _, g = net.loss_and_grad(P, X, Y)
    return train_step(net, opt, P, st, X, Y, rng())


def _kfac_step(damping):
    opt = kfac(0.1, damping=damping)
    return train_step(net, opt, P, opt.init(P), X, Y, rng())


def _shampoo_step(floor):
    opt = shampoo(0.1, floor=floor)
    return train_step(net, opt, P, opt.init(P), X, Y, rng())


class Hang(Exception):
    pass


def _alarm(*_):
    raise Hang()


def judge(expect, words, check, fn):
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(90)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fn()
    except Hang:
        return "bad", "hang (> 90 s)"
    except (ValueError, TypeError) as e:
        msg = str(e)
        if expect == "value":
            return "bad", f"refused a valid call: {type(e).__name__}: {msg[:150]}"
        if words and not any(w.lower() in msg.lower() for w in words):
            return "bad", f"message names none of {words}: {type(e).__name__}: {msg[:150]}"
        return "ok", f"{type(e).__name__}: {msg[:150]}"
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        return "bad", f"raw {type(e).__name__}: {str(e)[:150]}"
    finally:
        signal.alarm(0)
    if expect == "refuse":
        fin = finite(r) if not callable(getattr(r, "init", None)) else True
        return "bad", f"accepted (returned {type(r).__name__}{'' if fin else ', NOT FINITE'})"
    try:
        good = check(r)
    except Exception as e:  # noqa: BLE001
        return "bad", f"result check raised {type(e).__name__}: {e}"
    return ("ok", "correct result") if good else ("bad", f"wrong/silent result: {str(r)[:150]}")


if __name__ == "__main__":
    from collections import Counter
    tot, bad = Counter(), Counter()
    rows = []
    for kind, name, fn, expect, words, check in CASES:
        v, why = judge(expect, words, check, fn)
        tot[kind] += 1
        bad[kind] += v == "bad"
        rows.append({"kind": kind, "case": name, "verdict": v, "why": why})
        print(f"{v:3} [{kind}] {name}: {why}", flush=True)
    print()
    for k in tot:
        print(f"{k:12} {bad[k]:3} bad of {tot[k]}")
    print(f"{'total':12} {sum(bad.values()):3} bad of {sum(tot.values())}")
    json.dump(rows, open(sys.argv[1] if len(sys.argv) > 1 else "/dev/null", "w"), indent=1)
