"""The one driver of a :class:`jhpo.schedulers.Scheduler` for both entry points.

``jhpo.tune`` feeds it the reports of black-box trials as they come; ``tune_population``
feeds it each slot's evaluation after every interval. Either way a trial is admitted
once, and judged once per resource level: at the highest level its report reached and
not judged before, on its objective values signed to be minimised.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jhpo.schedulers import Scheduler, init_state
from jhpo.searchers.base import capacity_for


class SchedulerDriver:
    """A scheduler's state and the level each running trial is judged at next."""

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
        """Admit a new trial (Hyperband draws its bracket here)."""
        capacity = capacity_for(trial_id + 1)
        if capacity > self.state.values.shape[0]:  # powers of two: decide compiles per capacity
            extra = capacity - self.state.values.shape[0]
            self.state = self.state._replace(
                values=jnp.pad(self.state.values, ((0, extra), (0, 0), (0, 0)),
                               constant_values=jnp.nan),
                bracket=jnp.pad(self.state.bracket, (0, extra)),
            )
        self.state = self.scheduler.admit(self.state, trial_id, jax.random.fold_in(self._key, trial_id))
        self.next_level[trial_id] = 0

    def goes_on(self, trial_id: int, resource: float, values: Sequence[float]) -> bool:
        """Whether the trial, having reached ``resource`` with ``values``, trains on."""
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
