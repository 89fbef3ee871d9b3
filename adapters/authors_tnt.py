"""Adapter: the authors' PyTorch TNT code (github.com/renyiryry/tnt_neurips_2021), judged by
``tnt-ref conform``. Not part of tnt-ref; runs in its own environment (adapters/README.md).

Their code is imported, never copied, from a checkout named by ``TNT_AUTHORS_REPO`` (default
``/work/ext/tnt_neurips_2021``). Their functions are called as their training loop calls them
(``utils_git/utils_shampoo.py``: ``shampoo_kron_matrices_warm_start_per_variable``,
``shampoo_update``; ``utils_git/utils.py``: ``update_parameter``), in float64 on the CPU. The
adapter supplies only what their loop computes around those calls:

* the sampled-label gradient of the mini-batch *mean* loss (their ``model_grad_N2``, from
  ``get_loss_from_z(..., reduction='mean')``) as the mean of the case's per-example gradients;
* the momentum buffer ``v = rho v + (1 - dampening) g`` of ``utils.py`` (their loop, lines near
  11872-11888; ``rho = 0.9`` as given, ``dampening = 0`` as in ``jupyter_functions.py``).

``factors``: their scale rule runs inside ``shampoo_inversion_per_variable``; the normalized
factors are read there by replacing their matrix-function call (``coupled_newton``, taken when
``shampoo_if_coupled_newton``) with a function that returns its input, at ``epsilon = 0``.

Variants (their ``algorithm`` strings, as ``jupyter_functions.train_model`` sets them):
``cifar`` (filterFlattening: kernels (C_out, C_in, kh*kw), warm start), ``mnist`` (KFACReshaping:
kernels (C_out, C_in*kh*kw), warm start), ``mnist_no_warm_start`` (KFACReshaping without warm start).
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np

REPO = os.environ.get("TNT_AUTHORS_REPO", "/work/ext/tnt_neurips_2021")


def _import():
    if not os.path.isdir(os.path.join(REPO, "utils_git")):
        raise ImportError(f"TNT_AUTHORS_REPO={REPO!r} has no utils_git/: check out github.com/renyiryry/tnt_neurips_2021 there")
    for name in ("torchvision", "torchvision.transforms", "torchvision.datasets"):  # data loading only, never called here
        sys.modules.setdefault(name, types.ModuleType(name))
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import torch  # noqa: PLC0415
    from utils_git import utils, utils_shampoo  # noqa: PLC0415

    return torch, utils, utils_shampoo


torch, U, S = _import()
torch.set_default_dtype(torch.float64)

ALGORITHMS = {
    "cifar": "matrix-normal-correctFisher-same-trace-allVariables-filterFlattening-warmStart",
    "mnist": "matrix-normal-correctFisher-same-trace-allVariables-KFACReshaping-warmStart",
    "mnist_no_warm_start": "matrix-normal-correctFisher-same-trace-allVariables-KFACReshaping",
}


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


class _Model:
    def __init__(self, weights: dict):
        self.layers_weight = [weights]


class Authors:
    def __init__(self, variant: str):
        self.variant = variant
        self.name = f"authors' code ({variant}: {ALGORITHMS[variant]})"

    def _params(self, layer: dict | None, hyper: dict | None = None) -> dict:
        if layer is None or layer["kind"] != "conv":
            lp = {"name": "fully-connected"}
        else:
            lp = {"name": "conv", "conv_kernel_size": int(layer["params"]["weight"].shape[2]),
                  "conv_in_channels": int(layer["params"]["weight"].shape[1])}
        h = hyper or {}
        return {"algorithm": ALGORITHMS[self.variant], "layers_params": [lp], "i": 0, "numlayers": 1, "device": "cpu",
                "shampoo_update_freq": int(h.get("T1", 1)), "shampoo_inverse_freq": int(h.get("T2", 20)),
                "shampoo_decay": float(h.get("decay", 0.9)), "shampoo_weight": 1.0 - float(h.get("decay", 0.9)),
                "shampoo_epsilon": float(h.get("damping", 0.0)), "shampoo_if_coupled_newton": False, "if_LM": False,
                "if_Hessian_action": False, "if_warm_start": "warmStart" in ALGORITHMS[self.variant],
                "matrix_name": "Fisher-correct", "alpha_current": float(h.get("learning_rate", 0.0)),
                "weight_decay": float(h.get("weight_decay", 0.0))}

    @staticmethod
    def _names(layer):
        return [n for n in ("weight", "bias") if n in layer["params"]]

    @staticmethod
    def _var(n):
        return "W" if n == "weight" else "b"

    def _data(self):
        return {"shampoo_H": [{}], "shampoo_H_LM_minus_2k": [{}], "shampoo_H_trace": [{}]}

    def factors(self, layer):
        params = dict(self._params(layer), if_warm_start=False)  # i = 0 without warm start: H = this batch's statistics
        data = self._data()
        mean = {self._var(n): _t(layer["batch"]["per_example"][n].mean(axis=0)) for n in self._names(layer)}
        captured = {}
        for v in mean:
            S.shampoo_kron_matrices_per_variable([mean], 0, v, data, params)
            orig = S.coupled_newton
            S.coupled_newton = lambda H, *a, **k: H  # read the normalized factor their code forms
            try:
                S.shampoo_inversion_per_variable(None, 0, v, data, dict(params, shampoo_if_coupled_newton=True, shampoo_epsilon=0.0))
            finally:
                S.coupled_newton = orig
            captured["weight" if v == "W" else "bias"] = [h.numpy() for h in data["shampoo_H_LM_minus_2k"][0][v]]
        return captured

    def inverse(self, stats, damping, vectors):
        params = self._params(None, {"damping": damping})
        data = self._data()
        out = {}
        for name, Sl in stats.items():
            v = "W" if name == "weight" else "b"
            data["shampoo_H"][0][v] = [_t(s) for s in Sl]
            S.shampoo_inversion_per_variable(None, 0, v, data, params)
            X = _t(np.reshape(vectors[name], [s.shape[0] for s in Sl]))
            out[name] = S.shampoo_compute_direction_per_variable([{v: X}], 0, v, data, params).numpy().reshape(-1)
        return out

    def trajectory(self, layer, hyper):
        params = self._params(layer, hyper)
        names = self._names(layer)
        model = _Model({self._var(n): _t(layer["params"][n]) for n in names})
        data = self._data()
        data["model"] = model
        if params["if_warm_start"]:
            for j, b in enumerate(layer["warm_start"], start=1):
                g = {self._var(n): _t(b["per_example"][n].mean(axis=0)) for n in names}
                for v in g:
                    S.shampoo_kron_matrices_warm_start_per_variable(j, [g], 0, v, data, params)
        mom = [{self._var(n): torch.zeros_like(model.layers_weight[0][self._var(n)]) for n in names}]
        rho, dampening = float(hyper["momentum"]), 0.0
        out = []
        for i, step in enumerate(layer["steps"]):
            params["i"] = i
            g = [{self._var(n): _t(step["grads"][n]) for n in names}]
            mom = U.get_plus_torch(U.get_multiply_scalar(rho, mom), U.get_multiply_scalar(1 - dampening, g))
            data["model_grad_used_torch"] = mom
            data["model_grad_N2"] = [{self._var(n): _t(step["batch"]["per_example"][n].mean(axis=0)) for n in names}]
            S.shampoo_update(data, params)
            U.update_parameter(data["p_torch"], model, params)
            out.append({n: model.layers_weight[0][self._var(n)].numpy().copy() for n in names})
        return out

    def direction(self, layer, hyper):
        first = self.trajectory({**layer, "steps": layer["steps"][:1]}, hyper)[0]
        return {k: first[k] - layer["params"][k] for k in first}


def cifar():
    return Authors("cifar")


def mnist():
    return Authors("mnist")


def mnist_no_warm_start():
    return Authors("mnist_no_warm_start")
