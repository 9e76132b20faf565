"""One run over many hosts: the pieces of ``jax.distributed`` that jhpo's shell uses.

A population spread over several hosts runs as JAX's multi-controller programs do: the
same script on every host, one Python process per host, after :func:`initialize`
(``jax.distributed.initialize``). Each process then holds one copy of the run's shell
(searcher, scheduler, slots) and drives the compiled programs over a mesh of every
device of every process. What keeps the copies equal:

- **The same inputs, then the same decisions.** The searcher and the scheduler run on
  every process, from the same seed, and are told the same values: the metrics of the
  global population, gathered to every process (:func:`fetch`), the records process 0
  read when the run opened (:func:`on_writer`), and process 0's wall-clock
  (:class:`SharedClock`). Their asks and decisions are deterministic functions of those,
  so every process takes them identically without being told. Broadcasting process 0's
  decisions instead would add a second code path (a follower that obeys) and a message
  per decision; here nothing but the inputs travels. :func:`check_same` guards the
  premise: each ask's rows are compared across processes (a digest), and processes that
  disagree (another JAX version or device kind on one host) stop with an error naming
  what differed instead of training a population nobody asked for.
- **Inputs fed where they live.** :func:`put` builds a global array from a host value
  every process holds (hyperparameter columns, keys, the dataset) with
  ``jax.make_array_from_callback``: each process copies only the slices its own devices
  hold, so no host pushes another's members.
- **One writer.** Process 0 (:func:`is_writer`) writes the run directory; the others
  read what it read and write nothing but their checkpoint shards.

In a single process every function here is the plain local operation (no collective).
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

from jhpo import jsonfile

T = TypeVar("T")

# Exit status of a process that gave up waiting for the others in ``initialize``.
JOIN_TIMEOUT_EXIT_STATUS = 3


class CoordinatorUnreachable(ConnectionError):
    """A process could not reach the coordinator (process 0) of a multi-process run."""


class WriterFailed(RuntimeError):
    """What process 0 was doing for every process raised there; this process stops too."""


class ProcessesDiverged(RuntimeError):
    """Processes of one run computed different values where they must agree."""


def process_count() -> int:
    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes the run's files: process 0 (the only one, alone)."""
    return jax.process_index() == 0


# ----------------------------------------------------------------------------- joining


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: float = 300, **options) -> None:
    """``jax.distributed.initialize`` that fails clearly instead of hanging.

    Call it first thing, with the same arguments on every host: none on Cloud TPU,
    SLURM and the other clusters JAX detects; elsewhere the coordinator's
    ``"host:port"`` (process 0's host, a free port), the number of processes and this
    one's id. ``options`` go to ``jax.distributed.initialize``.

    Left alone, a process that cannot reach the coordinator waits for minutes and
    then aborts with a message blaming another task. Here a process other than 0
    that was given the coordinator's address first waits for its port to open and
    raises :class:`CoordinatorUnreachable` after ``timeout_s`` seconds; and any
    process whose peers have not all joined within ``timeout_s`` (process 0 waiting
    for a host that never started, or a wrong ``num_processes``) prints what it waited
    for to stderr and exits with status ``JOIN_TIMEOUT_EXIT_STATUS``: the native
    runtime blocks that wait beyond the reach of Python exceptions.
    """
    if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s={timeout_s!r} must be a positive number of seconds")
    deadline = time.monotonic() + timeout_s
    who = f"process {'?' if process_id is None else process_id} of {num_processes or '?'}"
    where = coordinator_address or "the coordinator the cluster names"
    if coordinator_address is not None and process_id not in (None, 0):
        wait_for_port(coordinator_address, deadline, f"{who}: the coordinator")
    message = (f"jhpo.multihost.initialize: {who} gave up after {timeout_s:g} s waiting for "
               f"every process to join at {where}; start the same script on every host, with "
               "the same coordinator address and number of processes")
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _give_up, args=(message,))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   initialization_timeout=max(1, math.ceil(timeout_s)), **options)
    finally:
        watchdog.cancel()


