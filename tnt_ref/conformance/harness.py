"""The judge: run every case through an adapter and find the convention settings under which the
implementation equals tnt-ref in float64.

The search is decided quantity by quantity (``factors``, ``inverse``, ``direction``,
``trajectory``), each narrowing the settings that survived the one before. An adapter is called
once per case and *interface* (``layout``, ``vec_order``: what changes its inputs); the other
conventions change only tnt-ref's answer, which is cached per distinct value of the conventions
the quantity depends on. So the cost is a handful of adapter calls per case, not one per setting.

A setting matches a quantity when the relative error ``||got - expected|| / ||expected||`` is at
most ``tol`` (1e-12) on every case the adapter supports. If no setting survives a quantity, the
report names the nearest setting (among the survivors so far: fewest failing cases, then smallest error), the first case
where it fails, and saves a reproducer ``.npz`` (inputs, expected, got, setting).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import atomic_savez
from ..tensor_normal import mode_moments
from . import reference
from .adapters import layer_view
from .cases import Case, build_cases
from .conventions import CONVENTIONS, QUANTITIES, settings_index
from .layouts import block_maps, canonical_block_flat, from_layout

__all__ = ["TOL", "Report", "conform"]

#: The relative error under which an implementation matches tnt-ref (float64).
TOL = 1e-12
_INF = math.inf


@dataclass
class Report:
    """What :func:`conform` found. ``verdict``: ``"matches"`` or ``"matches no convention"``."""

    adapter: str
    verdict: str
    conventions: dict  # name -> surviving values (all values: undecided by the cases run)
    worst_error: dict  # quantity -> worst relative error over the cases, under ``setting``
    setting: dict  # the surviving setting closest to tnt-ref's defaults, or the nearest one
    quantities: dict  # quantity -> "checked" / "not provided" / "not reached"
    unsupported: dict  # quantity -> [cases the adapter declined]
    first_difference: dict | None = None  # quantity, case, error, message, reproducer
    cases: list = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.verdict == "matches"

    def to_json(self) -> dict:
        def clean(x):
            if isinstance(x, float) and not math.isfinite(x):
                return str(x)
            if isinstance(x, dict):
                return {str(k): clean(v) for k, v in x.items()}
            if isinstance(x, list | tuple):
                return [clean(v) for v in x]
            return x
        return clean(self.__dict__)

    def summary(self) -> str:
        """Human-readable lines."""
        lines = [f"adapter: {self.adapter}", f"cases: {', '.join(self.cases)}"]
        if self.matches:
            decided = {k: v[0] for k, v in self.conventions.items() if len(v) == 1}
            open_ = {k: v for k, v in self.conventions.items() if len(v) > 1}
            lines.append("matches under {" + ", ".join(f"{k}={v}" for k, v in decided.items()) + "}")
            if open_:
                lines.append("undecided (every value matches the cases run): "
                             + "; ".join(f"{k} in {list(v)}" for k, v in open_.items()))
        else:
            fd = self.first_difference
            lines.append("matches no convention")
            lines.append("nearest setting: {" + ", ".join(f"{k}={v}" for k, v in self.setting.items()) + "}")
            lines.append(f"first difference: {fd['quantity']} on case {fd['case']} (relative error {fd['error']:.3g})"
                         + (f": {fd['message']}" if fd.get("message") else ""))
            if fd.get("reproducer"):
                lines.append(f"reproducer: {fd['reproducer']}")
        for q in QUANTITIES:
            st = self.quantities[q]
            err = self.worst_error.get(q)
            extra = f", worst relative error {err:.3g}" if err is not None and st == "checked" else ""
            skipped = self.unsupported.get(q)
            extra += f", not supported on {skipped}" if skipped else ""
            lines.append(f"  {q:<10} {st}{extra}")
        return "\n".join(lines)


def _rel(got, exp) -> float:
    den = float(np.linalg.norm(exp))
    num = float(np.linalg.norm(got - exp))
    return num / den if den > 0 else (0.0 if num == 0 else _INF)


def _kron_in_own_vec(fac, vec_order: str) -> np.ndarray:
    fac = [np.asarray(f, dtype=np.float64) for f in fac]
    return reference.dense_curvature(fac if vec_order == "row-major" else fac[::-1])


class _Cmp:
    """One quantity on one case: adapter outputs cached per interface, tnt-ref's per convention key."""

    def __init__(self, case: Case, adapter, quantity: str, vectors_seed: int):
        self.case, self.adapter, self.q = case, adapter, quantity
        self.rel = [c.name for c in CONVENTIONS if quantity in c.quantities and case.kind in c.kinds]
        self._got: dict = {}
        self._exp: dict = {}
        self._memo: dict = {}
        self._rng_seed = vectors_seed
        self.last_inputs: dict = {}

    def interface(self, s: dict) -> tuple:
        layout = s["layout"] if (s["layout"] != "hwio" or self.case.kind == "conv") else "transposed"
        bias = s["bias"] if self.case.has_bias else "own-tensor"
        modes = s["conv_modes"] if self.case.kind == "conv" else s["tensor_modes"] if self.case.kind == "tensor" else 3
        vec = s["vec_order"] if self.q in ("factors", "inverse") else "row-major"
        return (layout, vec, bias, modes) if self.q == "inverse" else (layout, vec)

    def key(self, s: dict) -> tuple:
        return tuple(s[n] if n in self.rel else None for n in (c.name for c in CONVENTIONS))

    def columns(self) -> list[str]:
        """The conventions that can change this comparison (its interface, tnt-ref's answer, the maps)."""
        maps = {"layout", "vec_order"} | ({"bias"} if self.case.has_bias else set()) | (
            {"conv_modes"} if self.case.kind == "conv" else {"tensor_modes"} if self.case.kind == "tensor" else set())
        return sorted(set(self.rel) | maps)

    def errors(self, settings: list, index: np.ndarray, alive: list) -> np.ndarray:
        """The relative error under each setting of ``alive``, compared once per distinct value of :meth:`columns`."""
        names = [c.name for c in CONVENTIONS]
        cols = [names.index(n) for n in self.columns()]
        uniq, first, inv = np.unique(index[alive][:, cols], axis=0, return_index=True, return_inverse=True)
        errs = np.array([self.compare(settings[alive[j]])[0] for j in first], dtype=float)
        return errs[np.ravel(inv)]

    # ---------------------------------------------------------------- the adapter's side
    def got(self, s: dict):
        """``(output, inputs, message)``; output ``None`` = the adapter failed, ``NotImplemented`` = declined."""
        ik = self.interface(s)
        if ik not in self._got:
            inputs = self._inputs(s)
            try:
                out = self._call(inputs)
                msg = ""
            except NotImplementedError as e:
                out, msg = NotImplemented, str(e)
            except Exception as e:  # noqa: BLE001  an implementation's error is a finding, not a crash of the judge
                out, msg = None, f"{type(e).__name__}: {e}"
            self._got[ik] = (out, inputs, msg)
        return self._got[ik]

    def _inputs(self, s: dict) -> dict:
        view = layer_view(self.case, s["layout"])
        if self.q == "factors":
            return {"layer": view}
        if self.q == "inverse":
            maps = block_maps(self.case.kind, self.case.shape, self.case.has_bias, s)
            rng = np.random.default_rng(self._rng_seed)
            pe = self.case.batch.per_example
            m = self.case.batch.m
            stats, vecs, canon = {}, {}, {}
            for name, bm in maps.items():
                flat = canonical_block_flat(pe, bm.members)
                stats[name] = mode_moments(flat[:, bm.index])  # in the implementation's modes
                v = rng.standard_normal(bm.size)
                canon[name] = v
                vecs[name] = v[bm.flat(s["vec_order"])]
            return {"stats": stats, "damping": self.case.hyper["damping"], "vectors": vecs, "_canonical_vectors": canon}
        return {"layer": view, "hyper": dict(self.case.hyper)}

    def _call(self, inputs: dict):
        if self.q == "factors":
            return self.adapter.factors(inputs["layer"])
        if self.q == "inverse":
            return self.adapter.inverse(inputs["stats"], inputs["damping"], inputs["vectors"])
        if self.q == "direction":
            return self.adapter.direction(inputs["layer"], inputs["hyper"])
        return self.adapter.trajectory(inputs["layer"], inputs["hyper"])

    # ---------------------------------------------------------------- tnt-ref's side and the comparison
    def expected(self, s: dict):
        # tnt-ref's answer is canonical: the array interface (layout, vec order) only maps it, in _compare
        k = tuple(v for n, v in zip((c.name for c in CONVENTIONS), self.key(s)) if n not in ("layout", "vec_order"))
        if k not in self._exp:
            if self.q == "factors":
                self._exp[k] = {b: reference.dense_curvature(f) for b, f in reference.factors(self.case, s).items()}
            elif self.q == "direction":
                first = reference.trajectory(self.case, s, 1)[0]
                self._exp[k] = {n: first[n] - self.case.params[n] for n in first}
            elif self.q == "trajectory":
                self._exp[k] = reference.trajectory(self.case, s)
            else:
                self._exp[k] = None  # the inverse depends on the inputs too: computed in compare
        return self._exp[k]

    def compare(self, s: dict) -> tuple[float, str]:
        k = (self.interface(s), self.key(s), s["layout"], s["vec_order"], s["bias"], s["conv_modes"], s["tensor_modes"])
        if k not in self._memo:
            self._memo[k] = self._compare_once(s)
        return self._memo[k]

    def _compare_once(self, s: dict) -> tuple[float, str]:
        out, inputs, msg = self.got(s)
        if out is NotImplemented:
            return math.nan, msg
        if out is None:
            return _INF, msg
        try:
            return self._compare(s, out, inputs)
        except Exception as e:  # noqa: BLE001  malformed output (wrong keys, shapes): a difference
            return _INF, f"malformed output: {type(e).__name__}: {e}"

    def _compare(self, s, out, inputs) -> tuple[float, str]:
        case = self.case
        maps = block_maps(case.kind, case.shape, case.has_bias, s)
        if self.q in ("factors", "inverse") and set(out) != set(maps):
            return _INF, f"blocks {sorted(out)}, expected {sorted(maps)} (bias={s['bias']})"
        if self.q == "factors":
            exp = self.expected(s)
            num = den = 0.0
            for name, bm in maps.items():
                dims = tuple(int(np.shape(f)[0]) for f in out[name])
                if dims != bm.dims:
                    return _INF, f"block {name}: factor sizes {dims}, expected {bm.dims}"
                flat = bm.flat(s["vec_order"])
                E = exp[name][np.ix_(flat, flat)]
                G = _kron_in_own_vec(out[name], s["vec_order"])
                num += float(np.linalg.norm(G - E)) ** 2
                den += float(np.linalg.norm(E)) ** 2
            return math.sqrt(num / den), ""
        if self.q == "inverse":
            num = den = 0.0
            for name, bm in maps.items():
                canon_stats = mode_moments(canonical_block_flat(case.batch.per_example, bm.members).reshape(case.batch.m, *bm.canonical_shape))
                X = inputs["_canonical_vectors"][name].reshape(bm.canonical_shape)
                E = reference.inverse(canon_stats, inputs["damping"], s, X).reshape(-1)[bm.flat(s["vec_order"])]
                G = np.asarray(out[name], dtype=np.float64).reshape(-1)
                if G.shape != E.shape:
                    return _INF, f"block {name}: output shape {G.shape}, expected {E.shape}"
                num += float(np.linalg.norm(G - E)) ** 2
                den += float(np.linalg.norm(E)) ** 2
            return math.sqrt(num / den), ""
        exp = self.expected(s)
        got_list = [out] if self.q == "direction" else list(out)
        exp_list = [exp] if self.q == "direction" else exp
        if len(got_list) != len(exp_list):
            return _INF, f"{len(got_list)} steps, expected {len(exp_list)}"
        num = den = 0.0
        for g, e in zip(got_list, exp_list):
            for n, ev in e.items():
                gv = np.asarray(g[n], dtype=np.float64)
                if n == "weight":
                    gv = from_layout(gv, case.kind, s["layout"])
                if gv.shape != ev.shape:
                    return _INF, f"{n}: shape {gv.shape}, expected {ev.shape} (layout={s['layout']})"
                num += float(np.linalg.norm(gv - ev)) ** 2
                den += float(np.linalg.norm(ev)) ** 2
        return math.sqrt(num / den) if den > 0 else _INF, ""


