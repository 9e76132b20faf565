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

import logging
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jhpo import schedulers as schedulers_module
from jhpo.callbacks import Callbacks
from jhpo.goal import Goal
from jhpo.progress import progress_bar
from jhpo.runs.blackbox_run import BlackBoxRun, Budget
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.parallel import Parallel
from jhpo.runs.records import Result, Trial
from jhpo.runs.reporter import takes_report
from jhpo.runs.shell import (
    IDENTITY_KEYS,
    fidelity_range,
    opened_run,
    replay_reports,
    resume,
    run_meta,
    stopped_by_interrupt,
)
from jhpo.schedulers import Scheduler
from jhpo.schedulers.driver import SchedulerDriver
from jhpo.searchers.base import Searcher
from jhpo.space import Space


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
    ``jhpo.runs.parallel.SYNCHRONOUS_BATCH_SIZE``): each round is asked in one call, run on
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
