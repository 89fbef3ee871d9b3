"""Argument types shared by the subcommands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse

__all__ = ["positive_int", "positive_float", "shape"]


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {v}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {v}")
    return v


def shape(text: str) -> tuple[int, ...]:
    try:
        s = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 6,5,4; got {text!r}") from None
    if not s or min(s) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 6,5,4; got {text!r}")
    return s
