"""Symbolic checks (sympy) of the spec's identities on small symbolic dimensions, each with a
negative control that must fail. The symbolic side uses none of tnt_ref's numerics: the Kronecker
product is sympy's, unfoldings and ``vec`` are written out with explicit index arithmetic.

Each identity is then tied back to the code: tnt_ref's own function (``mode_products``, ``kron``,
``mode_moments``, ``tnt_factors_from_moments``, ``normalize``, ``KroneckerMatrix.eigvalsh``,
``damped_inverse_factors``) is evaluated on exact integer / dyadic inputs (float64 arithmetic on
small integers is exact) and compared with the symbolic closed form evaluated on the same inputs:
exactly where no roots are taken, to ``1e-12`` where they are. Both profiles reach ``k = 3``."""

from __future__ import annotations

import itertools
import math

import sympy as sp
from sympy.physics.quantum import TensorProduct

import numpy as np

from tnt_ref import tensor as _tt
from tnt_ref import tensor_normal as _tn
from tnt_ref.kronecker import KroneckerMatrix, damped_inverse_factors

from .registry import register

__all__: list[str] = []


def _kron(*mats):
    out = mats[0]
    for m in mats[1:]:
        out = TensorProduct(out, m)
    return out


def _flat(idx, shape) -> int:
    """Row-major position of a multi-index (the first index varies slowest)."""
    f = 0
    for i, d in zip(idx, shape):
        f = f * d + i
    return f


def _flat_colmajor(idx, shape) -> int:
    f = 0
    for i, d in zip(reversed(idx), reversed(shape)):
        f = f * d + i
    return f


def _sym(name, d):
    """Symbolic symmetric matrix."""
    return sp.Matrix(d, d, lambda i, j: sp.Symbol(f"{name}_{min(i, j)}{max(i, j)}", real=True))


def _gen(name, m, n):
    return sp.Matrix(m, n, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))


def _is_zero(M) -> bool:
    return all(sp.simplify(e) == 0 for e in M)


def _mode_products_by_index(X: dict, shape, mats):
    """``(X x_1 A_1 ... x_k A_k)[b] = sum_a prod_i A_i[b_i, a_i] X[a]`` by brute-force index sums."""
    out = {}
    for b in itertools.product(*[range(m.shape[0]) for m in mats]):
        s = 0
        for a in itertools.product(*[range(d) for d in shape]):
            term = X[a]
            for i, m in enumerate(mats):
                term = term * m[b[i], a[i]]
            s += term
        out[b] = sp.expand(s)
    return out


def _kron_identity(shape, colmajor: bool) -> tuple[bool, dict]:
    X = {a: sp.Symbol("x_" + "".join(map(str, a)), real=True) for a in itertools.product(*[range(d) for d in shape])}
    mats = [_gen(chr(ord("A") + i), d, d) for i, d in enumerate(shape)]
    Y = _mode_products_by_index(X, shape, mats)
    flat = _flat_colmajor if colmajor else _flat
    D = 1
    for d in shape:
        D *= d
    vx = sp.zeros(D, 1)
    vy = sp.zeros(D, 1)
    for a in X:
        vx[flat(a, shape)] = X[a]
        vy[flat(a, shape)] = Y[a]
    diff = (vy - _kron(*mats) * vx).applyfunc(sp.expand)
    ok = diff == sp.zeros(D, 1)
    return ok, {"shape": list(shape), "vec": "column-major" if colmajor else "row-major", "nonzero_entries": sum(e != 0 for e in diff)}


@register("sym.kron_mode_product", "vec(X x_1 A_1 ... x_k A_k) = (A_1 kron ... kron A_k) vec(X) under row-major vec",
          "derived", "symbolic")
def kron_mode_product(profile):
    r1 = _kron_identity((2, 3), colmajor=False)
    r2 = _kron_identity((2, 2, 2), colmajor=False)
    code = {"x".join(map(str, sh)): _code_kron(sh, seed) for seed, sh in enumerate([(2, 3), (2, 2, 2), (3, 2, 4), (2, 3, 2, 2)])}
    return r1[0] and r2[0] and all(code.values()), {"2x3": r1[1], "2x2x2": r2[1], "tnt_ref exact on integers": code}


def _ints(rng, *shape):
    return rng.integers(-3, 4, shape).astype(np.float64)


