"""``python -m tnt_ref``: the same command line as ``tnt-ref``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
