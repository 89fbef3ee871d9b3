"""Adapter: kfac-jax's TNT curvature blocks (``kfac_jax.NaiveTNT``, ``DenseTNT``, ``Conv2DTNT``),
judged by ``tnt-ref conform``. Not part of tnt-ref; runs in its own environment (adapters/README.md).

kfac-jax is driven through its public API only, in float64 (``jax_enable_x64``):

* each case becomes a one-layer JAX function whose layer kfac-jax tags itself (its graph matcher
  finds ``x @ w + b`` and ``lax.conv_general_dilated``; a tensor case is a parameter tagged with
  ``kfac_jax.register_generic``), with a squared-error loss registered by
  ``kfac_jax.register_squared_error_loss``;
* ``factors``: ``kfac_jax.BlockDiagonalCurvature`` with the block under test
  (``layer_tag_to_block_ctor``), one ``update_curvature_matrix_estimate`` from a fresh state; the
  factors are the block state's factor values, the first one times ``block.scale(state, False)``
  (its fixed and TNT scale), so that their Kronecker product is the block's curvature;
* ``inverse``: the given statistics placed in the block state, then ``block.multiply_inverse``;
* ``direction`` / ``trajectory``: ``kfac_jax.OptaxPreconditioner`` (``maybe_update``,
  ``as_gradient_transform``, ``increment_count``) chained with optax for momentum, decoupled
  weight decay and the learning rate, as its documentation suggests for use with optax.

How the case's gradients reach kfac-jax. The case gives each example's gradient with respect to
the layer's outputs, ``dy`` (sampled labels). The adapter registers a squared-error loss whose
targets make each example's loss gradient equal to ``c * dy`` and runs the estimator in its
``"fisher_empirical"`` mode, which feeds the blocks ``losses_vjp(grad / sqrt(m))``
(kfac-jax ``block_diagonal.py``, ``update_curvature_matrix_estimate``):

* ``estimation="sampled"`` (default), ``c = sqrt(m)``: the blocks receive exactly ``dy``, which is
  what kfac-jax's default mode ``"fisher_gradients"`` gives them for these sampled labels (it
  samples its own labels, which cannot be made to equal the case's);
* ``estimation="empirical"``, ``c = 1``: the ``"fisher_empirical"`` mode as a user runs it.

Variants (``--adapter kfac_jax_tnt:NAME``): see the functions at the end of this file.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import kfac_jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

_RNG = jax.random.PRNGKey(0)


def _digest(obj, h=None):
    """A key for the memo: the harness asks once per array interface, and the vec orders share the arrays."""
    import hashlib  # noqa: PLC0415

    h = h or hashlib.sha1()
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _digest(obj[k], h)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _digest(v, h)
    elif isinstance(obj, np.ndarray):
        h.update(str(obj.shape).encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    else:
        h.update(repr(obj).encode())
    return h.hexdigest()


def _memo(method):
    def wrapped(self, *args):
        key = (method.__name__, _digest(list(args)))
        if key not in self._memo:
            self._memo[key] = method(self, *args)
        return self._memo[key]
    wrapped.__name__, wrapped.__doc__ = method.__name__, method.__doc__
    return wrapped


def _np(a):
    return np.asarray(a, dtype=np.float64)


class KfacJaxTNT:
    """One configuration of kfac-jax's TNT blocks.

    Parameters
    ----------
    block : ``"specific"`` (``DenseTNT`` for dense layers, ``Conv2DTNT`` for convolutions) or
        ``"naive"`` (``NaiveTNT`` for every layer); tensors always use ``NaiveTNT``.
    estimation : ``"sampled"`` or ``"empirical"`` (module docstring).
    exact_inverses : ``OptaxPreconditioner(use_exact_inverses=...)`` / ``exact_power``.
    weighting_per_location : ``Conv2DTNT(weighting_per_location=...)``.
    conv_layout : ``"HWIO"`` (kernels ``(kh, kw, C_in, C_out)``, inputs NHWC: JAX's convention) or
        ``"OIHW"`` (kernels ``(C_out, C_in, kh, kw)``, inputs NCHW, ``dimension_numbers`` set so).
    specs : ``None`` (kfac-jax's default ``parameters_specs``: every parameter reshaped to
        ``(all but last, last)``, a bias to ``(1, d)``) or ``"all-modes"`` (each axis its own mode;
        ``NaiveTNT`` only, parameters without a bias).
    burnin : the statistics of the case's warm-start batches accumulated first as kfac-jax's
        burn-in does (``maybe_update_estimator_curvature(decay_old_ema=False)``).
    momentum : ``"before"`` (``optax.trace`` before the preconditioner) or ``"after"``.
    kinds : the kinds of case the variant runs; the others are declined (``NotImplementedError``).
    """

    def __init__(self, name, *, block="specific", estimation="sampled", exact_inverses=False, weighting_per_location=True,
                 conv_layout="HWIO", specs=None, burnin=False, momentum="before", kinds=("linear", "conv", "tensor")):
        self.name = f"kfac-jax {kfac_jax.__version__} (jax {jax.__version__}): {name}"
        self.block, self.estimation, self.exact = block, estimation, exact_inverses
        self.weighting, self.conv_layout, self.specs, self.burnin, self.momentum = (
            weighting_per_location, conv_layout, specs, burnin, momentum)
        self._memo: dict = {}
        self.kinds = kinds

    # ------------------------------------------------------------------ the JAX function of a case
    def _ctor(self, kind):
        def with_specs(cls, **kw):
            def make(eq):
                if self.specs == "all-modes":  # the generic tag's one parameter, every axis a mode
                    letters = "abcdefgh"[: len(eq.invars[-1].aval.shape)]
                    return cls(eq, parameters_specs=[f"{letters} -> {' '.join(letters)}"], **kw)
                return cls(eq, **kw)
            return make

        if kind == "tensor" or self.block == "naive":
            ctor = with_specs(kfac_jax.NaiveTNT)
            return {"generic": ctor, "dense": ctor, "conv2d": ctor}
        if kind == "conv":
            return {"conv2d": lambda eq: kfac_jax.Conv2DTNT(eq, weighting_per_location=self.weighting)}
        return {"dense": kfac_jax.DenseTNT}

    def _model(self, layer):
        """``(apply(params, x), params (JAX), to_x(batch) -> x, dy(batch) -> (m, *out))`` in kfac-jax's data layout."""
        kind, p = layer["kind"], layer["params"]
        if kind not in self.kinds:
            raise NotImplementedError(f"this variant runs {', '.join(self.kinds)} cases only")
        if kind == "tensor" and self.block != "naive":
            raise NotImplementedError("DenseTNT and Conv2DTNT are for dense and conv layers; a tensor runs in the naive variants")
        if self.specs == "all-modes" and "bias" in p:
            raise NotImplementedError("parameters_specs with every axis a mode cannot concatenate a bias (kfac-jax needs "
                                      "equal non-concatenated dimensions); cases with a bias are not run by this variant")
        params = {k: jnp.asarray(v) for k, v in p.items()}
        if kind == "linear":
            def apply(q, x):
                return x @ q["weight"] + q["bias"]
            return apply, params, (lambda b: jnp.asarray(b["inputs"])), (lambda b: jnp.asarray(b["output_grads"]))
        if kind == "conv":
            c = layer["conv"]
            pad = [(c["padding"], c["padding"])] * 2
            if self.conv_layout == "HWIO":
                dn = ("NHWC", "HWIO", "NHWC")
                to_x = lambda b: jnp.asarray(np.transpose(b["inputs"], (0, 2, 3, 1)))  # noqa: E731
                to_dy = lambda b: jnp.asarray(np.transpose(b["output_grads"], (0, 2, 3, 1)))  # noqa: E731
                bshape = (1, 1, 1, -1)
            else:
                dn = ("NCHW", "OIHW", "NCHW")
                to_x = lambda b: jnp.asarray(b["inputs"])  # noqa: E731
                to_dy = lambda b: jnp.asarray(b["output_grads"])  # noqa: E731
                bshape = (1, -1, 1, 1)

            def apply(q, x):
                y = jax.lax.conv_general_dilated(x, q["weight"], (c["stride"],) * 2, pad, dimension_numbers=dn)
                return y + q["bias"].reshape(bshape)
            return apply, params, to_x, to_dy

        def apply(q, x):  # a tensor: y_n = <X_n, W>, the tag around W; dL/dW = sum_n dl_n/dy_n X_n
            w = kfac_jax.register_generic(q["weight"])
            return jnp.einsum("n...,...->n", x, w)[:, None]
        return (apply, params, (lambda b: jnp.asarray(b["per_example"]["weight"])),
                (lambda b: jnp.ones((b["per_example"]["weight"].shape[0], 1))))

    def _func(self, apply):
        def loss(q, batch):
            x, t = batch
            y = apply(q, x)
            kfac_jax.register_squared_error_loss(y, t, weight=0.5)  # 0.5 sum (y - t)^2 / m: gradient y - t per example
            return 0.5 * jnp.sum((y - t) ** 2) / y.shape[0]
        return loss

    def _batch(self, apply, q, to_x, to_dy, b):
        """``(x, targets)``: each example's loss gradient w.r.t. its outputs is ``c * dy``."""
        x, dy = to_x(b), to_dy(b)
        c = math.sqrt(dy.shape[0]) if self.estimation == "sampled" else 1.0
        return x, apply(q, x) - c * dy

    def _estimator(self, layer):
        apply, q, to_x, to_dy = self._model(layer)
        est = kfac_jax.BlockDiagonalCurvature(self._func(apply), default_estimation_mode="fisher_empirical",
                                              layer_tag_to_block_ctor=self._ctor(layer["kind"]))
        return est, apply, q, to_x, to_dy

    @staticmethod
    def _block_name(layer):
        return "weight+bias" if "bias" in layer["params"] else "weight"

    # ------------------------------------------------------------------ the quantities
    @_memo
    def factors(self, layer):
        est, apply, q, to_x, to_dy = self._estimator(layer)
        batch = self._batch(apply, q, to_x, to_dy, layer["batch"])
        m = int(batch[0].shape[0])
        state = est.init(_RNG, (q, batch), exact_powers_to_cache=None, approx_powers_to_cache=None)
        state = est.update_curvature_matrix_estimate(state, ema_old=0.0, ema_new=1.0, identity_weight=0.0, batch_size=m,
                                                     rng=_RNG, func_args=(q, batch))
        [blk], [bst] = est.blocks, state.blocks_states
        F = [_np(f.value) for f in bst.factors]
        F[0] = F[0] * float(blk.scale(bst, False))
        return {self._block_name(layer): self._to_param_vec(layer, F)}

    def _to_param_vec(self, layer, F):
        """kfac-jax's factors of an OIHW kernel cover the patches in (kh, kw, C_in) order; the
        parameter's own row-major vec is (C_out, C_in, kh, kw): the same factors, permuted."""
        if layer["kind"] != "conv" or self.conv_layout != "OIHW" or self.block == "naive":
            return F
        co, ci, kh, kw = layer["params"]["weight"].shape
        perm = np.arange(kh * kw * ci).reshape(kh, kw, ci).transpose(2, 0, 1).reshape(-1)
        if F[0].shape[0] == kh * kw * ci + 1:
            perm = np.append(perm, kh * kw * ci)
        return [F[1], F[0][np.ix_(perm, perm)]]

    @_memo
    def inverse(self, stats, damping, vectors):
        """The given statistics as the factors of a ``NaiveTNT`` block over a parameter of the
        statistics' mode sizes (every axis a mode), then ``multiply_inverse``: the inverse code
        (``KroneckerFactored._multiply_matpower_unscaled`` and ``tnt_scale``) is the same for all
        three TNT blocks; ``Conv2DTNT`` multiplies by its fixed scale, the number of output
        locations, which this adapter's ``factors`` includes and which belongs to its statistics
        (the ``conv_locations`` convention), not to the inverse."""
        out = {}
        for name, S in stats.items():
            dims = tuple(int(np.shape(s)[0]) for s in S)
            letters = "abcdefgh"[: len(dims)]

            def func(q, batch, dims=dims):
                w = kfac_jax.register_generic(q["weight"])
                y = jnp.einsum("n...,...->n", batch[0], w)[:, None]
                kfac_jax.register_squared_error_loss(y, batch[1], weight=0.5)
                return 0.5 * jnp.sum((y - batch[1]) ** 2)

            def ctor(eq, letters=letters):
                return kfac_jax.NaiveTNT(eq, parameters_specs=[f"{letters} -> {' '.join(letters)}"])

            est = kfac_jax.BlockDiagonalCurvature(func, layer_tag_to_block_ctor={"generic": ctor})
            q = {"weight": jnp.zeros(dims)}
            batch = (jnp.zeros((1, *dims)), jnp.zeros((1, 1)))
            state = est.init(_RNG, (q, batch), exact_powers_to_cache=None, approx_powers_to_cache=None)
            for f, s in zip(state.blocks_states[0].factors, S, strict=True):
                f.value, f.weight = jnp.asarray(s), jnp.ones((), dtype=jnp.float64)
            v = {"weight": jnp.asarray(np.reshape(vectors[name], dims))}
            r = est.multiply_inverse(state, v, identity_weight=float(damping), exact_power=self.exact, use_cached=False,
                                     pmap_axis_name=None)
            out[name] = _np(r["weight"]).reshape(-1)
        return out

    @_memo
    def trajectory(self, layer, hyper):
        apply, q, to_x, to_dy = self._model(layer)
        func = self._func(apply)
        pre = kfac_jax.OptaxPreconditioner(
            func, damping=float(hyper["damping"]), estimation_mode="fisher_empirical", curvature_ema=float(hyper["decay"]),
            curvature_update_period=int(hyper["T1"]), inverse_update_period=int(hyper["T2"]),
            use_exact_inverses=self.exact, layer_tag_to_block_ctor=self._ctor(layer["kind"]),
            distributed_inverses=False, distributed_precon_apply=False)  # one device, no pmap
        mom = [optax.trace(decay=float(hyper["momentum"]))]
        chain = ([*mom, pre.as_gradient_transform()] if self.momentum == "before" else [pre.as_gradient_transform(), *mom])
        tx = optax.chain(*chain, optax.add_decayed_weights(float(hyper["weight_decay"])), optax.scale(-float(hyper["learning_rate"])))
        first = self._batch(apply, q, to_x, to_dy, layer["steps"][0]["batch"])
        pstate = pre.init((q, first), _RNG)
        ostate = tx.init(q)
        if self.burnin:
            for b in layer["warm_start"]:
                pstate = pre.maybe_update_estimator_curvature(pstate, (q, self._batch(apply, q, to_x, to_dy, b)), _RNG,
                                                              decay_old_ema=False)
        out = []
        for step in layer["steps"]:
            pstate = pre.maybe_update(pstate, (q, self._batch(apply, q, to_x, to_dy, step["batch"])), _RNG)
            g = {k: jnp.asarray(v) for k, v in step["grads"].items()}
            upd, ostate = tx.update(g, ostate, q, precond_state=pstate)
            q = optax.apply_updates(q, upd)
            pstate = pre.increment_count(pstate)
            out.append({k: _np(v) for k, v in q.items()})
        return out

    def direction(self, layer, hyper):
        first = self.trajectory(layer, hyper)[0]  # the first step of the (memoized) trajectory: later steps cannot change it
        return {k: first[k] - layer["params"][k] for k in first}


# ---------------------------------------------------------------------------------------- variants
def dense_conv():
    """``DenseTNT`` / ``Conv2DTNT`` (tensors: ``NaiveTNT``, default specs), statistics as the default mode gives them."""
    return KfacJaxTNT("DenseTNT/Conv2DTNT, sampled statistics")


def dense_conv_empirical():
    return KfacJaxTNT("DenseTNT/Conv2DTNT, fisher_empirical", estimation="empirical")


def dense_conv_exact():
    return KfacJaxTNT("DenseTNT/Conv2DTNT, use_exact_inverses=True", exact_inverses=True)


def dense_conv_momentum_after():
    return KfacJaxTNT("DenseTNT/Conv2DTNT, optax.trace after the preconditioner", momentum="after")


def conv_oihw():
    return KfacJaxTNT("Conv2DTNT, OIHW kernels (dimension_numbers NCHW/OIHW)", conv_layout="OIHW", kinds=("conv",))


def conv_not_per_location():
    return KfacJaxTNT("Conv2DTNT(weighting_per_location=False)", weighting_per_location=False, kinds=("conv",))


def naive():
    """``NaiveTNT`` for every layer, kfac-jax's default parameters_specs."""
    return KfacJaxTNT("NaiveTNT, sampled statistics", block="naive")


def naive_empirical():
    return KfacJaxTNT("NaiveTNT, fisher_empirical", block="naive", estimation="empirical")


def naive_all_modes():
    """``NaiveTNT(parameters_specs=['abc -> a b c'])``: every axis its own mode (cases without a bias)."""
    return KfacJaxTNT("NaiveTNT, parameters_specs: every axis a mode", block="naive", specs="all-modes", kinds=("tensor",))


def burnin():
    return KfacJaxTNT("DenseTNT/Conv2DTNT, burn-in on the warm-start batches", burnin=True)
