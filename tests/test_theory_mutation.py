"""The theory suite checks the optimizer users run: break ``tnt_ref/optim/tnt.py`` on disk (in a scratch
copy of the tree) and ``python -m proofs_check`` turns red. The full table of such mutations is
``benchmarks/mutation.py`` (docs/mutation.md); this is the one CI runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIGN = "-alpha * gamma * p - alpha * P[k] for k"


def test_flipping_the_update_sign_in_optim_tnt_turns_theory_checks_red(tmp_path):
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "tnt_ref", work / "tnt_ref", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "proofs_check", work / "proofs_check", ignore=shutil.ignore_patterns("__pycache__"))
    path = work / "tnt_ref" / "optim" / "tnt.py"
    src = path.read_text()
    assert src.count(SIGN) == 1  # the snippet exists exactly once: the test mutates the real line
    path.write_text(src.replace(SIGN, "-alpha * gamma * p + alpha * P[k] for k"))
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    checks = ["AS.3.step_oracle", "theorem1.tnt", "AS.4.convergent"]
    proc = subprocess.run([sys.executable, "-m", "proofs_check", "--profile", "quick", "--report", "", "--checks", *checks],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "AS.3.step_oracle" in proc.stdout and "fail (expected pass" in proc.stdout
    red = re.findall(r"(\S+): fail \(expected pass", proc.stdout)  # the progress line names each finished check
    assert {"AS.3.step_oracle", "theorem1.tnt"} <= set(red), proc.stdout
    # the same command on the unmutated tree is green
    ok = subprocess.run([sys.executable, "-m", "proofs_check", "--profile", "quick", "--report", "", "--checks", checks[0]],
                        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout + ok.stderr
