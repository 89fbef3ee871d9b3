"""Command-line bad-input hunt (issue 24, round two; docs/validation.md). Usage: python cli_hunt.py TREE OUT.json

Each case runs the command in a fresh scratch folder. Verdict bad when: a raw traceback; an exit code
other than the expected one (2 for a refusal); a refusal that does not name the flag or path; a file of
another run changed or lost; a hang (timeout).
"""
import hashlib, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

TREE = Path(sys.argv[1]).resolve()
ENV = {**os.environ, "PYTHONPATH": str(TREE), "OMP_NUM_THREADS": "1"}
PY = sys.executable
T = ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.05", "--batch-size", "256"]
CASES = []


def case(kind, name, argv, expect=2, words=(), setup=None, after=None, timeout=240):
    CASES.append((kind, name, argv, expect, words, setup, after, timeout))


def digest(p: Path):
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def snapshot(d: Path):
    return {str(p.relative_to(d)): digest(p) for p in sorted(d.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def sh(argv, cwd, timeout=240):
    return subprocess.run([PY, *argv], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def bg(argv, cwd):
    return subprocess.Popen([PY, *argv], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def prior_run(d, out="a", extra=()):
    r = sh([*T, "--epochs", "1", "--out", out, *extra], d)
    assert r.returncode == 0, r.stderr


# ---- flags: values refused at the door, naming the flag
F = "flags"
case(F, "train --seed -1", [*T, "--epochs", "1", "--seed", "-1"], words=("--seed",))
case(F, "train --seeds 0 -1", [*T, "--epochs", "1", "--seeds", "0", "-1"], words=("--seeds",))
case(F, "train --seeds 1 1 (duplicate)", [*T, "--epochs", "1", "--seeds", "1", "1"], words=("--seeds", "seed"))
case(F, "train --seconds inf", [*T, "--seconds", "inf"], words=("--seconds",))
case(F, "train --seconds nan", [*T, "--seconds", "nan"], words=("--seconds",))
case(F, "train --lr nan", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "nan", "--epochs", "1"], words=("--lr",))
case(F, "train --lr inf", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "inf", "--epochs", "1"], words=("--lr",))
case(F, "train --momentum nan", [*T, "--epochs", "1", "--momentum", "nan"], words=("--momentum", "momentum"))
case(F, "train --momentum 1.5", [*T, "--epochs", "1", "--momentum", "1.5"], words=("--momentum", "momentum"))
case(F, "train --decay -0.1 (tnt)", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "tnt", "--lr", "0.01", "--epochs", "1", "--decay", "-0.1"], words=("--decay", "decay"))
case(F, "train --weight-decay inf", [*T, "--epochs", "1", "--weight-decay", "inf"], words=("--weight-decay", "weight_decay"))
case(F, "train --damping 1e-300 (tnt)", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "tnt", "--lr", "0.01", "--epochs", "1", "--damping", "1e-300", "--out", "o"], words=("--damping", "damping"))
case(F, "train --damping inf (kfac)", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "kfac", "--lr", "0.01", "--epochs", "1", "--damping", "inf"], words=("--damping",))
case(F, "train --T1 0", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "tnt", "--lr", "0.01", "--epochs", "1", "--T1", "0"], words=("--T1",))
case(F, "train --T2 2.5", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "tnt", "--lr", "0.01", "--epochs", "1", "--T2", "2.5"], words=("--T2",))
case(F, "train --conv-modes 7", ["-m", "tnt_ref", "train", "--problem", "cnn", "--optimizer", "tnt", "--lr", "0.01", "--epochs", "1", "--conv-modes", "7"], words=("conv_modes", "--conv-modes"))
case(F, "train --stat-scale sum?", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "tnt", "--lr", "0.01", "--epochs", "1", "--stat-scale", "bogus"], words=("stat_scale", "--stat-scale"))
case(F, "train --batch-size 0", [*T[:-2], "--batch-size", "0", "--epochs", "1"], words=("--batch-size",))
case(F, "train --batch-size 1e9", [*T[:-2], "--batch-size", "1000000000", "--epochs", "1"], words=("batch_size", "--batch-size"))
case(F, "train --epochs 0", [*T, "--epochs", "0"], words=("--epochs",))
case(F, "train --epochs 1.5", [*T, "--epochs", "1.5"], words=("--epochs",))
case(F, "train --val-size -5", [*T, "--epochs", "1", "--val-size", "-5"], words=("--val-size", "val_size"))
case(F, "train --val-size 5000", [*T, "--epochs", "1", "--val-size", "5000"], words=("val_size", "--val-size"))
case(F, "train --divergence-factor 1", [*T, "--epochs", "1", "--divergence-factor", "1"], words=("divergence", "--divergence-factor"))
case(F, "train --divergence-factor inf", [*T, "--epochs", "1", "--divergence-factor", "inf"], words=("divergence", "--divergence-factor"))
case(F, "train --problem resnet", ["-m", "tnt_ref", "train", "--problem", "resnet", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1"], words=("--problem", "resnet"))
case(F, "train --optimizer lbfgs", ["-m", "tnt_ref", "train", "--problem", "mlp", "--optimizer", "lbfgs", "--lr", "0.1", "--epochs", "1"], words=("--optimizer", "lbfgs"))
case(F, "train --damping for sgd", [*T, "--epochs", "1", "--damping", "0.1"], words=("--damping",))
case(F, "train no budget", [*T], words=("budget", "--epochs", "epochs"))
case(F, "train --backend torch", [*T, "--epochs", "1", "--backend", "torch"], words=("backend", "torch"))
case(F, "train --resume --overwrite", [*T, "--epochs", "1", "--resume", "--overwrite"], words=("--resume", "--overwrite"))
case(F, "train --resume with nothing", [*T, "--epochs", "1", "--resume", "--out", "nothing"], words=("checkpoint", "--resume"))
case(F, "compare --seeds 0", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--seeds", "0"], words=("--seeds",))
case(F, "compare --widen -1", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--widen", "-1"], words=("--widen", "widen"))
case(F, "compare --damping-grid nan", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--damping-grid", "nan"], words=("--damping-grid",))
case(F, "compare --jobs 0", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--jobs", "0"], words=("--jobs",))
case(F, "compare --epochs -2", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--epochs", "-2"], words=("--epochs",))
case(F, "compare --val-size -1", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--val-size", "-1"], words=("--val-size", "val_size"))
case(F, "compare --momentum inf", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--momentum", "inf"], words=("--momentum", "momentum"))
case(F, "fisher --seed -1", ["-m", "tnt_ref", "fisher", "--seed", "-1", "--out", "f"], words=("--seed",))
case(F, "fisher --n 1", ["-m", "tnt_ref", "fisher", "--n", "1", "--out", "f"], words=("--n", "`n`", "n="))
case(F, "fisher --damping nan", ["-m", "tnt_ref", "fisher", "--damping", "nan", "--out", "f"], words=("--damping",))
case(F, "fisher --conv-modes 5", ["-m", "tnt_ref", "fisher", "--conv-modes", "5", "--out", "f"], words=("--conv-modes",))
case(F, "estimators --seed -2", ["-m", "tnt_ref", "estimators", "--seed", "-2"], words=("--seed",))
case(F, "estimators --n 0", ["-m", "tnt_ref", "estimators", "--n", "0"], words=("--n",))
case(F, "estimators --shape 2,0", ["-m", "tnt_ref", "estimators", "--shape", "2,0"], words=("--shape",))
case(F, "estimators --shape 2.5,3", ["-m", "tnt_ref", "estimators", "--shape", "2.5,3"], words=("--shape",))
case(F, "estimators --shape 200,200,200 (memory)", ["-m", "tnt_ref", "estimators", "--shape", "200,200,200", "--n", "2"], words=("shape", "GiB", "TiB"))
case(F, "estimators --n 1e11 (memory)", ["-m", "tnt_ref", "estimators", "--shape", "3,2", "--n", "100000000000"], words=("ns", "GiB", "TiB", "--n"))
case(F, "estimators --n 1 (KL from 1 sample)", ["-m", "tnt_ref", "estimators", "--shape", "3,2", "--n", "1"], expect=0,
     after=lambda d, r: all(float(l.split()[3]) >= 0 and (float(l.split()[3]) == float("inf") or float(l.split()[3]) < 1e6)
                            for l in r.stdout.splitlines() if l.strip().startswith("1 ")))
case(F, "vectors --seed -1", ["-m", "tnt_ref", "vectors", "--out", "v", "--seed", "-1"], words=("--seed",))
case(F, "proofs_check --checks nope", ["-m", "proofs_check", "--checks", "nope", "--report", ""], words=("nope",))
case(F, "proofs_check --profile slow", ["-m", "proofs_check", "--profile", "slow"], words=("--profile",))
case(F, "tn_digits --draws 0", ["-m", "proofs_check.tn_digits", "--draws", "0"], words=("--draws",))
case(F, "tn_digits --draws 1000", ["-m", "proofs_check.tn_digits", "--draws", "1000"], words=("--draws",))

# ---- output paths at the door
O = "paths"
def mkfile(name):
    return lambda d: (d / name).write_text("a file")
case(O, "train --out is a file", [*T, "--epochs", "1", "--out", "f"], words=("--out",), setup=mkfile("f"))
case(O, "train --checkpoint is a folder", [*T, "--epochs", "1", "--checkpoint", "dir"], words=("--checkpoint",), setup=lambda d: (d / "dir").mkdir())
case(O, "train --checkpoint ''", [*T, "--epochs", "1", "--checkpoint", ""], words=("--checkpoint",))
case(O, "train --checkpoint under a file", [*T, "--epochs", "1", "--checkpoint", "f/ck.npz"], words=("--checkpoint",), setup=mkfile("f"))
case(O, "train --checkpoint = OUT/history.json", [*T, "--epochs", "1", "--out", "a", "--checkpoint", "a/history.json"], words=("--checkpoint", "same"))
case(O, "train --checkpoint = OUT/.tnt-ref.lock", [*T, "--epochs", "1", "--out", "a", "--checkpoint", "a/.tnt-ref.lock"], words=("--checkpoint", "lock"))
case(O, "train --out /", [*T, "--epochs", "1", "--out", "/proc/nope"], words=("--out",))
case(O, "compare --out is a file", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "f"], words=("--out",), setup=mkfile("f"))
case(O, "fisher --out is a file", ["-m", "tnt_ref", "fisher", "--model", "mlp", "--n", "10", "--out", "f"], words=("--out",), setup=mkfile("f"))
case(O, "vectors --out is a file", ["-m", "tnt_ref", "vectors", "--out", "f"], words=("--out",), setup=mkfile("f"))
case(O, "proofs_check --json = --report", ["-m", "proofs_check", "--checks", "sym.scale_nonidentifiability", "--json", "r.md", "--report", "r.md"], words=("--json", "same"))
case(O, "proofs_check --json = report figure", ["-m", "proofs_check", "--checks", "sym.scale_nonidentifiability", "--json", "rep/figures/theorem1.png", "--report", "rep/r.md"], words=("--json", "same", "figure"))
case(O, "proofs_check --json is a folder", ["-m", "proofs_check", "--checks", "sym.scale_nonidentifiability", "--json", "dir", "--report", ""], words=("--json",), setup=lambda d: (d / "dir").mkdir())
case(O, "tn_digits --json is a folder", ["-m", "proofs_check.tn_digits", "--profile", "quick", "--json", "dir"], words=("--json",), setup=lambda d: (d / "dir").mkdir())

# ---- files of other runs: never lost, never overwritten without --overwrite, never taken from a live run
W = "ownership"
def unchanged(rel):
    def after(d, r, before):
        return before.get(rel) is not None and digest(d / rel) == before[rel]
    return after

case(W, "train again in a finished run's --out", [*T, "--epochs", "1", "--out", "a", "--seed", "3"], words=("--out", "another run", "--resume"),
     setup=lambda d: prior_run(d), after=unchanged("a/checkpoint.npz"))
case(W, "train --checkpoint = a finished run's checkpoint", [*T, "--epochs", "1", "--out", "b", "--checkpoint", "a/checkpoint.npz"],
     words=("--checkpoint", "another run", "holds"), setup=lambda d: prior_run(d), after=unchanged("a/checkpoint.npz"))
case(W, "train --seeds in a finished run's --out", [*T, "--epochs", "1", "--out", "a", "--seeds", "0", "1"], words=("--out", "other runs", "another"),
     setup=lambda d: prior_run(d), after=unchanged("a/history.json"))
case(W, "fisher twice into one --out", ["-m", "tnt_ref", "fisher", "--model", "mlp", "--n", "10", "--out", "f"], words=("exist", "--overwrite"),
     setup=lambda d: sh(["-m", "tnt_ref", "fisher", "--model", "mlp", "--n", "12", "--out", "f"], d), after=unchanged("f/fisher_mlp.json"))
case(W, "vectors twice into one --out", ["-m", "tnt_ref", "vectors", "--out", "v", "--seed", "2"], words=("exist", "--overwrite"),
     setup=lambda d: sh(["-m", "tnt_ref", "vectors", "--out", "v"], d), after=unchanged("v/mlp_tanh_softmax.npz"))
case(W, "proofs_check over an earlier report", ["-m", "proofs_check", "--checks", "sym.scale_nonidentifiability", "--out", "t"], words=("exist", "--overwrite"),
     setup=lambda d: sh(["-m", "proofs_check", "--checks", "sym.scale_nonidentifiability", "--out", "t"], d), after=unchanged("t/theory-report.md"))
case(W, "vectors --overwrite replaces (allowed)", ["-m", "tnt_ref", "vectors", "--out", "v", "--seed", "2", "--overwrite"], expect=0,
     setup=lambda d: sh(["-m", "tnt_ref", "vectors", "--out", "v"], d))
case(W, "train --overwrite a finished run (allowed)", [*T, "--epochs", "1", "--out", "a", "--overwrite", "--seed", "4"], expect=0,
     setup=lambda d: prior_run(d))
case(W, "train --resume a finished run (allowed)", [*T, "--epochs", "2", "--out", "a", "--resume"], expect=0, setup=lambda d: prior_run(d))
case(W, "train --resume with a malformed history in the checkpoint", [*T, "--epochs", "2", "--out", "a", "--resume"], words=("checkpoint", "malformed", "corrupted"),
     setup=lambda d: (prior_run(d), _break_history(d / "a" / "checkpoint.npz")))
case(W, "compare --resume with a malformed run record", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--epochs", "1", "--optimizers", "sgd",
     "--seeds", "1", "--tune-seeds", "1", "--widen", "0", "--resume"], expect=0, setup=lambda d: _bad_record(d), timeout=400)


def _break_history(ck: Path):
    import numpy as np, io
    with np.load(ck) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["history"] = np.array(json.dumps([1, 2, 3]))
    buf = io.BytesIO(); np.savez(buf, **arrays); ck.write_bytes(buf.getvalue())


def _bad_record(d: Path):
    (d / "c" / "runs").mkdir(parents=True)
    (d / "c" / "runs" / "sgd_lr0.1_s0_0000000000.json").write_text("7")
    (d / "c" / "runs" / "bogus.json").write_text('{"spec": 3, "history": 5}')


# races: a live run in the background, then a second command on its files
R = "race"
RACE = []
def race(name, first, second, words, check):
    RACE.append((name, first, second, words, check))

LONG = [*T, "--seconds", "15", "--seed", "0"]  # long enough to be live when the second starts
def ck_seed(d, rel):
    import numpy as np
    try:
        with np.load(d / rel) as z:
            return json.loads(str(z["meta"]))["seed"]
    except Exception:  # noqa: BLE001
        return None

race("same --out while the first runs", [*LONG, "--out", "a"], [*T, "--epochs", "1", "--out", "a", "--seed", "5"], ("--out", "live", "in use", "another run"),
     lambda d: ck_seed(d, "a/checkpoint.npz") == 0 and json.loads((d / "a/history.json").read_text())["status"] == "finished")
race("same --out --overwrite while the first runs", [*LONG, "--out", "a"], [*T, "--epochs", "1", "--out", "a", "--seed", "5", "--overwrite"], ("--out", "live", "in use"),
     lambda d: ck_seed(d, "a/checkpoint.npz") == 0 and json.loads((d / "a/history.json").read_text())["status"] == "finished")
race("shared --checkpoint while the first runs", [*LONG, "--out", "a", "--checkpoint", "ck.npz"], [*T, "--epochs", "1", "--out", "b", "--seed", "5", "--checkpoint", "ck.npz"],
     ("--checkpoint", "live", "in use", "another run"), lambda d: ck_seed(d, "ck.npz") == 0)
race("shared --checkpoint --overwrite while the first runs", [*LONG, "--out", "a", "--checkpoint", "ck.npz"],
     [*T, "--epochs", "1", "--out", "b", "--seed", "5", "--checkpoint", "ck.npz", "--overwrite"], ("--checkpoint", "live", "in use"), lambda d: ck_seed(d, "ck.npz") == 0)
race("--checkpoint inside the live run's --out", [*LONG, "--out", "a"], [*T, "--epochs", "1", "--out", "b", "--seed", "5", "--checkpoint", "a/checkpoint.npz", "--overwrite"],
     ("--checkpoint", "live", "in use"), lambda d: ck_seed(d, "a/checkpoint.npz") == 0)
race("--out = the live run's checkpoint folder", [*LONG, "--out", "a", "--checkpoint", "k/ck.npz"], [*T, "--epochs", "1", "--out", "k", "--seed", "5", "--checkpoint", "k/ck.npz", "--overwrite"],
     ("--checkpoint", "--out", "live", "in use"), lambda d: ck_seed(d, "k/ck.npz") == 0)
race("train --seeds into a live --out", [*LONG, "--out", "a"], [*T, "--epochs", "1", "--out", "a", "--seeds", "1", "2", "--overwrite"], ("--out", "live", "in use"),
     lambda d: ck_seed(d, "a/checkpoint.npz") == 0)
race("fisher while a fisher runs in the --out", ["-m", "tnt_ref", "fisher", "--model", "mlp", "--n", "200", "--out", "f"],
     ["-m", "tnt_ref", "fisher", "--model", "mlp", "--n", "20", "--out", "f", "--overwrite"], ("live", "in use", "exist"),
     lambda d: json.loads((d / "f/fisher_mlp.json").read_text())["config"]["n"] == 200)
race("two compares into one --out", ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--epochs", "1", "--optimizers", "sgd", "--seeds", "1", "--tune-seeds", "1", "--widen", "0"],
     ["-m", "tnt_ref", "compare", "--problem", "mlp", "--out", "c", "--epochs", "1", "--optimizers", "adam", "--seeds", "1", "--tune-seeds", "1", "--widen", "0", "--overwrite"],
     ("live", "in use"), lambda d: "sgd" in (d / "c/table.md").read_text())
race("proofs_check --json onto a live train's checkpoint", [*LONG, "--out", "a"], ["-m", "proofs_check", "--checks", "sym.scale_nonidentifiability", "--report", "", "--json", "a/checkpoint.npz", "--overwrite"],
     ("live", "in use", "--json"), lambda d: ck_seed(d, "a/checkpoint.npz") == 0)


def run_case(kind, name, argv, expect, words, setup, after, timeout):
    d = Path(tempfile.mkdtemp(prefix="hunt-"))
    try:
        if setup:
            setup(d)
        before = snapshot(d)
        try:
            r = sh(argv, d, timeout)
        except subprocess.TimeoutExpired:
            return "bad", f"hang (> {timeout} s)"
        text = r.stdout + r.stderr
        if "Traceback" in r.stderr:
            return "bad", "raw traceback: " + r.stderr.strip().splitlines()[-1][:160]
        if r.returncode != expect:
            return "bad", f"exit {r.returncode}, expected {expect}: {r.stderr.strip()[-160:]}"
        if expect == 2 and words and not any(w.lower() in r.stderr.lower() for w in words):
            return "bad", f"refusal names none of {words}: {r.stderr.strip()[-160:]}"
        if after is not None:
            ok = after(d, r, before) if after.__code__.co_argcount == 3 else after(d, r)
            if not ok:
                return "bad", "files of another run changed or lost / wrong output"
        return "ok", f"exit {r.returncode}: {(r.stderr.strip() or r.stdout.strip())[-140:]}"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_race(name, first, second, words, check):
    d = Path(tempfile.mkdtemp(prefix="race-"))
    try:
        p1 = bg(first, d)
        time.sleep(4.0)  # the first is past its door and working
        if p1.poll() is not None:
            return "bad", "HUNT DESIGN: the first command ended before the second started"
        try:
            r2 = sh(second, d, 300)
        except subprocess.TimeoutExpired:
            p1.kill(); return "bad", "second hangs"
        out1, err1 = p1.communicate(timeout=600)
        if "Traceback" in r2.stderr or "Traceback" in err1:
            return "bad", "raw traceback: " + (r2.stderr + err1).strip().splitlines()[-1][:160]
        if p1.returncode != 0:
            return "bad", f"the first (live) run ended {p1.returncode}: {err1.strip()[-160:]}"
        if r2.returncode == 0:
            if check is not None and not check(d):
                return "bad", "second exited 0 and the live run's files were overwritten"
            return "bad", "second exited 0 while the first was running on the same files"
        if not any(w.lower() in r2.stderr.lower() for w in words):
            return "bad", f"refusal names none of {words}: {r2.stderr.strip()[-160:]}"
        if check is not None and not check(d):
            return "bad", "the live run's files were changed"
        return "ok", f"second exit {r2.returncode}: {r2.stderr.strip()[-140:]}"
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    from collections import Counter
    tot, bad, rows = Counter(), Counter(), []
    for c in CASES:
        v, why = run_case(*c)
        tot[c[0]] += 1; bad[c[0]] += v == "bad"
        rows.append({"kind": c[0], "case": c[1], "verdict": v, "why": why})
        print(f"{v:3} [{c[0]}] {c[1]}: {why}", flush=True)
    for c in RACE:
        v, why = run_race(*c)
        tot[R] += 1; bad[R] += v == "bad"
        rows.append({"kind": R, "case": c[0], "verdict": v, "why": why})
        print(f"{v:3} [{R}] {c[0]}: {why}", flush=True)
    print()
    for k in tot:
        print(f"{k:12} {bad[k]:3} bad of {tot[k]}")
    print(f"{'total':12} {sum(bad.values()):3} bad of {sum(tot.values())}")
    json.dump(rows, open(sys.argv[2], "w"), indent=1)
