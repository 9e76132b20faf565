"""Scheduling decisions as pure array functions.

Every function here takes the metrics reported so far as arrays (NaN where nothing was
reported) and returns masks or indices; none reads a clock, a file or a Python list, so
they run inside a jitted population program as well as behind the black-box shell.
Values are minimised.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _count_better(values: jax.Array, value: jax.Array) -> jax.Array:
    return jnp.sum(jnp.where(jnp.isnan(values), False, values < value))


def asha_continues(rung_values: jax.Array, value: jax.Array, eta: float) -> jax.Array:
    """ASHA's stopping rule at one rung: go on iff ``value`` ranks in the top
    ``floor(n / eta)`` of the ``n`` values recorded there (``value`` included).

    Below ``eta`` recorded values nothing can be judged yet, so the trial goes on.
    """
    recorded = jnp.sum(~jnp.isnan(rung_values))
    keep = jnp.floor(recorded / eta)
    enough = recorded >= eta
    return jnp.where(jnp.isnan(value), False, ~enough | (_count_better(rung_values, value) < keep))


def asha_promotion(values: jax.Array, promoted: jax.Array, eta: float):
    """ASHA's promotion rule: the trial to promote, from the highest rung that has one.

    ``values`` is (trials, rungs) with NaN where a trial has not reported; ``promoted``
    marks (trial, rung) pairs already promoted out of that rung. A trial is promotable
    from rung k when it is in the top ``floor(n_k / eta)`` of rung k and not yet
    promoted. Returns ``(found, trial, rung)``; with nothing to promote the caller
    starts a new configuration.
    """
    num_rungs = values.shape[1]
    recorded = jnp.sum(~jnp.isnan(values), axis=0)  # (rungs,)
    ranks = jax.vmap(lambda column: jax.vmap(lambda v: _count_better(column, v))(column),
                     in_axes=1, out_axes=1)(values)
    top = ranks < jnp.floor(recorded / eta)[None, :]
    candidate = top & ~jnp.isnan(values) & ~promoted
    # the last rung has nowhere to promote to
    candidate = candidate.at[:, num_rungs - 1].set(False)
    rung_has = candidate.any(axis=0)
    rung = num_rungs - 1 - jnp.argmax(rung_has[::-1])
    # best candidate of that rung, so the strongest trial moves first
    scores = jnp.where(candidate[:, rung], values[:, rung], jnp.inf)
    trial = jnp.argmin(scores)
    return rung_has.any(), trial, rung


def halving_survivors(values: jax.Array, alive: jax.Array, eta: float) -> jax.Array:
    """Synchronous successive halving: of the ``alive`` members, keep the best
    ``max(1, floor(n / eta))``. Failed members (NaN) never survive while a finite one can.
    Ties keep the lower index, so the result is deterministic."""
    n = jnp.sum(alive)
    keep = jnp.maximum(1, jnp.floor(n / eta)).astype(jnp.int32)
    scores = jnp.where(alive & ~jnp.isnan(values), values, jnp.inf)
    order = jnp.argsort(scores, stable=True)
    rank = jnp.empty_like(order).at[order].set(jnp.arange(order.shape[0]))
    return alive & (rank < keep) & ~jnp.isnan(values)


def median_continues(curves: jax.Array, trial: jax.Array, level: jax.Array,
                     min_trials: int) -> jax.Array:
    """The median stopping rule (Golovin et al., 2017) at decision level ``level``.

    ``curves`` is (trials, levels) with NaN where not reported. Trial ``trial`` stops when
    its best value up to ``level`` is worse than the median of the other trials' running
    averages up to ``level``; with fewer than ``min_trials`` other trials at that level it
    goes on.
    """
    upto = jnp.arange(curves.shape[1]) <= level
    masked = jnp.where(upto[None, :], curves, jnp.nan)
    reached = ~jnp.isnan(curves[:, level])
    others = reached & (jnp.arange(curves.shape[0]) != trial)
    sums = jnp.nansum(masked, axis=1)
    counts = jnp.sum(~jnp.isnan(masked), axis=1)
    running_mean = jnp.where(others, sums / jnp.maximum(counts, 1), jnp.nan)
    median = jnp.nanmedian(running_mean)
    best = jnp.nanmin(masked[trial])
    enough = jnp.sum(others) >= min_trials
    return jnp.where(jnp.isnan(best), False, ~enough | (best <= median))


def pbt_parents(values: jax.Array, alive: jax.Array, key: jax.Array, quantile: float) -> jax.Array:
    """PBT's exploit step: each member of the bottom ``quantile`` picks a random member
    of the top ``quantile`` to copy; every other member is its own parent.

    Returns parent indices (members,), used as a gather over the population state.
    Failed members (NaN) always copy a top member.
    """
    members = values.shape[0]
    n = jnp.sum(alive)
    cut = jnp.maximum(1, jnp.floor(n * quantile)).astype(jnp.int32)
    # sort finite members by value, then failed members, then padded slots
    category = jnp.where(~alive, 2, jnp.where(jnp.isnan(values), 1, 0))
    order = jnp.lexsort((jnp.nan_to_num(values, nan=0.0), category))
    rank = jnp.empty_like(order).at[order].set(jnp.arange(members))
    # a failed member always restarts from a good one, whatever the quantile
    bottom = alive & ((rank >= n - cut) | jnp.isnan(values))
    donor = order[jax.random.randint(key, (members,), 0, cut)]
    return jnp.where(bottom, donor, jnp.arange(members))
