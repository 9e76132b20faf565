"""Scheduling decisions as pure array functions.

Every function here takes the metrics reported so far as arrays (NaN where nothing was
reported) and returns masks or indices; none reads a clock, a file or a Python list, so
they run inside a jitted population program as well as behind the black-box shell.
Values are minimised.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jhpo.pareto import nondominated_ranks


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


def _crowding(points: jax.Array, ranks: jax.Array, recorded: jax.Array) -> jax.Array:
    """NSGA-II's crowding distance of each point within its own front.

    Per objective, a point at the front's minimum or maximum is a boundary point
    (infinite distance); any other adds the gap between the nearest distinct values
    above and below it, divided by the front's range. Neighbours are taken by value, not
    by sorted position, so equal points get equal distances and the result does not
    depend on the order of the rows.
    """
    peers = recorded[None, :] & (ranks[None, :] == ranks[:, None])  # (n, n): same front
    v, w = points[:, None, :], points[None, :, :]  # (n, 1, m) against (1, n, m)
    in_front = peers[:, :, None]
    above = jnp.min(jnp.where(in_front & (w > v), w, jnp.inf), axis=1)
    below = jnp.max(jnp.where(in_front & (w < v), w, -jnp.inf), axis=1)
    highest = jnp.max(jnp.where(in_front, w, -jnp.inf), axis=1)
    lowest = jnp.min(jnp.where(in_front, w, jnp.inf), axis=1)
    boundary = (points == highest) | (points == lowest)
    gap = (above - below) / jnp.where(boundary, 1.0, highest - lowest)
    return jnp.sum(jnp.where(boundary, jnp.inf, gap), axis=1)


def pareto_ahead(points: jax.Array) -> jax.Array:
    """For each row of ``points`` (n, objectives), how many recorded rows rank strictly
    ahead of it: a lower non-dominated rank, or the same rank and a larger crowding
    distance (the tie-break of NSGA-II, which keeps a front's spread).

    A row with any NaN is not recorded. With one objective a front is a set of equal
    values with equal crowding, so the count is the number of strictly smaller values:
    the rank single-objective ASHA uses.
    """
    recorded = ~jnp.any(jnp.isnan(points), axis=1)
    ranks = nondominated_ranks(jnp.where(recorded[:, None], points, 0.0), recorded)
    crowding = _crowding(points, ranks, recorded)
    ahead = recorded[None, :] & ((ranks[None, :] < ranks[:, None]) | (
        (ranks[None, :] == ranks[:, None]) & (crowding[None, :] > crowding[:, None])))
    return jnp.sum(ahead, axis=1)


def pareto_asha_continues(rung_values: jax.Array, trial, eta: float) -> jax.Array:
    """Multi-objective ASHA's stopping rule at one rung: trial ``trial`` goes on iff
    fewer than ``floor(n / eta)`` of the ``n`` points recorded there rank ahead of it
    (:func:`pareto_ahead`). ``rung_values`` is (trials, objectives) and already holds the
    trial's own point; below ``eta`` points nothing can be judged yet.
    """
    recorded = jnp.sum(~jnp.any(jnp.isnan(rung_values), axis=1))
    keep = jnp.floor(recorded / eta)
    ahead = pareto_ahead(rung_values)[trial]
    return jnp.where(jnp.any(jnp.isnan(rung_values[trial])), False,
                     (recorded < eta) | (ahead < keep))


def pareto_asha_promotion(values: jax.Array, promoted: jax.Array, eta: float):
    """Multi-objective ASHA's promotion rule, as :func:`asha_promotion` with points.

    ``values`` is (trials, rungs, objectives). A trial is promotable from rung k when
    fewer than ``floor(n_k / eta)`` points of rung k rank ahead of it and it was not
    promoted from k yet; the highest rung with a candidate promotes the candidate with
    the fewest points ahead (the lowest index among equals). Returns ``(found, trial,
    rung)``.
    """
    num_rungs = values.shape[1]
    recorded = ~jnp.any(jnp.isnan(values), axis=2)  # (trials, rungs)
    ahead = jax.vmap(pareto_ahead, in_axes=1, out_axes=1)(values)
    top = ahead < jnp.floor(jnp.sum(recorded, axis=0) / eta)[None, :]
    candidate = top & recorded & ~promoted
    # the last rung has nowhere to promote to
    candidate = candidate.at[:, num_rungs - 1].set(False)
    rung_has = candidate.any(axis=0)
    rung = num_rungs - 1 - jnp.argmax(rung_has[::-1])
    trial = jnp.argmin(jnp.where(candidate[:, rung], ahead[:, rung], values.shape[0]))
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