def wait_for_port(address: str, deadline: float, what: str) -> None:
    """Return once ``address`` ("host:port") accepts a TCP connection; raise
    :class:`CoordinatorUnreachable` if it has not by ``deadline`` (``time.monotonic``)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"coordinator_address={address!r} must be 'host:port'")
    host = host.strip("[]")  # an IPv6 address in brackets
    started, last_error = time.monotonic(), None
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=max(0.1, min(1.0, deadline - time.monotonic()))):
                return
        except OSError as error:
            last_error = error
        if time.monotonic() >= deadline:
            raise CoordinatorUnreachable(
                f"{what} at {address} could not be reached within "
                f"{time.monotonic() - started:.0f} s ({last_error}); check that process 0 runs "
                "and listens there (its host, a free port) and that no firewall blocks the port")
        time.sleep(0.2)


def _give_up(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(JOIN_TIMEOUT_EXIT_STATUS)


# ----------------------------------------------------------------------------- agreeing


def on_writer(compute: Callable[[], T]) -> T:
    """``compute()`` run on process 0 only, its (JSON) value returned on every process.

    Every process gets the value as JSON reads it back (process 0 too), so all hold
    equal values. If ``compute`` raises on process 0, the exception propagates there
    and every other process raises :class:`WriterFailed` with its message, rather
    than waiting for a value that never comes. Alone, this is ``compute()``.
    """
    if process_count() == 1:
        return compute()
    failure = None
    if is_writer():
        try:
            envelope = {"value": compute()}
        except Exception as error:  # noqa: BLE001 - raised again below, after telling the others
            failure, envelope = error, {"error": f"{type(error).__name__}: {error}"}
    else:
        envelope = None
    received = jsonfile.loads(_broadcast_bytes(jsonfile.dumps(envelope).encode() if is_writer() else b""))
    if failure is not None:
        raise failure
    if "error" in received:
        raise WriterFailed(f"process 0 failed: {received['error']}")
    return received["value"]


def _padded_size(size: int) -> int:
    # each buffer shape compiles its own collective: powers of two keep them few
    return 1 << max(6, (size - 1).bit_length())


def _broadcast_bytes(data: bytes) -> bytes:
    """Process 0's ``data`` on every process (the others' argument is ignored)."""
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(data))))
    buffer = np.zeros(_padded_size(size), np.uint8)
    if is_writer():
        buffer[:size] = np.frombuffer(data, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buffer))[:size].tobytes()


def allgather_json(value: Any) -> list[Any]:
    """Every process's ``value`` (JSON data), in process order, on every process."""
    if process_count() == 1:
        return [jsonfile.loads(jsonfile.dumps(value))]
    data = np.frombuffer(jsonfile.dumps(value).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.int32(len(data)))).ravel()
    buffer = np.zeros(_padded_size(int(sizes.max())), np.uint8)
    buffer[: len(data)] = data
    gathered = np.asarray(multihost_utils.process_allgather(buffer)).reshape(len(sizes), -1)
    return [jsonfile.loads(row[:size].tobytes()) for row, size in zip(gathered, sizes)]


def check_same(what: str, value) -> None:
    """Raise :class:`ProcessesDiverged` unless every process holds the same ``value``
    (an array or bytes), compared by digest."""
    if process_count() == 1:
        return
    data = value if isinstance(value, bytes) else np.ascontiguousarray(np.asarray(value)).tobytes()
    digest = np.frombuffer(hashlib.sha256(data).digest(), np.uint8)
    digests = np.asarray(multihost_utils.process_allgather(digest))  # (processes, 32): one collective
    differing = [index for index, row in enumerate(digests) if not np.array_equal(row, digests[0])]
    if differing:
        raise ProcessesDiverged(
            f"processes disagree on {what} (processes {differing} against process 0); every "
            "process must run the same script with the same arguments, JAX version and device kind")


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier called ``name``."""
    if process_count() > 1:
        multihost_utils.sync_global_devices(name)


def shared_time() -> float:
    """Process 0's ``time.time()`` on every process (one broadcast); alone, ``time.time()``."""
    if process_count() == 1:
        return time.time()
    # the float64's bytes travel as they are: without x64, JAX would round them to float32
    stamp = np.frombuffer(np.float64(time.time()).tobytes(), np.uint8)
    received = np.asarray(multihost_utils.broadcast_one_to_all(stamp))
    return float(np.frombuffer(received.tobytes(), np.float64)[0])


class SharedClock:
    """Wall-clock time every process agrees on: process 0's.

    Alone, ``now()`` is ``time.time()``. Across processes it is process 0's time at the
    last ``tick()`` (one broadcast), so the records made between two ticks (one
    scheduling boundary) carry the same times on every process.
    """

    def __init__(self):
        self._time: float | None = None
        self.tick()

    def tick(self) -> None:
        if process_count() > 1:
            self._time = shared_time()

    def now(self) -> float:
        return time.time() if self._time is None else self._time


def check_shared_directory(directory: str | os.PathLike, what: str) -> None:
    """Raise unless every process sees the same ``directory`` (a run's checkpoints are
    written by every process: it must be on a filesystem all hosts mount)."""
    if process_count() == 1:
        return
    path = Path(directory)
    token = on_writer(lambda: _write_token(path))
    barrier(f"jhpo-shared-{token}")
    marker = path / f".shared-{token}"
    seen = allgather_json(marker.exists())
    barrier(f"jhpo-shared-checked-{token}")
    if is_writer():
        marker.unlink()
    blind = [index for index, found in enumerate(seen) if not found]
    if blind:
        raise FileNotFoundError(
            f"{what} {str(path)!r} is not shared: processes {blind} do not see what process 0 "
            "wrote there; every host writes its checkpoint shards to it, so put it on a "
            "filesystem all hosts mount (NFS, Filestore, a mounted bucket)")


def _write_token(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    token = os.urandom(8).hex()
    (path / f".shared-{token}").write_text(token)
    return token


# ----------------------------------------------------------------------------- arrays


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def put(tree, sharding: jax.sharding.Sharding):
    """``tree``'s leaves as global arrays laid out by ``sharding``.

    A host value (a numpy array, or a JAX array on this process's devices in a run of
    several processes) must be the same on every process: each process copies only the
    slices its own devices hold (``jax.make_array_from_callback``). A global array is
    moved between devices if its layout differs. Typed PRNG keys travel as their data.
    """
    def one(leaf):
        if _is_key(leaf):
            return jax.random.wrap_key_data(one(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        if isinstance(leaf, jax.Array) and (not leaf.is_fully_addressable or process_count() == 1):
            return jax.device_put(leaf, sharding)
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def fetch(tree):
    """``tree``'s arrays as numpy arrays on every process; arrays that span other
    processes' devices are gathered from them (typed PRNG keys come back as local keys)."""
    def one(leaf):
        if _is_key(leaf):
            return jax.random.wrap_key_data(one(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(jax.device_get(leaf))

    return jax.tree.map(one, tree)
