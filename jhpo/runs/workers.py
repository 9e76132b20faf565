"""Trials on local worker processes: :class:`LocalPool`, a pool (see
:mod:`jhpo.runs.pools`) of ``slots`` long-lived worker processes on this machine, each a
fresh interpreter (not a fork: JAX is not fork-safe) running :mod:`jhpo.runs.worker`, so
JAX is imported once per worker and only if the objective needs it. The objective travels
by cloudpickle (closures and functions of ``__main__`` included); ``worker_env(i)`` is the
environment of the worker in slot ``i`` from its start, so that it holds before the
objective imports JAX. A worker that dies is replaced in its slot.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_connections

import cloudpickle

from jhpo.runs import worker as worker_module
from jhpo.runs.pools import Event, Finished, Judge, Lost, Started, objective_name, pickled_objective
from jhpo.runs.worker import Called, describe_exception, encode_decision

# Loads jhpo/runs/worker.py by its path, under its own module name, without importing the
# jhpo package (and with it JAX): a worker imports only what its objective needs.
BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('jhpo.runs.worker', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = module\n"
    "spec.loader.exec_module(module)\n"
    "module.main(int(sys.argv[2]))\n"
)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "its worker process stopped answering"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        cause = " (out of memory, or killed from outside)" if name == "SIGKILL" else ""
        return f"its worker process was killed by {name}{cause}"
    return f"its worker process exited with status {returncode}"


def environment_for(worker_env: Callable[[int], Mapping[str, str]] | None, slot: int) -> dict:
    """This process's environment with ``worker_env(slot)`` on top."""
    environment = dict(os.environ)
    if worker_env is None:
        return environment
    extra = worker_env(slot)
    if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise TypeError(f"worker_env({slot}) returned {extra!r}; it must return a dict of "
                        "environment variables, names and values both strings")
    environment.update(extra)
    return environment


