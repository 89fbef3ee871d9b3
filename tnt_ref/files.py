"""Output files: atomic writes (a killed process never leaves a truncated result file behind) and
output folders checked at the door, before any work starts."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OutputPathError", "prepare_output_dir", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_savez"]


class OutputPathError(ValueError):
    """An output path cannot be created or written (raised before any computation starts)."""


def prepare_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create the folder ``path`` (with its parents) and prove it is writable; return it.

    Call it at the very start of a command, so that a bad ``--out`` ends in well under a second
    instead of after the computation. ``flag`` names the option in the error message.

    Raises
    ------
    OutputPathError
        ``path`` is an existing file, cannot be created, or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"`{flag}` {str(path)!r} is an existing file, not a folder; give a folder path.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".tnt-ref-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputPathError(f"`{flag}` {str(path)!r} cannot be created or written ({err.strerror or err}); "
                              "choose another folder.") from None
    return path


def prepare_output_file(path: str | Path, flag: str) -> Path:
    """The folder of ``path`` exists (or is created) and is writable, and ``path`` is not a folder;
    :class:`OutputPathError` naming ``flag`` otherwise (including an empty path)."""
    if str(path) == "":
        raise OutputPathError(f"`{flag}` is empty; give a file path.")
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"`{flag}` {str(path)!r} is an existing folder; give a file path.")
    prepare_output_dir(p.parent if str(p.parent) else ".", flag)
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file in the same folder, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results get the usual permissions (0644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_savez(path: str | Path, **arrays: Any) -> Path:
    """``numpy.savez`` written atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())