def _code_kron(shape, seed: int) -> bool:
    """tnt_ref's ``vec(mode_products(X, A))`` and ``kron(A)`` against sympy's ``kron(A) vec(X)`` on
    integer inputs: exact equality."""
    rng = np.random.default_rng(seed)
    X = _ints(rng, *shape)
    A = [_ints(rng, d, d) for d in shape]
    got = _tt.vec(_tt.mode_products(X, A))
    Ks = _kron(*[sp.Matrix(a.astype(int).tolist()) for a in A])
    vx = sp.zeros(X.size, 1)
    for a in itertools.product(*[range(d) for d in shape]):
        vx[_flat(a, shape)] = int(X[a])
    want = np.array((Ks * vx).tolist(), dtype=np.float64).reshape(-1)
    return bool(np.array_equal(got, want) and np.array_equal(_tt.kron(*A), np.array(Ks.tolist(), dtype=np.float64)))


@register("sym.kron_mode_product.colmajor", "the same Kronecker order with a column-major vec (must fail)",
          "derived", "negative-control", expected="fail")
def kron_mode_product_colmajor(profile):
    return _kron_identity((2, 3), colmajor=True)


def _moments_of(K, shape):
    """``E[X_(i) X_(i)^T]`` from a covariance ``K`` by explicit partial traces."""
    out = []
    for i, d in enumerate(shape):
        S = sp.zeros(d, d)
        for rest in itertools.product(*[range(s) for j, s in enumerate(shape) if j != i]):
            for a, b in itertools.product(range(d), repeat=2):
                ia, ib = list(rest), list(rest)
                ia.insert(i, a)
                ib.insert(i, b)
                S[a, b] += K[_flat(ia, shape), _flat(ib, shape)]
        out.append(S)
    return out


def _moment_identity(shape, drop_trace: bool):
    U = [_sym(chr(ord("a") + i), d) for i, d in enumerate(shape)]
    S = _moments_of(_kron(*U), shape)
    ok = True
    for i in range(len(shape)):
        scale = 1
        if not drop_trace:
            for j in range(len(shape)):
                if j != i:
                    scale *= U[j].trace()
        ok = ok and _is_zero(S[i] - U[i] * scale)
    return ok


@register("sym.moment_identity", "E[X_(i) X_(i)^T] = U_i prod_{j != i} tr(U_j) for X ~ TN(0; U_1, ..., U_k)",
          "paper", "symbolic")
def moment_identity(profile):
    a, b = _moment_identity((2, 3), False), _moment_identity((2, 2, 2), False)
    code = {"x".join(map(str, sh)): _code_moments(sh, seed)[0] for seed, sh in enumerate([(2, 3), (2, 2, 2), (3, 2, 2)])}
    return a and b and all(code.values()), {"2x3": a, "2x2x2": b, "tnt_ref mode_moments exact on integers": code}


def _spd_ints(rng, d):
    """An integer lower-triangular ``L`` with non-zero diagonal; ``U = L L^T`` is SPD with integer entries."""
    L = np.tril(_ints(rng, d, d))
    L[np.diag_indices(d)] = rng.integers(1, 4, d)
    return L


def _code_moments(shape, seed: int):
    """Samples: the ``D`` columns of ``kron(L_1..L_k)`` (their second moment is ``kron(U_i) / D`` exactly).
    ``D * mode_moments(samples)`` must equal the sympy partial traces of ``kron(U_i)`` and
    ``U_i prod_{j != i} tr(U_j)`` exactly (integers)."""
    rng = np.random.default_rng(100 + seed)
    Ls = [_spd_ints(rng, d) for d in shape]
    Us = [l @ l.T for l in Ls]
    D = math.prod(shape)
    samples = _tt.kron(*Ls).T.reshape(D, *shape)  # sample j = column j of kron(L), as a tensor
    got = [D * m for m in _tn.mode_moments(samples)]
    sym = _moments_of(_kron(*[sp.Matrix(u.astype(int).tolist()) for u in Us]), shape)
    ok = True
    for i in range(len(shape)):
        closed = Us[i] * math.prod(np.trace(Us[j]) for j in range(len(shape)) if j != i)
        ok = ok and np.allclose(got[i], closed, rtol=1e-14, atol=0) and np.array_equal(np.array(sym[i].tolist(), dtype=float), closed)
    return bool(ok), Us, got


@register("sym.moment_identity.no_trace", "E[X_(i) X_(i)^T] = U_i without the trace factor (must fail)",
          "paper", "negative-control", expected="fail")
def moment_identity_no_trace(profile):
    ok = _moment_identity((2, 3), True)
    return ok, {"2x3": ok}


@register("sym.scale_nonidentifiability", "(a_1 U_1, ..., a_k U_k) with prod a_i = 1 gives the same covariance",
          "paper", "symbolic")
