"""How tnt-ref uses the machine: one policy for BLAS threads, and a progress line on every long step.

**Threads.** Every entry point that computes or times anything runs its work inside
:func:`blas_threads`: the ``tnt-ref`` command line (every subcommand), ``python -m proofs_check``
and ``python -m proofs_check.tn_digits``, every run of a grid (:func:`tnt_ref.training.run_one`,
in whatever process or Dask worker it lands) and the test suite (``tests/conftest.py``). Inside
it the BLAS libraries that threadpoolctl finds (OpenBLAS, MKL, BLIS) run on :func:`thread_count`
threads: **1** unless the environment variable ``TNT_REF_BLAS_THREADS`` names another positive
number. Why one: every matrix here is small (a few thousand rows at most), where a second BLAS
thread buys little and costs synchronisation; parallel work is spread over processes instead
(``--jobs N``: N processes of one thread each never fight over the cores), and a timing means the
same on a busy and an idle machine. Measured on the 2-core machine: ``python -m proofs_check.tn_digits
--profile quick`` ran more than twice as fast with one BLAS thread as with the default two
(issue 25). ``TNT_REF_BLAS_THREADS=2`` restores two for a large single job.

**Progress.** :class:`Progress` is the one progress line of the package: on a terminal a tqdm bar
(``k/N``, elapsed and estimated time left); elsewhere (a pipe, a log file, a test) one plain line
per update with the same count and estimate, so a log shows progress too. ``total`` may be in
units of work (e.g. estimated flops) rather than steps: the estimate then follows the work.

The bottom floor: imports only the standard library, threadpoolctl and tqdm (lazily).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator

__all__ = ["THREADS_ENV", "thread_count", "blas_threads", "Progress", "format_seconds"]

#: Environment variable that overrides the number of BLAS threads per process (default 1).
THREADS_ENV = "TNT_REF_BLAS_THREADS"


def thread_count() -> int:
    """BLAS threads per process under the policy: ``$TNT_REF_BLAS_THREADS`` if set, else 1.

    Raises
    ------
    ValueError
        ``TNT_REF_BLAS_THREADS`` is set but is not a positive integer.

    >>> import os; old = os.environ.pop(THREADS_ENV, None)
    >>> thread_count()
    1
    >>> os.environ[THREADS_ENV] = "2"; thread_count()
    2
    >>> _ = os.environ.pop(THREADS_ENV) if old is None else os.environ.update({THREADS_ENV: old})
    """
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return 1
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"the environment variable {THREADS_ENV} must be a positive integer (BLAS threads per "
                         f"process); got {text!r}. Unset it for the default, 1.")
    return n


@contextlib.contextmanager
def blas_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with the BLAS limited to ``threads`` threads (default: :func:`thread_count`).

    Yields the number of threads. Nested uses are fine (the innermost limit wins until it exits).
    """
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    n = thread_count() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"`threads` must be a positive int; got threads={threads!r}.")
    with threadpool_limits(limits=n, user_api="blas"):
        yield n


def format_seconds(seconds: float) -> str:
    """``mm:ss`` or ``h:mm:ss``, as tqdm writes times.

    >>> format_seconds(75.2), format_seconds(3725)
    ('01:15', '1:02:05')
    """
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _whole(x: float) -> float | int:
    """``4`` rather than ``4.0`` where a count is whole (tqdm prints what it gets)."""
    return int(x) if float(x).is_integer() else x


class Progress:
    """A progress line: a tqdm bar on a terminal, else one plain line per update with the same estimate.

    Parameters
    ----------
    total : float
        Units of work in all (steps, runs, or estimated flops); :meth:`advance` moves ``done``.
    desc : str
        What is being done, printed at the head of the line.
    unit : str
        What one unit is (``"run"``, ``"check"``; ``""`` for abstract work, then shown as percent).
    enabled : bool, optional
        ``True`` a tqdm bar, ``False`` plain lines; ``None`` (default) a bar when stderr is a terminal.
    log : callable, optional
        Where plain lines go (default: print to stderr).
    count : bool
        Show ``k/N`` in plain lines (``False`` for work units that are not steps: then a percentage).
    min_interval : float
        Plain lines: at most one per ``min_interval`` seconds (the last one, at 100%, always).
    """

    def __init__(self, total: float, desc: str, unit: str = "step", *, enabled: bool | None = None,
                 log: Callable[[str], None] | None = None, count: bool = True, initial: float = 0.0,
                 min_interval: float = 0.0):
        self.total, self.desc, self.unit, self.count = float(total), desc, unit, count
        self.done = float(initial)
        self._start_done = float(initial)
        self._t0 = time.perf_counter()
        self._last = -float("inf")
        self._ended = False
        self.min_interval = float(min_interval)
        self._log = log if log is not None else (lambda s: print(s, file=sys.stderr, flush=True))
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm  # noqa: PLC0415

            fmt = None if count else "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"
            self.bar = tqdm(total=_whole(self.total), initial=_whole(self.done), desc=desc, unit=unit or "it", dynamic_ncols=True,
                            bar_format=fmt, file=sys.stderr)

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def remaining(self) -> float | None:
        """Seconds left at the rate so far (``None`` before the first unit of work is done)."""
        moved = self.done - self._start_done
        if moved <= 0:
            return None
        return self.elapsed() / moved * max(self.total - self.done, 0.0)

    def line(self, note: str = "") -> str:
        """The plain line: ``desc [k/N] note (mm:ss elapsed, ~mm:ss left)``."""
        if self.count:
            pos = f"[{self.done:g}/{self.total:g}]"
        else:
            pos = f"[{100 * self.done / self.total if self.total else 100:3.0f}%]"
        left = self.remaining()
        est = f"{format_seconds(self.elapsed())} elapsed" + (f", ~{format_seconds(left)} left" if left is not None else "")
        return f"{self.desc} {pos}{' ' + note if note else ''} ({est})"

    def set_total(self, total: float) -> None:
        """Change the units of work in all (e.g. once the work has been estimated)."""
        self.total = float(total)
        if self.bar is not None:
            self.bar.total = _whole(self.total)

    def advance(self, n: float = 1.0, note: str = "") -> None:
        """``n`` more units done; ``note`` says what just finished (or what starts now)."""
        self.done = min(self.done + float(n), self.total) if self.total else self.done + float(n)
        if self.bar is not None:
            self.bar.n = _whole(self.done)
            if note:
                self.bar.set_postfix_str(note[:60], refresh=False)
            self.bar.refresh()
        else:
            end = bool(self.total) and self.done >= self.total
            if self.elapsed() - self._last >= self.min_interval or (end and not self._ended):
                self._last, self._ended = self.elapsed(), end
                self._log(self.line(note))

    def note(self, note: str) -> None:
        """Say what is being done now without moving the count (a bar's postfix; a plain line otherwise)."""
        if self.bar is not None:
            self.bar.set_postfix_str(note[:60])
        else:
            self._log(self.line(note))

    def write(self, text: str) -> None:
        """Print ``text`` (to stdout) without breaking the bar."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
