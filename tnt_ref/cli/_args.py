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


def positive_int(text: str) -> int:
    v = _int(text, "a positive integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {v}")
    return v


def nonneg_int(text: str) -> int:
    """Seeds and sizes that may be 0 (a negative seed is refused here, naming the flag)."""
    v = _int(text, "a non-negative integer")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {v}")
    return v


def positive_float(text: str) -> float:
    v = _float(text, "a positive number")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {v}")
    return v


def nonneg_float(text: str) -> float:
    v = _float(text, "a non-negative number")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number; got {v}")
    return v


def unit_float(text: str) -> float:
    """A momentum or decay coefficient in ``[0, 1)``."""
    v = _float(text, "a number in [0, 1)")
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1); got {v}")
    return v


def shape(text: str) -> tuple[int, ...]:
    try:
        s = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 6,5,4; got {text!r}") from None
    if not s or min(s) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 6,5,4; got {text!r}")
    return s
