"""Output files: atomic writes (a killed process never leaves a truncated result file behind),
output paths checked at the door, before any work starts, and one owner per file.

Ownership (:class:`Outputs`): a command names every folder and file it will write; before any work
it refuses two of them that resolve to the same path, then takes a lock on each (a folder:
``FOLDER/.tnt-ref.lock``; a file outside its folders: ``.NAME.tnt-ref.lock`` beside it), each
holding the process id. A lock held by a live process refuses the command, ``--overwrite`` or not,
so a run can never take over (or delete) the files of a run still in progress; a lock left by a
killed process is replaced. A folder lock also covers what lies under it: a file or folder whose
parent folder is locked by another live run is refused, and so is a folder with a live lock below it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OutputPathError", "Outputs", "prepare_output_dir", "prepare_output_file", "atomic_write_bytes",
           "atomic_write_text", "atomic_write_json", "atomic_savez", "LOCK_NAME"]

#: The lock file of an output folder.
LOCK_NAME = ".tnt-ref.lock"
_FILE_LOCK_SUFFIX = ".tnt-ref.lock"


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


# ----------------------------------------------------------------------------- one owner per file
#: Locks this process holds, with a count: a library call inside a command (``run`` writing the checkpoint the
#: command already owns) takes the same lock again instead of refusing itself.
_HELD: dict[Path, int] = {}


def _file_lock(path: Path) -> Path:
    return path.parent / f".{path.name}{_FILE_LOCK_SUFFIX}"


def _is_lock_name(name: str) -> bool:
    return name == LOCK_NAME or (name.startswith(".") and name.endswith(_FILE_LOCK_SUFFIX))


def _live_holder(lock: Path) -> int | None:
    """The process id in ``lock`` if that process is alive, else ``None`` (no lock, or a stale one)."""
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    except OSError:
        return None
    return pid


def _take(lock: Path, what: str) -> None:
    """Create ``lock`` holding this process's id (atomically); a live holder refuses, a stale lock is replaced."""
    if lock in _HELD:
        _HELD[lock] += 1
        return
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _live_holder(lock)
            if pid is not None:
                raise OutputPathError(f"{what} is in use by a live run (pid {pid}; lock file {lock}); wait for it to "
                                      "end or choose another path. (--overwrite never takes over a live run's files.)") from None
            lock.unlink(missing_ok=True)  # a stale lock left by a killed run
            continue
        except OSError as err:
            raise OutputPathError(f"{what}: cannot take the lock file {lock} ({err.strerror or err}).") from None
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)
        _HELD[lock] = 1
        return
    raise OutputPathError(f"{what}: cannot take the lock file {lock} (another run keeps taking it).")


