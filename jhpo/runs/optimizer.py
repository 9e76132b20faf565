"""``Optimizer``: a searcher's ask and tell over plain dicts, and its rebuilding from records.

The searcher's state is written by the searcher's own functions only. A run resumed from
its records rebuilds the state by calling them again in the recorded order (the asks of
``asks.jsonl`` between the tells of ``trials.jsonl``): the state then equals the state of
the run that was never interrupted, for every searcher, including what cannot be read
back from the records (a GP's warm start, pending rows, quasi-random positions).
"""

from __future__ import annotations

import json
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jhpo import searchers as searchers_module
from jhpo.goal import Goal
from jhpo.runs.records import FAILED, AskRecord, Trial
from jhpo.searchers.base import Searcher
from jhpo.space import Space


class Best(NamedTuple):
    """The best configuration told so far and its value (in the optimizer's mode)."""

    config: dict
    value: float


def config_key(config: Mapping) -> str:
    return json.dumps(config, sort_keys=True, default=repr)


def searcher_for_goal(space: Space, searcher: str | Searcher, goal: Goal,
                      searcher_options: Mapping[str, Any] | None) -> Searcher:
    """The searcher named ``searcher``, told the outputs ``goal`` gives per trial."""
    if isinstance(searcher, Searcher):
        return searcher
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
    return searchers_module.make(searcher, space, **options)


