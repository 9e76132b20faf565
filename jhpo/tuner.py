"""The imperative shell: ``Optimizer`` (ask/tell over plain dicts) and ``tune``."""

from __future__ import annotations

import inspect
import json
import math
import numbers
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jhpo import schedulers as schedulers_module
from jhpo import searchers as searchers_module
from jhpo.goal import Goal
from jhpo.progress import progress_bar
from jhpo.results import (
    COMPLETED,
    FAILED,
    STOPPED,
    Result,
    RunDirectory,
    Trial,
    clean_metrics,
)
from jhpo.schedulers import Scheduler, init_state
from jhpo.searchers.base import Searcher, capacity_for
from jhpo.space import Space

def _config_key(config: Mapping) -> str:
    return json.dumps(config, sort_keys=True, default=repr)


class Optimizer:
    """A stateful ask/tell loop for users who run trials themselves.

    >>> opt = Optimizer({"x": uniform(-5, 5)}, searcher="random", seed=0)
    >>> configs = opt.ask(4)
    >>> opt.tell(configs, [objective(c) for c in configs])

    ``mode`` is "min" or "max", or a list of them for several objectives (then each value
    told is a list); ``num_constraints`` constraint values (feasible when > 0) may be told
    beside the values. ``fidelity=(min_resource, max_resource)`` makes the ``bo`` searcher
    multi-fidelity: each result is told with the resource it was reached at. The key of
    each ask is derived from the number of trials asked before it, so a run rebuilt from
    its records (tell the finished trials, then ask) continues the sequence an
    uninterrupted run would have produced.
    """

    def __init__(
        self,
        space: Space | Mapping[str, Any],
        searcher: str | Searcher = "random",
        *,
        seed: int = 0,
        mode: str | Sequence[str] = "min",
        num_constraints: int = 0,
        searcher_options: Mapping[str, Any] | None = None,
        fidelity: tuple[float, float] | None = None,
    ):
        modes = list(mode) if isinstance(mode, (list, tuple)) else [mode]
        goal = Goal.from_arguments(
            [f"objective_{i}" for i in range(len(modes))] if len(modes) > 1 else None,
            modes, [f"constraint_{i}" for i in range(num_constraints)],
            cost=(searcher_options or {}).get("cost_aware", False), fidelity=fidelity)
        self._start(space, searcher, goal, seed, searcher_options)

    @classmethod
    def for_goal(cls, space: Space | Mapping[str, Any], searcher: str | Searcher, goal: Goal, *,
                 seed: int = 0, searcher_options: Mapping[str, Any] | None = None) -> Optimizer:
        """An optimizer for a run's ``goal``, whose metric and constraint names it keeps
        (``tune`` and ``tune_population`` read recorded trials through them)."""
        optimizer = cls.__new__(cls)
        optimizer._start(space, searcher, goal, seed, searcher_options)
        return optimizer

    def _start(self, space, searcher, goal: Goal, seed, searcher_options) -> None:
        self.space = space if isinstance(space, Space) else Space(space)
        self.goal = goal
        if not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed={seed!r} must be an integer")
        self.seed = int(seed)
        if isinstance(searcher, Searcher):
            self.searcher = searcher
        else:
            options = dict(searcher_options or {})
            if goal.is_multiobjective:
                options["num_objectives"] = len(goal.metrics)
            if goal.constraints:
                options["num_constraints"] = len(goal.constraints)
            if goal.fidelity is not None:
                if searcher != "bo":
                    raise ValueError(f"fidelity={goal.fidelity!r} needs searcher='bo', the one "
                                     f"multi-fidelity searcher, not {searcher!r}")
                options["multi_fidelity"] = True
            elif options.get("multi_fidelity"):
                raise ValueError("multi_fidelity=True needs the resource range: a rung scheduler "
                                 "(tune, tune_population) or Optimizer(fidelity=...)")
            self.searcher = searchers_module.make(searcher, self.space, **options)
        init_key, self._ask_key = jax.random.split(jax.random.key(self.seed))
        self.state = self.searcher.init(init_key)
        self.num_asked = 0
        self._pending_rows: dict[str, jax.Array] = {}

    @property
    def mode(self) -> str | list[str]:
        return self.goal.describe()["mode"]

    def ask_rows(self, n: int = 1) -> tuple[jax.Array, list[dict]]:
        """``n`` new rows and their configurations."""
        if not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n={n!r} must be a positive integer")
        key = jax.random.fold_in(self._ask_key, self.num_asked)
        rows, self.state, fresh = self.searcher.ask(self.state, key, int(n))
        repeats = int(n) - int(np.sum(np.asarray(fresh)))
        if repeats:
            warnings.warn(
                f"the searcher found no unobserved configuration for {repeats} of the {n} "
                "asked (a small discrete space may be used up): they repeat evaluated or "
                "pending ones", stacklevel=2)
        self.num_asked += int(n)
        configs = self.space.to_configs(rows)
        for row, config in zip(rows, configs):
            self._pending_rows[_config_key(config)] = row
        return rows, configs

    def ask(self, n: int = 1) -> list[dict]:
        """``n`` configurations to evaluate next, as plain dicts."""
        return self.ask_rows(n)[1]

    def tell(self, configs: Sequence[Mapping], values: Sequence, constraints: Sequence | None = None,
             costs: Sequence[float] | None = None, resources: Sequence[float] | None = None) -> None:
        """Results for ``configs`` (asked before, or any valid configurations).

        ``values`` holds one metric value per configuration in the optimizer's mode (a
        list of values with several objectives); None, NaN or inf mark a failed trial.
        ``constraints`` holds one list of constraint values per configuration, and
        ``costs`` (for a cost-aware searcher) the seconds each evaluation took, and
        ``resources`` (with ``fidelity``) the resource each value was reached at; a value
        told without one counts as reached at the full resource.
        """
        configs, values = list(configs), list(values)
        if len(configs) != len(values):
            raise ValueError(
                f"tell got {len(configs)} configs but {len(values)} values; give one value each"
            )
        if constraints is None:
            if self.goal.constraints:
                raise ValueError(f"tell needs constraints=: {len(self.goal.constraints)} per config")
            constraints = [None] * len(configs)
        if self.goal.cost and costs is None:
            raise ValueError("a cost-aware searcher needs costs= (seconds per evaluation)")
        costs = [None] * len(configs) if costs is None else list(costs)
        resources = [None] * len(configs) if resources is None else list(resources)
        if len(costs) != len(configs) or len(resources) != len(configs):
            raise ValueError("tell needs one cost and one resource per config when given")
        rows = [self._row_for(config) for config in configs]
        told = [self.goal.searcher_row(self._objective_values(v), c, t, r)
                for v, c, t, r in zip(values, constraints, costs, resources)]
        self.tell_rows(jnp.stack(rows) if rows else jnp.zeros((0, self.space.dim)), told)

    def _objective_values(self, value) -> list[float] | None:
        if value is None:
            return None
        values = list(value) if self.goal.is_multiobjective else [value]
        if len(values) != len(self.goal.metrics):
            raise ValueError(f"each value needs {len(self.goal.metrics)} objective values, got {value!r}")
        return [np.nan if v is None else float(v) for v in values]

    def _row_for(self, config: Mapping) -> jax.Array:
        row = self._pending_rows.pop(_config_key(config), None)
        if row is None:
            row = self.space.from_configs([config])[0]
        return row

    def tell_rows(self, rows: jax.Array, told: Sequence[np.ndarray]) -> None:
        """Results for unit-cube rows, as the searcher takes them: per row the objectives
        signed to be minimised, then the constraints (see ``Goal.searcher_row``)."""
        if len(told) == 0:
            return
        values = np.stack(told).astype(np.float32)
        if self.goal.outputs == 1:
            values = values[:, 0]
        self.state = self.searcher.tell(self.state, jnp.asarray(rows, jnp.float32), jnp.asarray(values))


