"""Random search and scrambled quasi-random (Halton) search."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jhpo.searchers.base import (
    Buffer,
    SearchState,
    Searcher,
    init_search_state,
    record_asked,
    record_told,
)
from jhpo.space import Space


def random(space: Space, *, num_objectives: int = 1, num_constraints: int = 0,
           cost_aware: bool = False) -> Searcher:
    """Independent uniform draws from the space. The values told (several objectives,
    constraints, costs) are kept but do not steer the draws."""
    outputs = num_objectives + num_constraints + int(cost_aware)

    def init(key: jax.Array) -> SearchState:
        del key
        return init_search_state(space.dim, outputs)

    def ask(state: SearchState, key: jax.Array, n: int):
        rows = _jitted_sample(space, key, n)
        return rows, record_asked(state, rows), jnp.ones(n, bool)

    return Searcher(init, ask, record_told)


_jitted_sample = jax.jit(lambda space, key, n: space.sample(key, n), static_argnums=(0, 2))


class QuasiRandomState(NamedTuple):
    observed: Buffer
    pending: Buffer
    permutations: jax.Array  # (num_params, num_digits, max_base) digit permutations


# Digits needed to write any int32 index in base 2; larger bases need fewer.
_NUM_DIGITS = 31


def quasirandom(space: Space, *, num_objectives: int = 1, num_constraints: int = 0,
                cost_aware: bool = False) -> Searcher:
    """A Halton sequence scrambled by random digit permutations, one base per parameter.

    The point index is the number of trials already observed or pending, so a run that is
    resumed from its records continues the same sequence.
    """
    bases = halton_bases(space)
    outputs = num_objectives + num_constraints + int(cost_aware)

    def init(key: jax.Array) -> QuasiRandomState:
        base = init_search_state(space.dim, outputs)
        return QuasiRandomState(base.observed, base.pending, _digit_permutations(key, bases))

    def ask(state: QuasiRandomState, key: jax.Array, n: int):
        del key  # the scrambling drawn at init is the only randomness
        start = state.observed.count + state.pending.count
        rows = halton_rows(space, state.permutations, start, n)
        return rows, record_asked(state, rows), jnp.ones(n, bool)

    return Searcher(init, ask, record_told)


def _first_primes(count: int) -> list[int]:
    primes: list[int] = []
    candidate = 2
    while len(primes) < count:
        if all(candidate % p for p in primes):
            primes.append(candidate)
        candidate += 1
    return primes


def _digit_permutations(key: jax.Array, bases: jax.Array) -> jax.Array:
    """For each parameter and digit position, a random permutation of 0..base-1,
    stored in the first ``base`` entries of a row of width ``max(bases)``."""
    max_base = int(bases.max()) if bases.size else 1
    scores = jax.random.uniform(key, (bases.shape[0], _NUM_DIGITS, max_base))
    beyond_base = jnp.arange(max_base)[None, None, :] >= bases[:, None, None]
    return jnp.argsort(jnp.where(beyond_base, jnp.inf, scores), axis=-1).astype(jnp.int32)


def scrambled_halton(permutations: jax.Array, bases: jax.Array, indices: jax.Array) -> jax.Array:
    """Points ``indices`` of the scrambled Halton sequence, shape ``(len(indices), len(bases))``."""

    def one_point(index):
        def add_digit(carry, digit_position):
            quotient, value, scale = carry
            digit = quotient % bases
            permuted = permutations[jnp.arange(bases.shape[0]), digit_position, digit]
            return (quotient // bases, value + permuted * scale, scale / bases), None

        start = (jnp.full(bases.shape, index, jnp.int32), jnp.zeros(bases.shape), 1.0 / bases)
        (_, value, _), _ = jax.lax.scan(add_digit, start, jnp.arange(_NUM_DIGITS))
        return value

    return jnp.clip(jax.vmap(one_point)(indices), 0.0, 1.0 - 1e-7)


@jax.jit
def _halton_unit(permutations, bases, start, n_template):
    indices = start + jnp.arange(n_template.shape[0], dtype=jnp.int32)
    return scrambled_halton(permutations, bases, indices)


def halton_bases(space: Space) -> jax.Array:
    """The Halton bases of ``space``: the first primes, one per parameter."""
    return jnp.asarray(_first_primes(len(space.names)), jnp.int32)


def halton_rows(space: Space, permutations: jax.Array, start: int, n: int) -> jax.Array:
    """Rows ``start`` to ``start + n - 1`` of the scrambled Halton sequence of ``space``
    (``permutations`` as drawn by ``quasirandom``'s ``init``)."""
    unit = _halton_unit(permutations, halton_bases(space), jnp.int32(start), jnp.zeros(n))
    return _jitted_from_unit(space, unit)


_jitted_from_unit = jax.jit(lambda space, u: space.from_unit(u), static_argnums=0)