def scale_nonidentifiability(profile):
    a, b = sp.symbols("alpha beta", positive=True)
    U = [_sym(c, d) for c, d in zip("uvw", (2, 3, 2))]
    ok2 = _is_zero(_kron(a * U[0], U[1] / a) - _kron(U[0], U[1]))
    ok3 = _is_zero(_kron(a * U[0], b * U[1], U[2] / (a * b)) - _kron(*U))
    code = _code_scale()
    return ok2 and ok3 and code, {"k=2": ok2, "k=3": ok3, "tnt_ref covariance and normalize (k=3, dyadic a, b)": code}


def _code_scale() -> bool:
    """``TensorNormal((2 U_1, 4 U_2, U_3 / 8)).covariance()`` equals ``TensorNormal(U)``'s exactly, and
    ``normalize`` maps both to the same factors."""
    rng = np.random.default_rng(7)
    Us = [(lambda l: l @ l.T)(_spd_ints(rng, d)) for d in (2, 3, 2)]
    Vs = [2 * Us[0], 4 * Us[1], Us[2] / 8]
    same_cov = np.array_equal(_tn.TensorNormal(Vs).covariance(), _tn.TensorNormal(Us).covariance())
    nu, nv = _tn.normalize(Us), _tn.normalize(Vs)
    return bool(same_cov and all(np.allclose(a, b, rtol=1e-13, atol=0) for a, b in zip(nu, nv)))


@register("sym.scale_nonidentifiability.wrong", "(a U_1, a U_2) gives the same covariance (must fail)",
          "paper", "negative-control", expected="fail")
def scale_wrong(profile):
    a = sp.Symbol("alpha", positive=True)
    U = [_sym(c, d) for c, d in zip("uv", (2, 2))]
    ok = _is_zero(_kron(a * U[0], a * U[1]) - _kron(*U))
    return ok, {}


def _estimator(S, shape, scale_rule: bool = True):
    k = len(shape)
    D = 1
    for d in shape:
        D *= d
    tau = S[0].trace()
    if not scale_rule:  # one Jacobi flip-flop sweep from identity, no rescaling
        return [s * sp.Rational(d, D) for s, d in zip(S, shape)], tau, D
    c = (tau / D) ** sp.Rational(1, k)
    return [s / (c ** (k - 1) * sp.Rational(D, d)) for s, d in zip(S, shape)], tau, D


@register("sym.estimator_invariants",
          "TNT's estimator: tr(U_i)/d_i equal for all modes; kron U_i = kron S_i / tau^(k-1); trace tau; "
          "exact on tensor-normal moments", "derived", "symbolic", cost=1.4)
def estimator_invariants(profile):
    measured = {}
    # (1) generic moments with a common trace (S_2's last diagonal entry is fixed by the trace)
    tau = sp.Symbol("tau", positive=True)
    S1 = _sym("s", 2)
    S1[1, 1] = tau - S1[0, 0]
    S2 = _sym("t", 3)
    S2[2, 2] = tau - S2[0, 0] - S2[1, 1]
    U, tau_e, D = _estimator([S1, S2], (2, 3))
    eq_avg = sp.simplify(U[0].trace() / 2 - U[1].trace() / 3) == 0
    kron_eq = _is_zero(_kron(*U) - _kron(S1, S2) / tau_e)
    trace_eq = sp.simplify(_kron(*U).trace() - tau) == 0
    measured.update(equal_average_eigenvalue=eq_avg, kron_equals_kronS_over_tau=kron_eq, trace_is_tau=trace_eq)
    # (2) exactness: moments of TN(0; U_1, U_2, U_3), 2x2x2 (k = 3, cube roots)
    if profile == "full":
        shapes = [(2, 3), (2, 2, 2)]
    else:
        shapes = [(2, 3)]
    for shape in shapes:
        Ut = [_sym(chr(ord("a") + i), d) for i, d in enumerate(shape)]
        Ku = _kron(*Ut)
        Uh, _, _ = _estimator(_moments_of(Ku, shape), shape)
        # traces of SPD factors are positive: substitute positive symbols for them to let sympy take roots
        pos = {Ut[i].trace(): sp.Symbol(f"T{i}", positive=True) for i in range(len(shape))}
        ex = _is_zero((_kron(*Uh) - Ku).applyfunc(lambda e: sp.simplify(sp.expand(e).subs(pos))))
        measured[f"exact_on_TN_{'x'.join(map(str, shape))}"] = ex
    # (3) exactness for any k through the moment identity (S_i = U_i prod_{j != i} T_j, T_j = tr U_j):
    #     the estimator's scalar factors multiply to 1, so kron U_hat = kron U, for k = 2, 3, 4
    for k in (2, 3, 4):
        T = sp.symbols(f"T1:{k + 1}", positive=True)
        d = sp.symbols(f"d1:{k + 1}", positive=True)
        Dk = sp.Mul(*d)
        tau_k = sp.Mul(*T)  # tr S_i = T_i prod_{j != i} T_j
        c = (tau_k / Dk) ** sp.Rational(1, k)
        scal = sp.Mul(*[sp.Mul(*[T[j] for j in range(k) if j != i]) / (c ** (k - 1) * Dk / d[i]) for i in range(k)])
        measured[f"exact_on_TN_any_shape_k={k}"] = sp.simplify(sp.powsimp(scal, force=True) - 1) == 0
    # (4) tnt_ref's tnt_factors_from_moments on exact integer moments of TN(0; U), k = 2, 3
    code = {}
    for seed, shape in enumerate([(2, 3), (2, 2, 2), (3, 2, 2)]):
        _, Us, S = _code_moments(shape, seed)
        Uh = _tn.tnt_factors_from_moments(S)
        avg = [float(np.trace(u)) / u.shape[0] for u in Uh]
        # the symbolic closed form evaluated on the same (integer) moments
        Usym, _, _ = _estimator([sp.Matrix(np.rint(m).astype(int).tolist()) for m in S], shape)
        sym_num = [np.array(sp.N(u, 30).tolist(), dtype=float) for u in Usym]
        code["x".join(map(str, shape))] = bool(
            np.allclose(_tt.kron(*Uh), _tt.kron(*Us), rtol=1e-12, atol=0)
            and np.allclose(avg, avg[0], rtol=1e-13, atol=0)
            and all(np.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(Uh, sym_num)))
    measured["tnt_ref tnt_factors_from_moments = closed form, exact on TN moments"] = code
    ok_code = all(code.values())
    return ok_code and all(v for v in measured.values() if isinstance(v, bool)), measured


