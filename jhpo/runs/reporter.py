"""The driver's side of one black-box trial: its reports, read, recorded and judged
(:class:`Reporter`), and what its end records (:func:`outcome_of`, :func:`lost_outcome`)."""

from __future__ import annotations

import inspect
import math
import numbers
import time
from collections.abc import Callable

from jhpo.goal import Goal
from jhpo.runs.directory import RunDirectory
from jhpo.runs.records import COMPLETED, FAILED, STOPPED
from jhpo.runs.worker import Called, TrialStopped, describe_exception
from jhpo.schedulers.driver import SchedulerDriver


class Reporter:
    """The driver's side of one trial's ``report(resource, metrics)``: reads each report,
    records it and asks the scheduler. Wherever the trial runs, its reports come here and
    :meth:`judge`'s answer goes back to be raised inside the objective."""

    def __init__(self, trial_id: int, goal: Goal, scheduling: SchedulerDriver | None,
                 directory: RunDirectory | None):
        self.trial_id, self.goal = trial_id, goal
        self.scheduling, self.directory = scheduling, directory
        self.last_resource: float | None = None
        self.last_metrics: dict = {}
        self.last_values: list[float] = []
        self.last_constraints: list[float] = []

    def judge(self, resource: float, metrics) -> TrialStopped | None:
        """None when the trial goes on, else the TrialStopped that ends it. A bad report
        raises, as ``report`` itself would inside the objective."""
        if not isinstance(resource, numbers.Real) or not resource >= 0:
            raise ValueError(f"report(resource={resource!r}): resource must be a number >= 0")
        if self.scheduling is not None and resource > self.scheduling.max_resource:
            return TrialStopped(COMPLETED, f"reached max_resource={self.scheduling.max_resource}")
        self.last_metrics, self.last_values, self.last_constraints = self.goal.read(metrics)
        self.last_resource = float(resource)
        if self.directory is not None:
            self.directory.append_report(self.trial_id, self.last_resource, self.last_metrics)
        if not all(math.isfinite(v) for v in self.last_values):
            return TrialStopped(FAILED, f"reported a non-finite value ({self.last_values}) "
                                        f"at resource {resource}")
        if self.scheduling is not None and not self.scheduling.goes_on(
                self.trial_id, self.last_resource, self.goal.signs * self.last_values):
            return TrialStopped(STOPPED, f"stopped by {self.scheduling.scheduler.name} "
                                         f"at resource {resource}")
        return None


def takes_report(objective: Callable) -> bool:
    try:
        return "report" in inspect.signature(objective).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False


def outcome_of(called: Called, goal: Goal, reporter: Reporter | None) -> dict:
    """The keyword arguments of ``make_trial`` that one call of the objective decides
    (status, metrics, error, times, resource). A stopped trial keeps its last report."""
    if called.stop is not None:
        status, error = called.stop
        metrics = reporter.last_metrics
        if status != FAILED and not reporter.last_values:
            status = FAILED
            error = f"{error}, before any report with the metrics {list(goal.metrics)}"
    elif called.error is not None:
        metrics, status, error = {}, FAILED, called.error
    else:
        try:
            metrics, _, _ = goal.read(called.value)
            status, error = COMPLETED, None
        except Exception as exception:  # noqa: BLE001 - a bad return value fails the trial
            metrics, status, error = {}, FAILED, describe_exception(exception)
    return {"status": status, "metrics": metrics, "error": error,
            "start_time": called.start_time, "end_time": called.end_time,
            "resource": None if reporter is None else reporter.last_resource}


def lost_outcome(reason: str, start_time: float, reporter: Reporter | None) -> dict:
    """``make_trial``'s arguments for a trial whose process died or was ended: failed, with
    what it had reported."""
    return {"status": FAILED, "metrics": {} if reporter is None else reporter.last_metrics,
            "error": reason, "start_time": start_time, "end_time": time.time(),
            "resource": None if reporter is None else reporter.last_resource}
