"""The README's timing claims, measured: each command as a new user runs it, in a fresh folder, one after another.

    PYTHONPATH=$PWD python benchmarks/bench_readme.py [--only demo tests ...] [--out docs/results/bench_readme.json]

Measures the wall time of every README command that takes longer than a few seconds: ``tnt-ref demo``
(and with ``--jobs 2``), the test suite (``python -m pytest -q``, what CI runs), ``tnt-ref check-theory
--profile quick`` and the default full profile, ``python -m proofs_check.tn_digits --profile quick``,
and ``tnt-ref fisher --model mlp``. Each runs as a subprocess of this interpreter in a fresh temporary
folder (the test suite from the repository root, as CI runs it; the repository on ``PYTHONPATH``, the package's BLAS-thread policy as every command applies
it: ``TNT_REF_BLAS_THREADS`` is passed through unchanged). Before and after each command the script
reads the load average (``os.getloadavg``, as ``uptime`` prints it): on a shared machine the wall
times grow with the load, and the README states the load beside each number.

The last block it prints is the README's timing sentences, with the measured numbers; the JSON
(``--out``) holds every measurement, the machine and the loads. The README's claims are the output
of one run of this script (``tests/test_readme.py`` checks that the README quotes the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (command line, what the README calls it). ``{py}`` is this interpreter.
COMMANDS = {
    "demo": ("{py} -m tnt_ref demo --out demo", "tnt-ref demo"),
    "demo-jobs2": ("{py} -m tnt_ref demo --jobs 2 --out demo", "tnt-ref demo --jobs 2"),
    "tests": ("{py} -m pytest -q -p no:cacheprovider", "python -m pytest -q"),  # from the repository root, as CI
    "theory-quick": ("{py} -m proofs_check --profile quick --out theory", "tnt-ref check-theory --profile quick"),
    "theory-full": ("{py} -m proofs_check --out theory", "tnt-ref check-theory (full profile)"),
    "tn-digits-quick": ("{py} -m proofs_check.tn_digits --profile quick", "python -m proofs_check.tn_digits --profile quick"),
    "fisher-mlp": ("{py} -m tnt_ref fisher --model mlp --out fisher", "tnt-ref fisher --model mlp"),
}


def duration(seconds: float) -> str:
    """How the README writes a time: ``48 s`` below two minutes, else ``2 min 5 s``.

    >>> duration(47.6), duration(125.2), duration(600)
    ('48 s', '2 min 5 s', '10 min 0 s')
    """
    s = int(round(seconds))
    return f"{s} s" if s < 120 else f"{s // 60} min {s % 60} s"


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def measure(name: str, timeout: float) -> dict:
    cmd, readme = COMMANDS[name]
    line = cmd.format(py=sys.executable, root=ROOT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        before = _load()
        t0 = time.perf_counter()
        cwd = ROOT if name == "tests" else tmp  # the suite from the repository root (its testpaths), the rest in a fresh folder
        p = subprocess.run(line.split(), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        after = _load()
    rec = {"name": name, "command": readme, "argv": line, "wall_s": wall, "wall": duration(wall), "returncode": p.returncode,
           "load_before": before, "load_after": after, "last_line": _tail(p.stdout)}
    if name == "tests":
        m = re.search(r"(\d+) passed(?:, (\d+) skipped)?", p.stdout)
        rec["passed"], rec["skipped"] = (int(m.group(1)), int(m.group(2) or 0)) if m else (None, None)
        f = re.search(r"(\d+) failed", p.stdout)
        rec["failed"] = int(f.group(1)) if f else 0
    return rec


def sentences(res: dict) -> list[str]:
    """The README's timing sentences from the measurements (what the README must quote)."""
    m = res["machine"]
    by = {r["name"]: r for r in res["runs"]}

    def at(r):
        return f"{r['wall']} (load average {r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after)"

    out = [f"Measured by benchmarks/bench_readme.py on {m['date']}: {m['cpus']} CPU cores ({m['cpu']}), "
           f"Python {m['python']}, {m['blas_threads']} BLAS thread(s) per process."]
    for name, r in by.items():
        extra = f", {r['passed']} passed, {r['skipped']} skipped" if name == "tests" and r.get("passed") else ""
        if name == "tests" and r.get("failed"):
            extra += f", {r['failed']} FAILED"
        fail = "" if r["returncode"] == 0 else f" [exit code {r['returncode']}]"  # a failure is never hidden
        out.append(f"- `{r['command']}`: {at(r)}{extra}{fail}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_readme.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=list(COMMANDS), default=None,
                   help="measure only these (default: all, in the order listed)")
    p.add_argument("--out", default=None,
                   help="write the measurements to this JSON file when all are done; until then they are kept, command "
                        "by command, in FILE.partial (default: print only)")
    p.add_argument("--update", action="store_true",
                   help="keep the other commands' records already in --out and replace those measured now (default: off)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per command (default: %(default)g)")
    args = p.parse_args(argv)
    from tnt_ref.runtime import thread_count

    res = {"machine": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
                       "cpu": _cpu(), "python": platform.python_version(), "platform": platform.platform(),
                       "blas_threads": thread_count()}, "runs": []}
    if args.update:
        if not args.out or not Path(args.out).exists():
            p.error("--update needs an existing --out file")
        old = json.loads(Path(args.out).read_text())
        if {k: v for k, v in old["machine"].items() if k != "date"} != {k: v for k, v in res["machine"].items() if k != "date"}:
            p.error("--update: the records in --out were measured on another machine or setup; measure all again")
        res = old
    partial = Path(f"{args.out}.partial") if args.out else None
    for name in args.only or list(COMMANDS):
        print(f"{name}: {COMMANDS[name][1]} ...", flush=True)
        rec = measure(name, args.timeout)
        rec["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        res["runs"] = [r for r in res["runs"] if r["name"] != name] + [rec]
        res["runs"].sort(key=lambda r: list(COMMANDS).index(r["name"]))
        print(f"  {rec['wall']} (exit {rec['returncode']}; load average {rec['load_before']} -> {rec['load_after']}): "
              f"{rec['last_line'][:120]}", flush=True)
        if args.out:  # written as each command finishes, beside --out: the test suite measured here reads --out
            partial.write_text(json.dumps(res, indent=2) + "\n")
    if args.out:
        os.replace(partial, args.out)  # the finished record, in one step
    print("\nFor the README:")
    for s in sentences(res):
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
