"""``python -m proofs_check.tn_digits``: the tensor-normal (separability) test on the digits models
at initialization, midway and the end of a TNT run (:func:`proofs_check.separability.digits_study`).
An observation, not a check: it reports what the data say."""

from __future__ import annotations


def main(argv=None) -> int:
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415

    from tnt_ref.files import OutputPathError, atomic_write_json, prepare_output_dir  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m proofs_check.tn_digits",
                                description="The tensor-normal (separability) test on the digits models during training.")
    p.add_argument("--profile", choices=("quick", "full"), default="full")
    p.add_argument("--draws", type=int, default=1, help="label draws per image (n = 1797 draws)")
    p.add_argument("--json", default=None, help="write the rows as JSON to this file")
    args = p.parse_args(argv)
    if args.draws < 1:
        print(f"{p.prog}: error: `--draws` must be a positive int; got {args.draws}.")
        return 2
    if args.json:
        from pathlib import Path  # noqa: PLC0415
        try:
            prepare_output_dir(Path(args.json).parent if str(Path(args.json).parent) else ".", "--json")
        except OutputPathError as err:
            print(f"{p.prog}: error: {err}")
            return 2
    from .separability import digits_study, format_row  # noqa: PLC0415

    res = digits_study(args.profile, draws=args.draws, log=lambda r: print(format_row(r), flush=True))
    if args.json:
        from .report import _finite  # noqa: PLC0415

        print(f"wrote {atomic_write_json(args.json, _finite(json.loads(json.dumps(res))))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
