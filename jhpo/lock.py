"""One writer per run directory: an exclusive operating-system lock held for a run's life.

``RunLock(run_dir)`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the file ``run_dir/.lock``
and writes the holder's pid and host name into it. A second acquirer, in another process
or through another ``RunLock`` in the same process, fails at once with
``RunDirectoryLocked`` naming the holder. The kernel drops the lock when its file is
closed, which includes the death of the holding process however it dies (SIGKILL too):
a killed run never leaves a stale lock, and the pid left in the file is only a
description, never a reason to refuse.

Why ``flock`` and not ``fcntl.lockf``: POSIX record locks belong to a process, so two
``RunLock`` objects of one process would both get one, and closing any descriptor of
the file would drop it; ``flock`` locks belong to the open file, so they exclude
within a process too. Caveats: a child made by ``fork`` (not ``spawn``) shares the open
file and so keeps the lock alive while it lives; on NFS, Linux emulates ``flock`` with
POSIX record locks, so there only other processes are excluded.

Windows has no ``fcntl``. There ``RunLock`` is a documented no-op (``LOCKING_SUPPORTED``
is False): the lock guards against a mistake (two runs started on one directory), while
a refusal would take away ``run_dir`` itself, and resume with it, on every Windows
machine; and a Windows implementation that no test here can run would be a promise
nobody checks.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".lock"
LOCKING_SUPPORTED = fcntl is not None


class RunDirectoryLocked(RuntimeError):
    """Another run holds the lock on this run directory."""


class RunLock:
    """The exclusive lock on run directory ``directory`` (created if missing).

    Use as a context manager, or call ``acquire()`` and ``release()``. ``acquire`` never
    waits: if the lock is held it raises ``RunDirectoryLocked``. ``release`` of a lock
    not held does nothing, so it is safe in a ``finally``.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> RunLock:
        if self.held:
            raise RuntimeError(f"this RunLock already holds {self.path}")
        if not LOCKING_SUPPORTED:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise RunDirectoryLocked(
                f"run directory {str(self.directory)!r} is in use by {holder} (lock file "
                f"{self.path}); wait for that run to end or stop it, or use another run_dir"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        _write_holder(descriptor)
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        if self._descriptor is None:
            return
        descriptor, self._descriptor = self._descriptor, None
        # the holder text goes first, so a reader never sees a released lock's pid as
        # its holder; closing the descriptor releases the lock
        try:
            os.ftruncate(descriptor, 0)
        finally:
            os.close(descriptor)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def _write_holder(descriptor: int) -> None:
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, text.encode(), 0)


def _read_holder(descriptor: int) -> str:
    """Who holds the lock, as the lock file tells it."""
    raw = os.pread(descriptor, 4096, 0)
    try:
        holder = json.loads(raw)
        return f"process {holder['pid']} on host {holder['host']!r}"
    except (ValueError, TypeError, KeyError):
        # the holder has locked but not yet written (or its text is damaged)
        return "another process (it has not written its pid and host yet)"
