"""proofs_check: the paper's theory verified — symbolic identities, the convergence assumptions
AS.1-AS.4 with negative controls, and Theorem 1's bound. Depends on tnt_ref, never the reverse
(the ``tnt-ref check-theory`` command imports it lazily)."""

from .registry import CHECKS, CheckResult, run_checks

__all__ = ["CHECKS", "CheckResult", "run_checks"]