class Optimizer:
    """A stateful ask/tell loop for users who run trials themselves.

    >>> opt = Optimizer({"x": uniform(-5, 5)}, searcher="random", seed=0)
    >>> configs = opt.ask(4)
    >>> opt.tell(configs, [objective(c) for c in configs])

    ``mode`` is "min" or "max", or a list of them for several objectives (then each value
    told is a list); ``num_constraints`` constraint values (feasible when > 0) may be told
    beside the values. ``fidelity=(min_resource, max_resource)`` makes the ``bo`` searcher
    multi-fidelity: each result is told with the resource it was reached at. ``goal``
    gives a run's whole :class:`jhpo.goal.Goal` instead of ``mode``, ``num_constraints``
    and ``fidelity`` (``tune`` and ``tune_population`` read recorded trials through its
    metric names). The key of each ask is derived from the number of rows asked before
    it, so asks and tells repeated in the same order give the same configurations.
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
        goal: Goal | None = None,
    ):
        if goal is None:
            modes = list(mode) if isinstance(mode, (list, tuple)) else [mode]
            goal = Goal.from_arguments(
                [f"objective_{i}" for i in range(len(modes))] if len(modes) > 1 else None,
                modes, [f"constraint_{i}" for i in range(num_constraints)],
                cost=(searcher_options or {}).get("cost_aware", False), fidelity=fidelity)
        elif mode != "min" or num_constraints or fidelity is not None:
            raise ValueError("give either goal= or mode=/num_constraints=/fidelity=, not both")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed={seed!r} must be an integer")
        if not -2**63 <= seed < 2**63:
            raise ValueError(f"seed={seed!r} must fit in 64 bits")
        self.space = space if isinstance(space, Space) else Space(space)
        self.goal = goal
        self.seed = int(seed)
        self.searcher = searcher_for_goal(self.space, searcher, goal, searcher_options)
        init_key, self._ask_key = jax.random.split(jax.random.key(self.seed))
        self.state = self.searcher.init(init_key)
        self._num_asked = 0
        self._num_told = 0
        self._pending_rows: dict[str, jax.Array] = {}
        self._best: Best | None = None

    @property
    def num_asked(self) -> int:
        """Rows asked of the searcher so far (the next ask's key is derived from it)."""
        return self._num_asked

    @property
    def num_told(self) -> int:
        """Results told to the searcher so far."""
        return self._num_told

    @property
    def best(self) -> Best | None:
        """The feasible configuration with the best value told so far (failed results
        skipped), or None before any; with several objectives there is no single best."""
        if self.goal.is_multiobjective:
            raise ValueError("with several objectives there is no single best; keep the "
                             "values told and take their Pareto front (jhpo.pareto)")
        return self._best

    @property
    def mode(self) -> str | list[str]:
        return self.goal.describe()["mode"]

    def ask_rows(self, n: int = 1) -> tuple[jax.Array, list[dict]]:
        """``n`` new rows and their configurations."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n={n!r} must be a positive integer")
        key = jax.random.fold_in(self._ask_key, self._num_asked)
        rows, self.state, fresh = self.searcher.ask(self.state, key, int(n))
        repeats = int(n) - int(np.sum(np.asarray(fresh)))
        if repeats:
            warnings.warn(
                f"the searcher found no unobserved configuration for {repeats} of the {n} "
                "asked (a small discrete space may be used up): they repeat evaluated or "
                "pending ones", stacklevel=2)
        self._num_asked += int(n)
        configs = self.space.to_configs(rows)
        for row, config in zip(rows, configs):
            self._pending_rows[config_key(config)] = row
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
        row = self._pending_rows.pop(config_key(config), None)
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
        self._num_told += len(told)
        if not self.goal.is_multiobjective:
            self._keep_best(np.asarray(rows), np.stack(told).astype(np.float64))

    def _keep_best(self, rows: np.ndarray, told: np.ndarray) -> None:
        """Follow the best told row: objective column 0 signed to be minimised, feasible
        when every constraint column is > 0."""
        constraints = told[:, 1:1 + len(self.goal.constraints)]
        usable = np.isfinite(told[:, 0]) & np.all(constraints > 0, axis=1)
        if not usable.any():
            return
        index = int(np.argmin(np.where(usable, told[:, 0], np.inf)))
        value = float(self.goal.signs[0] * told[index, 0])
        if self._best is None or self.goal.signs[0] * value < self.goal.signs[0] * self._best.value:
            self._best = Best(self.space.to_configs(rows[index][None])[0], value)

    # --- recorded trials

    def told_row(self, trial: Trial) -> np.ndarray:
        """What the searcher is told about a recorded trial."""
        if trial.status == FAILED or trial.value is None:
            return self.goal.searcher_row(None, None, trial.duration, trial.resource)
        values = trial.value if self.goal.is_multiobjective else [trial.value]
        values = [np.nan if v is None else v for v in values]
        constraints = [trial.metrics.get(c) for c in self.goal.constraints]
        return self.goal.searcher_row(values, [np.nan if c is None else c for c in constraints],
                                      trial.duration, trial.resource)

    def tell_trials(self, trials: Sequence[Trial]) -> None:
        """Tell recorded trials, in the given order, with the rows that were asked."""
        if not trials:
            return
        rows = jnp.asarray(
            [t.row if t.row is not None else self.space.from_configs([t.config])[0] for t in trials],
            jnp.float32)
        self.tell_rows(rows, [self.told_row(t) for t in trials])

    def replay(self, asks: Sequence[AskRecord], told: Sequence[Trial]) -> bool:
        """Repeat a run's history on this fresh optimizer: each recorded ask is asked again
        after as many of the ``told`` trials (in the order they were told) as were told
        before it, then the remaining trials are told. Returns whether every ask proposed
        again exactly the rows recorded (False: another machine or JAX version gave other
        numbers; the state then holds what this one proposed)."""
        if self._num_asked or self._num_told:
            raise ValueError("replay needs a fresh optimizer: this one was asked or told before")
        exact = True
        for ask in asks:
            self.tell_trials(told[self._num_told: ask.num_told])
            if ask.given:  # configurations the user gave: the searcher only hears of them
                continue
            rows, _ = self.ask_rows(len(ask.trial_ids))
            exact = exact and np.array_equal(np.asarray(rows, np.float32),
                                             np.asarray(ask.rows, np.float32))
        self.tell_trials(told[self._num_told:])
        return exact
