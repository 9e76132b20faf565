"""``tune``: black-box trials, one after another, each a call of the user's objective.

The driver owns the searcher (through an :class:`Optimizer`), the scheduler and the run
directory. Every call of the searcher's ``ask`` is recorded in ``asks.jsonl`` before its
trial starts, and every finished trial in ``trials.jsonl``, so a killed run resumes with
the searcher's state of the uninterrupted run and runs again the trial it was killed in.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jhpo import schedulers as schedulers_module
from jhpo.goal import Goal
from jhpo.progress import progress_bar
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.records import (
    COMPLETED,
    FAILED,
    STOPPED,
    AskRecord,
    Result,
    RunDirectory,
    Trial,
    error_headline,
)
from jhpo.runs.shell import (
    IDENTITY_KEYS,
    Resumed,
    fidelity_range,
    make_trial,
    opened_run,
    replay_reports,
    resume,
    run_meta,
)
from jhpo.schedulers import Scheduler
from jhpo.schedulers.driver import SchedulerDriver
from jhpo.searchers.base import Searcher
from jhpo.space import Space


class TrialStopped(BaseException):
    """Raised inside ``report`` to end a trial early. A BaseException, so that an
    objective's own ``except Exception`` does not swallow the scheduler's decision."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


class Reporter:
    """The ``report(resource, metrics)`` callable handed to an objective."""

    def __init__(self, trial_id: int, goal: Goal, scheduling: SchedulerDriver | None,
                 directory: RunDirectory | None):
        self.trial_id, self.goal = trial_id, goal
        self.scheduling, self.directory = scheduling, directory
        self.last_resource: float | None = None
        self.last_metrics: dict = {}
        self.last_values: list[float] = []
        self.last_constraints: list[float] = []

    def __call__(self, resource: float, metrics) -> None:
        if not isinstance(resource, numbers.Real) or not resource >= 0:
            raise ValueError(f"report(resource={resource!r}): resource must be a number >= 0")
        if self.scheduling is not None and resource > self.scheduling.max_resource:
            raise TrialStopped(COMPLETED, f"reached max_resource={self.scheduling.max_resource}")
        self.last_metrics, self.last_values, self.last_constraints = self.goal.read(metrics)
        self.last_resource = float(resource)
        if self.directory is not None:
            self.directory.append_report(self.trial_id, self.last_resource, self.last_metrics)
        if not all(math.isfinite(v) for v in self.last_values):
            raise TrialStopped(FAILED, f"reported a non-finite value ({self.last_values}) "
                                       f"at resource {resource}")
        if self.scheduling is not None and not self.scheduling.goes_on(
                self.trial_id, self.last_resource, self.goal.signs * self.last_values):
            raise TrialStopped(STOPPED, f"stopped by {self.scheduling.scheduler.name} "
                                        f"at resource {resource}")


def takes_report(objective: Callable) -> bool:
    try:
        return "report" in inspect.signature(objective).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False


def run_trial(objective: Callable, config: dict, goal: Goal,
              reporter: Reporter | None = None) -> dict:
    """Evaluate one configuration: the keyword arguments of ``make_trial`` that the
    objective decides (status, metrics, error, times, resource). Failures (exceptions,
    NaN, inf) are caught and described, never raised: one bad trial must not take down
    the run."""
    start = time.time()
    try:
        outcome = objective(dict(config)) if reporter is None else objective(dict(config), report=reporter)
        metrics, _, _ = goal.read(outcome)
        status, error = COMPLETED, None
    except TrialStopped as stop:
        metrics, status, error = reporter.last_metrics, stop.status, str(stop)
        if status != FAILED and not reporter.last_values:
            status = FAILED
            error = f"{error}, before any report with the metrics {list(goal.metrics)}"
    except Exception as exception:  # noqa: BLE001 - a failed trial is data, not a crash
        metrics, status = {}, FAILED
        error = "".join(traceback.format_exception_only(type(exception), exception)).strip()
    return {"status": status, "metrics": metrics, "error": error, "start_time": start,
            "end_time": time.time(), "resource": None if reporter is None else reporter.last_resource}


