"""Argument types shared by the subcommands (argparse ``type=`` callables).

argparse prefixes their messages with the flag (``argument --seed: expected a non-negative
integer; got -1``), so every refusal names the flag; values are checked here, at parse time, before
any work (finite numbers only: ``--seconds inf`` would train forever).
"""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "unit_float", "shape"]


def _int(text: str, want: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {want}; got {text!r}") from None


def _float(text: str, want: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {want}; got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected {want} (finite); got {text!r}")
    return v


def _bounded(parse, want: str, ok, name: str, doc: str | None = None):
    """An argparse type: ``parse`` the text (naming ``want`` if it is no number), then refuse a value outside ``ok``."""

    def check(text: str):
        v = parse(text, want)
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {want}; got {v}")
        return v

    check.__name__ = check.__qualname__ = name  # argparse names the type in some messages
    check.__doc__ = doc
    return check


positive_int = _bounded(_int, "a positive integer", lambda v: v >= 1, "positive_int")
nonneg_int = _bounded(_int, "a non-negative integer", lambda v: v >= 0, "nonneg_int",
                      "Seeds and sizes that may be 0 (a negative seed is refused here, naming the flag).")
positive_float = _bounded(_float, "a positive number", lambda v: v > 0, "positive_float")
nonneg_float = _bounded(_float, "a non-negative number", lambda v: v >= 0, "nonneg_float")
unit_float = _bounded(_float, "a number in [0, 1)", lambda v: 0 <= v < 1, "unit_float",
                      "A momentum or decay coefficient in ``[0, 1)``.")


def shape(text: str) -> tuple[int, ...]:
    try:
        s = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 6,5,4; got {text!r}") from None
    if not s or min(s) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 6,5,4; got {text!r}")
    return s
