"""``tnt-ref train``, ``tnt-ref compare`` and ``tnt-ref demo``."""

from __future__ import annotations

import sys
import time

from ._args import positive_float, positive_int

#: Epochs per run in ``tnt-ref demo`` (about 3 minutes on 2 CPU cores for all optimizers and grids).
DEMO_EPOCHS = 50


def _cmd_train(args) -> int:
    from pathlib import Path  # noqa: PLC0415

    from ..files import atomic_write_json  # noqa: PLC0415
    from ..training import DivergedError, run  # noqa: PLC0415

    out = Path(args.out)
    ck = Path(args.checkpoint) if args.checkpoint else out / "checkpoint.npz"

    def show(h):
        acc = "" if h["test_accuracy"] is None else f"  test acc {h['test_accuracy']:.4f}"
        print(f"epoch {h['epoch']:>3}  train loss {h['train_loss']:.5f}  test loss {h['test_loss']:.5f}{acc}  ({h['wall_time']:.1f} s)",
              flush=True)

    try:
        r = run(args.problem, args.optimizer, args.lr, epochs=args.epochs, seconds=args.seconds, seed=args.seed,
                batch_size=args.batch_size, checkpoint=ck, resume=args.resume, backend=args.backend, on_epoch=show)
    except DivergedError as err:
        print(f"tnt-ref train: stopped: {err}", file=sys.stderr)
        return 3
    atomic_write_json(out / "history.json", r.history)
    print(f"wrote {out / 'history.json'}; checkpoint {ck}")
    return 0


def _cmd_compare(args) -> int:
    from pathlib import Path  # noqa: PLC0415

    from ..training import compare  # noqa: PLC0415

    t0 = time.perf_counter()
    print(f"{args.problem}: every optimizer over its learning-rate grid, {args.epochs} epochs each", flush=True)
    opts = args.optimizers or None
    compare(args.problem, args.out, epochs=args.epochs, **({"optimizers": opts} if opts else {}), seed=args.seed,
            log=lambda s: print(s, flush=True))
    print((Path(args.out) / "table.md").read_text())
    print(f"wrote {args.out}/results.json, loss.png, table.md ({time.perf_counter() - t0:.0f} s)")
    return 0


def _cmd_demo(args) -> int:
    args.problem, args.epochs, args.optimizers, args.seed = "autoencoder", DEMO_EPOCHS, None, 0
    return _cmd_compare(args)


def add_parsers(sub) -> None:
    from ..optim import OPTIMIZERS  # noqa: PLC0415

    tr = sub.add_parser("train", help="one training run on the digits data")
    tr.add_argument("--problem", required=True, help="autoencoder, mlp or cnn")
    tr.add_argument("--optimizer", required=True, help=f"one of {', '.join(OPTIMIZERS)}")
    tr.add_argument("--lr", type=positive_float, required=True, help="learning rate")
    tr.add_argument("--epochs", type=positive_int, default=None)
    tr.add_argument("--seconds", type=positive_float, default=None, help="budget in training seconds")
    tr.add_argument("--batch-size", type=positive_int, default=None)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", default="tnt-ref-out/train")
    tr.add_argument("--checkpoint", default=None, help="checkpoint file (default OUT/checkpoint.npz)")
    tr.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    tr.add_argument("--backend", default="numpy", help="numpy or cupy")
    tr.set_defaults(func=_cmd_train)

    cmp_ = sub.add_parser("compare", help="every optimizer over its learning-rate grid (the paper's protocol)")
    cmp_.add_argument("--problem", required=True, choices=["autoencoder", "mlp", "cnn"])
    cmp_.add_argument("--out", required=True)
    cmp_.add_argument("--epochs", type=positive_int, default=30)
    cmp_.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZERS), default=None)
    cmp_.add_argument("--seed", type=int, default=0)
    cmp_.set_defaults(func=_cmd_compare)

    demo = sub.add_parser("demo", help="the README's main job: a short optimizer comparison on the autoencoder")
    demo.add_argument("--out", default="tnt-ref-out/demo")
    demo.set_defaults(func=_cmd_demo)
