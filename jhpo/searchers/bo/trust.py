"""The trust region of the ``bo`` searcher (option ``trust_region``), after TuRBO
(Eriksson et al., NeurIPS 2019): the acquisition is maximised inside a box around the
best row of the current region's history, whose side grows after a run of improvements,
shrinks after a run of failures, and restarts when it has shrunk below a floor.

Nothing of it is carried in the searcher's state: the box's size and the row where the
current region began are a function of the observed values in the order told
(``region_history``), so a replay of the records gives the same boxes, and pending rows
(not told yet) never move it. The functions are pure and run inside the compiled
proposal kernel.

With the region comes the trend row (``jhpo.searchers.bo.trend``): on every third row,
while a separable quadratic fitted to all the observations leaves less than 0.1% of their
variance unexplained (a wide bowl whose ripples the GP cannot resolve), its minimiser is
proposed (clipped to the box) instead of the acquisition's row.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

# A row improves on the region's best only by more than this share of its magnitude
# (TuRBO's rule): a string of tiny gains on a plateau is not a success.
IMPROVEMENT_SHARE = 1e-3


class TrustRegionConfig(NamedTuple):
    """Static settings of the trust region (``options.make_config`` derives them)."""

    start: int  # rows told before the region's rule applies (the initial design)
    failure_tolerance: int  # failures in a row that halve the side
    success_tolerance: int = 3  # improvements in a row that double it
    initial: float = 0.8  # side at the start and after a restart (in length-scale units)
    minimum: float = 2.0 ** -7  # below this the region restarts
    maximum: float = 1.6
    trend_fit: float = 0.999  # adjusted R^2 from which the trend row is proposed (trend.py)
    trend_period: int = 3  # the trend row is considered on rows whose index is a multiple of it


class RegionHistory(NamedTuple):
    """Where the told history leaves the trust region."""

    side: jax.Array  # the box's side, before the length-scale weights
    begins_at: jax.Array  # index of the first told row of the current region
    restarts: jax.Array  # how many times the region has collapsed


def region_history(config: TrustRegionConfig, values: jax.Array,
                   mask: jax.Array) -> RegionHistory:
    """Replay the told ``values`` (minimised; NaN for a failed trial) in order through the
    region's rule. A row after ``config.start`` that improves on the region's best is a
    success, any other a failure (a failed trial included); the first row of a region
    after a restart is neither, it only sets the region's best."""

    def step(carry, row):
        side, best, successes, failures, begins_at, restarts = carry
        index, value, filled = row
        finite = filled & jnp.isfinite(value)
        counts = filled & (index >= config.start) & jnp.isfinite(best)
        improved = finite & (value < best - IMPROVEMENT_SHARE * jnp.abs(best))
        successes = jnp.where(counts, jnp.where(improved, successes + 1, 0), successes)
        failures = jnp.where(counts, jnp.where(improved, 0, failures + 1), failures)
        grow = successes >= config.success_tolerance
        shrink = failures >= config.failure_tolerance
        side = jnp.where(grow, jnp.minimum(2.0 * side, config.maximum),
                         jnp.where(shrink, 0.5 * side, side))
        successes = jnp.where(grow, 0, successes)
        failures = jnp.where(shrink, 0, failures)
        best = jnp.where(finite, jnp.minimum(best, value), best)
        collapsed = side < config.minimum
        carry = (jnp.where(collapsed, config.initial, side),
                 jnp.where(collapsed, jnp.inf, best),
                 jnp.where(collapsed, 0, successes), jnp.where(collapsed, 0, failures),
                 jnp.where(collapsed, index + 1, begins_at), restarts + collapsed)
        return carry, None

    dtype = values.dtype
    start = (jnp.asarray(config.initial, dtype), jnp.asarray(jnp.inf, dtype),
             jnp.int32(0), jnp.int32(0), jnp.int32(0), jnp.int32(0))
    indices = jnp.arange(values.shape[0], dtype=jnp.int32)
    (side, _, _, _, begins_at, restarts), _ = lax.scan(step, start, (indices, values, mask))
    return RegionHistory(side, begins_at, restarts)


class RegionBox(NamedTuple):
    """The box the acquisition is maximised in, and its centre."""

    low: jax.Array  # (d,)
    high: jax.Array  # (d,)
    centre: jax.Array  # (d,) the best row of the region; meaningless unless ``open``
    open: jax.Array  # whether the region has a row yet (else the box is the whole cube)


def region_box(config: TrustRegionConfig, x: jax.Array, values: jax.Array, mask: jax.Array,
               log_lengthscale: jax.Array, boxed: jax.Array) -> RegionBox:
    """The box the acquisition is maximised in: centred on the best row
    told since the current region began, each boxed column's side the region's side times
    its length scale over their geometric mean (a long length scale, a column the
    objective varies slowly along, gets a wide side), clipped to the unit cube.

    ``boxed``: the columns the box applies to (one-hot columns are left whole: a box around
    a one-hot block would pin the incumbent's category). While the region has no row yet
    (just restarted), the box is the whole cube.
    """
    history = region_history(config, values, mask)
    in_region = mask & jnp.isfinite(values) & (jnp.arange(values.shape[0]) >= history.begins_at)
    centre = x[jnp.argmin(jnp.where(in_region, values, jnp.inf))]
    log_scale = jnp.where(boxed, log_lengthscale, 0.0)
    mean_log_scale = log_scale.sum() / jnp.maximum(boxed.sum(), 1)
    half = 0.5 * history.side * jnp.exp(log_scale - mean_log_scale)
    is_open = in_region.any()
    confined = is_open & boxed
    low = jnp.where(confined, jnp.clip(centre - half, 0.0, 1.0), 0.0)
    high = jnp.where(confined, jnp.clip(centre + half, 0.0, 1.0), 1.0)
    return RegionBox(low, high, centre, is_open)
