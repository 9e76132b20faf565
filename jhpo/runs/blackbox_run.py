"""The trials of one ``tune`` call, driven on a pool: asked (or run again after a kill),
started, their reports answered, told and recorded, within a budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from jhpo.callbacks import Callbacks
from jhpo.runs.directory import RunDirectory
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.parallel import Parallel
from jhpo.runs.pools import Finished, Lost, Started, TrialPool
from jhpo.runs.records import FAILED, AskRecord, Result, Trial, error_headline
from jhpo.runs.reporter import Reporter, lost_outcome, outcome_of, takes_report
from jhpo.runs.shell import Resumed, make_trial
from jhpo.schedulers.driver import SchedulerDriver


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
