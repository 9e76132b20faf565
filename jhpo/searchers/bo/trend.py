"""The trend row of the ``bo`` searcher's trust region: the minimiser of a separable
quadratic fitted by least squares to every observation, proposed in place of the
acquisition's row when that quadratic explains nearly all of the observed variation.

Why: on a wide bowl covered in small ripples (Griewank), the GP's length scales span the
bowl and its noise is tiny, so it interpolates the ripples of the rows near the bottom,
and its mean there is a plateau whose minimum is set by them, off the bowl's centre by
many ripples. A least-squares quadratic reads the ripples as residuals and places the
centre from the whole bowl's curvature, far more precisely (docs/design/bo.md has the
measurements). Where the quadratic explains less (every other landscape measured), the
row is never proposed. The functions are pure and run inside the compiled proposal
kernel, on static shapes: rows left out carry zero weight.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# A fit counts only with at least this many rows per term: with barely more rows than
# terms, the adjusted R^2 of a landscape that is no bowl still comes out near 1 (Branin
# with 6 rows for 5 terms: 0.996; Hartmann-6 with 14 for 13: 0.991).
ROWS_PER_TERM = 2

# Diagonal ridge on the normal equations, relative to their mean diagonal: only keeps the
# solve defined when a column is constant (a one-hot column, or a column not yet varied).
RIDGE = 1e-9


class QuadraticFit(NamedTuple):
    """y ~ intercept + sum_j linear_j x_j + curvature_j x_j^2 over the fitted columns."""

    intercept: jax.Array  # ()
    linear: jax.Array  # (d,) 0 on columns left out
    curvature: jax.Array  # (d,) 0 on columns left out
    adjusted_r2: jax.Array  # () share of the variance explained, adjusted for the terms
    count: jax.Array  # () rows fitted


def quadratic_features(x: jax.Array, columns: jax.Array) -> jax.Array:
    """(n, 1 + 2 d) features [1, x, x^2] of the rows ``x`` (n, d), zero on the columns
    not in ``columns`` (d,) bool."""
    weight = columns.astype(x.dtype)
    return jnp.concatenate([jnp.ones(x.shape[:1] + (1,), x.dtype), x * weight, x**2 * weight],
                           axis=1)


def fit_separable_quadratic(x: jax.Array, y: jax.Array, weights: jax.Array,
                            columns: jax.Array) -> QuadraticFit:
    """The least-squares separable quadratic through the rows of ``x`` (n, d) with
    ``weights`` > 0 (0 leaves a row out; padded or failed rows), on ``columns``.

    ``adjusted_r2`` is 1 - (1 - R^2) (n - 1) / (n - p) with p the terms fitted, so that
    more terms do not make a fit look better; it is -inf while n < ``ROWS_PER_TERM`` p.
    """
    d = x.shape[1]
    features = quadratic_features(x, columns)
    used = weights > 0
    y = jnp.where(used, y, 0.0)
    gram = features.T @ (weights[:, None] * features)
    ridge = RIDGE * jnp.trace(gram) / gram.shape[0]
    coef = jnp.linalg.solve(gram + ridge * jnp.eye(gram.shape[0], dtype=gram.dtype),
                            features.T @ (weights * y))
    count = used.sum()
    total_weight = jnp.maximum(weights.sum(), 1e-300)
    mean = (weights * y).sum() / total_weight
    total = (weights * (y - mean) ** 2).sum()
    residual = (weights * (y - features @ coef) ** 2).sum()
    terms = 1 + 2 * columns.sum()
    r2 = 1.0 - residual / jnp.maximum(total, 1e-300)
    adjusted = 1.0 - (1.0 - r2) * (count - 1) / jnp.maximum(count - terms, 1)
    adjusted = jnp.where((count >= ROWS_PER_TERM * terms) & (total > 0), adjusted, -jnp.inf)
    return QuadraticFit(coef[0], coef[1:1 + d], coef[1 + d:], adjusted, count)


def trend_minimiser(fit: QuadraticFit, fallback: jax.Array, low: jax.Array,
                    high: jax.Array) -> jax.Array:
    """The fitted quadratic's minimiser, column by column, clipped to [low, high]; the
    ``fallback`` row's value on columns without a minimum (curvature <= 0, or left out)."""
    curved = fit.curvature > 0
    vertex = -fit.linear / jnp.where(curved, 2.0 * fit.curvature, 1.0)
    return jnp.clip(jnp.where(curved, vertex, fallback), low, high)
