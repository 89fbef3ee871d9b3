"""``python -m proofs_check``: run the theory checks, print the table, write the report and JSON."""

from __future__ import annotations

import argparse
import sys

from .registry import CHECKS, PROFILES, run_checks
from .report import print_table, write_json, write_report


def main(argv: list[str] | None = None, prog: str = "python -m proofs_check") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Check the TNT paper's theory: symbolic identities, AS.1-AS.4, Theorem 1.")
    p.add_argument("--profile", choices=PROFILES, default="full", help="quick (CI, seconds) or full (minutes)")
    p.add_argument("--checks", nargs="+", default=None, help="run only these checks (default: all)")
    p.add_argument("--json", default=None, help="write the results as JSON to this file")
    p.add_argument("--report", default="docs/theory-report.md", help="markdown report path ('' for none)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    args = p.parse_args(argv)
    from . import assumptions, symbolic, theorem  # noqa: F401  (register)

    if args.list:
        for name, c in CHECKS.items():
            print(f"{name:<32} [{c.tag}] {c.kind:<17} expected {c.expected}: {c.claim}")
        return 0
    try:
        results = run_checks(args.checks, profile=args.profile,
                             log=lambda r: print(f"  {r.name:<32} {r.status} (expected {r.expected}, {r.seconds:.1f} s)", flush=True))
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print()
    print_table(results)
    if args.json:
        print(f"wrote {write_json(args.json, results)}")
    if args.report:
        print(f"wrote {write_report(args.report, results, args.profile, prog + ' ' + ' '.join(argv or sys.argv[1:]))}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
