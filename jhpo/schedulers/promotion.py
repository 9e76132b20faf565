"""ASHA's promotion form as a pure state: what every trial recorded at each rung, which
(trial, rung) pairs were promoted, and the rung each running trial trains to.

A trial trains to its target rung, records its values there and pauses; a free slot
takes the trial :func:`promote_next` picks (it then trains to the rung above) or a new
one. The state is a pytree of arrays, so it is saved in a run's checkpoint with the
members; its capacity grows in powers of two, so :func:`jhpo.schedulers.promote`
compiles once per capacity.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jhpo.schedulers import promote
from jhpo.searchers.base import MIN_CAPACITY, capacity_for

NOT_RUNNING = -1


class PromotionState(NamedTuple):
    values: jax.Array  # (capacity, rungs, objectives) float32, NaN where nothing was recorded
    promoted: jax.Array  # (capacity, rungs) bool: promoted out of that rung
    target: jax.Array  # (capacity,) int32: the rung a running trial trains to, else NOT_RUNNING


def init_promotions(num_rungs: int, num_objectives: int = 1) -> PromotionState:
    return PromotionState(
        values=jnp.full((MIN_CAPACITY, num_rungs, num_objectives), jnp.nan, jnp.float32),
        promoted=jnp.zeros((MIN_CAPACITY, num_rungs), bool),
        target=jnp.full((MIN_CAPACITY,), NOT_RUNNING, jnp.int32),
    )


def admit(state: PromotionState, trial: int) -> PromotionState:
    """A new trial: it trains to the first rung."""
    extra = capacity_for(trial + 1) - state.values.shape[0]
    if extra > 0:
        state = PromotionState(
            values=jnp.pad(state.values, ((0, extra), (0, 0), (0, 0)), constant_values=jnp.nan),
            promoted=jnp.pad(state.promoted, ((0, extra), (0, 0))),
            target=jnp.pad(state.target, (0, extra), constant_values=NOT_RUNNING),
        )
    return state._replace(target=state.target.at[trial].set(0))


def target_rung(state: PromotionState, trial: int) -> int:
    return int(state.target[trial])


def record(state: PromotionState, trial: int, values) -> tuple[PromotionState, int]:
    """The trial's values recorded at the rung it trained to; it runs no more until
    promoted. Returns the new state and that rung."""
    rung = target_rung(state, trial)
    state = state._replace(values=state.values.at[trial, rung].set(jnp.asarray(values, jnp.float32)),
                           target=state.target.at[trial].set(NOT_RUNNING))
    return state, rung


def drop(state: PromotionState, trial: int) -> PromotionState:
    """A trial that failed: it runs no more and records nothing."""
    return state._replace(target=state.target.at[trial].set(NOT_RUNNING))


def promote_next(state: PromotionState, eta: float) -> tuple[PromotionState, int | None]:
    """The paused trial ASHA promotes next, now training to the rung above (None when
    none is promotable)."""
    found, trial, rung = (int(x) for x in promote(state.values, state.promoted, eta))
    if not found:
        return state, None
    return state._replace(promoted=state.promoted.at[trial, rung].set(True),
                          target=state.target.at[trial].set(rung + 1)), trial
