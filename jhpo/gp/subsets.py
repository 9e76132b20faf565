"""Choosing which observations a GP sees, in fixed shapes (usable under ``jit``).

An exact GP costs the cube of its rows to condition and their square per prediction, so
beyond a few hundred rows a searcher conditions on a subset: ``random_subset`` for fits
with restarts (the hyperparameters need a fair sample of the data), ``best_and_random``
for the model that proposes (sharp near the best values, coarse everywhere else).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def random_subset(key: jax.Array, x: jax.Array, y: jax.Array, mask: jax.Array, size: int):
    """``size`` rows drawn without replacement from the masked rows (all of them,
    padded, when fewer are masked). Fixed output shape, so it works under jit."""
    priority = jax.random.uniform(key, mask.shape) + mask.astype(jnp.float32)
    _, index = lax.top_k(priority, size)
    return x[index], y[index], mask[index]


def best_and_random(key: jax.Array, scores: jax.Array, mask: jax.Array, size: int,
                    num_best: int) -> jax.Array:
    """Indices of ``size`` rows: the ``num_best`` masked rows of lowest ``scores``, then
    masked rows drawn at random, then (when fewer than ``size`` are masked) padding.

    Every masked row is taken when at most ``size`` are masked, so a GP conditioned on
    the subset is then the exact one. ``scores`` must be finite on masked rows.
    """
    if not 0 <= num_best <= size <= mask.shape[0]:
        raise ValueError(f"need 0 <= num_best ({num_best}) <= size ({size}) <= rows "
                         f"({mask.shape[0]})")
    _, best = lax.top_k(jnp.where(mask, -scores, -jnp.inf), num_best)
    is_best = jnp.zeros(mask.shape, bool).at[best].set(True) & mask
    # Three tiers: best rows (2), the other masked rows at random (1 to 2), padding (< 1).
    draw = jax.random.uniform(key, mask.shape)
    priority = jnp.where(is_best, 2.0, draw + mask.astype(draw.dtype))
    _, index = lax.top_k(priority, size)
    return index
