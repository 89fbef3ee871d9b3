"""The README as a new user reads it: each Python snippet runs as written, alone; every command it shows exists
with the flags it shows; the license it promises ships."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tnt_ref.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("i", range(len(_blocks("python"))))
def test_each_python_snippet_runs_alone(i, tmp_path):
    """In a fresh interpreter, with nothing from the other snippets (the issue: the second one used the first's rng)."""
    code = _blocks("python")[i]
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert p.returncode == 0, f"README python snippet {i + 1} fails when run alone:\n{p.stderr[-2000:]}"


def test_there_are_snippets_to_test():
    assert len(_blocks("python")) >= 2 and len(_blocks("bash")) >= 1


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _commands() -> list[list[str]]:
    """Every ``tnt-ref ...`` command of the README, from its bash blocks and its table of commands."""
    cmds = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.split("#")[0].strip()
                if part.startswith("tnt-ref "):
                    cmds.append(shlex.split(part)[1:])
    for cell in re.findall(r"^\| `(tnt-ref [^`]*)`", README, flags=re.M):
        cmds.append(cell.split()[1:])
    return cmds


def test_every_command_and_flag_the_readme_shows_exists():
    subs = _subparsers(build_parser())
    cmds = _commands()
    assert {c[0] for c in cmds} >= {"demo", "compare", "train", "fisher", "vectors", "estimators", "check-theory"}
    for c in cmds:
        assert c[0] in subs, f"README shows `tnt-ref {c[0]}`, which does not exist"
        if c[0] == "check-theory":
            continue
        flags = {s for a in subs[c[0]]._actions for s in a.option_strings}
        for tok in c[1:]:
            for flag in re.findall(r"--[\w-]+", tok):
                assert flag in flags, f"README shows `tnt-ref {c[0]} ... {flag}`, which `tnt-ref {c[0]}` does not take"


def test_license_file_matches_the_metadata():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == {"text": "BSD-3-Clause"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in text


def test_the_readme_timings_are_the_benchmark_s_output():
    """Every timing the README's Timings section states is a line `benchmarks/bench_readme.py` printed, from the run
    recorded in docs/results/bench_readme.json (command, wall time, the load average before and after, the machine);
    while no run is recorded there, the section states no time at all."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("bench_readme", ROOT / "benchmarks" / "bench_readme.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert "## Timings" in README and "benchmarks/bench_readme.py" in README
    timings = README.split("## Timings", 1)[1].split("\n## ", 1)[0]
    stated = re.findall(r"\b\d+(?:\.\d+)? ?(?:s|sec|seconds|min|minutes?|h|hours?)\b", timings)
    recorded = ROOT / "docs" / "results" / "bench_readme.json"
    if not recorded.exists():
        assert stated == [], f"the Timings section states {stated}, but no benchmark run is recorded in {recorded.name}"
        return
    res = json.loads(recorded.read_text())
    lines = bench.sentences(res)
    assert {r["name"] for r in res["runs"]} == set(bench.COMMANDS) and all(r["returncode"] == 0 for r in res["runs"]), \
        "the README quotes a benchmark run in which a command failed: fix it and measure again"
    for line in lines:
        assert line in README, f"the README lacks the benchmark's line: {line}"
    quoted = re.findall(r"\b\d+(?:\.\d+)? ?(?:s|sec|seconds|min|minutes?|h|hours?)\b", "\n".join(lines))
    assert sorted(stated) == sorted(quoted), "the Timings section states a time the benchmark did not print"
