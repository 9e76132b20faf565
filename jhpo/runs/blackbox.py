"""``tune``: black-box trials, each a call of the user's objective, one at a time or on
several workers at once.

The driver owns the searcher (through an :class:`Optimizer`), the scheduler and the run
directory; trials run on a pool (:mod:`jhpo.runs.workers`): in the driver itself, in local
worker processes or as Ray tasks. Every call of the searcher's ``ask`` is recorded in
``asks.jsonl`` before its trials start, with the trials then pending, and every finished
trial in ``trials.jsonl`` in the order it was told, so a killed run resumes with the
searcher's state of the run before the kill and runs again the trials it was killed in.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jhpo import schedulers as schedulers_module
from jhpo.callbacks import Callbacks
from jhpo.goal import Goal
from jhpo.progress import progress_bar
from jhpo.runs.directory import RunDirectory
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.records import (
    COMPLETED,
    FAILED,
    STOPPED,
    AskRecord,
    Result,
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
    stopped_by_interrupt,
)
from jhpo.runs.worker import Called, TrialStopped, describe_exception
from jhpo.runs.workers import Finished, Lost, Parallel, Started, TrialPool
from jhpo.schedulers import Scheduler
from jhpo.schedulers.driver import SchedulerDriver
from jhpo.searchers.base import Searcher
from jhpo.space import Space


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
    workers: int = 1,
    backend: str = "local",
    worker_env: Callable[[int], Mapping[str, str]] | None = None,
    resources_per_trial: Mapping[str, Any] | None = None,
    synchronous: bool = False,
    batch_size: int | None = None,
    trial_timeout_s: float | None = None,
    initial_configs: Sequence[Mapping[str, Any]] | None = None,
    callbacks: Sequence[Any] | None = None,
) -> Result:
    """Minimise (or maximise) ``objective`` over ``space``.

    The objective takes a plain dict and returns a number or a dict of metrics (then
    ``metric`` names the one to optimise). With a list of metrics (and of modes) the run
    has several objectives and its answer is ``Result.pareto_front()``. ``constraints``
    names metrics that must be > 0 for a trial to be feasible; an infeasible trial never
    becomes the best. A trial that raises or returns NaN/inf is
    recorded as failed and the run goes on.

    The budget is ``num_trials`` (trials recorded), ``max_wallclock_s`` (no trial starts
    after this many seconds of this call; running trials finish), or both: whichever ends
    first.

    With ``run_dir`` every finished trial is appended to ``run_dir/trials.jsonl``, and
    calling ``tune`` again with the same ``run_dir`` resumes: finished trials are
    reloaded, none is run twice, trials the run was killed in run again under their ids,
    and the searcher's state is that of the run before the kill (each ask is replayed
    between the tells it followed). A second ``tune`` on a ``run_dir`` in use fails at once.

    An objective with a ``report`` parameter is called as ``objective(config,
    report=report)`` and may call ``report(resource, metrics)`` after each epoch; every
    report is appended to ``run_dir/reports.jsonl``. With a ``scheduler`` ("asha",
    "hyperband", "median" or a :class:`Scheduler`) a report may end the trial early:
    ``report`` then raises and the trial is recorded as stopped, with its last value.

    Parallel trials: ``workers=k`` runs up to k trials at once, asynchronously: whenever a
    worker is free the searcher is asked for a configuration, with every running trial
    pending (BO's constant liar stands in for their values), and each finished trial is
    told at once. With ``backend="local"`` the workers are k long-lived processes on this
    machine (fresh interpreters; the objective is sent with cloudpickle, so closures and
    functions of ``__main__`` work); ``worker_env(i)`` gives worker ``i`` its environment
    from its start, before anything imports JAX (``lambda i: {"CUDA_VISIBLE_DEVICES":
    str(i)}`` gives each worker its own GPU). With ``backend="ray"`` each trial is a Ray
    task on the cluster ``ray.init`` connected to (when Ray is not initialised, ``ray.init()``
    is called: it joins the cluster named by ``RAY_ADDRESS``, else starts a local one, shut
    down at the end); ``resources_per_trial`` (``{"num_gpus": 1}``) passes to the task's
    options. Reports travel to this process, which alone owns the searcher, the scheduler
    and the run directory, and answers each with go on or stop. ``workers=1`` with the
    local backend runs trials in this process, one after another.

    Reproducibility: a sequential run is reproduced exactly by its seed. An asynchronous
    run is not: which trials are pending at each ask depends on timing. Each ask records
    them (``pending`` in ``asks.jsonl``), and a resume replays the asks as they happened.
    ``synchronous=True`` runs rounds of ``batch_size`` trials (default 8,
    ``jhpo.runs.workers.SYNCHRONOUS_BATCH_SIZE``): each round is asked in one call, run on
    the workers, and told in trial-id order once all of it finished, so the configurations
    are the same, bit for bit, for any number of workers and any timing (for a
    deterministic objective), and the first n trials of a run are those of any longer run.
    The batch size, not the worker count, shapes the sequence: keep it when comparing runs
    on different machines. A scheduler's decisions depend on the order reports arrive, so
    ``synchronous=True`` refuses a scheduler. A round's finished trials are recorded
    together at its end, so a killed driver runs the whole round again.

    Faults: a worker process that dies mid-trial (SIGKILL, out of memory, a lost Ray
    node) gets its trial recorded as failed with the reason; a fresh worker takes its
    slot and the run goes on. ``trial_timeout_s`` ends a trial running longer than that
    (its worker is killed; recorded as failed); since only a process can be ended from
    outside, it runs trials in a worker process even with ``workers=1``.

    With ``fail_fast`` (the default), a run whose first three trials all raise the same
    exception stops and raises it: that is a bug in the objective or the settings (a
    misspelt ``metric``), not bad luck. At the end of a run with failed trials, one
    warning under the ``jhpo`` logger counts them by error.

    ``initial_configs`` are configurations (plain dicts, as the space gives them) to
    evaluate first, before the searcher proposes any; the searcher is told their results
    like any others. ``callbacks`` are objects with some of ``on_trial_start``,
    ``on_report``, ``on_trial_end`` and ``on_run_end`` (see :mod:`jhpo.callbacks`).
    Ctrl-C stops the run cleanly: the trials recorded so far are returned
    (``result.interrupted`` is set) with one warning saying how to resume.
    """
    if num_trials is None and max_wallclock_s is None:
        raise ValueError("give a budget: num_trials, max_wallclock_s, or both")
    if num_trials is not None and (not isinstance(num_trials, numbers.Integral) or num_trials < 1):
        raise ValueError(f"num_trials={num_trials!r} must be a positive integer")
    if max_wallclock_s is not None and not max_wallclock_s > 0:
        raise ValueError(f"max_wallclock_s={max_wallclock_s!r} must be positive")
    parallel = Parallel.from_arguments(workers, backend, worker_env, resources_per_trial,
                                       synchronous, batch_size, trial_timeout_s)
    if parallel.batch_size is not None and scheduler is not None:
        name = getattr(scheduler, "name", scheduler)
        raise ValueError(f"synchronous=True cannot take scheduler={name!r}: its stop decisions "
                         "depend on the order reports arrive, which no round can fix; run the "
                         "scheduler asynchronously")
    goal = Goal.from_arguments(metric, mode, constraints,
                               cost=(searcher_options or {}).get("cost_aware", False))
    scheduling = _scheduling(scheduler, scheduler_options, objective, seed, goal)
    if scheduling is not None:
        levels = scheduling.scheduler.levels
        goal = goal._replace(fidelity=fidelity_range(searcher, searcher_options, levels[0], levels[-1]))
    optimizer = Optimizer(space, searcher, goal=goal, seed=seed, searcher_options=searcher_options)
    initial_configs = list(initial_configs or [])
    initial_rows = given_rows(optimizer.space, initial_configs)
    callbacks = Callbacks(callbacks)
    meta = run_meta(optimizer.space, searcher, goal, seed,
                    searcher_options=dict(searcher_options or {}),
                    scheduler=None if scheduling is None else scheduling.scheduler.name,
                    scheduler_options=dict(scheduler_options or {}),
                    parallel=parallel.describe())
    with opened_run(run_dir, meta, IDENTITY_KEYS) as (directory, meta):
        resumed = resume(optimizer, directory)
        result = Result.from_meta(resumed.trials, meta)
        replay_reports(scheduling, directory, result.trials, goal)
        deadline = None if max_wallclock_s is None else time.monotonic() + max_wallclock_s
        budget = Budget(num_trials, deadline)
        with progress_bar(total=num_trials, enabled=progress, initial=len(result.trials)) as bar:
            def show(trial: Trial) -> None:
                bar.update(1)
                bar.set_failures(len(result.failed))
                bar.set_postfix_str(result.summary_line())

            run = BlackBoxRun(objective, optimizer, scheduling, directory, result, resumed, seed,
                              fail_fast=fail_fast, on_record=show, callbacks=callbacks,
                              initial=(initial_configs, initial_rows))
            slots = budget.room(len(result.trials), parallel.workers)  # no idle workers
            if slots:
                with stopped_by_interrupt(result, directory):
                    with parallel.pool(objective, run.judge, run.reports, slots) as pool:
                        run.run(pool, budget, parallel)
    log_failures(result)
    callbacks.run_end(result)
    return result


def given_rows(space: Space, configs: Sequence[Mapping[str, Any]] | None) -> np.ndarray:
    """The unit-cube rows of ``initial_configs``; a configuration the space cannot hold is
    an error naming its index."""
    rows = []
    for index, config in enumerate(configs or []):
        try:
            rows.append(np.asarray(space.from_configs([config])[0], np.float32))
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"initial_configs[{index}] is not a configuration of the space: "
                             f"{error}") from None
    return np.stack(rows) if rows else np.zeros((0, space.dim), np.float32)


class Budget(NamedTuple):
    num_trials: int | None
    deadline: float | None  # time.monotonic() after which no trial starts

    def room(self, trials: int, wanted: int) -> int:
        """How many of ``wanted`` more trials may start when ``trials`` are recorded or
        running."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return 0
        return wanted if self.num_trials is None else max(0, min(wanted, self.num_trials - trials))


# The first trials' identical exception, when every one raised it, is a bug in the
# objective or the settings (a misspelt metric), not bad luck.
FAIL_FAST_TRIALS = 3


class Running(NamedTuple):
    """A trial on a worker."""

    trial_id: int
    row: np.ndarray
    config: dict
    reporter: Reporter | None
    start_time: float  # time.time() it was handed over, then started; recorded if it is lost
    started: float | None  # time.monotonic() it began on its worker, for trial_timeout_s


class BlackBoxRun:
    """The trials of one ``tune`` call: asks (or runs again what a kill interrupted),
    starts trials on a pool, answers their reports, tells and records them."""

    def __init__(self, objective, optimizer: Optimizer, scheduling: SchedulerDriver | None,
                 directory: RunDirectory | None, result: Result, resumed: Resumed, seed: int,
                 fail_fast: bool = True, on_record: Callable[[Trial], None] | None = None,
                 callbacks: Callbacks | None = None,
                 initial: tuple[list[dict], np.ndarray] | None = None):
        self.optimizer, self.goal = optimizer, optimizer.goal
        self.scheduling, self.directory, self.result, self.seed = scheduling, directory, result, seed
        self.fail_fast, self.on_record = fail_fast, on_record
        self.in_flight = list(resumed.in_flight)
        self.untold = {trial_id for trial_id, _ in resumed.in_flight}  # asked, not yet told
        self.next_trial_id = resumed.next_trial_id
        self.reports = takes_report(objective)
        self.running: dict[int, Running] = {}
        self.callbacks = callbacks or Callbacks([])
        # initial configurations not yet run (a resumed run skips those it gave before),
        # run with the values given, their rows told to the searcher
        given_before = sum(len(ask.trial_ids) for ask in resumed.asks if ask.given)
        configs, rows = initial if initial is not None else ([], [])
        self.initial = list(zip(configs, rows))[given_before:]
        self.given_configs: dict[int, dict] = {}

    def next_rows(self, count: int) -> list[tuple[int, np.ndarray]]:
        """Up to ``count`` trials a kill interrupted, else ``count`` new ones asked in one
        call of the searcher (recorded before they start, with the trials pending)."""
        if self.in_flight:  # asked before a kill and never recorded: run them again
            taken, self.in_flight = self.in_flight[:count], self.in_flight[count:]
            return taken
        given = bool(self.initial)
        if given:  # the user's initial configurations come first, as given
            count = min(count, len(self.initial))
            taken, self.initial = self.initial[:count], self.initial[count:]
            rows = np.stack([row for _, row in taken])
            self.given_configs.update(zip(range(self.next_trial_id, self.next_trial_id + count),
                                          (dict(config) for config, _ in taken)))
        trial_ids = list(range(self.next_trial_id, self.next_trial_id + count))
        self.next_trial_id += count
        num_told, pending = self.optimizer.num_told, sorted(self.untold)
        if not given:
            rows = np.asarray(self.optimizer.ask_rows(count)[0])
        if self.directory is not None:
            self.directory.append_ask(AskRecord(trial_ids, rows.tolist(), num_told, pending, given))
        self.untold.update(trial_ids)
        return list(zip(trial_ids, rows))

    def start(self, pool: TrialPool, trials: Sequence[tuple[int, np.ndarray]]) -> None:
        """Start ``trials`` (id and row each) on free slots of ``pool``."""
        for trial_id, row in trials:
            config = self.given_configs.pop(trial_id, None) or self.optimizer.space.to_configs(
                row[None])[0]
            if self.scheduling is not None:
                self.scheduling.start(trial_id)
            reporter = (Reporter(trial_id, self.goal, self.scheduling, self.directory)
                        if self.reports else None)
            self.running[trial_id] = Running(trial_id, row, config, reporter, time.time(), None)
            self.callbacks.trial_start(trial_id, config)
            pool.start(trial_id, config)

    def judge(self, trial_id: int, resource, metrics) -> BaseException | None:
        """The answer to a report of a trial running on a worker: None to go on, else the
        exception its ``report`` raises."""
        reporter = self.running[trial_id].reporter
        try:
            answer = reporter.judge(resource, metrics)
        except Exception as error:  # noqa: BLE001 - raised inside the objective, as in-process
            return error
        if reporter.last_resource == resource:  # a report read and recorded
            self.callbacks.report(trial_id, reporter.last_resource, reporter.last_metrics)
        return answer

    def settle(self, event: Finished | Lost) -> tuple[Running, dict]:
        """The running trial an event ends, and ``make_trial``'s arguments for it."""
        running = self.running.pop(event.trial_id)
        if isinstance(event, Finished):
            return running, outcome_of(event.called, self.goal, running.reporter)
        return running, lost_outcome(event.reason, running.start_time, running.reporter)

    def finish(self, ended: Sequence[tuple[Running, dict]]) -> None:
        """Tell the searcher the ended trials and record them, in this order. One row per
        tell keeps the searcher's shapes, and so its compiled functions, the same."""
        recorded_before = len(self.result.trials)
        for running, outcome in ended:
            trial = make_trial(self.goal, trial_id=running.trial_id, row=running.row,
                               config=running.config, seed=self.seed, **outcome)
            self.optimizer.tell_rows(running.row[None], [self.optimizer.told_row(trial)])
            self.untold.discard(trial.trial_id)
            self.result.trials.append(trial)
            if self.directory is not None:
                self.directory.append(trial)
            if self.on_record is not None:
                self.on_record(trial)
            self.callbacks.trial_end(trial)
        if self.fail_fast and recorded_before < FAIL_FAST_TRIALS <= len(self.result.trials):
            check_systematic_failure(self.result.trials[:FAIL_FAST_TRIALS])

    def run(self, pool: TrialPool, budget: Budget, parallel: Parallel) -> None:
        if parallel.batch_size is None:
            self.run_asynchronously(pool, budget, parallel.trial_timeout_s)
        else:
            self.run_rounds(pool, budget, parallel.batch_size, parallel.trial_timeout_s)

    def run_asynchronously(self, pool: TrialPool, budget: Budget, timeout_s: float | None) -> None:
        """Give every free slot a newly asked trial (one ask each, with the running trials
        pending); tell each trial as it ends."""
        while True:
            free = budget.room(len(self.result.trials) + len(self.running),
                               pool.slots - len(self.running))
            for _ in range(free):
                self.start(pool, self.next_rows(1))
            if not self.running:
                return
            self.finish([self.settle(event) for event in self.events(pool, timeout_s)])

    def run_rounds(self, pool: TrialPool, budget: Budget, batch_size: int,
                   timeout_s: float | None) -> None:
        """Rounds of ``batch_size`` trials asked together, told in trial-id order once the
        whole round has ended. A round is always asked whole, so the asks do not depend on
        the budget either: trials past it stay asked, and a resume with a larger budget
        runs them first, as the longer run would have."""
        while count := budget.room(len(self.result.trials), batch_size):
            waiting = self.next_rows(batch_size)
            waiting, self.in_flight = waiting[:count], waiting[count:] + self.in_flight
            ended: dict[int, tuple[Running, dict]] = {}
            while waiting or self.running:
                free = pool.slots - len(self.running)
                if free > 0 and waiting:
                    self.start(pool, waiting[:free])
                    waiting = waiting[free:]
                for event in self.events(pool, timeout_s):
                    ended[event.trial_id] = self.settle(event)
            self.finish([ended[trial_id] for trial_id in sorted(ended)])

    def events(self, pool: TrialPool, timeout_s: float | None) -> list[Finished | Lost]:
        """The trials that ended next: as the pool tells, or ended for running longer than
        ``timeout_s`` since they started on their worker."""
        starts = [r.started for r in self.running.values() if r.started is not None]
        wait_s = None if timeout_s is None or not starts else max(
            0.0, min(starts) + timeout_s - time.monotonic())
        ended = []
        for event in pool.wait(wait_s):
            if isinstance(event, Started):
                if event.trial_id in self.running:  # Ray may tell it after the end
                    self.running[event.trial_id] = self.running[event.trial_id]._replace(
                        start_time=time.time(), started=time.monotonic())
            else:
                ended.append(event)
        if timeout_s is None:
            return ended
        now, gone = time.monotonic(), {event.trial_id for event in ended}
        overdue = [r.trial_id for r in self.running.values() if r.trial_id not in gone
                   and r.started is not None and now - r.started > timeout_s]
        return ended + [pool.end(trial_id, f"ran longer than trial_timeout_s={timeout_s:g}; "
                                           "its worker was killed") for trial_id in overdue]


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
