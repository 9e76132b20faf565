"""CMA-ES (Hansen and Ostermeier, 2001) from evosax, as a searcher over the unit cube.

evosax's ``CMA_ES`` does the evolution strategy; this module only feeds it. CMA-ES searches
an unbounded space with one coordinate per column of the space's rows (one-hot blocks
included), its mean starting at the centre of the cube. A solution z becomes a row by
reflecting it into the cube, coordinate by coordinate (``u = 1 - |(z mod 2) - 1|``: the
identity on [0, 1], a mirror at each face), then ``Space.canonicalize`` rounds integers
and ordinals to their bins, makes one-hot blocks exact (the largest coordinate wins) and
zeroes inactive columns. Reflection keeps the geometry CMA-ES adapts to intact inside the
cube and lets a minimum on a face be reached without pushing the mean to infinity.

Generations: every row handed out is drawn from the current search distribution and
remembered, with its unbounded solution and the generation it belongs to, among the
pending rows. Members of one generation are independent draws, so ``ask(n)`` may hand out
any number of them, one ask or many. Told results of the current generation are buffered
until ``population_size`` of them are in, in whatever order they arrive; then evosax updates
the distribution, once, and the next generation starts. A failed trial (NaN) counts as the
worst value of its generation (a generation that failed entirely leaves the mean where it
is: evosax gives every member weight zero). Results for rows drawn in an earlier generation
arrive too late to steer and are only recorded; rows told that were never asked (a
resumed run tells its records) join the current generation as they are, their row standing
in for the unbounded solution.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jhpo.searchers.base import (
    Buffer,
    Searcher,
    append,
    check_count,
    check_number,
    empty_buffer,
    init_search_state,
    taken,
)
from jhpo.space import Space

INSTALL_HINT = 'searcher="cmaes" needs evosax: pip install "jhpo[cmaes]"'


class Generation(NamedTuple):
    """The results told so far for the current generation."""

    solutions: jax.Array  # (population_size, dim) unbounded solutions, the first num_told filled
    values: jax.Array  # (population_size,) their values
    num_told: jax.Array  # () int32


class CMAESState(NamedTuple):
    """Observations, rows handed out, the search distribution and the generation's results."""

    observed: Buffer
    # Rows handed out and not yet told; ``y`` holds each row's unbounded solution followed
    # by the generation it was drawn in.
    pending: Buffer
    strategy: Any  # evosax's CMA-ES state: mean, step size, covariance and its eigenbasis
    generation: Generation


def default_population_size(dim: int) -> int:
    """Hansen's default, 4 + floor(3 ln dim)."""
    return 4 + math.floor(3 * math.log(max(dim, 1)))


def cmaes(space: Space, *, population_size: int | None = None,
          std_init: float = 0.25) -> Searcher:
    """CMA-ES over ``space``: ``population_size`` told results per generation (default
    ``4 + floor(3 ln dim)``), initial step size ``std_init`` in units of the cube's side,
    mean starting at the centre."""
    _import_cma_es()
    if population_size is None:
        population_size = default_population_size(space.dim)
    check_count("population_size", population_size, 2)
    check_number("std_init", std_init, 0.0)
    strategy = _strategy(int(population_size), space.dim)
    params = strategy.default_params.replace(std_init=jnp.asarray(std_init, jnp.float32))

    def init(key: jax.Array) -> CMAESState:
        distribution = _init_distribution(strategy, params, key, space.dim)
        return CMAESState(
            observed=init_search_state(space.dim).observed,
            pending=empty_buffer(space.dim, outputs=space.dim + 1),
            strategy=distribution,
            generation=Generation(
                solutions=jnp.zeros((strategy.population_size, space.dim), jnp.float32),
                values=jnp.zeros(strategy.population_size, jnp.float32),
                num_told=jnp.zeros((), jnp.int32)),
        )

    def ask(state: CMAESState, key: jax.Array, n: int):
        check_count("n", n, 1)
        solutions, rows = _draw(space, strategy, int(n), params, state.strategy, key)
        fresh = _fresh(rows, state.observed, state.pending)
        generation = jnp.full((int(n), 1), state.strategy.generation_counter, jnp.float32)
        pending = append(state.pending, rows, jnp.concatenate([solutions, generation], axis=1))
        return rows, state._replace(pending=pending), fresh

    def tell(state: CMAESState, rows: jax.Array, values: jax.Array) -> CMAESState:
        rows = jnp.atleast_2d(jnp.asarray(rows, jnp.float32))
        values = jnp.asarray(values, jnp.float32).reshape(-1)
        if rows.shape != (values.shape[0], space.dim):
            raise ValueError(f"tell got rows of shape {rows.shape} and {values.shape[0]} values; "
                             f"give one value per row of {space.dim} columns")
        pending, distribution, generation = _tell_kernel(
            strategy, params, state.pending, state.strategy, state.generation, rows, values)
        return CMAESState(append(state.observed, rows, values), pending, distribution,
                          generation)

    return Searcher(init, ask, tell)


