"""proofs_check: the paper's theory verified — symbolic identities, the convergence assumptions
AS.1-AS.4 with negative controls, Theorem 1's bound (a tight instance and its controls) and a test
of the tensor-normal assumption. Depends on tnt_ref, never the reverse (the ``tnt-ref
check-theory`` command imports it lazily).

Registration flows one way: each check module imports :func:`proofs_check.registry.register`;
:func:`load_checks` (here) imports the check modules, in the order the report lists them; the
registry imports no check module. Importing the package is cheap (no sympy, no models), so the
command line can check its output paths before anything heavy is loaded.
"""

from __future__ import annotations

import importlib

from . import registry as _registry
from .registry import CHECKS, CheckResult

__all__ = ["CHECKS", "CheckResult", "load_checks", "run_checks"]

#: The check modules, in report order; each registers its checks when imported.
CHECK_MODULES = ("assumptions", "as4", "symbolic", "theorem", "tight", "separability", "digits_study")


def load_checks() -> dict:
    """Import every check module (idempotent) and return the registry ``CHECKS``."""
    for name in CHECK_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return CHECKS


def run_checks(names: list[str] | None = None, profile: str = "quick", log=None, note=None, jobs: int = 1,
               blas_threads: int | None = None) -> list[CheckResult]:
    """:func:`proofs_check.registry.run_checks` over every registered check (loading them first).

    ``log(result)`` is called as each check finishes; ``note(text, done, total)`` receives what long
    checks report while they run (:func:`proofs_check.registry.note`; in this process only).

    ``jobs > 1`` runs the check modules in that many processes (joblib), one module per task, the
    costliest first (the checks of one module share their studies, so a module never splits); the
    results come back in the registry's order. ``log`` is then called as each module finishes, and
    each process runs under the package's BLAS-thread policy (:func:`tnt_ref.runtime.blas_threads`)
    with ``blas_threads`` threads (default: :func:`tnt_ref.runtime.thread_count`, read here and sent
    to every process). With ``jobs = 1`` the caller's policy applies (``python -m proofs_check``
    runs inside :func:`tnt_ref.runtime.blas_threads`)."""
    checks = load_checks()
    if jobs <= 1:
        return _registry.run_checks(names, profile=profile, log=log, note=note)
    if profile not in _registry.PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {list(_registry.PROFILES)}.")
    if names:
        unknown = [n for n in names if n not in checks]
        if unknown:
            raise ValueError(f"unknown check names {unknown}; valid: {sorted(checks)}.")
    from joblib import Parallel, delayed  # noqa: PLC0415

    from tnt_ref.runtime import thread_count  # noqa: PLC0415

    threads = thread_count() if blas_threads is None else blas_threads
    by_module: dict = {}
    for name, chk in checks.items():
        if not names or name in names:
            by_module.setdefault(chk.where.rsplit(".", 1)[0], []).append(name)
    tasks = sorted(by_module.items(), key=lambda kv: COST_ORDER.index(kv[0].rsplit(".", 1)[1])
                   if kv[0].rsplit(".", 1)[1] in COST_ORDER else len(COST_ORDER))
    out: dict = {}
    for batch in Parallel(n_jobs=jobs, return_as="generator_unordered")(delayed(_run_module)(m, ns, profile, threads)
                                                                              for m, ns in tasks):
        for r in batch:
            out[r.name] = r
            if log:
                log(r)
    return [out[n] for n in checks if n in out]


#: The check modules from the costliest to the cheapest (full profile), the order ``jobs > 1`` starts them in.
COST_ORDER = ("digits_study", "theorem", "tight", "symbolic", "assumptions", "separability", "as4")


def _run_module(module: str, names: list, profile: str, threads: int) -> list:
    from tnt_ref.runtime import blas_threads  # noqa: PLC0415

    importlib.import_module(module)
    with blas_threads(threads):  # the package's one policy, in this worker process
        return _registry.run_checks(names, profile=profile)
