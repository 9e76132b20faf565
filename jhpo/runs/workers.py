"""Where trials run: pools of slots that the driver starts trials on and waits upon.

A pool runs up to ``slots`` trials at once. The driver (``jhpo.tune``) calls
``start(trial_id, config)`` while a slot is free and ``wait(timeout)`` for what happened:
:class:`Started` (the trial began to run on its worker), :class:`Finished` (the
objective's :class:`jhpo.runs.worker.Called`) or :class:`Lost` (the process running the
trial died: SIGKILL, out of memory, a lost node). While it waits, a
pool answers the reports of running trials through the ``judge`` the driver gave it:
``judge(trial_id, resource, metrics)`` returns None (train on) or the exception that
``report`` raises inside the objective. ``end(trial_id, reason)`` ends a running trial at
once (``trial_timeout_s``) and ``close()`` ends them all.

- :class:`InProcessPool`: one slot, the trial runs in the driver's own process; what
  ``tune`` uses with one worker.
- :class:`LocalPool`: ``slots`` long-lived worker processes on this machine, each a fresh
  interpreter (not a fork: JAX is not fork-safe) running :mod:`jhpo.runs.worker`, so JAX
  is imported once per worker and only if the objective needs it. The objective travels
  by cloudpickle (closures and functions of ``__main__`` included); ``worker_env(i)`` is
  the environment of the worker in slot ``i`` from its start, so that it holds before the
  objective imports JAX. A worker that dies is replaced in its slot.
- ``jhpo.runs.ray_backend.RayPool``: each trial a Ray task.

:class:`Parallel` holds ``tune``'s settings on parallel trials and makes the pool.
"""

from __future__ import annotations

import importlib.util
import numbers
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
from typing import Any, NamedTuple, Protocol

import cloudpickle

from jhpo.runs import worker as worker_module
from jhpo.runs.worker import Called, call_objective, describe_exception, encode_decision

Judge = Callable[[int, Any, Any], BaseException | None]


class Started(NamedTuple):
    """A trial began to run on its worker (it may have waited for the worker to start)."""

    trial_id: int


class Finished(NamedTuple):
    trial_id: int
    called: Called


class Lost(NamedTuple):
    """A trial whose process died, or that was ended; ``reason`` says which."""

    trial_id: int
    reason: str


Event = Started | Finished | Lost


class TrialPool(Protocol):
    slots: int

    def start(self, trial_id: int, config: dict) -> None: ...

    def wait(self, timeout: float | None) -> list[Event]: ...

    def end(self, trial_id: int, reason: str) -> Lost: ...

    def close(self) -> None: ...


def objective_name(objective: Callable) -> str:
    return getattr(objective, "__qualname__", None) or repr(objective)


def pickled_objective(objective: Callable) -> bytes:
    """``objective`` as cloudpickle bytes, or an error naming it and saying why not."""
    try:
        return cloudpickle.dumps(objective)
    except Exception as error:  # noqa: BLE001 - any pickling failure gets the same advice
        raise TypeError(
            f"the objective {objective_name(objective)!r} cannot be sent to worker processes: "
            f"cloudpickle failed with {describe_exception(error)}. It (and what it refers to) "
            "must be picklable: open files, locks, sockets or live devices inside it are not; "
            "create them inside the objective instead") from None


class InProcessReport:
    """``report(resource, metrics)`` of a trial running in the driver: the judge's answer
    is raised right here."""

    def __init__(self, trial_id: int, judge: Judge):
        self.trial_id, self.judge = trial_id, judge

    def __call__(self, resource, metrics) -> None:
        decision = self.judge(self.trial_id, resource, metrics)
        if decision is not None:
            raise decision


class InProcessPool:
    """One slot; the trial runs in this process, inside ``wait``."""

    slots = 1

    def __init__(self, objective: Callable, judge: Judge, takes_report: bool):
        self.objective, self.judge, self.takes_report = objective, judge, takes_report
        self.queued: tuple[int, dict] | None = None

    def start(self, trial_id: int, config: dict) -> None:
        if self.queued is not None:
            raise RuntimeError("the in-process pool runs one trial at a time")
        self.queued = (trial_id, config)

    def wait(self, timeout: float | None) -> list[Event]:
        del timeout  # the trial runs to its end here; nothing else can happen meanwhile
        if self.queued is None:
            return []
        (trial_id, config), self.queued = self.queued, None
        report = InProcessReport(trial_id, self.judge) if self.takes_report else None
        return [Finished(trial_id, call_objective(self.objective, config, report))]

    def end(self, trial_id: int, reason: str) -> Lost:
        raise RuntimeError("a trial running in the driver's process cannot be ended from outside")

    def close(self) -> None:
        self.queued = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


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


