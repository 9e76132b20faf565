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
- :class:`jhpo.runs.workers.LocalPool`: ``slots`` long-lived worker processes on this
  machine.
- ``jhpo.runs.ray_backend.RayPool``: each trial a Ray task.

:class:`jhpo.runs.parallel.Parallel` holds ``tune``'s settings on parallel trials and makes
the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import cloudpickle

from jhpo.runs.worker import Called, call_objective, describe_exception

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