def tune(
    objective: Callable[[dict], float | Mapping[str, float]],
    space: Space | Mapping[str, Any],
    *,
    searcher: str | Searcher = "random",
    metric: str | Sequence[str] | None = None,
    mode: str | Sequence[str] = "min",
    constraints: Sequence[str] | None = None,
    num_trials: int | None = None,
    max_wallclock_s: float | None = None,
    seed: int = 0,
    run_dir: str | None = None,
    progress: bool = True,
    searcher_options: Mapping[str, Any] | None = None,
    scheduler: str | Scheduler | None = None,
    scheduler_options: Mapping[str, Any] | None = None,
    fail_fast: bool = True,
) -> Result:
    """Minimise (or maximise) ``objective`` over ``space``, one trial after another.

    The objective takes a plain dict and returns a number or a dict of metrics (then
    ``metric`` names the one to optimise). With a list of metrics (and of modes) the run
    has several objectives and its answer is ``Result.pareto_front()``. ``constraints``
    names metrics that must be > 0 for a trial to be feasible; an infeasible trial never
    becomes the best. A trial that raises or returns NaN/inf is
    recorded as failed and the run goes on.

    The budget is ``num_trials`` (trials recorded), ``max_wallclock_s`` (no trial starts
    after this many seconds of this call), or both: whichever ends first.

    With ``run_dir`` every finished trial is appended to ``run_dir/trials.jsonl``, and
    calling ``tune`` again with the same ``run_dir`` resumes: finished trials are
    reloaded, none is run twice, a trial the run was killed in runs again under its id,
    and the searcher proposes what the uninterrupted run would have proposed.

    An objective with a ``report`` parameter is called as ``objective(config,
    report=report)`` and may call ``report(resource, metrics)`` after each epoch; every
    report is appended to ``run_dir/reports.jsonl``. With a ``scheduler`` ("asha",
    "hyperband", "median" or a :class:`Scheduler`) a report may end the trial early:
    ``report`` then raises and the trial is recorded as stopped, with its last value.

    With ``fail_fast`` (the default), a run whose first three trials all raise the same
    exception stops and raises it: that is a bug in the objective or the settings (a
    misspelt ``metric``), not bad luck. At the end of a run with failed trials, one
    warning under the ``jhpo`` logger counts them by error.
    """
    if num_trials is None and max_wallclock_s is None:
        raise ValueError("give a budget: num_trials, max_wallclock_s, or both")
    if num_trials is not None and (not isinstance(num_trials, numbers.Integral) or num_trials < 1):
        raise ValueError(f"num_trials={num_trials!r} must be a positive integer")
    if max_wallclock_s is not None and not max_wallclock_s > 0:
        raise ValueError(f"max_wallclock_s={max_wallclock_s!r} must be positive")
    goal = Goal.from_arguments(metric, mode, constraints,
                               cost=(searcher_options or {}).get("cost_aware", False))
    scheduling = _scheduling(scheduler, scheduler_options, objective, seed, goal)
    if scheduling is not None:
        levels = scheduling.scheduler.levels
        goal = goal._replace(fidelity=fidelity_range(searcher, searcher_options, levels[0], levels[-1]))
    optimizer = Optimizer(space, searcher, goal=goal, seed=seed, searcher_options=searcher_options)
    meta = run_meta(optimizer.space, searcher, goal, seed,
                    searcher_options=dict(searcher_options or {}),
                    scheduler=None if scheduling is None else scheduling.scheduler.name,
                    scheduler_options=dict(scheduler_options or {}))
    with opened_run(run_dir, meta, IDENTITY_KEYS) as (directory, meta):
        resumed = resume(optimizer, directory)
        result = Result.from_meta(resumed.trials, meta)
        replay_reports(scheduling, directory, result.trials, goal)
        deadline = None if max_wallclock_s is None else time.monotonic() + max_wallclock_s
        run = BlackBoxRun(objective, optimizer, scheduling, directory, result, resumed, seed)
        with progress_bar(total=num_trials, enabled=progress, initial=len(result.trials)) as bar:
            while (num_trials is None or len(result.trials) < num_trials) and (
                deadline is None or time.monotonic() < deadline
            ):
                run.next_trial(fail_fast)
                bar.update(1)
                bar.set_failures(len(result.failed))
                bar.set_postfix_str(result.summary_line())
    log_failures(result)
    return result


