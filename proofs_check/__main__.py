"""``python -m proofs_check``: run the theory checks, print the table, write the report and JSON.

Output goes where it is told: the report (and its figures) to ``--out`` (default
``tnt-ref-out/theory/``) or to ``--report PATH``; nothing is written into ``docs/`` unless a path
there is given. Every output path is validated before the first check runs (exit code 2, naming
the flag).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from tnt_ref.files import OutputPathError, Outputs, prepare_output_dir, prepare_output_file

from . import load_checks, run_checks
from .registry import PROFILES

DEFAULT_OUT = "tnt-ref-out/theory"
REPORT_NAME = "theory-report.md"


def main(argv: list[str] | None = None, prog: str = "python -m proofs_check") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog=prog, description="Check the TNT paper's theory: symbolic identities, AS.1-AS.4, "
                                "Theorem 1 (softmax study, tight instance and its controls), the tensor-normal assumption.")
    p.add_argument("--profile", choices=PROFILES, default="full", help="quick (CI: about 1 CPU minute) or full (the default: about 5 CPU minutes, 11 minutes wall with "
                        "--jobs 2 on a busy 2-core machine; docs/theory.md)")
    p.add_argument("--checks", nargs="+", default=None, help="run only these checks (default: all)")
    p.add_argument("--json", default=None, help="write the results as JSON to this file")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"folder for the report and its figures (default {DEFAULT_OUT}/; the report is {REPORT_NAME})")
    p.add_argument("--report", default=None,
                   help="markdown report path, overriding --out (figures go beside it); '' for no report")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report, figures or JSON file left by an earlier run (default: refuse them)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="processes for the check modules (default 1; 2 runs the digits study beside the rest)")
    p.add_argument("--blas-threads", type=int, default=1, metavar="N",
                   help="BLAS threads while the checks run (default 1: the checks multiply small matrices, and the machine "
                        "is often shared; 0 leaves BLAS as it is)")
    args = p.parse_args(argv)
    if args.blas_threads < 0:
        print(f"{prog}: error: `--blas-threads` must be >= 0; got {args.blas_threads}.", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"{prog}: error: `--jobs` must be >= 1; got {args.jobs}.", file=sys.stderr)
        return 2

    if args.list:
        extra = [flag for flag, v in (("--checks", args.checks), ("--json", args.json), ("--report", args.report),
                                      ("--out", None if args.out == DEFAULT_OUT else args.out),
                                      ("--overwrite", args.overwrite or None)) if v is not None]
        if extra:
            print(f"{prog}: error: `--list` lists the checks and runs nothing; it takes no {', '.join(extra)}.", file=sys.stderr)
            return 2
        checks = load_checks()
        width = max(map(len, checks)) + 1
        try:
            for name, c in checks.items():
                print(f"{name:<{width}} [{c.tag}] {c.kind:<17} expected {c.expected}: {c.claim}")
            sys.stdout.flush()
        except BrokenPipeError:  # `... --list | head`: the reader left; not an error
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    # validate every output path at the door, before any check runs
    try:
        if args.out == "":
            raise OutputPathError("`--out` is empty; give a folder (or `--report ''` for no report).")
        if args.json is not None:  # first: a bad --json creates no report folder
            prepare_output_file(args.json, "--json")
        if args.report is None:
            report = prepare_output_dir(args.out, "--out") / REPORT_NAME
        elif args.report == "":
            report = None
        else:
            report = prepare_output_file(args.report, "--report")
        if args.json is not None and report is not None and Path(args.json).resolve() == Path(report).resolve():
            raise OutputPathError(f"`--json` and the report are the same file ({args.json!r}); give two paths.")
        outs = Outputs()  # every file this run writes: distinct paths, locked, an earlier run's kept unless --overwrite
        if args.json is not None:
            outs.file(args.json, "--json")
        if report is not None:
            flag = "--report" if args.report else "--out"
            outs.file(report, flag)
            for fig in ("theorem1.png", "tn_digits.png"):
                outs.file(Path(report).parent / "figures" / fig, f"{flag} (its figures/{fig})")
        outs.__enter__()
    except OutputPathError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    try:
        outs.refuse_existing(args.overwrite)
        return _run(args, prog, argv, report)
    except OutputPathError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    finally:
        outs.__exit__(None, None, None)


def _run(args, prog: str, argv: list, report) -> int:
    command = " ".join([prog, *map(shlex.quote, argv)])
    from .report import print_table, write_json, write_report  # noqa: PLC0415  (after the door check)

    import contextlib  # noqa: PLC0415

    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    try:
        with threadpool_limits(args.blas_threads) if args.blas_threads else contextlib.nullcontext():
            results = run_checks(args.checks, profile=args.profile, jobs=args.jobs, blas_threads=args.blas_threads,
                                 log=lambda r: print(f"  {r.name:<36} {r.status} (expected {r.expected}, {r.seconds:.1f} s)", flush=True))
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print()
    print_table(results)
    if args.json:
        print(f"wrote {write_json(args.json, results)}")
    if report is not None:
        print(f"wrote {write_report(report, results, args.profile, command)}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
