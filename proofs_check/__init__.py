"""proofs_check: the paper's theory verified — symbolic identities, the convergence assumptions
AS.1-AS.4 with negative controls, Theorem 1's bound (a tight instance and its controls) and a test
of the tensor-normal assumption. Depends on tnt_ref, never the reverse (the ``tnt-ref
check-theory`` command imports it lazily).

Registration flows one way: each check module imports :func:`proofs_check.registry.register`;
this ``__init__`` imports the check modules (in the order the report lists them); the registry
imports no check module.
"""

from .registry import CHECKS, CheckResult, run_checks
from . import assumptions, symbolic, theorem, tight, separability  # noqa: E402,F401,I001  (each registers its checks)

__all__ = ["CHECKS", "CheckResult", "run_checks"]
