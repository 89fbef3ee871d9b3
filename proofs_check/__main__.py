"""``python -m proofs_check``: run the theory checks, print the table, write the report and JSON.

Output goes where it is told: the report (and its figures) to ``--out`` (default
``tnt-ref-out/theory/``) or to ``--report PATH``; nothing is written into ``docs/`` unless a path
there is given. Every output path is validated before the first check runs (exit code 2, naming
the flag). The JSON (``--json FILE``, else ``theory.json`` in ``--out``) is rewritten as each
check finishes, so a run that is stopped keeps every check that completed: Ctrl-C writes the JSON
and the report of those (status ``"interrupted"``), says so in one line and exits with 130.

The checks run under the package's BLAS-thread policy (:func:`tnt_ref.runtime.blas_threads`;
``--blas-threads N`` sets its number, in this process and in every ``--jobs`` process) with a
progress line (:class:`tnt_ref.runtime.Progress`) whose time estimate weighs each check by its
registered cost.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from tnt_ref.files import OutputPathError, Outputs, prepare_output_dir, prepare_output_file
from tnt_ref.runtime import THREADS_ENV

from . import load_checks, run_checks
from .registry import PROFILES

DEFAULT_OUT = "tnt-ref-out/theory"
REPORT_NAME = "theory-report.md"
JSON_NAME = "theory.json"
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None, prog: str = "python -m proofs_check") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog=prog, description="Check the TNT paper's theory: symbolic identities, AS.1-AS.4, "
                                "Theorem 1 (softmax study, tight instance and its controls), the tensor-normal assumption.")
    p.add_argument("--profile", choices=PROFILES, default="full",
                   help="quick (every check at small sizes; 44 s) or full (the default; 5 minutes on an idle 2-core machine, "
                        "the README's Timings by benchmarks/bench_readme.py; 11 minutes with --jobs 2 on a busy one, docs/theory.md)")
    p.add_argument("--checks", nargs="+", default=None, help="run only these checks (default: all)")
    p.add_argument("--json", default=None,
                   help=f"write the results as JSON to this file, rewritten as each check finishes (default: {JSON_NAME} "
                        "in --out; none when --report is given)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"folder for the report and its figures (default {DEFAULT_OUT}/; the report is {REPORT_NAME})")
    p.add_argument("--report", default=None,
                   help=f"markdown report path, overriding --out (figures go beside it); '' for no report (default: "
                        f"--out's {REPORT_NAME})")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report, figures or JSON file left by an earlier run (default: refuse them)")
    p.add_argument("--list", action="store_true", help="list the checks and exit (default: off)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="processes for the check modules (default 1; 2 runs the digits study beside the rest)")
    p.add_argument("--blas-threads", type=int, default=None, metavar="N",
                   help="BLAS threads per process while the checks run, through the package's policy (tnt_ref.runtime; "
                        f"default: {THREADS_ENV} if set, else 1: the checks multiply small matrices, and the machine is "
                        "often shared)")
    args = p.parse_args(argv)
    if args.blas_threads is not None and args.blas_threads < 1:
        print(f"{prog}: error: `--blas-threads` must be >= 1 (BLAS threads per process); got {args.blas_threads}. "
              f"Leave it out for the package's policy ({THREADS_ENV}, else 1).", file=sys.stderr)
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
        # the JSON: --json, else theory.json beside the report in --out (none with --report)
        json_path = args.json if args.json is not None else (Path(report).parent / JSON_NAME if args.report is None else None)
        outs = Outputs()  # every file this run writes: distinct paths, locked, an earlier run's kept unless --overwrite
        if json_path is not None:
            outs.file(json_path, "--json" if args.json is not None else f"--out (its {JSON_NAME})")
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
        return _run(args, prog, argv, report, json_path)
    except OutputPathError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    finally:
        outs.__exit__(None, None, None)


def _run(args, prog: str, argv: list, report, json_path) -> int:
    command = " ".join([prog, *map(shlex.quote, argv)])
    from tnt_ref.runtime import Progress, blas_threads  # noqa: PLC0415

    from .report import print_table, write_json, write_report  # noqa: PLC0415  (after the door check)

    try:
        checks = [c for c in load_checks().values() if not args.checks or c.name in args.checks]
        order = {c.name: i for i, c in enumerate(checks)}
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    results: list = []
    bar = Progress(sum(c.cost for c in checks) or 1.0, "checks", "", count=False, min_interval=0.0,
                   log=lambda line: print(f"  {line}", flush=True))
    cost = {c.name: c.cost for c in checks}
    start = [0.0]  # the bar's position when the running check started

    def ordered() -> list:  # the finished checks in the registry's order (with --jobs they finish in any order)
        return sorted(results, key=lambda r: order.get(r.name, len(order)))

    def finished(r) -> None:
        start[0] += cost.get(r.name, 1.0)  # the check's whole share (its notes moved the bar within it)
        results.append(r)
        if json_path is not None:  # every check that finished is on disk before the next one starts
            write_json(json_path, ordered(), status="running", profile=args.profile, completed=len(results), of=len(checks))
        bar.advance(start[0] - bar.done, f"{r.name}: {r.status} (expected {r.expected}, {r.seconds:.1f} s)")

    def within(text: str, done=None, total=None) -> None:
        """A long check's note (``--jobs 1``): its share of the bar moves with its own steps when it counts them."""
        share = cost.get(checks[len(results)].name, 1.0) if len(results) < len(checks) else 0.0
        if done is not None and total:
            bar.advance(start[0] + share * min(done, total) / total - bar.done, text)
        else:
            bar.note(text)

    try:
        with blas_threads(args.blas_threads) as threads:  # the package's one policy; --jobs processes get the same
            run_checks(args.checks, profile=args.profile, jobs=args.jobs, blas_threads=threads, log=finished,
                       note=within)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        kept = []
        if json_path is not None:
            kept.append(str(write_json(json_path, ordered(), status="interrupted", profile=args.profile,
                                       completed=len(results), of=len(checks))))
        if report is not None and results:
            kept.append(str(write_report(report, ordered(), args.profile,
                                         f"{command} (interrupted after {len(results)} of {len(checks)} checks)")))
        print(f"{prog}: interrupted (Ctrl-C) after {len(results)} of {len(checks)} checks; kept "
              + (", ".join(kept) if kept else "nothing (no output file was asked for)") + ".", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    results = ordered()
    print()
    print_table(results)
    if json_path is not None:
        print(f"wrote {write_json(json_path, results, status='finished', profile=args.profile, completed=len(results), of=len(checks))}")
    if report is not None:
        print(f"wrote {write_report(report, results, args.profile, command)}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
