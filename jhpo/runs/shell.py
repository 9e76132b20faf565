"""What every run shares: its meta, the one builder of a ``Trial``, and resuming.

``tune`` and ``tune_population`` both describe a run the same way in ``meta.json``, record
trials through :func:`make_trial`, and resume by replaying the recorded asks and tells on
a fresh :class:`jhpo.runs.optimizer.Optimizer` (see :meth:`Optimizer.replay`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jhpo import multihost
from jhpo.checkpoint import fingerprint_of
from jhpo.goal import Goal
from jhpo.lock import RunLock
from jhpo.runs.directory import ReplicaDirectory, RunDirectory, read_json_lines
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.records import COMPLETED, FAILED, AskRecord, Result, Trial, clean_metrics
from jhpo.schedulers.driver import SchedulerDriver
from jhpo.searchers.base import Searcher
from jhpo.space import Space

# Searchers keep the values they are told in float32: a larger magnitude would become
# infinite there, which reads as a failed trial, so such a trial is recorded failed, saying why.
FLOAT32_MAX = float(np.finfo(np.float32).max)

# The meta fields that must match for a resume: another space or seed would mix two runs.
IDENTITY_KEYS = ("space", "searcher", "searcher_options", "scheduler", "scheduler_options",
                 "metric", "mode", "constraints", "seed")
POPULATION_IDENTITY_KEYS = IDENTITY_KEYS + ("task", "steps", "population_size")


def run_fingerprint(meta: Mapping, identity_keys: Sequence[str]) -> str:
    """The fingerprint of a run's identity, stored with its checkpoints."""
    return fingerprint_of({key: meta.get(key) for key in identity_keys})


def run_meta(space: Space, searcher: str | Searcher, goal: Goal, seed: int, **extra) -> dict:
    name = searcher if isinstance(searcher, str) else "custom"
    return {"space": space.describe(), "searcher": name, **goal.describe(), "seed": seed, **extra}


@contextlib.contextmanager
def opened_run(run_dir, meta: dict, identity_keys: Sequence[str]):
    """The run directory, for the life of a run: locked against a second writer, created
    or checked against ``meta``, and repaired for appending. Yields (directory, meta on
    disk); (None, meta) without ``run_dir``. A directory that cannot be written fails
    here, before any trial runs.

    In a run over several processes only process 0 opens, locks and writes the directory
    (the lock keeps out another run, whose process 0 fails to take it); the others get a
    :class:`ReplicaDirectory` holding the meta, trials and asks process 0 read, so every
    process resumes from the same records, and a failure to open on process 0 stops
    every process."""
    if run_dir is None:
        yield None, meta
        return
    if multihost.process_count() == 1:
        with _locked(RunDirectory(run_dir), meta, identity_keys) as opened:
            yield opened
        return
    with contextlib.ExitStack() as stack:
        def open_on_writer():
            directory, stored = stack.enter_context(_locked(RunDirectory(run_dir), meta, identity_keys))
            return {"meta": stored,
                    "trials": read_json_lines(directory.trials_path).records,
                    "asks": read_json_lines(directory.asks_path).records}

        snapshot = multihost.on_writer(open_on_writer)
        directory = RunDirectory(run_dir) if multihost.is_writer() else ReplicaDirectory(run_dir, snapshot)
        yield directory, snapshot["meta"]


@contextlib.contextmanager
def _locked(directory: RunDirectory, meta: dict, identity_keys: Sequence[str]):
    try:
        lock = RunLock(directory.path).acquire()
    except (PermissionError, FileExistsError, NotADirectoryError) as error:
        raise type(error)(f"run_dir {str(directory.path)!r} cannot be written ({error.strerror}); "
                          "a run records its trials there") from None
    try:
        meta = directory.start(meta, identity_keys=identity_keys)
        directory.repair()
        yield directory, meta
    finally:
        lock.release()


@contextlib.contextmanager
def stopped_by_interrupt(result: Result, directory: RunDirectory | None):
    """Ctrl-C ends the run cleanly: ``result`` keeps the trials recorded so far and is
    marked ``interrupted``, and one warning says how many and how to resume."""
    try:
        yield
    except KeyboardInterrupt:
        result.interrupted = True
        where = (f" in {str(directory.path)!r}; call again with the same run_dir to resume"
                 if directory is not None else "; without run_dir they cannot be resumed")
        logging.getLogger("jhpo").warning(f"interrupted: {len(result.trials)} trials recorded{where}")


def fidelity_range(searcher, searcher_options: Mapping[str, Any] | None, min_resource: float,
                   max_resource: float) -> tuple[float, float] | None:
    """The goal's ``fidelity`` under a rung scheduler: the ``bo`` searcher learns from every
    rung unless ``searcher_options`` say ``multi_fidelity=False``; other searchers don't model,
    and a single rung has nothing to tell apart."""
    wanted = (searcher_options or {}).get("multi_fidelity", True)
    if searcher != "bo" or not wanted or not 0 < min_resource < max_resource:
        return None
    return (float(min_resource), float(max_resource))


