"""The check registry: every check has a name, the claim it tests, the spec tag, a kind and the
result it is expected to give. A negative control is expected to *fail*; the suite passes exactly
when every check's status equals its expected result.

Registration flows one way: the check modules (``symbolic``, ``assumptions``, ``theorem``,
``tight``, ``separability``, ``digits_study``) import :func:`register` from here, and
:func:`proofs_check.load_checks` imports the check modules (Python imports each once, so every
check registers exactly once). This module imports none of them. :func:`run_checks` here runs
what is registered; ``proofs_check.run_checks`` loads every check module first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .failures import FAILS

__all__ = ["Check", "CHECKS", "register", "run_checks", "CheckResult", "PROFILES"]

#: ``quick`` runs in CI (seconds); ``full`` is for ``python -m proofs_check`` (minutes).
PROFILES = ("quick", "full")
TAGS = ("paper", "code", "derived", "reconstructed")
KINDS = ("symbolic", "numeric", "negative-control", "theorem", "observation")


@dataclass(frozen=True)
class Check:
    name: str
    claim: str
    tag: str
    kind: str
    expected: str  # "pass" or "fail"
    fn: Callable[[str], tuple[bool, dict]]  # profile -> (passed, measured)
    where: str = ""  # the function that checks it, for docs/theory.md
    fails: str = ""  # what makes it fail (proofs_check.failures)


@dataclass
class CheckResult:
    name: str
    claim: str
    tag: str
    kind: str
    expected: str
    status: str
    measured: dict = field(default_factory=dict)
    seconds: float = 0.0
    where: str = ""
    fails: str = ""

    @property
    def ok(self) -> bool:
        """The status equals the expected result. A check that crashed (status ``"error"``) is never
        ok, so a broken negative control cannot pass for one that failed as it should."""
        return self.status == self.expected

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "claim": self.claim, "tag": self.tag, "kind": self.kind,
                "expected": self.expected, "status": self.status, "fails": self.fails, "measured": self.measured}


CHECKS: dict[str, Check] = {}


def register(name: str, claim: str, tag: str, kind: str, expected: str = "pass"):
    """Decorator: register ``fn(profile) -> (passed: bool, measured: dict)`` as a check."""
    if tag not in TAGS or kind not in KINDS or expected not in ("pass", "fail"):
        raise ValueError(f"bad check metadata for {name}: tag={tag}, kind={kind}, expected={expected}")

    def deco(fn):
        if name in CHECKS:
            raise ValueError(f"duplicate check name {name!r}")
        CHECKS[name] = Check(name, claim, tag, kind, expected, fn, f"{fn.__module__}.{fn.__name__}", FAILS.get(name, ""))
        return fn

    return deco


def run_checks(names: list[str] | None = None, profile: str = "quick", log=None) -> list[CheckResult]:
    """Run the named checks (all by default) under ``profile``; never raises for a failing check.
    Status ``"pass"`` or ``"fail"`` from the check, ``"error"`` when it raised (never as expected)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {list(PROFILES)}.")
    if names:
        unknown = [n for n in names if n not in CHECKS]
        if unknown:
            raise ValueError(f"unknown check names {unknown}; valid: {sorted(CHECKS)}.")
    out = []
    for name, chk in CHECKS.items():
        if names and name not in names:
            continue
        t0 = time.perf_counter()
        try:
            passed, measured = chk.fn(profile)
            status = "pass" if passed else "fail"
        except Exception as err:  # noqa: BLE001  (a crash is reported with its message, never as a result)
            status, measured = "error", {"error": f"{type(err).__name__}: {err}"}
        res = CheckResult(chk.name, chk.claim, chk.tag, chk.kind, chk.expected, status, measured,
                          time.perf_counter() - t0, chk.where, chk.fails)
        if log:
            log(res)
        out.append(res)
    return out
