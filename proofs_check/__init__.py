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


def run_checks(names: list[str] | None = None, profile: str = "quick", log=None) -> list[CheckResult]:
    """:func:`proofs_check.registry.run_checks` over every registered check (loading them first)."""
    load_checks()
    return _registry.run_checks(names, profile=profile, log=log)
