"""Progress of long work: a bar on a terminal, log lines everywhere else.

When stderr is a terminal, progress is a tqdm bar. When it is not (``nohup``, a SLURM
log, CI, a notebook), a bar would print nothing useful until the end, so progress goes
through the standard library's :mod:`logging` instead, under the logger named ``jhpo``
at level INFO: one line when the work starts, one every ``log_every_s`` seconds (the
environment variable ``JHPO_LOG_EVERY_S``, default 30) and one when it ends, each with
the count done out of the total, the caller's latest note (the best value so far), the
failures when the caller counts them, and the seconds elapsed.

Who sees the lines, by design:

* The ``jhpo`` logger's own level decides. When it is unset the lines are shown whatever
  the root logger's level: the root is often left at WARNING by someone else (absl,
  imported by orbax, calls ``logging.basicConfig()`` on its first message), which would
  otherwise hide progress everywhere. ``logging.getLogger("jhpo").setLevel(logging.WARNING)``
  silences them.
* Handlers configured anywhere (on ``jhpo`` or on the root) receive the lines as usual.
  When there is none at all, the lines go to the current ``sys.stderr`` through a handler
  of this module's own, used only in that case and never attached to a logger, so a
  program that configures logging later gets each line once, not twice. (Python's own
  last-resort handler shows only warnings and errors, so it would drop them.)

A line is written when the caller reports progress and the interval has passed since the
last line; no thread wakes up on its own. A caller that gives notes gets its lines when it
sets one (callers count with ``update`` and then set the note, so each line carries the
newest note); a caller that never does, on ``update``.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import sys
import time
from typing import Callable

from tqdm.auto import tqdm

LOGGER = logging.getLogger("jhpo")
LOG_EVERY_ENV = "JHPO_LOG_EVERY_S"
DEFAULT_LOG_EVERY_S = 30.0

_UNCONFIGURED_HANDLER = logging.StreamHandler()
_UNCONFIGURED_HANDLER.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))


def progress_bar(total: int | None, *, enabled: bool = True, initial: int = 0, unit: str = "trial",
                 desc: str = "jhpo", log_every_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
    """Progress of ``total`` units of work, ``initial`` of them already done.

    A tqdm bar on stderr when stderr is a terminal; log lines under the ``jhpo`` logger
    otherwise (see the module's notes); nothing when ``enabled`` is false. Either way the
    object returned is a context manager with ``update(n)``, ``set_postfix_str(text)``
    (a short note such as the best so far) and ``set_failures(n)`` (how many units
    failed so far). ``log_every_s`` (default: ``JHPO_LOG_EVERY_S`` or 30) spaces the log
    lines; ``clock`` gives the seconds they measure."""
    if enabled and _stderr_is_terminal():
        return TerminalProgress(tqdm(total=total, initial=initial, unit=unit, desc=desc,
                                     dynamic_ncols=True, leave=True))
    if not enabled:
        return TerminalProgress(tqdm(total=total, initial=initial, disable=True))
    return LogProgress(total, initial=initial, unit=unit, desc=desc,
                       every_s=log_interval(log_every_s), clock=clock)


def log_interval(log_every_s: float | None = None) -> float:
    """Seconds between progress log lines: ``log_every_s`` when given, else the
    environment variable ``JHPO_LOG_EVERY_S``, else 30."""
    if log_every_s is not None:
        return _positive_seconds(log_every_s, "log_every_s")
    text = os.environ.get(LOG_EVERY_ENV)
    if text is None or not text.strip():
        return DEFAULT_LOG_EVERY_S
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{LOG_EVERY_ENV}={text!r} must be a positive number of seconds") from None
    return _positive_seconds(value, LOG_EVERY_ENV)


def _positive_seconds(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} must be a positive number of seconds")
    return float(value)


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def with_failures(note: str, failures: int | None) -> str:
    """The caller's note followed by the failure count, when there were failures."""
    if not failures:
        return note
    return f"{note}, {failures} failed" if note else f"{failures} failed"


class TerminalProgress:
    """A tqdm bar that also shows the failure count after the caller's note."""

    def __init__(self, bar):
        self.bar = bar
        self.note = ""
        self.failures: int | None = None

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        self.note = text
        self.bar.set_postfix_str(with_failures(self.note, self.failures))

    def set_failures(self, n: int) -> None:
        self.failures = n
        self.bar.set_postfix_str(with_failures(self.note, self.failures))

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class LogProgress:
    """Progress as log lines: at the start, every ``every_s`` seconds, and at the end."""

    def __init__(self, total: int | None, *, initial: int = 0, unit: str = "trial",
                 desc: str = "jhpo", every_s: float = DEFAULT_LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.done = initial
        self.unit = unit
        self.desc = desc
        self.every_s = every_s
        self.note: str | None = None  # None: the caller gives no note
        self.failures: int | None = None  # None: the caller does not count them
        self.closed = False
        self.clock = clock
        self.started = clock()
        self.last_line = self.started
        self._log(f"started, {self._count()} done", self.started)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.note is None:  # a caller with notes sets one after counting: log then
            self._log_if_due()

    def set_postfix_str(self, text: str) -> None:
        self.note = text
        self._log_if_due()

    def set_failures(self, n: int) -> None:
        self.failures = n

    def close(self, *, interrupted: bool = False) -> None:
        """Write the end line (once): ``finished``, or ``stopped`` when ``interrupted``."""
        if self.closed:
            return
        self.closed = True
        end = "stopped" if interrupted else "finished"
        now = self.clock()
        self._log(f"{end}, {self._count()}{self._note()}{self._failures(zero_too=True)}, "
                  f"{self._elapsed(now)}", now)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(interrupted=exc_type is not None)

    def _log_if_due(self) -> None:
        now = self.clock()
        if self.closed or now - self.last_line < self.every_s:
            return
        self._log(f"{self._count()}{self._note()}{self._failures(zero_too=False)}, "
                  f"{self._elapsed(now)}", now)

    def _count(self) -> str:
        total = "" if self.total is None else f"/{self.total}"
        return f"{self.done}{total} {self.unit}s"

    def _note(self) -> str:
        return f", {self.note}" if self.note else ""

    def _failures(self, *, zero_too: bool) -> str:
        """The failure count as a clause; the end line says it even when it is 0."""
        if self.failures is None or (self.failures == 0 and not zero_too):
            return ""
        return f", {self.failures} failed"

    def _elapsed(self, now: float) -> str:
        return f"elapsed {now - self.started:.1f} s"

    def _log(self, message: str, now: float) -> None:
        self.last_line = now
        # the logger's name already says jhpo; only another description is worth a prefix
        emit(message if self.desc == LOGGER.name else f"{self.desc}: {message}")


def emit(message: str) -> None:
    """Log ``message`` at INFO under the ``jhpo`` logger, by the rules in the module's notes."""
    if LOGGER.level == logging.NOTSET:  # unset: shown whatever the root's level
        shown = not LOGGER.disabled and LOGGER.manager.disable < logging.INFO
    else:
        shown = LOGGER.isEnabledFor(logging.INFO)
    if not shown:
        return
    record = LOGGER.makeRecord(LOGGER.name, logging.INFO, __file__, 0, message, None, None)
    if LOGGER.hasHandlers():
        LOGGER.handle(record)
    elif sys.stderr is not None:  # None in a process started without one (pythonw)
        _UNCONFIGURED_HANDLER.setStream(sys.stderr)  # the current stderr, redirections included
        _UNCONFIGURED_HANDLER.handle(record)
