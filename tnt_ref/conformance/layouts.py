"""Maps between an implementation's arrays and tnt-ref's (the ``layout``, ``vec_order``, ``bias``
and ``conv_modes`` conventions at the array interface).

tnt-ref's canonical arrays: a linear weight ``(out, in)``, a conv kernel ``(C_out, C_in, kh, kw)``,
a bias ``(out,)``, any other tensor as given; ``vec`` row-major (spec section 1). A *block* is
what one set of Kronecker factors covers: ``"weight"`` and ``"bias"`` (``bias="own-tensor"``) or
``"weight+bias"``, the canonical ``[W_(out, in) | b]`` of shape ``(out, in + 1)``
(``bias="extra-input"``).

For each block, :func:`block_maps` returns an integer *index tensor* whose shape is the
implementation's Kronecker modes (in its order) and whose entries are positions in the canonical
block's row-major ``vec``. Everything else follows from it [derived]:

* an implementation's block tensor is ``canonical_flat[index]``;
* its flat vector is that tensor raveled in its ``vec_order`` (``"C"`` or ``"F"``);
* its dense curvature in its own ``vec`` is ``kron(factors)`` (row-major) or
  ``kron(reversed(factors))`` (column-major), and equals ``canonical[ix(flat, flat)]``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["canonical_block_flat", "weight_perm", "to_layout", "from_layout", "block_maps", "canonical_groups", "BlockMap"]


def canonical_block_flat(arrays: dict, members: tuple) -> np.ndarray:
    """``(n, D)``: the canonical block ``vec`` of ``n`` stacked samples (``[W_(out, in) | b]`` for two members)."""
    W = arrays[members[0]]
    n = W.shape[0]
    if len(members) == 1:
        return W.reshape(n, -1)
    return np.concatenate([W.reshape(n, W.shape[1], -1), arrays[members[1]][:, :, None]], axis=2).reshape(n, -1)


def weight_perm(kind: str, ndim: int, layout: str) -> tuple[int, ...]:
    """Axis permutation from the canonical weight to the implementation's stored weight."""
    if layout == "canonical":
        return tuple(range(ndim))
    if layout == "hwio" and kind == "conv":
        return (2, 3, 1, 0)  # (C_out, C_in, kh, kw) -> (kh, kw, C_in, C_out)
    return tuple(reversed(range(ndim)))  # "transposed"; "hwio" of a linear weight or a tensor is its transpose


def to_layout(W, kind: str, layout: str, lead: int = 0):
    """A canonical weight (``lead`` leading batch axes) in the implementation's layout."""
    perm = weight_perm(kind, W.ndim - lead, layout)
    return np.transpose(W, (*range(lead), *(lead + p for p in perm)))


def from_layout(W, kind: str, layout: str, lead: int = 0):
    """Inverse of :func:`to_layout`."""
    perm = weight_perm(kind, W.ndim - lead, layout)
    inv = np.argsort(perm)
    return np.transpose(W, (*range(lead), *(lead + int(p) for p in inv)))


def canonical_groups(kind: str, ndim: int, conv_modes: int, tensor_modes: str = "all") -> list[list[int]]:
    """The canonical axes that form each of TNT's modes (``conv_modes`` for 4-way conv kernels;
    ``tensor_modes="matrix"``: a tensor's first axis, then all the others as one mode)."""
    if kind == "conv":
        return {2: [[0], [1, 2, 3]], 3: [[0], [1], [2, 3]], 4: [[0], [1], [2], [3]]}[conv_modes]
    if kind == "tensor" and tensor_modes == "matrix":
        return [[0], list(range(1, ndim))]
    return [[i] for i in range(ndim)]


class BlockMap:
    """One block: ``index`` (shape = the implementation's modes), ``canonical_shape`` (tnt-ref's
    tensor shape of the block) and ``flat(order)`` (the implementation's vec positions)."""

    def __init__(self, index: np.ndarray, canonical_shape: tuple, members: tuple):
        self.index = index
        self.canonical_shape = tuple(int(d) for d in canonical_shape)
        self.members = members  # the parameter names the block covers ("weight", "bias")
        self.size = int(index.size)

    @property
    def dims(self) -> tuple:
        return tuple(int(d) for d in self.index.shape)

    def flat(self, vec_order: str) -> np.ndarray:
        return np.ravel(self.index, order="C" if vec_order == "row-major" else "F")


def _grouped(T: np.ndarray, groups_layout: list[list[int]]) -> np.ndarray:
    """Reshape ``T`` so that each group of (contiguous) axes becomes one mode, in axis order."""
    groups = sorted(groups_layout, key=min)
    for g in groups:
        if sorted(g) != list(range(min(g), max(g) + 1)):
            raise ValueError(f"a TNT mode's axes {g} are not contiguous in this layout; it cannot be a reshape.")
    return np.reshape(T, tuple(math.prod(T.shape[a] for a in g) for g in groups))


def block_maps(kind: str, shape: tuple, has_bias: bool, setting: dict) -> dict[str, BlockMap]:
    """``block name -> BlockMap`` for a layer whose canonical weight has shape ``shape``."""
    shape = tuple(int(s) for s in shape)
    layout, conv_modes = setting["layout"], setting["conv_modes"]
    perm = weight_perm(kind, len(shape), layout)
    pos = np.argsort(perm)  # canonical axis -> its position in the layout
    out: dict[str, BlockMap] = {}
    if has_bias and setting["bias"] == "extra-input":
        co, fan_in = shape[0], math.prod(shape[1:])
        J = np.arange(co * (fan_in + 1)).reshape(co, fan_in + 1)
        Tw = np.transpose(np.reshape(J[:, :-1], shape), perm)
        if layout == "canonical":
            T = np.concatenate([np.reshape(Tw, (co, fan_in)), J[:, -1:]], axis=1)
        else:  # the output axis is last: the bias is an extra input row
            T = np.concatenate([np.reshape(Tw, (fan_in, co)), J[None, :, -1]], axis=0)
        out["weight+bias"] = BlockMap(T, (co, fan_in + 1), ("weight", "bias"))
        return out
    groups = canonical_groups(kind, len(shape), conv_modes, setting.get("tensor_modes", "all"))
    T = np.transpose(np.arange(math.prod(shape)).reshape(shape), perm)
    index = _grouped(T, [[int(pos[a]) for a in g] for g in groups])
    canon = tuple(math.prod(shape[a] for a in g) for g in groups)
    out["weight"] = BlockMap(index, canon, ("weight",))
    if has_bias:
        out["bias"] = BlockMap(np.arange(shape[0]), (shape[0],), ("bias",))
    return out
