"""``tune_population``: the tuning loop in population mode.

Each round asks the searcher for a population's worth of configurations,
trains them together as one compiled program (``jhpo.population.train``),
tells the results and records one trial per member, exactly as ``jhpo.tune``
records its trials (same ``meta.json`` and ``trials.jsonl``, same resume).

A population runs as a whole, so a killed run loses the population in
flight. Before training, its configurations are written to
``run_dir/population.json``; a resume trains that population again from
those configurations (members are deterministic given configuration and
seed) and records the members that were not recorded yet.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jhpo import population as pop
from jhpo.goal import Goal
from jhpo.population_scheduling import SCHEDULERS, check_scheduler_options, run_scheduled
from jhpo.progress import progress_bar
from jhpo.results import COMPLETED, FAILED, Result, RunDirectory, Trial, clean_metrics
from jhpo.searchers import Searcher
from jhpo.space import Choice, Int, Ordinal, Space
from jhpo.tuner import IDENTITY_KEYS, Optimizer, fidelity_range, resume, run_meta, searcher_row_of

POPULATION_FILE = "population.json"
POPULATION_IDENTITY_KEYS = IDENTITY_KEYS + ("task", "steps", "population_size")


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
        return pop.next_power_of_two(domain.hi)
    if isinstance(domain, (Choice, Ordinal)) and all(isinstance(v, numbers.Integral) for v in domain.values):
        return pop.next_power_of_two(max(domain.values))
    return None


class _PopulationFile:
    """The configurations of the population in flight, so a resume can restart it."""

    def __init__(self, directory: RunDirectory | None):
        self.path = None if directory is None else directory.path / POPULATION_FILE

    def save(self, first_trial_id: int, rows, configs: Sequence[dict]) -> None:
        if self.path is None:
            return
        record = {"first_trial_id": first_trial_id, "rows": np.asarray(rows).tolist(), "configs": list(configs)}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record, default=repr))
        temporary.replace(self.path)

    def load(self) -> tuple[int, np.ndarray, list[dict]] | None:
        if self.path is None or not self.path.exists():
            return None
        record = json.loads(self.path.read_text())
        return record["first_trial_id"], np.asarray(record["rows"], np.float32), record["configs"]

    def clear(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()


TRAIN_LOSS = "train_loss"


def task_metric_names(task: pop.Task) -> list[str]:
    """The metrics a trial of ``task`` records: evaluate's (found by tracing, not
    running, init and evaluate at the default hyperparameters) and the training loss."""
    hp = {name: column[0] for name, column in pop.stack_hparams(task, [{}]).items()}
    shapes = jax.eval_shape(lambda key: task.evaluate(task.init(key, hp), hp, task.data), jax.random.key(0))
    return sorted([*shapes, TRAIN_LOSS])


def _check_goal_metrics(task: pop.Task, goal: Goal) -> None:
    available = task_metric_names(task)
    for name in goal.metrics + goal.constraints:
        if name not in available:
            raise ValueError(f"metric {name!r} is not reported by task {task.name!r}; it reports {available}")


def _member_outcome(goal: Goal, metrics: dict) -> tuple[Any, str, str | None, bool | None]:
    """A trained member's (value record, status, error, feasible), as ``jhpo.tune`` records a trial."""
    _, values, constraint_values = goal.read(metrics)
    names = list(goal.metrics) + list(goal.constraints)
    bad = [name for name, v in zip(names, values + constraint_values) if not math.isfinite(v)]
    if bad:
        nan = [math.nan] * len(values)
        return goal.value_record(nan), FAILED, f"{', '.join(bad)} not finite", None
    return goal.value_record(values), COMPLETED, None, goal.feasibility(constraint_values)


