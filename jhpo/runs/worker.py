"""What runs where a trial runs: the call of the objective, and the worker process's loop.

This module imports nothing but the standard library and ``cloudpickle``, so that a local
worker process (``jhpo.tune(..., workers=k)``) starts in a fraction of a second: it loads
this file alone, without the ``jhpo`` package and JAX, and imports whatever the objective
itself needs when it unpickles it. JAX is then imported after the worker's environment
(``worker_env``) is in place, since that environment is the process's own from birth.

The worker talks to the driver over one connection (a socket pair made by the driver):

driver -> worker   ``("setup", sys_path, objective_bytes, takes_report)`` once, then
                   ``("run", trial_id, config)`` per trial and ``("answer", decision)``
                   after each report
worker -> driver   ``("ready", pid)`` once the objective is loaded (or ``("setup_failed",
                   text)`` when it cannot be), then per trial ``("started", trial_id)``,
                   ``("report", trial_id, resource, metrics)`` and ``("done", trial_id,
                   called)``

Messages are pickled with cloudpickle and hold only plain Python values, never a class of
this module: unpickling a class makes pickle import its module by name, and with it the
whole ``jhpo`` package. A ``called`` is the fields of :class:`Called`; a ``decision`` is
None (train on), ``("stop", status, reason)`` (a scheduler's :class:`TrialStopped`) or
``("raise", exception)`` (an error the driver found in the report). The driver alone
decides; the worker only carries the answer back and raises it inside the objective.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import cloudpickle


class TrialStopped(BaseException):
    """Raised inside ``report`` to end a trial early. A BaseException, so that an
    objective's own ``except Exception`` does not swallow the scheduler's decision."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


class Called(NamedTuple):
    """What one call of the objective gave: its return value, or the scheduler's stop
    ``(status, reason)``, or the error it raised; and when it started and ended."""

    value: Any
    stop: tuple[str, str] | None
    error: str | None
    start_time: float
    end_time: float


def describe_exception(exception: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exception), exception)).strip()


def call_objective(objective: Callable, config: dict, report: Callable | None) -> Called:
    """Call ``objective`` on ``config`` (with ``report=`` when given). Exceptions are caught
    and described, never raised: one bad trial must not take down the run."""
    start = time.time()
    value, stop, error = None, None, None
    try:
        config = dict(config)  # the objective may change its copy
        value = objective(config) if report is None else objective(config, report=report)
    except TrialStopped as stopped:
        stop = (stopped.status, str(stopped))
    except Exception as exception:  # noqa: BLE001 - a failed trial is data, not a crash
        error = describe_exception(exception)
    return Called(value, stop, error, start, time.time())


def encode_decision(decision: BaseException | None) -> tuple | None:
    """A driver's answer to a report, as plain values (see the module's notes)."""
    if decision is None:
        return None
    if isinstance(decision, TrialStopped):
        return ("stop", decision.status, str(decision))
    return ("raise", decision)


def decoded_decision(answer: tuple | None) -> BaseException | None:
    if answer is None:
        return None
    if answer[0] == "stop":
        return TrialStopped(answer[1], answer[2])
    return answer[1]


class RemoteReport:
    """The ``report(resource, metrics)`` of a trial running away from the driver: each
    report goes to the driver through ``exchange`` and the driver's answer comes back;
    an answer that ends the trial is raised here, inside the objective."""

    def __init__(self, trial_id: int, exchange: Callable[[tuple], Any]):
        self.trial_id, self.exchange = trial_id, exchange

    def __call__(self, resource, metrics) -> None:
        decision = decoded_decision(self.exchange(("report", self.trial_id, resource, metrics)))
        if decision is not None:
            raise decision


def done_message(trial_id: int, called: Called) -> bytes:
    """The pickled ``("done", ...)`` message; a return value that cannot be pickled fails
    the trial, not the worker."""
    try:
        return cloudpickle.dumps(("done", trial_id, tuple(called)))
    except Exception as exception:  # noqa: BLE001 - the objective returned something odd
        failed = called._replace(value=None, error="the objective's return value cannot be "
                                 f"sent to the driver ({describe_exception(exception)})")
        return cloudpickle.dumps(("done", trial_id, tuple(failed)))


def expect(kind: str, message: tuple) -> tuple:
    """The fields of ``message`` after its kind, which must be ``kind``."""
    if message[0] != kind:
        raise RuntimeError(f"jhpo worker protocol: expected {kind!r}, got {message[0]!r}")
    return message[1:]


class Channel:
    """The worker's end of its connection to the driver."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def send(self, message: tuple) -> None:
        self.connection.send_bytes(cloudpickle.dumps(message))

    def receive(self) -> tuple:
        return pickle.loads(self.connection.recv_bytes())

    def exchange(self, message: tuple) -> Any:
        self.send(message)
        [decision] = expect("answer", self.receive())
        return decision


def exit_with_parent(poll_s: float = 0.5) -> None:
    """End this process when the driver that started it is gone (killed by SIGKILL, say):
    a worker must not train on for a run nobody records."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="jhpo-parent-watch").start()


def serve(channel: Channel) -> None:
    """The worker's loop: load the objective, then run trials until the driver hangs up."""
    sys_path, objective_bytes, takes_report = expect("setup", channel.receive())
    sys.path[:] = sys_path  # the driver's modules (its script's folder) import here too
    try:
        objective = pickle.loads(objective_bytes)
    except Exception as exception:  # noqa: BLE001 - told to the driver, which raises it
        channel.send(("setup_failed", "".join(traceback.format_exception(exception)).strip()))
        return
    channel.send(("ready", os.getpid()))
    while True:
        try:
            trial_id, config = expect("run", channel.receive())
        except EOFError:  # the driver closed the pool
            return
        channel.send(("started", trial_id))  # trial_timeout_s counts from here
        report = RemoteReport(trial_id, channel.exchange) if takes_report else None
        called = call_objective(objective, config, report)
        channel.connection.send_bytes(done_message(trial_id, called))


def main(descriptor: int) -> None:
    # Ctrl-C reaches the whole process group; the driver decides what happens to workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    serve(Channel(Connection(descriptor)))
