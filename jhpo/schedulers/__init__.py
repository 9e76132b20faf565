"""Schedulers: how much budget each configuration gets.

The decisions themselves are pure array functions (:mod:`jhpo.schedulers.decisions`).
For trials that report at their own pace (black-box ``jhpo.tune`` with a ``report``
argument) a :class:`Scheduler` records each report in a ``(trials, levels)`` array and
decides at fixed resource levels whether the trial goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jhpo.schedulers.decisions import (
    asha_continues,
    asha_promotion,
    halving_survivors,
    median_continues,
    pbt_parents,
)
from jhpo.schedulers.pbt import pbt_explore
from jhpo.schedulers.rungs import check_rung_settings, hyperband_brackets, rung_levels

__all__ = [
    "Scheduler",
    "SchedulerState",
    "asha",
    "asha_continues",
    "asha_promotion",
    "halving_survivors",
    "hyperband",
    "hyperband_brackets",
    "make",
    "median",
    "median_continues",
    "names",
    "pbt_explore",
    "pbt_parents",
    "rung_levels",
]


class SchedulerState(NamedTuple):
    values: jax.Array  # (trials, levels) value reported at each level, NaN if none
    bracket: jax.Array  # (trials,) Hyperband bracket = first rung judged; 0 elsewhere


class Scheduler(NamedTuple):
    """Decisions at fixed resource ``levels`` for trials reporting asynchronously.

    ``admit(state, trial, key)`` runs when a trial starts; ``decide(state, trial, level,
    value)`` records ``value`` at ``levels[level]`` and says whether the trial goes on.
    Trial indices address rows of ``state``; the caller grows the rows as trials arrive.
    """

    name: str
    levels: tuple[float, ...]
    admit: Callable
    decide: Callable


def init_state(num_levels: int, capacity: int = 8) -> SchedulerState:
    return SchedulerState(jnp.full((capacity, num_levels), jnp.nan, jnp.float32),
                          jnp.zeros((capacity,), jnp.int32))


def _record(state: SchedulerState, trial, level, value) -> SchedulerState:
    return state._replace(values=state.values.at[trial, level].set(value))


def _admit_all_to_first_rung(state, trial, key):
    del trial, key
    return state


def asha(min_resource: float = 1, max_resource: float = 81, eta: float = 3) -> Scheduler:
    """Asynchronous successive halving, stopping form (Li et al., 2020): at each rung a
    trial goes on only if it is in the top 1/eta of the trials that reached that rung."""
    levels = rung_levels(min_resource, max_resource, eta)

    @jax.jit
    def decide(state, trial, level, value):
        state = _record(state, trial, level, value)
        return state, asha_continues(state.values[:, level], value, eta)

    return Scheduler("asha", levels, _admit_all_to_first_rung, decide)


def hyperband(min_resource: float = 1, max_resource: float = 81, eta: float = 3) -> Scheduler:
    """Asynchronous Hyperband: each trial joins a bracket drawn in proportion to
    Hyperband's bracket sizes; within its bracket it runs straight to the bracket's first
    rung and is then judged by ASHA's rule against the trials of the same bracket."""
    levels = rung_levels(min_resource, max_resource, eta)
    brackets = hyperband_brackets(min_resource, max_resource, eta)
    sizes = jnp.asarray([size for _, size in brackets], jnp.float32)
    first_rungs = jnp.asarray([rung for rung, _ in brackets], jnp.int32)

    @jax.jit
    def admit(state, trial, key):
        pick = jax.random.categorical(key, jnp.log(sizes / sizes.sum()))
        return state._replace(bracket=state.bracket.at[trial].set(first_rungs[pick]))

    @jax.jit
    def decide(state, trial, level, value):
        state = _record(state, trial, level, value)
        bracket = state.bracket[trial]
        peers = jnp.where(state.bracket == bracket, state.values[:, level], jnp.nan)
        judged = asha_continues(peers, value, eta)
        return state, jnp.where(level < bracket, ~jnp.isnan(value), judged)

    return Scheduler("hyperband", levels, admit, decide)


def median(min_resource: float = 1, max_resource: float = 81, min_trials: int = 3) -> Scheduler:
    """The median stopping rule, judged at every whole resource unit from
    ``min_resource`` (the grace period) to ``max_resource``."""
    check_rung_settings(min_resource, max_resource, 2)
    if min_trials < 1:
        raise ValueError(f"min_trials={min_trials!r} must be at least 1")
    levels = tuple(float(r) for r in range(int(min_resource), int(max_resource) + 1))

    @jax.jit
    def decide(state, trial, level, value):
        state = _record(state, trial, level, value)
        return state, median_continues(state.values, trial, level, min_trials)

    return Scheduler("median", levels, _admit_all_to_first_rung, decide)


_REGISTRY = {"asha": asha, "hyperband": hyperband, "median": median}


def names() -> list[str]:
    return sorted(_REGISTRY)


def make(name: str, **options) -> Scheduler:
    """The black-box scheduler registered as ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"scheduler={name!r} is not one of {names()}")
    return _REGISTRY[name](**options)