def _member_trials(goal: Goal, outcome: pop.PopulationResult, configs, rows, first_trial_id, seed, steps, start, end):
    tail = max(1, steps // 10)
    trials = []
    for index, config in enumerate(configs):
        losses = outcome.losses[index]
        feasible = None
        if outcome.failed[index]:
            failed_step = int(outcome.failed_step[index])
            metrics = {"failed_step": failed_step}
            value, status, resource = goal.value_record([math.nan] * len(goal.metrics)), FAILED, failed_step
            error = f"training diverged: non-finite loss or parameters at step {failed_step}"
        else:
            metrics = {name: values[index].item() for name, values in outcome.metrics.items()}
            # The last tenth of the steps, averaged: one minibatch's loss is noisy.
            metrics[TRAIN_LOSS] = float(np.mean(losses[-tail:]))
            value, status, error, feasible = _member_outcome(goal, metrics)
            resource = steps
        trials.append(
            Trial(
                trial_id=first_trial_id + index,
                config=dict(config),
                metrics=clean_metrics(metrics),
                value=value,
                status=status,
                error=error,
                start_time=start,
                end_time=end,
                seed=seed,
                row=np.asarray(rows[index]).tolist(),
                resource=resource,
                feasible=feasible,
            )
        )
    return trials


def _scheduled_fidelity(scheduler, options, steps, searcher, searcher_options):
    """The resource range a multi-fidelity searcher is told about, in steps: from the
    first rung a rung scheduler judges to the full training. PBT has no rungs."""
    if scheduler not in ("asha", "hyperband", "median"):
        return None
    interval = check_scheduler_options(scheduler, options, steps)
    first_rung = interval * (options.get("grace_intervals", 1) if scheduler == "median" else 1)
    return fidelity_range(searcher, searcher_options, first_rung, steps)


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
    scheduler: str | None = None,
    scheduler_options: Mapping[str, Any] | None = None,
    max_member_steps: int | None = None,
) -> Result:
    """Optimise ``task``'s metric(s) over ``space``, ``population_size`` trials at a time.

    ``metric``, ``mode`` and ``constraints`` are those of ``jhpo.tune``: the
    name, or a list of names for several objectives (the answer is then
    ``Result.pareto_front()``), of metrics the task's evaluation reports (or
    ``"train_loss"``), default ``task.metric``; "min" or "max" for each; and
    metrics that must be > 0 for a trial to be feasible.

    Every trial trains for ``steps`` steps; trial ``i`` uses the PRNG key
    ``fold_in(key(seed), i)``, so its result does not depend on which
    population it ran in. A member whose training diverges is recorded as
    failed and told to the searcher as such. ``max_batch_size`` defaults to
    the space's largest ``batch_size`` (see ``largest_batch_size``);
    ``batch_strategy``, ``chunk_size`` and ``devices`` are passed to
    ``jhpo.population.train``. Returns the run's ``Result``; with ``run_dir``,
    calling again with the same arguments resumes.

    ``scheduler`` ("asha", "hyperband", "median" or "pbt") trains ``population_size``
    slots together and decides every ``scheduler_options["interval"]`` steps who goes on,
    who stops (its slot refilled from the searcher) and, for PBT, who copies whom; see
    :mod:`jhpo.population_scheduling`. PBT starts ``population_size`` members and ignores
    ``num_trials``; its copies are recorded as new trials with a ``parent_id``. With a
    scheduler, ``max_member_steps`` caps the compute: no trial starts once that many
    member-steps were trained.
    """
    population_size = _positive_int("population_size", population_size)
    num_trials = _positive_int("num_trials", num_trials)
    steps = _positive_int("steps", steps)
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler={scheduler!r} is not one of {list(SCHEDULERS)} or None")
    if scheduler is None and (scheduler_options or max_member_steps is not None):
        raise ValueError("scheduler_options and max_member_steps need a scheduler")
    goal = Goal.from_arguments(task.metric if metric is None else metric, mode, constraints,
                               cost=(searcher_options or {}).get("cost_aware", False))
    _check_goal_metrics(task, goal)
    goal = goal._replace(fidelity=_scheduled_fidelity(scheduler, dict(scheduler_options or {}), steps,
                                                      searcher, searcher_options))
    optimizer = Optimizer.for_goal(space, searcher, goal, seed=seed, searcher_options=searcher_options)
    if max_batch_size is None:
        max_batch_size = largest_batch_size(optimizer.space)
    meta = run_meta(
        optimizer.space,
        searcher,
        goal,
        seed,
        searcher_options=dict(searcher_options or {}),
        scheduler=scheduler,
        scheduler_options=dict(scheduler_options or {}),
        task=task.name,
        steps=steps,
        population_size=population_size,
    )
    directory = None
    if run_dir is not None:
        directory = RunDirectory(run_dir)
        meta = directory.start(meta, identity_keys=POPULATION_IDENTITY_KEYS)
    if scheduler is not None:
        stored = [] if directory is None else directory.load_trials(repair=True)
        result, _ = run_scheduled(
            task, optimizer.space, optimizer, goal, scheduler=scheduler,
            options=dict(scheduler_options or {}), population_size=population_size,
            num_trials=num_trials, steps=steps, seed=seed,
            max_batch_size=max_batch_size or pop.next_power_of_two(int(task.defaults["batch_size"])),
            devices=devices, directory=directory, result=Result.from_meta(stored, meta),
            progress=progress, max_member_steps=max_member_steps)
        return result
    result = Result.from_meta(resume(optimizer, directory), meta)
    in_flight = _PopulationFile(directory)
    restart = in_flight.load()
    recorded = {trial.trial_id for trial in result.trials}
    if restart is not None and all(restart[0] + i in recorded for i in range(len(restart[2]))):
        in_flight.clear()  # killed after recording the whole population
        restart = None
    block_steps = pop.steps_per_block(steps)

    with progress_bar(total=num_trials, enabled=progress, initial=len(result.trials), desc=task.name) as bar:
        while len(result.trials) < num_trials:
            if restart is not None:
                first_trial_id, rows, configs = restart
                restart = None
                optimizer.num_asked = max(optimizer.num_asked, first_trial_id + len(configs))
            else:
                first_trial_id = optimizer.num_asked
                rows, configs = optimizer.ask_rows(min(population_size, num_trials - len(result.trials)))
                in_flight.save(first_trial_id, rows, configs)

            def show_steps(done, total):
                bar.set_postfix_str(f"population step {done}/{total}, {result.summary_line()}")

            start = time.time()
            outcome = pop.train_configs(
                task,
                configs,
                pop.member_seeds(seed, len(configs), offset=first_trial_id),
                steps,
                max_batch_size=max_batch_size,
                batch_strategy=batch_strategy,
                chunk_size=chunk_size,
                devices=devices,
                block_steps=block_steps,
                on_block=show_steps,
                pad_to=population_size,
            )
            trials = _member_trials(goal, outcome, configs, rows, first_trial_id, seed, steps, start, time.time())
            recorded = {trial.trial_id for trial in result.trials}
            new = [(row, trial) for row, trial in zip(rows, trials) if trial.trial_id not in recorded]
            if new:
                optimizer.tell_rows(np.stack([row for row, _ in new]), [searcher_row_of(goal, t) for _, t in new])
            for _, trial in new:
                result.trials.append(trial)
                if directory is not None:
                    directory.append(trial)
            in_flight.clear()
            bar.update(len(new))
            bar.set_postfix_str(result.summary_line())
    return result
