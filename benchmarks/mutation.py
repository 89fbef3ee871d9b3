"""Single-point mutation testing of the spec's formulas (issue 10).

Each mutation replaces one exact snippet in one file (it must occur exactly once) in a scratch copy
of the working tree (under a temporary directory, never the checkout), then runs the tests and
proofs_check checks named for it. A mutation is *caught* when they fail (exit code != 0), and
*survives* otherwise. A first, targeted stage runs; a survivor is re-run on the wider stage
(``wide``) before it is reported as surviving. Equivalent mutations (same numbers by construction)
are listed with their reason and still run, to show that they do survive.

Usage::

    python benchmarks/mutation.py                 # all mutations, table to stdout
    python benchmarks/mutation.py --only tnt-ef-is-tnt adam-c2-b1 --jobs 2
    python benchmarks/mutation.py --markdown /tmp/table.md    # the table alone (docs/mutation.md wraps it)

Runtime: about 10-25 s per mutation on one core (caught ones stop at the first failure).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from joblib import Parallel, delayed
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent

GOLD = "pytest tests/test_golden.py"
OPT = "pytest tests/test_optim.py tests/test_golden.py"
FISH = "pytest tests/test_fisher.py tests/test_golden.py"
TN = "pytest tests/test_tensor_normal.py tests/test_golden.py"
CHK = "pytest tests/test_checker.py"
EST = "pytest tests/test_estimators.py"


def PC(*checks: str) -> str:
    return "proofs_check " + " ".join(checks)


#: Every check that runs TNT (AS.2-AS.4, Theorem 1): the stage of the issue-21 mutations of tnt_ref/optim/tnt.py.
THEORY = PC("AS.2.exact", "AS.2.sampled", "AS.3.softmax", "AS.3.mlp", "AS.3.step_oracle", "AS.4.convergent", "AS.4.algorithm1",
            "theorem1.tnt", "theorem1.algorithm1", "theorem1.tight")


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    stage: str  # first command (pytest files or proofs_check checks)
    wide: str = ""  # second command for a survivor of the first
    equivalent: str = ""  # reason, if the mutation cannot change any result


M = Mutation
MUTATIONS: list[Mutation] = [
    # --- TNT and the training loop [code]
    M("tnt-ef-is-tnt", "tnt_ref/optim/tnt.py", '"data" if empirical else "sampled", hyper)', '"sampled", hyper)', GOLD, OPT),
    M("warm-start-skipped", "tnt_ref/training/runner.py", 'if optimizer in ("tnt", "tnt-ef"):', "if False:", GOLD, OPT),
    M("warm-start-data-labels", "tnt_ref/training/runner.py", 'ys = yb if opt.stat_labels == "data" else net.loss_fn.sample(z, rng)', "ys = yb", GOLD, OPT),
    M("per-example-times-m", "tnt_ref/training/step.py", "net.loss_fn.grad(z, y_stat), per_example=True)", "net.loss_fn.grad(z, y_stat) * m, per_example=True)", GOLD, OPT),
    M("warm-start-per-example-over-m", "tnt_ref/training/runner.py", "gout if per_example else gout / m", "gout / m", GOLD, OPT),
    M("tnt-ema-weights-swapped", "tnt_ref/optim/tnt.py", "    m *= 1 - beta\n    m += beta * s", "    m *= beta\n    m += (1 - beta) * s", GOLD, OPT),
    M("tnt-stats-at-t0", "tnt_ref/optim/tnt.py", "(t % T1 == 0 and (t > 0 or state.n_stats == 0))", "(t % T1 == 0)", GOLD, OPT),
    M("tnt-inverse-schedule-T2-only", "tnt_ref/optim/tnt.py", 'return t % (T1 if t < T2 and inverse_schedule == "warm-up" else T2) == 0', "return t % T2 == 0", GOLD, OPT),
    M("tnt-momentum-ema", "tnt_ref/optim/tnt.py", "v = {k: mu * state.momentum[k] + grads[k] for k in grads}", "v = {k: mu * state.momentum[k] + (1 - mu) * grads[k] for k in grads}", GOLD, OPT),
    M("tnt-decay-not-scaled", "tnt_ref/optim/tnt.py", "-alpha * gamma * p - alpha * P[k] for k", "-gamma * p - alpha * P[k] for k", GOLD, OPT),
    M("warm-start-sum-not-mean", "tnt_ref/optim/tnt.py", "stats = {k: tuple(s / count for s in total[k]) for k in blocks}", "stats = {k: tuple(s for s in total[k]) for k in blocks}", GOLD, OPT),
    M("estimator-c-power-k", "tnt_ref/tensor_normal.py", "return [s / (c ** (k - 1) * D / d) for s, d in zip(moments, shape)]", "return [s / (c ** k * D / d) for s, d in zip(moments, shape)]", TN, "pytest tests"),
    M("damping-eps-over-k", "tnt_ref/kronecker.py", "eps_i = [eps] * k", "eps_i = [eps / k] * k", GOLD, "pytest tests/test_kronecker.py tests/test_optim.py"),
    # --- KFAC (KFC)
    M("kfc-1-over-T-dropped", "tnt_ref/fisher/statistics.py", "return xp.matmul(d2, d2.T) / T, xp.matmul(a2, a2.T)", "return xp.matmul(d2, d2.T), xp.matmul(a2, a2.T)", GOLD, FISH),
    M("kfac-bias-damping-sqrt", "tnt_ref/optim/kfac.py", "G_inv[b] = xp.linalg.inv(G[w] + lam * xp.eye(G[w].shape[0], dtype=G[w].dtype))", "G_inv[b] = xp.linalg.inv(G[w] + root * xp.eye(G[w].shape[0], dtype=G[w].dtype))", GOLD, OPT),
    M("kfac-damping-lambda-not-sqrt", "tnt_ref/optim/kfac.py", "root = math.sqrt(lam)", "root = lam", GOLD, OPT),
    M("kfac-A-not-over-m", "tnt_ref/training/step.py", 'extra["kfac_stats"][k] = (dd / m, aa / m)', 'extra["kfac_stats"][k] = (dd / m, aa)', GOLD, OPT),
    M("kfac-ema-swapped", "tnt_ref/optim/kfac.py", "else beta * A[k] + (1 - beta) * kfac_stats[k][1]", "else (1 - beta) * A[k] + beta * kfac_stats[k][1]", GOLD, OPT),
    # --- Shampoo
    M("shampoo-root-1-over-k", "tnt_ref/optim/shampoo.py", "-1.0 / (2 * k_order), floor=floor)", "-1.0 / k_order, floor=floor)", GOLD, OPT),
    M("shampoo-ema-swapped", "tnt_ref/optim/shampoo.py", "m if first else beta * s + (1 - beta) * m", "m if first else (1 - beta) * s + beta * m", GOLD, OPT),
    M("shampoo-no-damping", "tnt_ref/optim/shampoo.py", "return psd_power(L + eps * xp.eye(L.shape[0], dtype=L.dtype),", "return psd_power(L,", GOLD, OPT),
    # --- the Shampoo family's estimators (issue 26) and KL-Shampoo, SOAP
    M("kl-step-no-d-over-D", "tnt_ref/estimators/kl_shampoo.py", "T = st.mode_moment(i, invs) * (d / D)", "T = st.mode_moment(i, invs)", EST, "pytest tests"),
    M("kl-step-gauss-seidel", "tnt_ref/estimators/kl_shampoo.py", "out.append(beta * S[i] + (1.0 - beta) * T if beta else T)", "out.append(beta * S[i] + (1.0 - beta) * T if beta else T)\n        invs[i] = xp.linalg.inv(out[-1])", EST, "pytest tests"),
    M("kl-step-ema-swapped", "tnt_ref/estimators/kl_shampoo.py", "out.append(beta * S[i] + (1.0 - beta) * T if beta else T)", "out.append((1.0 - beta) * S[i] + beta * T if beta else T)", EST, "pytest tests"),
    M("kl-step-damping-no-trace", "tnt_ref/estimators/kl_shampoo.py", "                    c = c * tr_inv[j]", "                    c = c * 1.0", EST, "pytest tests"),
    M("kl-init-undamped", "tnt_ref/estimators/kl_shampoo.py", "moments = [m + damping * (D / d) * xp.eye(d, dtype=m.dtype) for m, d in zip(moments, st.tshape)]", "moments = [m + damping * xp.eye(d, dtype=m.dtype) for m, d in zip(moments, st.tshape)]", EST, "pytest tests"),
    M("kl-optimizer-root-minus-1", "tnt_ref/optim/kl_shampoo.py", "psd_power(s, -0.5, floor=floor)", "psd_power(s, -1.0, floor=floor)", GOLD, OPT),
    M("kl-optimizer-first-is-a-step", "tnt_ref/optim/kl_shampoo.py", "_kl_init(st, kappa) if first else", "_kl_init(st, kappa) if False else", GOLD, OPT),
    M("shampoo-factors-power-1", "tnt_ref/estimators/shampoo.py", "R = [psd_power(s, 1.0 / k) for s in moments]", "R = [psd_power(s, 1.0) for s in moments]", EST, "pytest tests"),
    M("power-step-trace-scale", "tnt_ref/estimators/shampoo.py", "sigma = st.inner_kron(X)  #", "sigma = 1.0  #", EST, "pytest tests"),
    M("soap-no-rotation-of-v", "tnt_ref/estimators/shampoo.py", "return Q, st.rotated_diag(Q)", "return Q, st.rotated_diag([q * 0 + get_namespace(q).eye(q.shape[0]) for q in Q])", EST, "pytest tests"),
    M("soap-opt-v-unrotated", "tnt_ref/optim/soap.py", "nu[k] = b2 * state.nu[k] + (1 - b2) * g_rot * g_rot", "nu[k] = b2 * state.nu[k] + (1 - b2) * xp.reshape(grads[k], ts) ** 2", GOLD, OPT),
    M("soap-opt-eigh-every-basis-step", "tnt_ref/optim/soap.py", "basis = {k: _eigenbasis(L, state.basis[k], t == 0, k)", "basis = {k: _eigenbasis(L, state.basis[k], True, k)", GOLD, OPT),
    M("soap-opt-no-bias-correction", "tnt_ref/optim/soap.py", "n_rot = (m_rot / c1) / (xp.sqrt(nu[k] / c2) + eps)", "n_rot = m_rot / (xp.sqrt(nu[k]) + eps)", GOLD, OPT),
    M("ladder-kl-online-constant-weight", "tnt_ref/fisher/ladder.py", "n_batches / (n_batches + 1), damping)", "0.9, damping)", GOLD, FISH),
    M("ladder-kl-online-scale-m", "tnt_ref/fisher/ladder.py", "* math.sqrt(batch_size))", "* batch_size)", GOLD, FISH),
    M("gram-eigen-inner-unrotated", "tnt_ref/fisher/gram.py", "inner, normK2 = blk.quad_inv(Q, eig), float(np.sum(eig * eig))", "inner, normK2 = float(np.sum(eig * blk.diag())), float(np.sum(eig * eig))", "pytest tests/test_fisher_gram.py", FISH),
    M("gram-rotated-diag-unrotated", "tnt_ref/fisher/gram.py", "P = self.delta @ Q[0]  # (n, C, out)", "P = self.delta  # (n, C, out)", "pytest tests/test_fisher_gram.py", FISH),
    M("ladder-kl-proj-damped", "tnt_ref/fisher/ladder.py", "kl_proj = kl_to(S)[0] if", "kl_proj = kl_to(S + damping * np.eye(D))[0] if", GOLD, FISH),
    M("gram-kl-proj-damped", "tnt_ref/fisher/gram.py", "kl, kl_proj = kl_to(lam), kl_to(0.0)", "kl, kl_proj = kl_to(lam), kl_to(lam)", "pytest tests/test_fisher_gram.py", FISH),
    M("ladder-kl-shampoo-row-undamped", "tnt_ref/fisher/ladder.py", "res = _kl_fixed_point(st, damping,", "res = _kl_fixed_point(st, 1e-12,", GOLD, FISH),
    # --- Adam, SGD
    M("adam-c2-b1", "tnt_ref/optim/adam.py", "c1, c2 = 1 - b1**t, 1 - b2**t", "c1, c2 = 1 - b1**t, 1 - b1**t", GOLD, OPT),
    M("adam-no-bias-correction", "tnt_ref/optim/adam.py", "c1, c2 = 1 - b1**t, 1 - b2**t", "c1, c2 = 1.0, 1.0", GOLD, OPT),
    M("adam-eps-inside-sqrt", "tnt_ref/optim/adam.py", "(xp.sqrt(n[k] / c2) + eps)", "xp.sqrt(n[k] / c2 + eps)", GOLD, OPT),
    M("sgd-dampened-momentum", "tnt_ref/optim/sgd.py", "v = {k: mu * state.momentum[k] + grads[k] for k in grads}", "v = {k: mu * state.momentum[k] + (1 - mu) * grads[k] for k in grads}", GOLD, OPT),
    # --- Fisher ladder, KL, MLE
    M("ladder-batch-mean-scale-dropped", "tnt_ref/fisher/ladder.py", 'approx["tnt-batch-mean"] = ("kron", [batch_size * U[0], *U[1:]])', 'approx["tnt-batch-mean"] = ("kron", [U[0], *U[1:]])', GOLD, FISH),
    M("compare-kl-minus-D-dropped", "tnt_ref/fisher/ladder.py", "kl = 0.5 * float(np.sum(M * M) - D + 2", "kl = 0.5 * float(np.sum(M * M) + 2", GOLD, FISH),
    M("tn-kl-minus-D-dropped", "tnt_ref/tensor_normal.py", "return 0.5 * (tr - D + logdet_v - logdet_u + maha)", "return 0.5 * (tr + logdet_v - logdet_u + maha)", GOLD, TN),
    M("mle-unnormalized", "tnt_ref/tensor_normal_mle.py", "return MLEResult(factors=_normalize(U),", "return MLEResult(factors=U,", GOLD, TN),
    M("mode-moments-symmetrize-off", "tnt_ref/optim/tnt.py", "return _mode_moments(xp.reshape(G, (1, *tshape)), symmetrize=False)", "return _mode_moments(xp.reshape(G, (1, *tshape)), symmetrize=True)", GOLD, OPT,
      equivalent="G_(i) G_(i)^T is symmetric up to round-off; symmetrizing changes entries by ~1e-16 relative, below every tolerance"),
    # --- proofs_check (the checker's own formulas)
    M("pc-kappa-hi-eps-1", "proofs_check/assumptions.py", "hi = max(eps ** (-len(s)) if eps > 0", "hi = max(eps ** (-1) if eps > 0", PC("AS.3.softmax", "AS.3.mlp"), CHK),
    M("pc-kappa-lo-no-eps", "proofs_check/assumptions.py", "lo = min(lo, math.prod(1.0 / (d * (B[name] ** 2 / D) ** (1.0 / k) + eps) for d in s))", "lo = min(lo, math.prod(1.0 / (d * (B[name] ** 2 / D) ** (1.0 / k)) for d in s))", PC("AS.3.softmax", "AS.3.mlp"), CHK),
    M("pc-kappa-lo-B-not-squared", "proofs_check/assumptions.py", "(B[name] ** 2 / D) ** (1.0 / k) + eps)", "(B[name] / D) ** (1.0 / k) + eps)", PC("AS.3.softmax", "AS.3.mlp"), CHK),
    M("pc-oracle-ema-swapped", "proofs_check/oracle.py", "S = [beta * s + (1 - beta) * mm for s, mm in zip(S, M)]", "S = [(1 - beta) * s + beta * mm for s, mm in zip(S, M)]", PC("AS.3.step_oracle"), CHK),
    M("pc-oracle-no-damping", "proofs_check/oracle.py", "K = np.kron(K, u + eps * np.eye(u.shape[0]))", "K = np.kron(K, u)", PC("AS.3.step_oracle"), CHK),
    M("pc-theorem-alpha-1-over-L-kappa-hi", "proofs_check/theorem.py", '"alpha": lo / (L * hi**2)', '"alpha": 1.0 / (L * hi)', PC("theorem1.tnt"), CHK),
    M("pc-as4-one-step-only", "proofs_check/as4.py", "    for k in range(N):\n        other", "    for k in range(min(N, 1)):\n        other", PC("AS.4.algorithm1"), CHK),
    M("pc-as3-clip-negative", "proofs_check/assumptions.py", "lam = np.sort(lam)", "lam = np.clip(np.sort(lam), 1e-300, None)", CHK),
    M("pc-as3-probe-skipped", "proofs_check/assumptions.py", "if not err <= 1e-10:", "if False:", CHK, PC("AS.3.softmax", "AS.3.mlp")),
    M("pc-as2-mean-not-sum", "proofs_check/assumptions.py", "T = float(np.sum(zs.sum(axis=0) ** 2) / s2.sum())", "T = float(np.sum(zs.mean(axis=0) ** 2) / s2.sum())", PC("AS.2.sampled", "AS.2.biased_sampler"), CHK),
    M("pc-as2-sigma-over-m-dropped", "proofs_check/assumptions.py", "            s2.append(sigma2 / m)", "            s2.append(sigma2)", PC("AS.2.sampled", "AS.2.biased_sampler"), CHK),
    M("pc-theorem-sigma2-term-dropped", "proofs_check/theorem.py", 'c["D_f"] / (N * c["kappa_lo"] ** 2) + c["sigma2"] / m', 'c["D_f"] / (N * c["kappa_lo"] ** 2)', CHK),
    M("pc-theorem-first-term-dropped", "proofs_check/theorem.py", 'bound = 2 * c["L"] * c["kappa_hi"] ** 2 * c["D_f"] / (N * c["kappa_lo"] ** 2) + c["sigma2"] / m', 'bound = c["sigma2"] / m', CHK),
    M("pc-theorem-kappa-lo-not-squared", "proofs_check/theorem.py", '(N * c["kappa_lo"] ** 2) + c["sigma2"] / m', '(N * c["kappa_lo"]) + c["sigma2"] / m', CHK),
    # --- issue 21: the shipped optimizer broken, judged by the theory suite alone (quick profile, every TNT check)
    M("theory-stats-current-batch-every-2nd", "tnt_ref/optim/tnt.py", "if not after:  # statistics from", "if not after or state.step % 2 == 0:  # statistics from", THEORY),
    M("theory-ema-weights-swapped", "tnt_ref/optim/tnt.py", "    m *= 1 - beta\n    m += beta * s", "    m *= beta\n    m += (1 - beta) * s", THEORY),
    M("theory-step-1-over-L-kappa-hi", "tnt_ref/optim/tnt.py", "return TheoryStep(lo / (L * hi**2), lo, hi)", "return TheoryStep(1.0 / (L * hi), lo, hi)", THEORY),
    M("theory-momentum-in-convergent", "tnt_ref/optim/tnt.py", 'fixed = {"momentum": 0.0,', 'fixed = {"momentum": 0.9,', THEORY),
    M("theory-H-is-U-plus-eps", "tnt_ref/optim/tnt.py", "return tuple(damped_inverse_factors(U, eps, scheme))",
      "return tuple(u + eps * get_namespace(u).eye(u.shape[0], dtype=u.dtype) for u in U)", THEORY),
    M("theory-update-sign-flipped", "tnt_ref/optim/tnt.py", "-alpha * gamma * p - alpha * P[k] for k", "-alpha * gamma * p + alpha * P[k] for k", THEORY),
    M("pc-sym-estimator-scale", "tnt_ref/tensor_normal.py", "c = (tau / D) ** (1.0 / k)", "c = (tau / D) ** (1.0 / (k + 1))", PC("sym.estimator_invariants"), TN),
]


def _command(spec: str) -> list[str]:
    kind, *args = spec.split()
    if kind == "pytest":
        return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    if kind == "proofs_check":
        return [sys.executable, "-m", "proofs_check", "--profile", "quick", "--report", "", "--checks", *args]
    raise ValueError(f"unknown stage kind {kind!r} in {spec!r}")


def _copy_tree(dst: Path) -> None:
    ignore = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "tnt-ref-out", ".pytest_cache", ".hypothesis")
    shutil.copytree(ROOT, dst, ignore=ignore, dirs_exist_ok=True)


def run_mutation(mut: Mutation, timeout: float) -> dict:
    """Apply ``mut`` in a fresh scratch copy, run its stages, report caught/survived and by what."""
    with tempfile.TemporaryDirectory(prefix="tnt-mut-") as tmp:
        work = Path(tmp) / "repo"
        _copy_tree(work)
        path = work / mut.file
        src = path.read_text()
        count = src.count(mut.old)
        if count != 1:
            return {"name": mut.name, "status": "invalid", "by": f"snippet found {count} times in {mut.file}", "seconds": 0.0}
        path.write_text(src.replace(mut.old, mut.new))
        t0 = time.perf_counter()
        env = {"PYTHONPATH": str(work), "PATH": "/usr/bin:/bin:" + str(Path(sys.executable).parent), "HOME": tmp,
               "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        for spec in [mut.stage] + ([mut.wide] if mut.wide else []):
            try:
                proc = subprocess.run(_command(spec), cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return {"name": mut.name, "status": "caught", "by": f"{spec} (timeout)", "seconds": time.perf_counter() - t0}
            if proc.returncode != 0:
                lines = proc.stdout.splitlines()
                red = [ln.split()[0] for ln in lines if " fail (expected pass" in ln or " pass (expected fail" in ln or " error (expected" in ln]
                tail = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
                what = (f": red: {', '.join(red)}" if red else f": {tail[0].strip()}" if tail else f" (exit {proc.returncode})")
                return {"name": mut.name, "status": "caught", "by": spec.split()[0] + what if red else spec + what,
                        "red": red, "seconds": time.perf_counter() - t0}
        return {"name": mut.name, "status": "survived", "by": "", "seconds": time.perf_counter() - t0}


def _change(old: str, new: str, width: int = 56) -> str:
    """``old -> new`` around the first differing character, one line, table-safe."""
    old, new = (" ".join(x.split()) for x in (old, new))
    i = 0
    while i < min(len(old), len(new)) and old[i] == new[i]:
        i += 1
    start = max(0, i - 20)
    cut = lambda x: ("..." if start else "") + x[start : start + width] + ("..." if len(x) > start + width else "")
    return f"`{cut(old)}` -> `{cut(new)}`".replace("|", "\\|")


def markdown(results: list[dict]) -> str:
    by = {m.name: m for m in MUTATIONS}
    lines = ["| mutation | file | change | result | caught by / reason |", "|---|---|---|---|---|"]
    for r in results:
        m = by[r["name"]]
        change = _change(m.old, m.new)
        status = r["status"] + (" (equivalent)" if m.equivalent else "")
        why = m.equivalent if m.equivalent and r["status"] == "survived" else r["by"]
        lines.append(f"| `{m.name}` | `{m.file}` | {change} | {status} | {why.replace('|', '/')} |")
    caught = sum(r["status"] == "caught" for r in results)
    eq = sum(bool(by[r["name"]].equivalent) for r in results)
    surv = [r["name"] for r in results if r["status"] != "caught" and not by[r["name"]].equivalent]
    lines.append("")
    lines.append(f"{caught} of {len(results)} mutations caught; {eq} marked equivalent; "
                 f"non-equivalent survivors: {', '.join(surv) if surv else 'none'}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", default=None, help="run only these mutations")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--jobs", type=int, default=1, help="mutations in parallel (joblib), each in its own scratch copy")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per stage")
    p.add_argument("--markdown", default=None, help="write the table to this file")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1; got {args.jobs}")
    if args.markdown:
        out = Path(args.markdown)
        if not out.parent.is_dir():
            p.error(f"--markdown: directory {out.parent} does not exist")
    names = {m.name for m in MUTATIONS}
    if args.only:
        bad = [n for n in args.only if n not in names]
        if bad:
            p.error(f"unknown mutations {bad}; see --list")
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:<36} {m.file:<32} {m.stage}")
        return 0
    todo = [m for m in MUTATIONS if not args.only or m.name in args.only]
    results = Parallel(n_jobs=args.jobs, return_as="generator")(delayed(run_mutation)(m, args.timeout) for m in todo)
    out = []
    for r in tqdm(results, total=len(todo), desc="mutations", file=sys.stderr):
        out.append(r)
        print(f"{r['name']:<36} {r['status']:<9} {r['seconds']:6.1f} s  {r['by']}", flush=True)
    order = {m.name: i for i, m in enumerate(MUTATIONS)}
    out.sort(key=lambda r: order[r["name"]])
    table = markdown(out)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    by = {m.name: m for m in MUTATIONS}
    return 0 if all(r["status"] == "caught" or by[r["name"]].equivalent for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