# The first trials' identical exception, when every one raised it, is a bug in the
# objective or the settings (a misspelt metric), not bad luck.
FAIL_FAST_TRIALS = 3


class BlackBoxRun:
    """The trials of one ``tune`` call: asks (or runs again what a kill interrupted),
    evaluates, tells and records, one trial per ``next_trial``."""

    def __init__(self, objective, optimizer: Optimizer, scheduling: SchedulerDriver | None,
                 directory: RunDirectory | None, result: Result, resumed: Resumed, seed: int):
        self.objective, self.optimizer, self.goal = objective, optimizer, optimizer.goal
        self.scheduling, self.directory, self.result, self.seed = scheduling, directory, result, seed
        self.in_flight = list(resumed.in_flight)
        self.next_trial_id = resumed.next_trial_id
        self.reports = takes_report(objective)

    def next_row(self) -> tuple[int, np.ndarray]:
        if self.in_flight:  # asked before a kill and never recorded: run it again
            return self.in_flight.pop(0)
        trial_id, self.next_trial_id = self.next_trial_id, self.next_trial_id + 1
        num_told = self.optimizer.num_told
        rows, _ = self.optimizer.ask_rows(1)
        if self.directory is not None:
            self.directory.append_ask(AskRecord([trial_id], np.asarray(rows).tolist(), num_told))
        return trial_id, np.asarray(rows[0])

    def next_trial(self, fail_fast: bool) -> Trial:
        trial_id, row = self.next_row()
        [config] = self.optimizer.space.to_configs(row[None])
        if self.scheduling is not None:
            self.scheduling.start(trial_id)
        reporter = Reporter(trial_id, self.goal, self.scheduling, self.directory) if self.reports else None
        outcome = run_trial(self.objective, config, self.goal, reporter)
        trial = make_trial(self.goal, trial_id=trial_id, row=row, config=config, seed=self.seed,
                           **outcome)
        self.optimizer.tell_rows(row[None], [self.optimizer.told_row(trial)])
        self.result.trials.append(trial)
        if self.directory is not None:
            self.directory.append(trial)
        if fail_fast and len(self.result.trials) == FAIL_FAST_TRIALS:
            check_systematic_failure(self.result.trials)
        return trial


def check_systematic_failure(first_trials: Sequence[Trial]) -> None:
    """Raise when the first trials all raised one exception (recorded failed with no
    metrics and one error)."""
    raised = [t for t in first_trials if t.status == FAILED and not t.metrics]
    errors = {error_headline(t.error) for t in raised}
    if len(raised) == len(first_trials) and len(errors) == 1:
        raise RuntimeError(
            f"the first {len(first_trials)} trials all failed with: {errors.pop()} (they are "
            "recorded; fix the objective or the settings, or pass fail_fast=False to run on)")


def log_failures(result: Result) -> None:
    """At the end of a run with failures, one line counting them by error."""
    summary = result.failure_summary()
    if summary is not None:
        logging.getLogger("jhpo").warning(summary)


def _scheduling(scheduler, options, objective, seed, goal: Goal) -> SchedulerDriver | None:
    if scheduler is None:
        if options:
            raise ValueError("scheduler_options given without a scheduler")
        return None
    if not isinstance(scheduler, Scheduler):
        scheduler = schedulers_module.make(scheduler, **(options or {}))
    if not takes_report(objective):
        raise ValueError(
            f"scheduler={getattr(scheduler, 'name', scheduler)!r} needs an objective that takes "
            "a `report` argument and calls report(resource, metrics) as it trains"
        )
    return SchedulerDriver(scheduler, seed, len(goal.metrics))
