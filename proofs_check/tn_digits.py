"""``python -m proofs_check.tn_digits``: the tensor-normal (separability) test on the digits models
(per-example and mini-batch sampled gradients) at initialization, midway and the end of TNT runs,
and the exact blocks' KL gap along training
(:func:`proofs_check.digits_study.digits_study`). It reports what the data say, whatever they are;
the exit code is 1 when the samples are inconsistent with the exact blocks they are compared with
(the pass criterion of the check ``tn.digits.study``), 2 on bad arguments."""

from __future__ import annotations

import sys


#: Most label draws per image the command accepts: 64 x 1797 gradients of the largest layer (D = 640) are
#: about 0.6 GB in float64, and the study holds a few such arrays at once.
MAX_DRAWS = 64


def main(argv=None) -> int:
    import argparse  # noqa: PLC0415

    from tnt_ref.files import OutputPathError, Outputs  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m proofs_check.tn_digits",
                                description="The tensor-normal (separability) test on the digits models during training.")
    p.add_argument("--profile", choices=("ci", "quick", "full"), default="full",
                   help="the study's sizes (proofs_check.digits_study.DIGITS_PROFILES): ci (the test suite's: one seed, 2 "
                        "epochs, 600 images), quick (one seed, 4 epochs) or full (the default: three seeds, 20 epochs)")
    p.add_argument("--draws", type=int, default=1,
                   help=f"label draws per image for the per-example rows: n = 1797 x DRAWS samples (1 to {MAX_DRAWS}; default 1)")
    p.add_argument("--json", default=None, help="write the study as JSON to this file (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace a JSON file left by an earlier run (default: refuse)")
    args = p.parse_args(argv)
    if not 1 <= args.draws <= MAX_DRAWS:
        print(f"{p.prog}: error: `--draws` must be an int in [1, {MAX_DRAWS}] (memory grows with it); got {args.draws}.",
              file=sys.stderr)
        return 2
    outs = Outputs()
    try:
        if args.json is not None:
            outs.file(args.json, "--json")
        with outs:
            outs.refuse_existing(args.overwrite)
            return _run(args)
    except OutputPathError as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import json  # noqa: PLC0415

    from tnt_ref.files import atomic_write_json  # noqa: PLC0415

    from tnt_ref.runtime import Progress, blas_threads  # noqa: PLC0415

    from .digits_study import LEVEL, can_reject, digits_study, format_row, row_consistent, study_consistent  # noqa: PLC0415
    from .registry import notes_to  # noqa: PLC0415

    bar = Progress(1, "progress", "step", log=lambda line: print(f"  {line}", flush=True))

    def step(text, done=None, total=None):
        if done is not None and total:
            bar.set_total(total)
            bar.advance(done - bar.done, text)
        else:
            bar.note(text)

    try:
        with blas_threads(), notes_to(step):  # the package's thread policy; a progress line per step of the study
            res = digits_study(args.profile, draws=args.draws, log=lambda r: bar.write(format_row(r)))
    finally:
        bar.close()
    for r in res["data_label_rows"]:
        print(f"control, data labels: {r['problem']:<4} {r['layer']:<13} {r['point']:<4} z_trace={r['z_trace']:+.2f} "
              f"z_top={r['z_top']:+.2f} consistent={row_consistent(r)}")
    ok = study_consistent(res)
    print(f"bootstrap: {res['n_boot']} draws per row, so the smallest possible p is {1 / (res['n_boot'] + 1):.2g}: the test "
          f"{'can' if can_reject(res['n_boot']) else 'cannot'} reject at {LEVEL}")
    print("samples consistent with the exact blocks (the study's pass criterion): " + ("yes" if ok else
          "NO -- the p-values and the gaps do not describe the same distribution"))
    if args.json:
        from .report import _finite  # noqa: PLC0415

        print(f"wrote {atomic_write_json(args.json, _finite(json.loads(json.dumps(res))))}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
