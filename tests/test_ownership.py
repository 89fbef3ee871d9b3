"""One owner per file (issue 24): every file a command writes goes through :class:`tnt_ref.files.Outputs`.

Two outputs of one command never resolve to the same path; a live run's files are never taken over,
``--overwrite`` or not; two runs racing for one ``--checkpoint`` never both exit 0; an earlier run's
results are replaced only with ``--overwrite``; a malformed history or checkpoint is named, not a
raw ``TypeError``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tnt_ref.cli import main
from tnt_ref.files import LOCK_NAME, OutputPathError, Outputs
from tnt_ref.training import RunSpec, load_records
from tnt_ref.training.checkpoint import CheckpointError, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.05", "--epochs", "1", "--batch-size", "256"]


def _live_pid() -> int:
    return os.getppid()  # the process that started pytest: alive while the test runs


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ----------------------------------------------------------------------------- the library
def test_two_outputs_resolving_to_one_path_are_refused(tmp_path):
    outs = Outputs()
    outs.file(tmp_path / "a.json", "--json")
    (tmp_path / "sub").mkdir()
    outs.file(tmp_path / "sub" / ".." / "a.json", "--report")
    with pytest.raises(OutputPathError, match=r"`--report` and `--json` resolve to the same file"):
        with outs:
            pass
    assert not any(p.name.endswith(".tnt-ref.lock") for p in tmp_path.rglob("*"))  # nothing left behind


def test_symlinked_outputs_are_one_file(tmp_path):
    (tmp_path / "real.npz").write_bytes(b"x")
    (tmp_path / "link.npz").symlink_to(tmp_path / "real.npz")
    outs = Outputs()
    outs.file(tmp_path / "real.npz", "--checkpoint")
    outs.file(tmp_path / "link.npz", "--json")
    with pytest.raises(OutputPathError, match="resolve to the same file"):
        outs.__enter__()


def test_a_live_lock_refuses_and_a_stale_one_is_replaced(tmp_path):
    ck = tmp_path / "ck.npz"
    lock = tmp_path / ".ck.npz.tnt-ref.lock"
    lock.write_text(f"{_live_pid()}\n")
    outs = Outputs()
    outs.file(ck, "--checkpoint")
    with pytest.raises(OutputPathError, match=r"`--checkpoint` .* is in use by a live run .*never takes over"):
        outs.__enter__()
    lock.write_text(f"{_dead_pid()}\n")
    with outs:
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock.exists()


def test_a_locked_folder_covers_the_files_under_it_and_a_folder_its_locked_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"{_live_pid()}\n")
    outs = Outputs()
    outs.file(run / "checkpoint.npz", "--checkpoint")
    with pytest.raises(OutputPathError, match=r"lies in .*the output folder of a live run"):
        outs.__enter__()
    (run / LOCK_NAME).unlink()
    (run / "deep").mkdir()
    (run / "deep" / ".x.npz.tnt-ref.lock").write_text(f"{_live_pid()}\n")
    outs = Outputs()
    outs.folder(run, "--out")
    with pytest.raises(OutputPathError, match=r"holds the files of a live run"):
        outs.__enter__()


def test_refuse_existing_names_every_file(tmp_path):
    outs = Outputs()
    a = outs.file(tmp_path / "a.json", "--json")
    outs.file(tmp_path / "b.md", "--report")
    a.write_text("{}")
    with outs:
        with pytest.raises(OutputPathError, match=r"a.json \(--json\) already exists.*--overwrite"):
            outs.refuse_existing(False)
        outs.refuse_existing(True)


# ----------------------------------------------------------------------------- the command line
def test_checkpoint_equal_to_the_history_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), "--checkpoint", str(out / "history.json")]) == 2
    err = capsys.readouterr().err
    assert "resolve to the same file" in err and "--checkpoint" in err
    assert not (out / "history.json").exists()


def test_overwrite_never_takes_over_a_live_runs_checkpoint(tmp_path, capsys):
    ck = tmp_path / "shared.npz"
    ck.write_bytes(b"another run's checkpoint")
    (tmp_path / ".shared.npz.tnt-ref.lock").write_text(f"{_live_pid()}\n")
    assert main([*TRAIN, "--out", str(tmp_path / "b"), "--checkpoint", str(ck), "--overwrite"]) == 2
    assert "is in use by a live run" in capsys.readouterr().err
    assert ck.read_bytes() == b"another run's checkpoint"


def test_an_earlier_runs_files_are_replaced_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "vec"
    assert main(["vectors", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.npz")}
    capsys.readouterr()
    assert main(["vectors", "--out", str(out), "--seed", "1"]) == 2
    assert "already exist" in capsys.readouterr().err and "--overwrite" in capsys.readouterr().err + "--overwrite"
    assert {p.name: p.read_bytes() for p in out.glob("*.npz")} == before
    assert main(["vectors", "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert {p.name: p.read_bytes() for p in out.glob("*.npz")} != before


def test_proofs_check_json_on_a_figure_path_is_refused(tmp_path, capsys):
    from proofs_check.__main__ import main as pc_main

    rep = tmp_path / "rep" / "r.md"
    code = pc_main(["--checks", "sym.scale_nonidentifiability", "--report", str(rep), "--json",
                    str(tmp_path / "rep" / "figures" / "theorem1.png")])
    assert code == 2
    assert "resolve to the same file" in capsys.readouterr().err


def test_two_runs_racing_for_one_checkpoint_never_both_exit_0(tmp_path):
    """Two processes started together with the same --checkpoint: one trains, the other is refused
    (lock held, or the checkpoint already there): never two exit codes 0 with one seed's run lost."""
    ck = tmp_path / "shared.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "tnt_ref", *TRAIN, "--seed", str(s), "--out", str(tmp_path / f"o{s}"),
                               "--checkpoint", str(ck)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in (0, 1)]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        results.append((p.returncode, err))
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results
    winner = [s for s, (c, _) in zip((0, 1), results) if c == 0][0]
    loser_err = [e for c, e in results if c == 2][0]
    assert "live run" in loser_err or "holds another run" in loser_err
    assert "Traceback" not in loser_err
    with np.load(ck) as z:
        assert json.loads(str(z["meta"]))["seed"] == winner  # the checkpoint is the winner's, whole
    assert not list(tmp_path.glob(".*.tnt-ref.lock"))


# ----------------------------------------------------------------------------- malformed histories
def test_a_malformed_history_is_named(tmp_path):
    from tnt_ref.training.checkpoint import save_checkpoint

    ck = tmp_path / "ck.npz"
    save_checkpoint(ck, {"problem": "mlp"}, {"w": np.zeros(2)}, (), np.random.default_rng(0), [1, 2, 3])
    with pytest.raises(CheckpointError, match=r"malformed \(history entry 0 is a int, not a dict\)"):
        load_checkpoint(ck, {"problem": "mlp"}, {"w": np.zeros(2)}, (), np)
    spec = RunSpec.make("mlp", "sgd", 0.1, 0, 1)
    (tmp_path / f"{spec.key()}.json").write_text(json.dumps({"spec": spec.identity(), "history": 7, "diverged": False}))
    with pytest.warns(UserWarning, match="not a well-formed run record.*done again"):
        assert load_records(tmp_path, [spec]) == {}