def _flatten(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}/", out)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}{i}/", out)
    elif obj is not None and obj is not NotImplemented:
        out[prefix.rstrip("/")] = np.asarray(obj)


def _reproducer(path: Path, cmp: _Cmp, s: dict, err: float, msg: str) -> Path:
    out, inputs, _ = cmp.got(s)
    arrays: dict = {}
    _flatten({k: v for k, v in inputs.items() if not k.startswith("_")}, "input/", arrays)
    if cmp.q == "inverse":
        maps = block_maps(cmp.case.kind, cmp.case.shape, cmp.case.has_bias, s)
        exp = {}
        for name, bm in maps.items():
            pe = cmp.case.batch.per_example
            S = mode_moments(canonical_block_flat(pe, bm.members)
                             .reshape(cmp.case.batch.m, *bm.canonical_shape))
            X = inputs["_canonical_vectors"][name].reshape(bm.canonical_shape)
            exp[name] = reference.inverse(S, inputs["damping"], s, X).reshape(-1)[bm.flat(s["vec_order"])]
    elif cmp.q == "factors":
        maps = block_maps(cmp.case.kind, cmp.case.shape, cmp.case.has_bias, s)
        exp = {n: cmp.expected(s)[n][np.ix_(bm.flat(s["vec_order"]), bm.flat(s["vec_order"]))] for n, bm in maps.items()}
        out = {n: _kron_in_own_vec(f, s["vec_order"]) for n, f in out.items()} if isinstance(out, dict) else out
    else:
        exp = cmp.expected(s)
    _flatten(exp, "expected/", arrays)
    if isinstance(out, dict | list):
        _flatten(out, "got/", arrays)
    meta = {"quantity": cmp.q, "case": cmp.case.name, "setting": s, "relative_error": err, "message": msg,
            "layer_keys": "input/layer/... as the adapter received it; factors are compared as dense Kronecker products "
                          "in the implementation's vec"}
    return atomic_savez(path, meta=np.array(json.dumps(meta, default=str)), **arrays)


