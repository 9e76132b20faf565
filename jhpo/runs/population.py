"""``tune_population``: many trials of one JAX task trained together.

A fixed number of slots train as one compiled program; each slot holds one trial at a
time, recorded exactly as ``jhpo.tune`` records its trials (same ``meta.json``,
``asks.jsonl``, ``trials.jsonl`` and ``reports.jsonl``). Without a scheduler nothing is
ever stopped: a population's worth of configurations is asked, trained, told and
recorded at a time. With one, trials are stopped, paused or copied between intervals and
their slots refilled. Both go through one loop, :mod:`jhpo.runs.population_loop`, and
resume the same way (:mod:`jhpo.runs.population_checkpoints`).

Over several hosts (``jax.distributed``) the same script runs on every host: the
population is sharded over every device of every process, every process runs the loop
with the same searcher and seed and takes the same decisions from the same gathered
metrics, and process 0 alone writes ``run_dir`` (see :mod:`jhpo.multihost`). Every
process returns the same ``Result``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax

from jhpo import multihost
from jhpo import population as pop
from jhpo.callbacks import Callbacks
from jhpo.goal import Goal
from jhpo.runs.blackbox import log_failures
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.population_loop import run_population
from jhpo.runs.population_slots import TRAIN_LOSS
from jhpo.runs.records import Result
from jhpo.runs.schedule import Schedule, schedule_for, unscheduled
from jhpo.runs.shell import (
    POPULATION_IDENTITY_KEYS,
    fidelity_range,
    opened_run,
    run_meta,
    stopped_by_interrupt,
)
from jhpo.schedulers import Scheduler
from jhpo.searchers import Searcher
from jhpo.searchers.base import next_power_of_two
from jhpo.space import Choice, Int, Ordinal, Space


def _positive_int(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return int(value)


def largest_batch_size(space: Space) -> int | None:
    """The largest ``batch_size`` the space can propose, rounded up to a power of two.

    Fixing the padded batch from the space (rather than from each population's
    largest member) lets every population of a run share one program.
    """
    domain = space.domains.get("batch_size")
    if isinstance(domain, Int):
        return next_power_of_two(domain.hi)
    if isinstance(domain, (Choice, Ordinal)) and all(isinstance(v, numbers.Integral) for v in domain.values):
        return next_power_of_two(max(domain.values))
    return None


def task_metric_names(task: pop.Task) -> list[str]:
    """The metrics a trial of ``task`` records: evaluate's (found by tracing one member,
    which checks the task, see ``jhpo.population.check_task``) and the training loss."""
    return sorted([*pop.check_task(task), TRAIN_LOSS])


def _check_goal_metrics(task: pop.Task, goal: Goal) -> None:
    available = task_metric_names(task)
    for name in goal.metrics + goal.constraints:
        if name not in available:
            raise ValueError(f"metric {name!r} is not reported by task {task.name!r}; it reports {available}")


def scheduled_fidelity(schedule: Schedule, steps: int, searcher, searcher_options):
    """The resource range a multi-fidelity searcher is told about, in steps: from the
    first rung a rung scheduler judges to the full training. PBT has no rungs."""
    if schedule.scheduler is None:
        return None
    return fidelity_range(searcher, searcher_options, schedule.scheduler.levels[0], steps)


def tune_population(
    task: pop.Task,
    space: Space | Mapping[str, Any],
    *,
    searcher: str | Searcher = "random",
    metric: str | Sequence[str] | None = None,
    mode: str | Sequence[str] = "min",
    constraints: Sequence[str] | None = None,
    population_size: int = 16,
    num_trials: int = 64,
    steps: int = 500,
    seed: int = 0,
    run_dir: str | None = None,
    progress: bool = True,
    searcher_options: Mapping[str, Any] | None = None,
    max_batch_size: int | None = None,
    batch_strategy: str = pop.DEFAULT_BATCH_STRATEGY,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    scheduler: str | Scheduler | None = None,
    scheduler_options: Mapping[str, Any] | None = None,
    max_member_steps: int | None = None,
    callbacks: Sequence[Any] | None = None,
) -> Result:
    """Optimise ``task``'s metric(s) over ``space``, ``population_size`` trials at a time.

    ``metric``, ``mode`` and ``constraints`` are those of ``jhpo.tune``: the
    name, or a list of names for several objectives (the answer is then
    ``Result.pareto_front()``), of metrics the task's evaluation reports (or
    ``"train_loss"``), default ``task.metric``; "min" or "max" for each; and
    metrics that must be > 0 for a trial to be feasible.

    Every trial trains for ``steps`` steps; trial ``i`` uses the PRNG key
    ``fold_in(key(seed), i)``, so its result does not depend on which
    population it ran in. A trial records the evaluation's metrics and ``train_loss``
    (the mean of its last tenth of training losses); a member whose training diverges is
    recorded as failed and told to the searcher as such. ``max_batch_size`` defaults to
    the space's largest ``batch_size`` (see ``largest_batch_size``); ``devices``
    (default: every device of every process) hold the population. Without a scheduler
    each population is trained by ``jhpo.population.train``, in pieces of ``chunk_size``
    members and grouped by ``batch_strategy``; with one, all slots are one program.
    Returns the run's ``Result``; with ``run_dir``, calling again with the same arguments
    resumes.

    After ``jax.distributed.initialize`` (see ``jhpo.multihost.initialize``) call it with
    the same arguments on every host: one population spans the devices of all of them,
    only process 0 writes ``run_dir`` and shows progress, and every process returns the
    same ``Result``. With a scheduler ``run_dir`` must be on a filesystem every host
    mounts, since each host writes its shards of the checkpoints.

    ``scheduler`` ("asha", "hyperband", "median", "pbt", or a :class:`Scheduler` whose
    levels are steps) trains ``population_size`` slots together and decides every
    ``scheduler_options["interval"]`` steps who goes on, who stops (its slot refilled from
    the searcher) and, for PBT, who copies whom; see :mod:`jhpo.runs.population_loop`. The
    options are those of ``jhpo.tune``'s schedulers, with the resource counted in steps
    (``min_resource``: the first rung, default one interval; ``max_resource``: always
    ``steps``; ``eta``; ``min_trials``), plus ``interval``, ``checkpoint_every``,
    ``form="promotion"`` (ASHA) and PBT's ``quantile`` and ``resample_probability``. PBT
    starts ``population_size`` members and ignores ``num_trials``; its copies are recorded as new trials with a ``parent_id``. With a
    scheduler, ``max_member_steps`` caps the compute: no trial starts once that many
    member-steps were trained.

    ``callbacks`` are objects with some of ``on_trial_start``, ``on_report``,
    ``on_trial_end`` and ``on_run_end`` (see :mod:`jhpo.callbacks`). Ctrl-C stops the run
    cleanly: the trials recorded so far are returned (``result.interrupted`` is set) with
    one warning saying how to resume.
    """
    progress = progress and multihost.is_writer()
    population_size = _positive_int("population_size", population_size)
    num_trials = _positive_int("num_trials", num_trials)
    steps = _positive_int("steps", steps)
    if scheduler is None and (scheduler_options or max_member_steps is not None):
        raise ValueError("scheduler_options and max_member_steps need a scheduler")
    if scheduler is not None and (chunk_size is not None or batch_strategy != pop.DEFAULT_BATCH_STRATEGY):
        raise ValueError(f"chunk_size={chunk_size!r} and batch_strategy={batch_strategy!r} need "
                         "every member to start and end with its population: without a scheduler "
                         "only (a scheduler trains all its slots in one program, masking batches)")
    schedule = unscheduled(steps) if scheduler is None else schedule_for(scheduler, scheduler_options or {}, steps)
    goal = Goal.from_arguments(task.metric if metric is None else metric, mode, constraints,
                               cost=(searcher_options or {}).get("cost_aware", False))
    _check_goal_metrics(task, goal)
    goal = goal._replace(fidelity=scheduled_fidelity(schedule, steps, searcher, searcher_options))
    optimizer = Optimizer(space, searcher, goal=goal, seed=seed, searcher_options=searcher_options)
    optimizer.space.require_float32("population training")
    if max_batch_size is None:
        max_batch_size = largest_batch_size(optimizer.space)
    meta = run_meta(
        optimizer.space,
        searcher,
        goal,
        seed,
        searcher_options=dict(searcher_options or {}),
        scheduler=schedule.name,
        scheduler_options=dict(scheduler_options or {}),
        task=task.name,
        steps=steps,
        population_size=population_size,
    )
    callbacks = Callbacks(callbacks)
    with opened_run(run_dir, meta, POPULATION_IDENTITY_KEYS) as (directory, meta):
        stored = [] if directory is None else directory.read_trials()
        result = Result.from_meta(stored, meta)
        with stopped_by_interrupt(result, directory):
            run_population(
                task, optimizer, goal, schedule, population_size=population_size,
                num_trials=num_trials, steps=steps, seed=seed, directory=directory,
                result=result, progress=progress,
                max_member_steps=max_member_steps, callbacks=callbacks,
                train_options={"max_batch_size": max_batch_size, "batch_strategy": batch_strategy,
                               "chunk_size": chunk_size, "devices": devices})
    log_failures(result)
    callbacks.run_end(result)
    return result

