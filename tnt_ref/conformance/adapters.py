"""The adapter contract, and the built-in adapters: tnt-ref itself under any convention setting,
and deliberately broken implementations (for the harness's own tests and for CI).

An adapter is any object with some of these callables (a missing one, or one that raises
:class:`NotImplementedError` for a case, is reported as not provided / not supported):

``factors(layer) -> {block: [U_1, ..., U_k]}``
    The implementation's Kronecker factors from ``layer["batch"]``, in its own mode order, whose
    Kronecker product (in its own ``vec``) is its curvature block; any split of the scale among
    the factors. Blocks: ``"weight"``, ``"bias"`` or ``"weight+bias"`` (bias as an extra input).
``inverse(stats, damping, vectors) -> {block: flat vector}``
    Given raw statistics ``{block: [S_1, ..., S_k]}`` (mode moments in the implementation's modes
    and layout, any common scale) and ``damping``, the implementation's damped inverse of its
    curvature applied to ``vectors`` ``{block: (D,)}`` (flat, in its ``vec`` order).
``direction(layer, hyper) -> {"weight": dW, "bias": db}``
    The first update (new minus old parameters) from a fresh state on ``layer["steps"][0]``.
``trajectory(layer, hyper) -> [{"weight": W_t, "bias": b_t} for each step]``
    The parameters after each step of ``layer["steps"]``.

``layer`` is a dict of NumPy float64 arrays in the implementation's layout
(:func:`layer_view`): ``kind``, ``params``, ``batch`` (``m``, ``per_example``, ``per_location``,
``inputs``, ``output_grads``), ``steps`` (list of ``{"grads", "batch"}``), ``warm_start`` (list of
batches), ``conv`` (``stride``, ``padding``, ``kernel``); ``hyper`` holds ``learning_rate``,
``momentum``, ``decay``, ``damping``, ``weight_decay``, ``T1``, ``T2``.
"""

from __future__ import annotations

import numpy as np

from ..backend import namespace_for
from ..optim.tnt import _apply_inverses, _damped_inverses, _moments
from ..tensor import _mode_products
from ..tensor_normal import _tnt_factors_from_moments
from . import reference
from .cases import Batch, Case
from .conventions import check_setting
from .layouts import block_maps, canonical_block_flat, from_layout, to_layout

__all__ = ["layer_view", "TntRef", "reference_adapter", "BROKEN", "BUILTIN"]


def _batch_view(b: Batch, kind: str, layout: str) -> dict:
    out = {"m": b.m, "per_example": {"weight": to_layout(b.per_example["weight"], kind, layout, 1)}}
    if "bias" in b.per_example:
        out["per_example"]["bias"] = b.per_example["bias"]
    if b.per_location is not None:
        out["per_location"] = {"weight": to_layout(b.per_location["weight"], kind, layout, 2), "bias": b.per_location["bias"]}
    if b.inputs is not None:
        out["inputs"], out["output_grads"] = b.inputs, b.output_grads
    return out


def _params_view(p: dict, kind: str, layout: str) -> dict:
    return {k: (to_layout(v, kind, layout) if k == "weight" else v) for k, v in p.items()}


def layer_view(case: Case, layout: str) -> dict:
    """The case as an implementation with weights in ``layout`` sees it (copies; NumPy float64)."""
    return {
        "name": case.name,
        "kind": case.kind,
        "params": _params_view(case.params, case.kind, layout),
        "batch": _batch_view(case.batch, case.kind, layout),
        "steps": [{"grads": _params_view(g, case.kind, layout), "batch": _batch_view(b, case.kind, layout)} for g, b in case.steps],
        "warm_start": [_batch_view(b, case.kind, layout) for b in case.warm_start],
        "conv": dict(case.conv) if case.conv else None,
    }


def _to_case(layer: dict, hyper: dict, layout: str) -> Case:
    """Back to the canonical layout (what an implementation that knows its own layout does)."""
    kind = layer["kind"]

    def batch(v):
        pe = {"weight": from_layout(v["per_example"]["weight"], kind, layout, 1)}
        if "bias" in v["per_example"]:
            pe["bias"] = v["per_example"]["bias"]
        pl = None
        if "per_location" in v:
            pl = {"weight": from_layout(v["per_location"]["weight"], kind, layout, 2), "bias": v["per_location"]["bias"]}
        return Batch(pe, pl, v.get("inputs"), v.get("output_grads"))

    def params(p):
        return {k: (from_layout(a, kind, layout) if k == "weight" else a) for k, a in p.items()}

    return Case(layer.get("name", "?"), kind, params(layer["params"]), batch(layer["batch"]),
                [(params(s["grads"]), batch(s["batch"])) for s in layer["steps"]],
                [batch(b) for b in layer["warm_start"]], dict(hyper), layer.get("conv"))