def conform(
    adapter,
    cases: list[Case] | None = None,
    *,
    tol: float = TOL,
    reproducer_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Judge ``adapter`` (see :mod:`tnt_ref.conformance.adapters` for the contract) against tnt-ref.

    Parameters
    ----------
    adapter : object with ``factors``, ``inverse``, ``direction``, ``trajectory`` (any subset)
    cases : list of :class:`~tnt_ref.conformance.cases.Case`, optional
        Default: :func:`~tnt_ref.conformance.cases.build_cases` (all of them).
    tol : float
        Largest relative error that counts as equal.
    reproducer_dir : path, optional
        Where the reproducer ``.npz`` of a mismatch is written (not written if ``None``).
    log : callable, optional
        Progress lines.

    Returns
    -------
    :class:`Report`
    """
    cases = build_cases() if cases is None else list(cases)
    name = str(getattr(adapter, "name", type(adapter).__name__))
    settings, index = settings_index()
    alive = list(range(len(settings)))
    status = {q: "not reached" for q in QUANTITIES}
    unsupported: dict = {}
    worst: dict = {}
    errs_by_q: dict = {}
    first = None
    for q in QUANTITIES:
        if not callable(getattr(adapter, q, None)):
            status[q] = "not provided"
            continue
        comps = [_Cmp(c, adapter, q, 1000 + i) for i, c in enumerate(cases)]
        declined = set()
        table = np.zeros((len(alive), len(comps)))  # alive setting x case
        for j, cmp in enumerate(comps):
            col = cmp.errors(settings, index, alive)
            if np.isnan(col).any():
                declined.add(cmp.case.name)
            table[:, j] = np.nan_to_num(col, nan=0.0, posinf=_INF)
        errs = {i: table[r].tolist() for r, i in enumerate(alive)}
        if declined:
            unsupported[q] = [c.name for c in cases if c.name in declined]
        if len(declined) == len(cases):
            status[q] = "not supported on any case"
            continue
        status[q] = "checked"
        wmax = {i: max(v) for i, v in errs.items()}
        survivors = [i for i in alive if wmax[i] <= tol]
        errs_by_q[q] = wmax
        if log:
            log(f"{q}: {len(survivors)} of {len(alive)} settings match ({len(cases)} cases)")
        if not survivors:
            # nearest: fewest failing cases, then the smallest worst error among the cases that fail
            near = min(alive, key=lambda i: (sum(e > tol for e in errs[i]), max(e for e in errs[i] if e > tol), i))
            ci = next(j for j, e in enumerate(errs[near]) if e > tol)
            err, msg = comps[ci].compare(settings[near])
            first = {"quantity": q, "case": cases[ci].name, "error": err, "message": msg, "reproducer": None}
            if reproducer_dir is not None:
                safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{name}-{q}-{cases[ci].name}")
                path = Path(reproducer_dir) / f"{safe}.npz"
                k = 1
                while path.exists():  # never overwrite another run's reproducer
                    path = Path(reproducer_dir) / f"{safe}-{k}.npz"
                    k += 1
                first["reproducer"] = str(_reproducer(path, comps[ci], settings[near], err, msg))
            alive = [near]
            break
        alive = survivors
    best = alive[0]  # all_settings lists defaults first: the survivor closest to tnt-ref's defaults
    for q, wmax in errs_by_q.items():
        worst[q] = wmax.get(best)
    conventions = {c.name: [v for v in c.values if any(settings[i][c.name] == v for i in alive)] for c in CONVENTIONS}
    verdict = "matches no convention" if first else "matches"
    if not errs_by_q:
        verdict = "nothing to compare"
    return Report(name, verdict, conventions, worst, dict(settings[best]), status, unsupported, first, [c.name for c in cases])
