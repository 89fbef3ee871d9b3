"""``tnt-ref conform``: judge a TNT implementation against tnt-ref (``docs/conformance.md``).

Exit codes: 0 the implementation matches tnt-ref under some convention setting; 1 it matches no
convention (the report names the nearest setting, the first quantity and case that differ, and
the reproducer ``.npz``); 2 a usage error (bad arguments, an adapter that cannot be loaded).
"""

from __future__ import annotations

import importlib
import time


def load_adapter(spec: str):
    """``module:callable`` (the callable returns the adapter) or a built-in adapter's name."""
    from ..conformance import BUILTIN  # noqa: PLC0415

    if spec in BUILTIN:
        return BUILTIN[spec]()
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ValueError(f"`--adapter` must be MODULE:CALLABLE or one of {sorted(BUILTIN)}; got {spec!r}.")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"`--adapter`: cannot import module {mod_name!r} ({e}). Is it on PYTHONPATH, "
                         "with its optional environment active (docs/conformance.md)?") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ValueError(f"`--adapter`: module {mod_name!r} has no callable {attr!r}.")
    adapter = fn()
    if not any(callable(getattr(adapter, q, None)) for q in ("factors", "inverse", "direction", "trajectory")):
        raise ValueError(f"`--adapter` {spec!r} returned {type(adapter).__name__}, which has none of the callables "
                         "factors, inverse, direction, trajectory (see tnt_ref.conformance.adapters).")
    return adapter


def _cmd_conform(args) -> int:
    from ..files import Outputs  # noqa: PLC0415

    outs = Outputs()  # at the door: bad paths fail before any work; the folder and the JSON are locked while we run
    out = outs.folder(args.out, "--out")
    js = outs.file(args.json, "--json") if args.json is not None else None
    with outs:
        if js is not None and js.exists():
            raise ValueError(f"`--json` {js} exists; choose a new file (a run never overwrites another run's results).")
        return _conform(args, out, js)


def _conform(args, out, js) -> int:
    from ..files import atomic_write_json  # noqa: PLC0415

    from ..conformance import build_cases, conform  # noqa: PLC0415

    cases = build_cases(args.case or None)
    adapter = load_adapter(args.adapter)
    t0 = time.perf_counter()
    report = conform(adapter, cases, reproducer_dir=out, log=lambda s: print(f"  {s}", flush=True))
    print(report.summary())
    print(f"done in {time.perf_counter() - t0:.1f} s")
    if js is not None:
        print(f"wrote {atomic_write_json(js, report.to_json())}")
    return 0 if report.verdict == "matches" else 1


def add_parsers(sub) -> None:
    from ..conformance.cases import CASE_NAMES  # noqa: PLC0415

    p = sub.add_parser("conform", help="judge a TNT implementation against tnt-ref; exit 0 matches, 1 matches no convention",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", default="reference",
                   help="MODULE:CALLABLE returning an adapter (tnt_ref.conformance.adapters), or a built-in: reference "
                        "(tnt-ref itself), broken_column_major_vec, broken_no_trace_normalisation, broken_inverse_skipped, "
                        "broken_stats_off_by_batch_size, broken_transpose_not_undone (default: reference)")
    p.add_argument("--json", help="write the report as JSON to this new file (default: none)")
    p.add_argument("--out", default="tnt-ref-out/conform", help="folder for the reproducer .npz of a mismatch (default: %(default)s)")
    p.add_argument("--case", action="append", choices=list(CASE_NAMES), help="run only these cases (repeatable; default: all)")
    p.set_defaults(func=_cmd_conform)