class TntRef:
    """tnt-ref as an implementation with the conventions of ``setting`` (its layout included).

    ``factors`` runs tnt-ref's estimator on the block tensors in this implementation's own modes
    (TNT is equivariant under permutations [derived]); ``inverse`` applies the optimizer's damped
    inverses; ``direction`` and ``trajectory`` run :func:`tnt_ref.optim.tnt` on the canonical arrays, on ``backend``
    ("numpy", "cupy" or "array-api-strict"; the harness's own answer is always NumPy's).
    """

    def __init__(self, setting: dict | None = None, name: str | None = None, backend: str = "numpy"):
        self.setting = check_setting(setting or {})
        namespace_for(backend)  # the name checked, and the backend usable, before any case runs
        self.backend = backend  # where ``trajectory`` and ``direction`` run the optimizer
        self.name = name or "tnt-ref " + ", ".join(f"{k}={v}" for k, v in self.setting.items()) + (
            f" on {backend}" if backend != "numpy" else "")

    def _order(self) -> str:
        return "C" if self.setting["vec_order"] == "row-major" else "F"

    def _maps(self, layer: dict) -> dict:
        w = from_layout(layer["params"]["weight"], layer["kind"], self.setting["layout"])
        return block_maps(layer["kind"], w.shape, "bias" in layer["params"], self.setting)

    def _block_samples(self, layer: dict) -> dict:
        """``block -> (samples (n, *modes), scale)``: the block tensors in this implementation's modes."""
        case = _to_case(layer, {}, self.setting["layout"])
        src = reference.samples(case.batch, self.setting, case.kind)
        out = {}
        for name, bm in self._maps(layer).items():
            flat = canonical_block_flat(src, bm.members)  # canonical block vec
            out[name] = flat[:, bm.index]  # (n, *modes)
        return out

    def statistics(self, layer: dict) -> dict:
        """``block -> [S_i]`` at this implementation's ``stat_scale``."""
        scale = self.setting["stat_scale"]
        out = {}
        for name, G in self._block_samples(layer).items():
            dims = G.shape[1:]
            out[name] = _moments(G.mean(axis=0) if scale == "batch-mean" else G, scale, dims)
        return out

    def factors(self, layer: dict) -> dict:
        return {k: _tnt_factors_from_moments(S) for k, S in self.statistics(layer).items()}

    def inverse(self, stats: dict, damping: float, vectors: dict) -> dict:
        order, out = self._order(), {}
        for k, S in stats.items():
            dims = tuple(s.shape[0] for s in S)
            X = np.reshape(vectors[k], dims, order=order)
            out[k] = np.ravel(_apply_inverses(X, _damped_inverses(tuple(S), damping, self.setting["damping_scheme"])), order=order)
        return out

    def trajectory(self, layer: dict, hyper: dict) -> list:
        case = _to_case(layer, hyper, self.setting["layout"])
        return [_params_view(p, case.kind, self.setting["layout"])
                for p in reference.trajectory(case, self.setting, backend=self.backend)]

    def direction(self, layer: dict, hyper: dict) -> dict:
        first = self.trajectory({**layer, "steps": layer["steps"][:1]}, hyper)[0]
        return {k: first[k] - layer["params"][k] for k in first}


def reference_adapter() -> TntRef:
    """tnt-ref with its defaults: the adapter ``tnt-ref conform`` judges when given none."""
    return TntRef(name="tnt-ref (defaults)")


# ----------------------------------------------------------------------------- deliberately broken
class _ColumnMajorVec(TntRef):
    """Reshapes the flat vector column-major but flattens the result row-major (a mixed ``vec``)."""

    def inverse(self, stats, damping, vectors):
        out = {}
        for k, S in stats.items():
            X = np.reshape(vectors[k], tuple(s.shape[0] for s in S), order="F")
            out[k] = np.ravel(_mode_products(X, list(_damped_inverses(tuple(S), damping, "per-factor"))), order="C")
        return out


class _NoTraceNormalisation(TntRef):
    """Uses the raw mode moments ``S_i`` as the factors (TNT's scale rule dropped)."""

    def factors(self, layer):
        return {k: list(S) for k, S in self.statistics(layer).items()}

    def inverse(self, stats, damping, vectors):
        out = {}
        for k, S in stats.items():
            K = [np.linalg.inv(s + damping * np.eye(s.shape[0])) for s in S]
            out[k] = np.ravel(_mode_products(np.reshape(vectors[k], tuple(s.shape[0] for s in S)), K))
        return out


class _InverseSkipped(TntRef):
    """Returns the vector unpreconditioned."""

    def inverse(self, stats, damping, vectors):
        return {k: np.array(v) for k, v in vectors.items()}


class _StatsOffByBatchSize(TntRef):
    """Divides the batch-mean gradient's moments by the batch size once more."""

    def statistics(self, layer):
        m = layer["batch"]["m"]
        return {k: [s / m for s in S] for k, S in super().statistics(layer).items()}


class _TransposeNotUndone(TntRef):
    """Works on the transposed weight and returns the update without transposing it back."""

    def direction(self, layer, hyper):
        d = super().direction(layer, hyper)
        return {k: (v.T if k == "weight" else v) for k, v in d.items()}

    def trajectory(self, layer, hyper):
        return [{k: (v.T if k == "weight" else v) for k, v in p.items()} for p in super().trajectory(layer, hyper)]


def broken_column_major_vec() -> TntRef:
    return _ColumnMajorVec(name="broken: column-major vec")


def broken_no_trace_normalisation() -> TntRef:
    return _NoTraceNormalisation(name="broken: trace normalisation dropped")


def broken_inverse_skipped() -> TntRef:
    return _InverseSkipped(name="broken: inverse skipped")


def broken_stats_off_by_batch_size() -> TntRef:
    return _StatsOffByBatchSize(name="broken: statistics off by the batch size")


def broken_transpose_not_undone() -> TntRef:
    return _TransposeNotUndone(name="broken: a transpose not undone")


#: Broken adapter -> the first quantity the harness must find different.
BROKEN = {
    "broken_column_major_vec": (broken_column_major_vec, "inverse"),
    "broken_no_trace_normalisation": (broken_no_trace_normalisation, "factors"),
    "broken_inverse_skipped": (broken_inverse_skipped, "inverse"),
    "broken_stats_off_by_batch_size": (broken_stats_off_by_batch_size, "factors"),
    "broken_transpose_not_undone": (broken_transpose_not_undone, "direction"),
}

#: The built-in adapters by name (``tnt-ref conform --adapter NAME``).
BUILTIN = {"reference": reference_adapter, **{k: v[0] for k, v in BROKEN.items()}}
