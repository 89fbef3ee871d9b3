"""The points of the digits study (:mod:`proofs_check.digits_study`): TNT runs of the digits problems,
each one run continued from its checkpoint to every epoch the study needs, and the exact Fisher blocks at
those points, each computed once. The study imports this module, never the reverse."""

from __future__ import annotations

import functools

import numpy as np

from .digits_gap import TRAJECTORY_LAYERS

__all__ = ["tnt_chain", "StudyRuns"]


@functools.lru_cache(maxsize=16)
def tnt_chain(problem: str, seed: int, epochs: tuple) -> dict:
    """``{e: RunResult}`` for the sorted ``epochs`` (all > 0) of one TNT run (the middle of the problem's
    learning-rate grid), continued from its checkpoint by :func:`tnt_ref.training.run` with ``resume=True``,
    which is bit-identical to a fresh run of ``e`` epochs (tested in ``tests/test_training.py``)."""
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from tnt_ref.training import get_problem, run  # noqa: PLC0415

    lr = get_problem(problem).grids["tnt"][1]
    out = {}
    with tempfile.TemporaryDirectory(prefix="tnt-digits-") as tmp:
        ck = Path(tmp) / "run.npz"
        for i, e in enumerate(epochs):
            out[e] = run(problem, "tnt", lr, epochs=int(e), seed=seed, progress=False, checkpoint=ck, resume=i > 0)
    return out


class StudyRuns:
    """The points of the study: parameters, losses and exact blocks per (problem, seed, epoch), computed once."""

    def __init__(self, epochs_list, images: int | None = None):
        self.epochs = tuple(sorted(e for e in set(epochs_list) if e > 0))
        self.images = images  # the first ``images`` of all 1797 digits (None: all) for the study and the exact blocks
        self._blocks: dict = {}
        self._data: dict = {}

    def data(self, problem):
        if problem not in self._data:
            from tnt_ref.data import load_digits  # noqa: PLC0415
            from tnt_ref.training import get_problem  # noqa: PLC0415

            prob = get_problem(problem)
            ds = load_digits(images=prob.images)
            self._data[problem] = (prob.build(), np.concatenate([ds.X_train, ds.X_test])[: self.images],
                                   np.concatenate([ds.y_train, ds.y_test])[: self.images])
        return self._data[problem]

    def result(self, problem, seed, epoch):
        return tnt_chain(problem, seed, self.epochs)[epoch] if epoch else None

    def params(self, problem, seed, epoch):
        res = self.result(problem, seed, epoch)
        return res.params if res is not None else self.data(problem)[0].init(np.random.default_rng(seed))

    def blocks(self, problem, seed, epoch):
        key = (problem, seed, epoch)
        if key not in self._blocks:
            from tnt_ref.fisher import exact_fisher_blocks  # noqa: PLC0415

            net, X, _ = self.data(problem)
            names = [n for p, n in TRAJECTORY_LAYERS if p == problem]
            self._blocks[key] = exact_fisher_blocks(net, self.params(problem, seed, epoch), X, names=names)
        return self._blocks[key]

    def loss(self, problem, seed, epoch):
        res = self.result(problem, seed, epoch)
        return res.history[-1]["train_loss"] if res is not None else None
