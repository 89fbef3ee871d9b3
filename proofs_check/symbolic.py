"""Symbolic checks (sympy) of the spec's identities on small symbolic dimensions, each with a
negative control that must fail. Nothing here uses tnt_ref's numerics: the Kronecker product is
sympy's, unfoldings and ``vec`` are written out with explicit index arithmetic."""

from __future__ import annotations

import itertools

import sympy as sp
from sympy.physics.quantum import TensorProduct

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
    return r1[0] and r2[0], {"2x3": r1[1], "2x2x2": r2[1]}


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
    return a and b, {"2x3": a, "2x2x2": b}


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
    return ok2 and ok3, {"k=2": ok2, "k=3": ok3}


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
          "exact on tensor-normal moments", "derived", "symbolic")
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
    return all(v for v in measured.values() if isinstance(v, bool)), measured


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
          "derived", "symbolic")
def kron_eigenvalues(profile):
    ok = _kron_eigen(False)
    return ok, {"2x2 kron 2x2, symbolic rotations and eigenvalues": ok}


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
    return ok, {"1/(l+eps) <= 1/eps": upper, "EMA trace bound": ema, "dc/dtau > 0 for k=1,2,3": mono}


@register("sym.spectral_bounds.no_damping", "without damping (eps = 0) 1/l is bounded as l -> 0+ (must fail)",
          "reconstructed", "negative-control", expected="fail")
def spectral_no_damping(profile):
    lam = sp.Symbol("lambda", positive=True)
    lim = sp.limit(1 / lam, lam, 0, "+")
    return bool(lim.is_finite), {"limit_l_to_0": str(lim)}