def make_trial(goal: Goal, *, trial_id: int, row, config: Mapping, seed: int, status: str,
               metrics: Mapping, error: str | None, start_time: float, end_time: float,
               resource: float | None = None, parent_id: int | None = None,
               start_resource: float | None = None) -> Trial:
    """The record of a finished trial. Its value (and feasibility) is read from
    ``metrics`` through ``goal``, unless the trial failed; a non-finite objective or
    constraint makes a completed trial failed."""
    nan = [math.nan] * len(goal.metrics)
    values, feasible = nan, None
    if status != FAILED:
        _, objective_values, constraint_values = goal.read(metrics)
        named = list(zip(list(goal.metrics) + list(goal.constraints),
                         objective_values + constraint_values))
        bad = [name for name, v in named if not math.isfinite(v)]
        huge = [name for name, v in named if math.isfinite(v) and abs(v) > FLOAT32_MAX]
        if bad:
            status, error = FAILED, (f"non-finite value of {', '.join(str(n) for n in bad)} "
                                     f"({objective_values + constraint_values})")
        elif huge:
            status, error = FAILED, (
                f"value of {', '.join(str(n) for n in huge)} ({objective_values + constraint_values}) "
                f"is beyond what searchers hold (float32: magnitudes below {FLOAT32_MAX:.3g}); "
                "rescale the metric")
        else:
            values, feasible = objective_values, goal.feasibility(constraint_values)
    return Trial(trial_id=trial_id, config=dict(config), metrics=clean_metrics(dict(metrics)),
                 value=goal.value_record(values), status=status,
                 error=None if status == COMPLETED else error, start_time=start_time,
                 end_time=end_time, seed=seed, row=np.asarray(row, np.float32).tolist(),
                 resource=resource, feasible=feasible, parent_id=parent_id,
                 start_resource=start_resource)


class Resumed(NamedTuple):
    """What a black-box run finds in its directory: the trials recorded (in the order
    they were told), the trials asked but never recorded (id and row, to run again), the
    id the next new trial takes, and the asks recorded."""

    trials: list[Trial]
    in_flight: list[tuple[int, np.ndarray]]
    next_trial_id: int
    asks: Sequence[AskRecord] = ()


def resume(optimizer: Optimizer, directory: RunDirectory | None) -> Resumed:
    """Rebuild ``optimizer`` from the run's records and say what is left to run."""
    if directory is None:
        return Resumed([], [], 0)
    trials = directory.read_trials()
    check_seeds(trials, optimizer.seed, directory)
    asks = directory.read_asks()
    asked = {trial_id: row for ask in asks for trial_id, row in zip(ask.trial_ids, ask.rows)}
    never_asked = [t.trial_id for t in trials if t.trial_id not in asked]
    if asks and never_asked:
        raise ValueError(f"{directory.trials_path}: trial {never_asked[0]} was never asked "
                         f"(no line of {directory.asks_path.name} proposed it); the directory "
                         "was edited or mixes two runs")
    if not asks:  # written before asks were recorded: tell in trial order
        trials = sorted(trials, key=lambda t: t.trial_id)
        optimizer.tell_trials(trials)
        return Resumed(trials, [], trials[-1].trial_id + 1 if trials else 0)
    if not optimizer.replay(asks, trials):
        warnings.warn(f"{directory.path}: replaying the recorded asks proposed other "
                      "configurations than recorded (another machine or JAX version?); the "
                      "run goes on from its records, but not as the uninterrupted run would",
                      stacklevel=3)
    recorded = {t.trial_id for t in trials}
    in_flight = sorted((i, np.asarray(row, np.float32)) for i, row in asked.items()
                       if i not in recorded)
    return Resumed(trials, in_flight, max(asked) + 1, asks)


def check_seeds(trials: Sequence[Trial], seed: int, directory: RunDirectory) -> None:
    """Records made with another seed belong to another run."""
    other = next((t for t in trials if t.seed != seed), None)
    if other is not None:
        raise ValueError(f"{directory.trials_path}: trial {other.trial_id} was run with "
                         f"seed={other.seed}, this run has seed={seed}; the directory mixes runs")


def replay_reports(driver: SchedulerDriver | None, directory: RunDirectory | None,
                   trials: Sequence[Trial], goal: Goal) -> None:
    """Rebuild the scheduler's state from the reports of finished trials, in the order
    they were made, so decisions after a resume match an uninterrupted run. The reports
    of trials that never finished are dropped from the file, since a resumed run
    evaluates those trials again from the start."""
    if directory is None:
        return
    finished = {t.trial_id for t in trials}
    directory.keep_reports(lambda index, report: report.get("trial_id") in finished)
    if driver is None:
        return
    started = set()
    for report in directory.read_reports():
        trial_id = report["trial_id"]
        if trial_id not in started:
            driver.start(trial_id)
            started.add(trial_id)
        _, values, _ = goal.read(report["metrics"])
        if all(map(math.isfinite, values)) and report["resource"] <= driver.max_resource:
            driver.goes_on(trial_id, report["resource"], goal.signs * values)
