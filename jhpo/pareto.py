"""Pareto dominance and hypervolume, as pure JAX functions. All objectives are minimised.

Points are ``(n, m)`` arrays; an optional boolean ``mask`` marks the rows that count
(padded buffers keep their shape). Hypervolume is exact for two and three objectives and
a Monte Carlo estimate, with its standard error, above that.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _default_mask(points: jax.Array, mask: jax.Array | None) -> jax.Array:
    return jnp.ones(points.shape[0], bool) if mask is None else jnp.asarray(mask, bool)


def dominates(a: jax.Array, b: jax.Array) -> jax.Array:
    """Whether ``a`` is no worse than ``b`` in every objective and better in one."""
    return jnp.all(a <= b, axis=-1) & jnp.any(a < b, axis=-1)


def domination_matrix(points: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``(n, n)`` booleans: entry (i, j) says that point i dominates point j."""
    mask = _default_mask(points, mask)
    matrix = dominates(points[:, None, :], points[None, :, :])
    return matrix & mask[:, None] & mask[None, :]


@jax.jit
def nondominated(points: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Which (masked-in) points no other point dominates: the Pareto front."""
    mask = _default_mask(points, mask)
    return mask & ~jnp.any(domination_matrix(points, mask), axis=0)


@jax.jit
def nondominated_ranks(points: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Non-dominated sorting: rank 0 is the Pareto front, rank 1 the front once rank 0
    is removed, and so on. Masked-out rows get rank ``n``."""
    mask = _default_mask(points, mask)
    n = points.shape[0]
    beats = domination_matrix(points, mask)

    def peel(carry):
        rank, ranks, remaining = carry
        dominated = jnp.any(beats & remaining[:, None], axis=0)
        front = remaining & ~dominated
        return rank + 1, jnp.where(front, rank, ranks), remaining & ~front

    # As many passes as there are fronts, not n: each pass costs n^2, and a scheduler
    # ranks a whole rung per decision.
    _, ranks, _ = jax.lax.while_loop(lambda carry: jnp.any(carry[2]), peel,
                                     (jnp.asarray(0, jnp.int32), jnp.full(n, n, jnp.int32), mask))
    return ranks


def _hypervolume_2d(points: jax.Array, reference: jax.Array, mask: jax.Array) -> jax.Array:
    # Only points inside the reference box add volume; sweep them by the first objective,
    # each adding the strip between its second objective and the best one seen before it.
    inside = mask & jnp.all(points < reference, axis=1)
    x = jnp.where(inside, points[:, 0], reference[0])
    y = jnp.where(inside, points[:, 1], reference[1])
    order = jnp.lexsort((y, x))
    x, y = x[order], y[order]
    best_y_before = jnp.concatenate([reference[1:2], jax.lax.cummin(y)[:-1]])
    height = jnp.maximum(best_y_before - y, 0.0)
    return jnp.sum((reference[0] - x) * height)


def _hypervolume_3d(points: jax.Array, reference: jax.Array, mask: jax.Array) -> jax.Array:
    # Slice along the third objective: between consecutive z levels the dominated region
    # is the 2-D hypervolume of the points at or below that level.
    inside = mask & jnp.all(points < reference, axis=1)
    z = jnp.where(inside, points[:, 2], reference[2])
    order = jnp.argsort(z)
    z_sorted = z[order]
    thickness = jnp.concatenate([z_sorted[1:], reference[2:3]]) - z_sorted

    def slice_area(level):
        return _hypervolume_2d(points[:, :2], reference[:2], inside & (z <= level))

    return jnp.sum(jax.vmap(slice_area)(z_sorted) * thickness)


@jax.jit
def hypervolume(points: jax.Array, reference: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Exact volume dominated by ``points`` and bounded by ``reference`` (2 or 3 objectives)."""
    points = jnp.asarray(points)
    reference = jnp.asarray(reference, points.dtype)
    mask = _default_mask(points, mask)
    m = points.shape[1]
    if m == 1:
        return jnp.maximum(reference[0] - jnp.min(jnp.where(mask, points[:, 0], reference[0])), 0.0)
    if m == 2:
        return _hypervolume_2d(points, reference, mask)
    if m == 3:
        return _hypervolume_3d(points, reference, mask)
    raise ValueError(
        f"exact hypervolume is for 1 to 3 objectives, got {m}; use hypervolume_monte_carlo"
    )


@functools.partial(jax.jit, static_argnames="num_samples")
def hypervolume_monte_carlo(points: jax.Array, reference: jax.Array, key: jax.Array,
                            mask: jax.Array | None = None, num_samples: int = 100_000):
    """Monte Carlo hypervolume for any number of objectives: ``(estimate, standard error)``.

    Samples uniformly in the box between the points' ideal corner and ``reference`` and
    counts the fraction some point dominates.
    """
    points = jnp.asarray(points, jnp.float32)
    reference = jnp.asarray(reference, jnp.float32)
    mask = _default_mask(points, mask) & jnp.all(points < reference, axis=1)
    lower = jnp.min(jnp.where(mask[:, None], points, reference), axis=0)
    box = jnp.prod(reference - lower)
    samples = lower + jax.random.uniform(key, (num_samples, points.shape[1])) * (reference - lower)

    def covered(sample):
        return jnp.any(mask & jnp.all(points <= sample, axis=1))

    fraction = jnp.mean(jax.lax.map(covered, samples, batch_size=1024))
    standard_error = box * jnp.sqrt(fraction * (1 - fraction) / num_samples)
    return box * fraction, standard_error
