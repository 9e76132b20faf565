"""Schedulers: how much budget each configuration gets.

The decisions themselves are pure array functions (:mod:`jhpo.schedulers.decisions`).
For trials that report at their own pace (black-box ``jhpo.tune`` with a ``report``
argument) a :class:`Scheduler` records each report in a ``(trials, levels, objectives)``
array and decides at fixed resource levels whether the trial goes on. ASHA and Hyperband
judge several objectives by non-dominated rank (:func:`pareto_asha_continues`); with one
objective that is exactly single-objective ASHA.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jhpo.options import check_choice, check_options, keyword_names
from jhpo.schedulers.decisions import (
    asha_continues,
    asha_promotion,
    halving_survivors,
    median_continues,
    pareto_ahead,
    pareto_asha_continues,
    pareto_asha_promotion,
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
    "pareto_ahead",
    "pareto_asha_continues",
    "pareto_asha_promotion",
    "pbt_explore",
    "pbt_parents",
    "promote",
    "rung_levels",
]


class SchedulerState(NamedTuple):
    values: jax.Array  # (trials, levels, objectives) values reported at each level, NaN if none
    bracket: jax.Array  # (trials,) Hyperband bracket = first rung judged; 0 elsewhere


class Scheduler(NamedTuple):
    """Decisions at fixed resource ``levels`` for trials reporting asynchronously.

    ``admit(state, trial, key)`` runs when a trial starts; ``decide(state, trial, level,
    values)`` records ``values`` (one per objective, to minimise) at ``levels[level]`` and
    says whether the trial goes on. Trial indices address rows of ``state``; the caller
    grows the rows as trials arrive. ``multiobjective`` says whether the rule can judge
    several objectives.
    """

    name: str
    levels: tuple[float, ...]
    admit: Callable
    decide: Callable
    multiobjective: bool = False


def init_state(num_levels: int, capacity: int = 8, num_objectives: int = 1) -> SchedulerState:
    return SchedulerState(jnp.full((capacity, num_levels, num_objectives), jnp.nan, jnp.float32),
                          jnp.zeros((capacity,), jnp.int32))


def _record(state: SchedulerState, trial, level, values) -> SchedulerState:
    return state._replace(values=state.values.at[trial, level].set(values))


def _top_fraction(rung_values, trial, eta):
    """ASHA's rule on one rung's (trials, objectives) values. The number of objectives is
    a static shape, so one objective keeps the single-objective rule and its ties."""
    if rung_values.shape[1] == 1:
        return asha_continues(rung_values[:, 0], rung_values[trial, 0], eta)
    return pareto_asha_continues(rung_values, trial, eta)


def _admit_all_to_first_rung(state, trial, key):
    del trial, key
    return state


@functools.partial(jax.jit, static_argnums=2)
def promote(values: jax.Array, promoted: jax.Array, eta: float):
    """ASHA's promotion rule on (trials, rungs, objectives) values: ``(found, trial,
    rung)`` by :func:`asha_promotion` for one objective, by non-dominated rank
    (:func:`pareto_asha_promotion`) for several."""
    if values.shape[2] == 1:
        return asha_promotion(values[..., 0], promoted, eta)
    return pareto_asha_promotion(values, promoted, eta)


def asha(min_resource: float = 1, max_resource: float = 81, eta: float = 3) -> Scheduler:
    """Asynchronous successive halving, stopping form (Li et al., 2020): at each rung a
    trial goes on only if it is in the top 1/eta of the trials that reached that rung
    (with several objectives, by non-dominated rank then crowding distance)."""
    levels = rung_levels(min_resource, max_resource, eta)

    @jax.jit
    def decide(state, trial, level, values):
        state = _record(state, trial, level, values)
        return state, _top_fraction(state.values[:, level], trial, eta)

    return Scheduler("asha", levels, _admit_all_to_first_rung, decide, multiobjective=True)


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
    def decide(state, trial, level, values):
        state = _record(state, trial, level, values)
        bracket = state.bracket[trial]
        peers = jnp.where((state.bracket == bracket)[:, None], state.values[:, level], jnp.nan)
        judged = _top_fraction(peers, trial, eta)
        return state, jnp.where(level < bracket, ~jnp.any(jnp.isnan(values)), judged)

    return Scheduler("hyperband", levels, admit, decide, multiobjective=True)


def median(min_resource: float = 1, max_resource: float = 81, min_trials: int = 3) -> Scheduler:
    """The median stopping rule, judged at every whole resource unit from
    ``min_resource`` (the grace period) to ``max_resource``."""
    check_rung_settings(min_resource, max_resource, 2)
    if min_trials < 1:
        raise ValueError(f"min_trials={min_trials!r} must be at least 1")
    levels = tuple(float(r) for r in range(int(min_resource), int(max_resource) + 1))

    @jax.jit
    def decide(state, trial, level, values):
        state = _record(state, trial, level, values)
        # one objective: ``multiobjective=False`` keeps several away (BlackBoxScheduling)
        return state, median_continues(state.values[..., 0], trial, level, min_trials)

    return Scheduler("median", levels, _admit_all_to_first_rung, decide)


_REGISTRY = {"asha": asha, "hyperband": hyperband, "median": median}


def names() -> list[str]:
    return sorted(_REGISTRY)


def option_names(name: str) -> list[str]:
    """The options the black-box scheduler ``name`` takes."""
    check_choice("scheduler", name, names())
    return keyword_names(_REGISTRY[name])


def make(name: str, **options) -> Scheduler:
    """The black-box scheduler registered as ``name``; an option it does not take is an
    error that lists those it does."""
    check_options(f"scheduler {name!r}", options, option_names(name))
    return _REGISTRY[name](**options)