@register("sym.estimator_without_scale_rule", "one Jacobi sweep from identity without the scale rule matches the trace (must fail)",
          "derived", "negative-control", expected="fail")
def estimator_without_scale_rule(profile):
    tau = sp.Symbol("tau", positive=True)
    s00, s01, t00, t11, t01 = sp.symbols("s00 s01 t00 t11 t01", real=True)
    S1 = sp.Matrix([[s00, s01], [s01, tau - s00]])
    S2 = sp.Matrix([[t00, t01], [t01, tau - t00]])
    U, _, _ = _estimator([S1, S2], (2, 2), scale_rule=False)
    ok = sp.simplify(_kron(*U).trace() - tau) == 0
    return ok, {"trace_minus_tau": str(sp.simplify(_kron(*U).trace() - tau))}


def _rot(t):
    """A general 2x2 rotation, rationally parametrized (c = (1-t^2)/(1+t^2), s = 2t/(1+t^2))."""
    c, s = (1 - t**2) / (1 + t**2), 2 * t / (1 + t**2)
    return sp.Matrix([[c, -s], [s, c]])


def _kron_eigen(use_sum: bool):
    t1, t2 = sp.symbols("theta phi", real=True)
    l = sp.symbols("l1 l2", positive=True)
    m = sp.symbols("m1 m2", positive=True)
    A = _rot(t1) * sp.diag(*l) * _rot(t1).T
    B = _rot(t2) * sp.diag(*m) * _rot(t2).T
    K = _kron(A, B)
    ok = True
    for i, j in itertools.product(range(2), repeat=2):
        v = _kron(_rot(t1)[:, i], _rot(t2)[:, j])
        lam = l[i] + m[j] if use_sum else l[i] * m[j]
        ok = ok and all(sp.cancel(e) == 0 for e in (K * v - lam * v))
    return ok


@register("sym.kron_eigenvalues", "the eigenvalues of A kron B are the products l_i m_j (eigenvectors q_i kron r_j)",
          "derived", "symbolic", cost=0.9)
def kron_eigenvalues(profile):
    ok = _kron_eigen(False)
    code = _code_kron_eigen()
    return ok and code, {"2x2 kron 2x2, symbolic rotations and eigenvalues": ok,
                         "tnt_ref KroneckerMatrix.eigvalsh, k=3 rational rotations": code}