# Trials per round of a synchronous run when ``batch_size`` is not given: a constant, not
# the number of workers, so the configurations do not depend on the machine.
SYNCHRONOUS_BATCH_SIZE = 8
BACKENDS = ("local", "ray")


class Parallel(NamedTuple):
    """How ``tune`` runs its trials: on how many workers, where, and in rounds or not."""

    workers: int = 1
    backend: str = "local"
    worker_env: Callable[[int], Mapping[str, str]] | None = None
    resources_per_trial: Mapping[str, Any] | None = None
    batch_size: int | None = None  # synchronous rounds of this many trials; None: asynchronous
    trial_timeout_s: float | None = None

    @classmethod
    def from_arguments(cls, workers, backend, worker_env, resources_per_trial, synchronous,
                       batch_size, trial_timeout_s) -> Parallel:
        """Validate ``tune``'s arguments on parallel trials."""
        if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
            raise ValueError(f"workers={workers!r} must be a positive integer")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} must be one of {list(BACKENDS)}")
        if backend == "ray" and importlib.util.find_spec("ray") is None:
            raise ImportError("backend='ray' needs Ray: pip install 'jhpo[ray]' "
                              "(or pip install ray)")
        if worker_env is not None and not callable(worker_env):
            raise TypeError(f"worker_env={worker_env!r} must be a function of the worker's index "
                            "returning a dict of environment variables")
        if worker_env is not None and backend == "ray":
            raise ValueError("worker_env is for backend='local'; Ray gives each task its GPUs "
                             "from resources_per_trial={'num_gpus': 1} (use Ray's runtime_env "
                             "for other variables)")
        if resources_per_trial is not None and (backend != "ray" or not isinstance(
                resources_per_trial, Mapping)):
            raise ValueError(f"resources_per_trial={resources_per_trial!r} needs backend='ray' "
                             "and a dict of Ray task options, such as {'num_gpus': 1}")
        if not isinstance(synchronous, bool):
            raise TypeError(f"synchronous={synchronous!r} must be True or False")
        if batch_size is not None and not synchronous:
            raise ValueError(f"batch_size={batch_size!r} sets the rounds of synchronous=True; "
                             "an asynchronous run asks one trial whenever a worker is free")
        if synchronous:
            batch_size = SYNCHRONOUS_BATCH_SIZE if batch_size is None else batch_size
            if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                    or batch_size < 1:
                raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        if trial_timeout_s is not None and (isinstance(trial_timeout_s, bool) or not isinstance(
                trial_timeout_s, numbers.Real) or not trial_timeout_s > 0):
            raise ValueError(f"trial_timeout_s={trial_timeout_s!r} must be a positive number "
                             "of seconds")
        return cls(int(workers), backend, worker_env,
                   None if resources_per_trial is None else dict(resources_per_trial),
                   None if batch_size is None else int(batch_size),
                   None if trial_timeout_s is None else float(trial_timeout_s))

    def describe(self) -> dict:
        """The ``parallel`` field of meta.json (descriptive: a run may resume otherwise)."""
        return {"workers": self.workers, "backend": self.backend, "batch_size": self.batch_size}

    def pool(self, objective: Callable, judge: Judge, reports: bool, slots: int) -> TrialPool:
        """The pool the trials run on, with ``slots`` (at most ``workers``) slots."""
        if self.backend == "ray":
            from jhpo.runs.ray_backend import RayPool  # Ray is an optional dependency

            return RayPool(objective, slots, judge, reports, self.resources_per_trial)
        if self.workers == 1 and self.worker_env is None and self.trial_timeout_s is None:
            return InProcessPool(objective, judge, reports)
        return LocalPool(objective, slots, judge, reports, self.worker_env)