def _live_locks_below(folder: Path, skip: set, max_depth: int = 3, max_entries: int = 20000) -> list:
    """Live lock files under ``folder`` (its own lock excluded, ``skip`` excluded), searched ``max_depth``
    levels deep and at most ``max_entries`` entries (a folder such as ``.`` in a big tree is not crawled)."""
    found, seen = [], 0
    stack = [(folder, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            it = list(os.scandir(d))
        except OSError:
            continue
        for e in it:
            seen += 1
            if seen > max_entries:
                return found
            p = Path(e.path)
            if _is_lock_name(e.name) and not (d == folder and e.name == LOCK_NAME) and p not in skip and p not in _HELD:
                if _live_holder(p) is not None:
                    found.append(p)
            elif depth < max_depth and e.is_dir(follow_symlinks=False) and not e.name.startswith(".git"):
                stack.append((p, depth + 1))
    return found


class Outputs:
    """Every folder and file one command writes, owned for the duration of a ``with`` block.

    ``folder(path, flag)`` and ``file(path, flag)`` check each path at the door (created, writable,
    not a folder where a file is expected) and register it; entering the block refuses two
    registered files that resolve to the same path, naming both flags, then takes the locks (module
    docstring). ``existing()`` lists the registered files already on disk, for the command to refuse
    them without ``--overwrite`` (or keep them with ``--resume``). Leaving the block removes the locks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> outs = Outputs()
    >>> out = outs.folder(d / "run", "--out")
    >>> ck = outs.file(d / "run" / "checkpoint.npz", "--checkpoint")
    >>> with outs:
    ...     (out / ".tnt-ref.lock").exists()
    True
    """

    def __init__(self):
        self.folders: list[tuple[str, Path]] = []
        self.files: list[tuple[str, Path]] = []
        self._held: list[Path] = []

    def folder(self, path: str | Path, flag: str) -> Path:
        if str(path) == "":
            raise OutputPathError(f"`{flag}` is empty; give a folder path.")
        p = prepare_output_dir(path, flag)
        self.folders.append((flag, p))
        return p

    def file(self, path: str | Path, flag: str) -> Path:
        p = prepare_output_file(path, flag)
        if _is_lock_name(p.name):
            raise OutputPathError(f"`{flag}` {str(path)!r} is the name of a tnt-ref lock file; choose another name.")
        self.files.append((flag, p))
        return p

    def existing(self) -> list[tuple[str, Path]]:
        """The registered files that already exist: ``[(flag, path)]``."""
        return [(f, p) for f, p in self.files if p.exists()]

    def refuse_existing(self, overwrite: bool, hint: str = "pass --overwrite to replace them") -> None:
        """Without ``overwrite``, refuse when a registered file exists (a previous run's result is never
        replaced silently)."""
        old = self.existing()
        if old and not overwrite:
            names = ", ".join(f"{p} ({f})" for f, p in old)
            raise OutputPathError(f"{names} already exist{'s' if len(old) == 1 else ''} (another run's output); "
                                  f"{hint}, or choose another path.")

    def _check_distinct(self) -> None:
        seen: dict[Path, str] = {}
        for flag, p in self.files:
            r = p.resolve()
            if r in seen:
                raise OutputPathError(f"`{flag}` and `{seen[r]}` resolve to the same file ({r}); each output needs its "
                                      "own path (one would overwrite the other).")
            seen[r] = flag
        for flag, p in self.folders:
            r = p.resolve()
            if r in seen:
                raise OutputPathError(f"`{flag}` {str(p)!r} is also the file of `{seen[r]}`; give two paths.")

    def __enter__(self) -> Outputs:
        self._check_distinct()
        try:
            mine = {p.resolve() for _, p in self.folders}
            lock_files = {_file_lock(p.resolve()) for _, p in self.files}
            for flag, p in self.folders:
                r = p.resolve()
                self._outside_others(r, mine, f"`{flag}` {str(p)!r}")
                below = _live_locks_below(r, skip=lock_files | {m / LOCK_NAME for m in mine})
                if below:
                    raise OutputPathError(f"`{flag}` {str(p)!r} holds the files of a live run (lock {below[0]}); wait for "
                                          "it to end or choose another folder.")
                _take(r / LOCK_NAME, f"`{flag}` {str(p)!r}")
                self._held.append(r / LOCK_NAME)
            for flag, p in self.files:
                r = p.resolve()
                if any(m == r.parent or m in r.parents for m in mine):
                    continue  # covered by our folder lock
                self._outside_others(r.parent, mine, f"`{flag}` {str(p)!r}", inclusive=True)
                _take(_file_lock(r), f"`{flag}` {str(p)!r}")
                self._held.append(_file_lock(r))
        except BaseException:
            self._release()
            raise
        return self

    @staticmethod
    def _outside_others(r: Path, mine: set, what: str, inclusive: bool = False) -> None:
        """Refuse when a folder above ``r`` (``inclusive``: or ``r`` itself) is locked by another live run."""
        for a in ([r] if inclusive else []) + list(r.parents):
            if a in mine or a / LOCK_NAME in _HELD:
                continue
            lock = a / LOCK_NAME
            if lock.exists():
                pid = _live_holder(lock)
                if pid is not None:
                    raise OutputPathError(f"{what} lies in {str(a)!r}, the output folder of a live run (pid {pid}); "
                                          "wait for it to end or choose another path.")

    def _release(self) -> None:
        while self._held:
            lock = self._held.pop()
            _HELD[lock] = _HELD.get(lock, 1) - 1
            if _HELD[lock] > 0:
                continue
            del _HELD[lock]
            with contextlib.suppress(OSError):
                if _live_holder(lock) == os.getpid():
                    lock.unlink()

    def __exit__(self, *exc) -> None:
        self._release()
