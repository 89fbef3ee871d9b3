"""The ``tnt-ref`` command line. Argument parsing and printing only; the work is in the library.

One module per group of subcommands, each with an ``add_parsers(sub)``: :mod:`.fisher`
(``fisher``), :mod:`.training` (``train``, ``compare``, ``demo``), :mod:`.misc` (``estimators``,
``vectors``), :mod:`.conform` (``conform``). ``check-theory`` hands over to :mod:`proofs_check`.

Every subcommand runs under the package's BLAS-thread policy (:func:`tnt_ref.runtime.blas_threads`:
one thread per process unless ``TNT_REF_BLAS_THREADS`` says otherwise) and shows a progress line
(:class:`tnt_ref.runtime.Progress`) on every step longer than a few seconds.
"""

from __future__ import annotations

import argparse
import sys

from . import conform, fisher, misc, training

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="tnt-ref", description="Tensor Normal Training, reference implementation.")
    p.add_argument("--version", action="version", version=f"tnt-ref {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    misc.add_parsers(sub)
    fisher.add_parsers(sub)
    training.add_parsers(sub)
    conform.add_parsers(sub)
    sub.add_parser("check-theory", help="run proofs_check (the paper's theory, with negative controls); --help for options",
                   add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check-theory"]:
        # proofs_check depends on tnt_ref, never the reverse: imported only here, at the top layer
        from proofs_check.__main__ import main as check_main  # noqa: PLC0415

        return check_main(argv[1:], prog="tnt-ref check-theory")
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..runtime import blas_threads  # noqa: PLC0415

    try:
        with blas_threads():  # one policy for every subcommand (tnt_ref.runtime): 1 BLAS thread per process
            return int(args.func(args) or 0)
    except (ValueError, TypeError, RuntimeError) as err:
        print(f"tnt-ref {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # a command that keeps partial results catches the interrupt itself and says what it kept
        print(f"tnt-ref {args.command}: interrupted (Ctrl-C).", file=sys.stderr)
        return 130
