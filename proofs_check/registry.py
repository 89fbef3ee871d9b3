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

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .failures import FAILS

__all__ = ["Check", "CHECKS", "register", "run_checks", "CheckResult", "PROFILES", "note", "notes_to"]

#: ``quick`` runs every check at small sizes (in CI, the digits study at its own smaller ``ci`` sizes); ``full`` is
#: ``python -m proofs_check``'s default (minutes).
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
    cost: float = 0.3  # rough seconds on the quick profile, for the progress line's time estimate only


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


def register(name: str, claim: str, tag: str, kind: str, expected: str = "pass", cost: float = 0.3):
    """Decorator: register ``fn(profile) -> (passed: bool, measured: dict)`` as a check.

    ``cost`` is the check's rough share of a run (about its seconds on the quick profile, measured on
    the 2-core machine; 0.3 for the many checks that take less than a second): the progress line's time
    estimate weighs the checks by it; it changes no result."""
    if tag not in TAGS or kind not in KINDS or expected not in ("pass", "fail"):
        raise ValueError(f"bad check metadata for {name}: tag={tag}, kind={kind}, expected={expected}")

    def deco(fn):
        if name in CHECKS:
            raise ValueError(f"duplicate check name {name!r}")
        CHECKS[name] = Check(name, claim, tag, kind, expected, fn, f"{fn.__module__}.{fn.__name__}", FAILS.get(name, ""),
                             float(cost))
        return fn

    return deco


#: Where :func:`note` sends a long check's progress (set by :func:`run_checks`; nothing by default).
_NOTE: list = []


def note(text: str, done: int | None = None, total: int | None = None) -> None:
    """A long check says what it is doing (e.g. the digits study's rows), and how far it is (``done`` of
    ``total`` steps, when it knows): shown on the progress line of the run, if there is one
    (``run_checks(..., note=...)``, :func:`notes_to`); a no-op otherwise."""
    if _NOTE:
        _NOTE[-1](text, done, total)


@contextlib.contextmanager
def notes_to(fn):
    """Send :func:`note` to ``fn`` inside the block (``None``: leave it as it is)."""
    if fn is not None:
        _NOTE.append(fn)
    try:
        yield
    finally:
        if fn is not None:
            _NOTE.pop()


def run_checks(names: list[str] | None = None, profile: str = "quick", log=None, note=None) -> list[CheckResult]:
    """Run the named checks (all by default) under ``profile``; never raises for a failing check.
    Status ``"pass"`` or ``"fail"`` from the check, ``"error"`` when it raised (never as expected).
    ``log(result)`` is called as each check finishes (so a caller can keep what finished); ``note(text, done,
    total)`` receives what long checks report through :func:`note` while they run."""
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
            with notes_to(note):
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
