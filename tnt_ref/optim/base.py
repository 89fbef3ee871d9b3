"""The optimizer contract (after optax): state is data, ``init`` and ``update`` are pure functions.

``opt.init(params) -> state`` and
``opt.update(grads, state, params, **extra) -> (updates, new_state)``; the new parameters are
``apply_updates(params, updates)`` (``params + updates``). ``state`` is an immutable ``NamedTuple``;
``update`` never mutates its inputs. What a method needs beyond the gradient of the mini-batch mean
loss is a keyword argument, and ``opt.needs(state)`` says which ones the next step requires, so the
training loop computes the extra backward pass only on statistics steps:

* ``"sampled_grads"`` — gradient of the mini-batch mean loss with labels sampled from the model
  (TNT; for TNT-EF the data labels), shape of each parameter;
* ``"sampled_per_example"`` — the same per example, ``(m, *shape)`` (TNT at per-example scale);
* ``"kfac_stats"`` — ``name -> (G, A)`` mini-batch KFAC statistics with sampled labels.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._validation import (
    check_dense_size,
    check_int,
    check_matching_keys,
    check_opt_state,
    check_param_dict,
    check_positive,
    check_statistics_dtype,
    check_unit_interval,
    itemsize_of,
)

__all__ = ["Optimizer", "apply_updates", "check_hyper"]

_UNSET: Any = object()  # "this optimizer has no such hyperparameter" (None is a wrong value, not a missing one)


@dataclass(frozen=True)
class Optimizer:
    """A named pair of pure functions plus what the training loop must supply.

    Attributes
    ----------
    name : str
    init : ``params -> state``
    update : ``(grads, state, params, **extra) -> (updates, state)``
    needs : ``state -> frozenset[str]`` of extra inputs the next ``update`` requires
    stat_labels : ``"sampled"`` (true Fisher statistics) or ``"data"`` (empirical, TNT-EF)
    hyper : the hyperparameters, for logs and checkpoints
    """

    name: str
    init: Callable[[dict], Any]
    update: Callable[..., tuple[dict, Any]]
    needs: Callable[[Any], frozenset] = lambda state: frozenset()
    stat_labels: str = "sampled"
    hyper: dict = field(default_factory=dict)

    def __post_init__(self):
        # One door for every optimizer (issue 24): ``init`` refuses parameters whose statistics cannot be held
        # (float16), whose curvature factors would not fit in memory, or whose damped inverse would overflow;
        # ``update`` refuses a state made by another optimizer or for other parameters, and gradients that do
        # not match the parameters, naming them instead of failing with AttributeError/KeyError inside.
        raw_init, raw_update, raw_needs = self.init, self.update, self.needs
        state_type = _state_type(raw_init)
        name, hyper = self.name, self.hyper

        def init(params: dict):
            check_param_dict(params)
            _check_curvature(name, hyper, params)
            return raw_init(params)

        def update(grads: dict, state, params: dict, **extra):
            check_param_dict(params)
            check_opt_state(state, state_type, name, params)
            check_matching_keys(grads, params, "grads")
            return raw_update(grads, state, params, **extra)

        def needs(state):
            if state_type is not None and not isinstance(state, state_type):
                check_opt_state(state, state_type, name, {})
            return raw_needs(state)

        for attr, fn, raw in (("init", init, raw_init), ("update", update, raw_update), ("needs", needs, raw_needs)):
            fn.__wrapped__, fn.__doc__ = raw, raw.__doc__
            object.__setattr__(self, attr, fn)


def _state_type(init: Callable) -> type | None:
    """The state NamedTuple an ``init`` returns, from its return annotation (``None`` if it has none)."""
    try:
        t = typing.get_type_hints(init).get("return")
    except Exception:  # noqa: BLE001  (an unresolvable annotation: no type check, the field checks remain)
        return None
    return t if isinstance(t, type) and issubclass(t, tuple) and hasattr(t, "_fields") else None


def _factor_dims(name: str, hyper: dict, shape: tuple) -> tuple[list[int], float]:
    """The sizes of the square curvature factors an optimizer keeps for a parameter of ``shape``, and the
    power ``q`` of ``1 / damping`` its preconditioner can reach (TNT: one per factor with per-factor damping, 1
    with the pi-adjusted or exact damping; KFAC: 1; Shampoo and KL-Shampoo: 1/2, their roots of damped
    factors; SOAP: 0, no damping: Adam's ``eps`` bounds its step)."""
    from ..tensor import tensor_shape  # noqa: PLC0415

    if name in ("tnt", "tnt-ef", "shampoo", "kl-shampoo", "soap"):
        ts = tensor_shape(shape, hyper.get("conv_modes", 3))
        if name in ("shampoo", "kl-shampoo"):
            return list(ts), 0.5
        if name == "soap":
            return list(ts), 0.0
        return list(ts), (len(ts) if hyper.get("damping_scheme", "per-factor") == "per-factor" else 1.0)
    if name == "kfac":
        if len(shape) in (2, 4):
            return [shape[0], math.prod(shape[1:])], 1.0
        return [shape[0]], 1.0
    return [], 0.0


def _check_curvature(name: str, hyper: dict, params: dict) -> None:
    damping = hyper.get("damping")
    for k, p in params.items():
        dims, power = _factor_dims(name, hyper, tuple(int(s) for s in p.shape))
        if not dims:
            continue
        check_statistics_dtype(p, f"params[{k!r}]")
        for d in dims:
            check_dense_size((d, d), itemsize_of(p), f"{name}'s curvature factor of {k!r} (shape {tuple(p.shape)})",
                             "Precondition this parameter with another optimizer (sgd, adam), or (tnt, shampoo, kl-shampoo, "
                             "soap) view a conv kernel with more modes (conv_modes=3 or 4).")
        if damping is not None and power > 0:
            from ..backend import get_namespace  # noqa: PLC0415

            # the damped inverse reaches (1 / damping) ** power; keep 16 orders of magnitude for the gradients
            limit = math.log10(float(get_namespace(p).finfo(p.dtype).max)) - 16
            if power * -math.log10(damping) > limit:
                least = 10 ** (-limit / power)
                raise ValueError(
                    f"`damping`={damping:g} is too small for {name} on params[{k!r}] ({p.dtype}, {len(dims)} factors): "
                    f"its damped inverse reaches (1/damping)**{power:g} = 1e{power * -math.log10(damping):.0f} and "
                    f"overflows: use more damping: damping >= {least:.1g}.")


def apply_updates(params: dict, updates: dict) -> dict:
    """``params + updates`` as a new dict (nothing is modified in place)."""
    return {k: params[k] + updates[k] for k in params}


def check_hyper(
    *,
    learning_rate: float,
    momentum: Any = _UNSET,
    decay: Any = _UNSET,
    damping: Any = _UNSET,
    weight_decay: float = 0.0,
    intervals: dict[str, int] | None = None,
) -> None:
    """Shared checks: positive learning rate and damping, decays in ``[0, 1)``, intervals ``>= 1``
    (Python or NumPy integers). Strings, bools and NaN are refused with the argument's name."""
    check_positive(learning_rate, "learning_rate")
    for name, v in (("momentum", momentum), ("decay", decay)):
        if v is not _UNSET:  # an optimizer without this hyperparameter leaves it unset; None is refused
            check_unit_interval(v, name)
    if damping is not _UNSET:
        check_positive(damping, "damping")
    check_positive(weight_decay, "weight_decay", allow_zero=True)
    for name, v in (intervals or {}).items():
        if check_int(v, name) < 1:
            raise ValueError(f"`{name}` must be an integer >= 1; got {name}={v!r}.")