class LocalWorker:
    """One worker process and the driver's end of its connection."""

    def __init__(self, slot: int, environment: dict, setup: bytes):
        self.slot = slot
        self.trial_id: int | None = None
        self.ready = False
        ours, theirs = socket.socketpair()
        with theirs, warnings.catch_warnings():
            # JAX warns of every fork once it is imported; this fork execs a fresh
            # interpreter at once and runs none of this process's code
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                                    category=RuntimeWarning)
            self.process = subprocess.Popen(
                [sys.executable, "-c", BOOTSTRAP, worker_module.__file__, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=environment, stdin=subprocess.DEVNULL)
        self.connection = Connection(ours.detach())
        self.connection.send_bytes(setup)

    def send(self, message: tuple) -> None:
        try:
            payload = cloudpickle.dumps(message)
        except Exception as error:  # noqa: BLE001 - an exception the worker cannot receive
            failure = ("raise", RuntimeError(describe_exception(error)))
            payload = cloudpickle.dumps(message[:-1] + (failure,))
        try:
            self.connection.send_bytes(payload)
        except OSError:  # it died: the pool notices at its next wait, and loses its trial
            pass

    def kill(self) -> int | None:
        """End the process now; its exit status."""
        if self.process.poll() is None:
            self.process.kill()
        self.connection.close()
        return self.process.wait()

    def exit_by(self, deadline: float) -> None:
        """Wait for the process to exit (its connection closed), killing it at ``deadline``
        (a ``time.monotonic()``)."""
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()


# How often a waiting pool looks for worker processes that exited.
EXIT_CHECK_S = 1.0
# How long a closing pool waits for idle workers to exit before killing them.
CLOSE_GRACE_S = 2.0


class WorkerStartError(RuntimeError):
    """A worker process could not load the objective, or died before it could."""


class LocalPool:
    """``slots`` worker processes on this machine (see the module's notes)."""

    def __init__(self, objective: Callable, slots: int, judge: Judge, takes_report: bool,
                 worker_env: Callable[[int], Mapping[str, str]] | None = None):
        self.name = objective_name(objective)
        self.slots, self.judge, self.worker_env = slots, judge, worker_env
        self.setup = cloudpickle.dumps(("setup", list(sys.path), pickled_objective(objective),
                                        takes_report))
        self.workers: list[LocalWorker] = []
        self.by_trial: dict[int, LocalWorker] = {}
        try:
            for slot in range(slots):
                self.workers.append(self.new_worker(slot))
        except BaseException:
            self.close()
            raise

    def new_worker(self, slot: int) -> LocalWorker:
        return LocalWorker(slot, environment_for(self.worker_env, slot), self.setup)

    def start(self, trial_id: int, config: dict) -> None:
        idle = next((w for w in self.workers if w.trial_id is None), None)
        if idle is None:
            raise RuntimeError(f"all {self.slots} workers are busy")
        idle.trial_id = trial_id
        self.by_trial[trial_id] = idle
        idle.send(("run", trial_id, config))

    def wait(self, timeout: float | None) -> list[Event]:
        events: list[Event] = []
        by_connection = {w.connection: w for w in self.workers}
        # a dead worker's connection reads as closed, unless a process it started holds
        # the socket open: then its exit is noticed at the next look, within a second
        timeout = EXIT_CHECK_S if timeout is None else min(timeout, EXIT_CHECK_S)
        for connection in wait_for_connections(list(by_connection), timeout):
            events.extend(self.receive(by_connection[connection]))
        for worker in list(self.workers):
            while worker in self.workers and worker.process.poll() is not None:
                if worker.connection.poll(0):  # what it sent before it died comes first
                    events.extend(self.receive(worker))
                else:
                    events.extend(self.replace(worker, describe_exit(worker.kill())))
        return events

    def receive(self, worker: LocalWorker) -> list[Event]:
        """Handle one message of ``worker``, or its death."""
        try:
            message = pickle.loads(worker.connection.recv_bytes())
        except (EOFError, OSError):
            return self.replace(worker, describe_exit(worker.kill()))
        return self.handle(worker, message)

    def handle(self, worker: LocalWorker, message: tuple) -> list[Event]:
        kind = message[0]
        if kind == "report":
            _, trial_id, resource, metrics = message
            worker.send(("answer", encode_decision(self.judge(trial_id, resource, metrics))))
        elif kind == "done":
            _, trial_id, called = message
            worker.trial_id = None
            del self.by_trial[trial_id]
            return [Finished(trial_id, Called(*called))]
        elif kind == "started":
            return [Started(message[1])]
        elif kind == "ready":
            worker.ready = True
        elif kind == "setup_failed":
            raise WorkerStartError(f"a worker process could not load the objective {self.name!r} "
                                   f"(can the worker import what it refers to?):\n{message[1]}")
        return []

    def replace(self, worker: LocalWorker, reason: str, ended: bool = False) -> list[Lost]:
        """A fresh worker in the slot of one that died (or was ``ended``); the trial it
        ran, lost."""
        if not worker.ready and not ended:
            raise WorkerStartError(f"a worker process died before it loaded the objective "
                                   f"{self.name!r}: {reason}")
        self.workers[self.workers.index(worker)] = self.new_worker(worker.slot)
        if worker.trial_id is None:
            return []
        del self.by_trial[worker.trial_id]
        return [Lost(worker.trial_id, reason)]

    def end(self, trial_id: int, reason: str) -> Lost:
        worker = self.by_trial[trial_id]
        worker.kill()
        [lost] = self.replace(worker, reason, ended=True)
        return lost

    def close(self) -> None:
        """Kill the workers running trials; hang up on the idle ones, which then exit."""
        for worker in self.workers:
            if worker.trial_id is not None:
                worker.kill()
            worker.connection.close()
        deadline = time.monotonic() + CLOSE_GRACE_S
        for worker in self.workers:
            worker.exit_by(deadline)
        self.workers, self.by_trial = [], {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