class TrialStopped(BaseException):
    """Raised inside ``report`` to end a trial early. A BaseException, so that an
    objective's own ``except Exception`` does not swallow the scheduler's decision."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


class BlackBoxScheduling:
    """Feeds a black-box run's reports to a :class:`Scheduler` and keeps its state.

    Each trial is judged once per resource level: at the highest level its report
    reached and not judged before, on its ``num_objectives`` values signed to be
    minimised.
    """

    def __init__(self, scheduler: Scheduler, seed: int, num_objectives: int = 1):
        if num_objectives > 1 and not scheduler.multiobjective:
            raise ValueError(
                f"scheduler={scheduler.name!r} judges one objective, got {num_objectives}; give "
                "a single metric, or use 'asha' or 'hyperband' (non-dominated rank)")
        self.scheduler = scheduler
        self.state = init_state(len(scheduler.levels), num_objectives=num_objectives)
        self._key = jax.random.fold_in(jax.random.key(seed), 1)
        self.next_level: dict[int, int] = {}

    def start(self, trial_id: int) -> None:
        capacity = capacity_for(trial_id + 1)
        if capacity > self.state.values.shape[0]:
            extra = capacity - self.state.values.shape[0]
            self.state = self.state._replace(
                values=jnp.pad(self.state.values, ((0, extra), (0, 0), (0, 0)),
                               constant_values=jnp.nan),
                bracket=jnp.pad(self.state.bracket, (0, extra)),
            )
        self.state = self.scheduler.admit(self.state, trial_id, jax.random.fold_in(self._key, trial_id))
        self.next_level[trial_id] = 0

    def goes_on(self, trial_id: int, resource: float, values: Sequence[float]) -> bool:
        levels = self.scheduler.levels
        reached = [i for i, level in enumerate(levels) if level <= resource]
        if not reached or reached[-1] < self.next_level[trial_id]:
            return True
        level = reached[-1]
        self.next_level[trial_id] = level + 1
        self.state, go_on = self.scheduler.decide(self.state, trial_id, level,
                                                  jnp.asarray(values, jnp.float32))
        return level == len(levels) - 1 or bool(go_on)

    @property
    def max_resource(self) -> float:
        return self.scheduler.levels[-1]


class Reporter:
    """The ``report(resource, metrics)`` callable handed to an objective."""

    def __init__(self, trial_id: int, goal: Goal, scheduling: BlackBoxScheduling | None,
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
    """Evaluate one configuration. Failures (exceptions, NaN, inf) are caught and
    described, never raised: one bad trial must not take down the run."""
    start = time.time()
    try:
        outcome = objective(dict(config)) if reporter is None else objective(dict(config), report=reporter)
        metrics, values, constraints = goal.read(outcome)
        if not all(math.isfinite(v) for v in values + constraints):
            status, error = FAILED, f"objective returned a non-finite value ({values + constraints})"
        else:
            status, error = COMPLETED, None
    except TrialStopped as stop:
        metrics, values, constraints = reporter.last_metrics, reporter.last_values, reporter.last_constraints
        status, error = stop.status, str(stop)
    except Exception as exception:  # noqa: BLE001 - a failed trial is data, not a crash
        metrics, values, constraints = {}, [math.nan] * len(goal.metrics), []
        status = FAILED
        error = "".join(traceback.format_exception_only(type(exception), exception)).strip()
    usable = status != FAILED and bool(values)
    return {
        "metrics": clean_metrics(metrics),
        "value": goal.value_record(values if usable else [math.nan] * len(goal.metrics)),
        "status": status,
        "error": None if status == COMPLETED else error,
        "start_time": start,
        "end_time": time.time(),
        "resource": None if reporter is None else reporter.last_resource,
        "feasible": goal.feasibility(constraints) if usable else None,
    }


def fidelity_range(searcher, searcher_options: Mapping[str, Any] | None, min_resource: float,
                   max_resource: float) -> tuple[float, float] | None:
    """The goal's ``fidelity`` under a rung scheduler: the ``bo`` searcher learns from every
    rung unless ``searcher_options`` say ``multi_fidelity=False``; other searchers don't model,
    and a single rung has nothing to tell apart."""
    wanted = (searcher_options or {}).get("multi_fidelity", True)
    if searcher != "bo" or not wanted or not 0 < min_resource < max_resource:
        return None
    return (float(min_resource), float(max_resource))


def searcher_row_of(goal: Goal, trial: Trial) -> np.ndarray:
    """What the searcher is told about a recorded trial."""
    if trial.status == FAILED or trial.value is None:
        return goal.searcher_row(None, None, trial.duration, trial.resource)
    values = trial.value if goal.is_multiobjective else [trial.value]
    values = [np.nan if v is None else v for v in values]
    constraints = [trial.metrics.get(c) for c in goal.constraints]
    return goal.searcher_row(values, [np.nan if c is None else c for c in constraints],
                             trial.duration, trial.resource)


def run_meta(space: Space, searcher: str | Searcher, goal: Goal, seed: int, **extra) -> dict:
    name = searcher if isinstance(searcher, str) else "custom"
    return {"space": space.describe(), "searcher": name, **goal.describe(), "seed": seed, **extra}


IDENTITY_KEYS = ("space", "searcher", "searcher_options", "scheduler", "scheduler_options",
                 "metric", "mode", "constraints", "seed")


def resume(optimizer: Optimizer, directory: RunDirectory | None) -> list[Trial]:
    """Load a run's trials and tell them to the optimizer, in trial order."""
    if directory is None:
        return []
    trials = sorted(directory.load_trials(repair=True), key=lambda t: t.trial_id)
    if trials:
        tell_trials(optimizer, trials)
        optimizer.num_asked = trials[-1].trial_id + 1
    return trials