def _import_cma_es():
    try:
        from evosax.algorithms import CMA_ES
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return CMA_ES


@functools.cache
def _strategy(population_size: int, dim: int):
    """One evosax CMA-ES per (population size, dimension), so that searchers over the same
    space share their compiled kernels."""
    return _import_cma_es()(population_size=population_size, solution=jnp.zeros(dim))


def reflect_into_cube(solutions: jax.Array) -> jax.Array:
    """Each coordinate mirrored into [0, 1] at the faces: 1 - |(z mod 2) - 1|."""
    return 1.0 - jnp.abs(jnp.mod(solutions, 2.0) - 1.0)


def _with_eigenbasis(strategy, params, distribution):
    """The distribution as evosax's ask leaves it (covariance eigendecomposed), which its
    tell expects; the population drawn on the way is thrown away."""
    _, distribution = strategy.ask(jax.random.key(0), distribution, params)
    return distribution


@functools.partial(jax.jit, static_argnums=(0, 3))
def _init_distribution(strategy, params, key, dim: int):
    distribution = strategy.init(key, jnp.full(dim, 0.5, jnp.float32), params)
    return _with_eigenbasis(strategy, params, distribution)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _draw(space: Space, strategy, n: int, params, distribution,
          key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``n`` members drawn from the current distribution, and their rows."""
    num_draws = -(-n // strategy.population_size)
    keys = jax.random.split(key, num_draws)
    populations = jax.vmap(lambda k: strategy.ask(k, distribution, params)[0])(keys)
    solutions = populations.reshape(-1, space.dim)[:n]
    return solutions, space.canonicalize(reflect_into_cube(solutions))


@jax.jit
def _fresh(rows: jax.Array, observed: Buffer, pending: Buffer) -> jax.Array:
    """Whether each row is neither observed, pending nor earlier in the batch."""
    equal = jnp.all(rows[:, None, :] == rows[None, :, :], axis=-1)
    repeats_earlier = jnp.any(jnp.tril(equal, k=-1), axis=1)
    return ~(taken(rows, observed, pending) | repeats_earlier)


@functools.partial(jax.jit, static_argnums=0)
def _tell_kernel(strategy, params, pending: Buffer, distribution, generation: Generation,
                 rows: jax.Array, values: jax.Array):
    """Each told row in turn: matched to its pending member, buffered in the current
    generation if it belongs there, and the distribution updated when the generation is
    complete. Returns the pending buffer, the distribution and the generation's results."""
    pending_solutions = pending.y[:, :-1]
    pending_generation = pending.y[:, -1]

    def tell_one(carry, told):
        pending_mask, distribution, generation = carry
        row, value = told
        match = pending_mask & jnp.all(pending.x == row, axis=1)
        current = match & (pending_generation == distribution.generation_counter)
        slot = jnp.where(current.any(), jnp.argmax(current), jnp.argmax(match))
        pending_mask = pending_mask.at[slot].set(pending_mask[slot] & ~match.any())
        joins = current.any() | ~match.any()
        solution = jnp.where(current.any(), pending_solutions[slot], row)
        index = generation.num_told
        solutions = jnp.where(joins, generation.solutions.at[index].set(solution),
                              generation.solutions)
        values_told = jnp.where(joins, generation.values.at[index].set(value), generation.values)
        num_told = index + joins.astype(jnp.int32)
        complete = num_told == strategy.population_size
        distribution = jax.lax.cond(
            complete,
            lambda d: _update(strategy, params, d, solutions, values_told),
            lambda d: d,
            distribution)
        generation = Generation(solutions, values_told, jnp.where(complete, 0, num_told))
        return (pending_mask, distribution, generation), None

    (pending_mask, distribution, generation), _ = jax.lax.scan(
        tell_one, (pending.mask, distribution, generation), (rows, values))
    return pending._replace(mask=pending_mask), distribution, generation


def _update(strategy, params, distribution, solutions, values):
    """evosax's update with one complete generation; failed members take the worst value."""
    finite = jnp.isfinite(values)
    worst = jnp.max(jnp.where(finite, values, -jnp.inf))
    fitness = jnp.where(finite.any(), jnp.where(finite, values, worst), jnp.nan)
    distribution, _ = strategy.tell(jax.random.key(0), solutions, fitness, distribution, params)
    return _with_eigenbasis(strategy, params, distribution)