def _code_kron_eigen() -> bool:
    """``KroneckerMatrix([A, B, C]).eigvalsh()`` with ``A = R diag(l) R^T`` (rational rotations,
    known eigenvalues) equals the sorted products ``l_i m_j n_k``, and the dense matrix's spectrum too."""
    facs, lams = [], []
    for t, l in ((sp.Rational(1, 2), (1, 4)), (sp.Rational(1, 3), (2, 3)), (sp.Rational(2, 5), (1, 5))):
        R = _rot(t)
        facs.append(np.array((R * sp.diag(*l) * R.T).tolist(), dtype=float))
        lams.append(np.array(l, dtype=float))
    want = np.sort(np.multiply.outer(np.multiply.outer(lams[0], lams[1]), lams[2]).reshape(-1))
    K = KroneckerMatrix(facs)
    return bool(np.allclose(K.eigvalsh(), want, rtol=1e-12) and np.allclose(np.linalg.eigvalsh(K.dense()), want, rtol=1e-12))


@register("sym.kron_eigenvalues.sums", "the eigenvalues of A kron B are the sums l_i + m_j (must fail)",
          "derived", "negative-control", expected="fail")
def kron_eigenvalues_sums(profile):
    return _kron_eigen(True), {}


def _nonneg(expr) -> bool:
    e = sp.simplify(expr)
    return bool(e.is_nonnegative) or e == 0


@register("sym.spectral_bounds",
          "damped preconditioner: 1/(l + eps) <= 1/eps (so H <= eps^-k I); EMA keeps tr S <= B^2; "
          "c = (tau/D)^(1/k) increases with tau, so lambda_max(U_i) <= d_i (B^2/D)^(1/k)", "reconstructed", "symbolic")
def spectral_bounds(profile):
    lam, eps, B2, u, v, beta, D, tau = sp.symbols("lambda epsilon B2 u v beta D tau", positive=True)
    upper = _nonneg(1 / eps - 1 / (lam + eps))
    # EMA induction: tr S = B2 - u <= B2, ||G||^2 = B2 - v <= B2, beta in (0, 1)
    b = sp.Symbol("b", positive=True)  # beta = b / (1 + b) in (0, 1)
    beta_ = b / (1 + b)
    ema = _nonneg(sp.expand(B2 - (beta_ * (B2 - u) + (1 - beta_) * (B2 - v))))
    mono = {}
    for k in (1, 2, 3):
        c = (tau / D) ** sp.Rational(1, k)
        mono[k] = bool(sp.simplify(sp.diff(c, tau)).is_positive)
    ok = upper and ema and all(mono.values())
    code = _code_spectral()
    return ok and code["ok"], {"1/(l+eps) <= 1/eps": upper, "EMA trace bound": ema, "dc/dtau > 0 for k=1,2,3": mono,
                               "tnt_ref": code}


def _code_spectral() -> dict:
    """tnt_ref on a rank-one statistic (``lambda_min(U_i) = 0``, k = 3): ``damped_inverse_factors``
    attains ``H = eps^{-k}`` and never exceeds it, and ``tnt_factors_from_moments`` keeps
    ``lambda_max(U_i) <= d_i (B^2 / D)^{1/k}`` with ``B = ||G||_F`` (with equality, the tensor being rank one)."""
    shape, eps = (2, 3, 2), 0.25
    G = np.multiply.outer(np.multiply.outer([1.0, 2.0], [1.0, -1.0, 3.0]), [2.0, 1.0])  # rank one in every mode
    U = _tn.tnt_factors_from_moments(_tn.mode_moments(G[None]))
    H = KroneckerMatrix(damped_inverse_factors(U, eps)).eigvalsh()
    B2, D, k = float(np.sum(G**2)), G.size, 3
    lam_max = [float(np.linalg.eigvalsh(u)[-1]) for u in U]
    bound = [d * (B2 / D) ** (1 / k) for d in shape]
    # rank one: U_i = c d_i q q^T, so lambda_max(U_i) = tr U_i attains the bound
    ok = bool(abs(H[-1] - eps**-k) <= 1e-9 * eps**-k and H[-1] <= eps**-k * (1 + 1e-12)
              and all(l <= b * (1 + 1e-12) for l, b in zip(lam_max, bound))
              and np.allclose(lam_max, bound, rtol=1e-12))
    return {"ok": ok, "max_H": float(H[-1]), "eps^-k": eps**-k, "lambda_max(U_i)": lam_max, "bounds": bound}


@register("sym.spectral_bounds.no_damping", "without damping (eps = 0) 1/l is bounded as l -> 0+ (must fail)",
          "reconstructed", "negative-control", expected="fail")
def spectral_no_damping(profile):
    lam = sp.Symbol("lambda", positive=True)
    lim = sp.limit(1 / lam, lam, 0, "+")
    return bool(lim.is_finite), {"limit_l_to_0": str(lim)}