def tell_trials(optimizer: Optimizer, trials: Sequence[Trial]) -> None:
    """Tell recorded trials to the optimizer, in the given order, with the rows it asked."""
    if not trials:
        return
    rows = jnp.asarray(
        [t.row if t.row is not None else optimizer.space.from_configs([t.config])[0]
         for t in trials],
        jnp.float32,
    )
    optimizer.tell_rows(rows, [searcher_row_of(optimizer.goal, t) for t in trials])


def replay_reports(scheduling: BlackBoxScheduling | None, directory: RunDirectory | None,
                   trials: Sequence[Trial], goal: Goal) -> None:
    """Rebuild the scheduler's state from the reports of finished trials, in the order
    they were made, so decisions after a resume match an uninterrupted run."""
    if scheduling is None or directory is None:
        return
    started = set()
    for report in directory.load_reports({t.trial_id for t in trials}):
        trial_id = report["trial_id"]
        if trial_id not in started:
            scheduling.start(trial_id)
            started.add(trial_id)
        _, values, _ = goal.read(report["metrics"])
        if all(map(math.isfinite, values)) and report["resource"] <= scheduling.max_resource:
            scheduling.goes_on(trial_id, report["resource"], goal.signs * values)


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
) -> Result:
    """Minimise (or maximise) ``objective`` over ``space``, one trial after another.

    The objective takes a plain dict and returns a number or a dict of metrics (then
    ``metric`` names the one to optimise). With a list of metrics (and of modes) the run
    has several objectives and its answer is ``Result.pareto_front()``. ``constraints``
    names metrics that must be > 0 for a trial to be feasible; an infeasible trial never
    becomes the best. A trial that raises or returns NaN/inf is
    recorded as failed and the run goes on. With ``run_dir`` every finished trial is
    appended to ``run_dir/trials.jsonl``, and calling ``tune`` again with the same
    ``run_dir`` resumes: finished trials are reloaded, none is run twice.

    An objective with a ``report`` parameter is called as ``objective(config,
    report=report)`` and may call ``report(resource, metrics)`` after each epoch; every
    report is appended to ``run_dir/reports.jsonl``. With a ``scheduler`` ("asha",
    "hyperband", "median" or a :class:`Scheduler`) a report may end the trial early:
    ``report`` then raises and the trial is recorded as stopped, with its last value.
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
    optimizer = Optimizer.for_goal(space, searcher, goal, seed=seed, searcher_options=searcher_options)
    meta = run_meta(optimizer.space, searcher, goal, seed,
                    searcher_options=dict(searcher_options or {}),
                    scheduler=None if scheduling is None else scheduling.scheduler.name,
                    scheduler_options=dict(scheduler_options or {}))
    directory = None
    if run_dir is not None:
        directory = RunDirectory(run_dir)
        meta = directory.start(meta, identity_keys=IDENTITY_KEYS)
    result = Result.from_meta(resume(optimizer, directory), meta)
    replay_reports(scheduling, directory, result.trials, goal)
    reports = takes_report(objective)

    deadline = None if max_wallclock_s is None else time.monotonic() + max_wallclock_s
    with progress_bar(total=num_trials, enabled=progress, initial=len(result.trials)) as bar:
        while (num_trials is None or len(result.trials) < num_trials) and (
            deadline is None or time.monotonic() < deadline
        ):
            trial_id = optimizer.num_asked
            rows, [config] = optimizer.ask_rows(1)
            if scheduling is not None:
                scheduling.start(trial_id)
            reporter = Reporter(trial_id, goal, scheduling, directory) if reports else None
            outcome = run_trial(objective, config, goal, reporter)
            trial = Trial(trial_id=trial_id, config=config, seed=seed,
                          row=np.asarray(rows[0]).tolist(), **outcome)
            optimizer.tell_rows(rows, [searcher_row_of(goal, trial)])
            result.trials.append(trial)
            if directory is not None:
                directory.append(trial)
            bar.update(1)
            bar.set_postfix_str(result.summary_line())
    return result


def _scheduling(scheduler, options, objective, seed, goal: Goal) -> BlackBoxScheduling | None:
    if scheduler is None:
        if options:
            raise ValueError("scheduler_options given without a scheduler")
        return None
    if not takes_report(objective):
        raise ValueError(
            f"scheduler={getattr(scheduler, 'name', scheduler)!r} needs an objective that takes "
            "a `report` argument and calls report(resource, metrics) as it trains"
        )
    if not isinstance(scheduler, Scheduler):
        scheduler = schedulers_module.make(scheduler, **(options or {}))
    return BlackBoxScheduling(scheduler, seed, len(goal.metrics))
