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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._validation import check_int, check_positive, check_unit_interval

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
