"""PBT's explore step: perturb or resample the hyperparameters of members that copied."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jhpo.space import Space


def pbt_explore(space: Space, rows: jax.Array, key: jax.Array, *,
                resample_probability: float = 0.25,
                factors: tuple[float, float] = (0.8, 1.2)) -> jax.Array:
    """New rows near ``rows``: each numeric value is multiplied by one of ``factors``,
    each ordinal moves one rank up or down, each choice is kept; and with probability
    ``resample_probability`` a parameter is instead drawn afresh from its domain
    (Jaderberg et al., 2017). Pure and jittable; the result is canonical."""
    n = rows.shape[0]
    factor_key, step_key, resample_key, fresh_key = jax.random.split(key, 4)
    values = space.decode(rows)
    fresh = space.decode(space.sample(fresh_key, n))
    factor_pick = jax.random.randint(factor_key, (n, len(space.names)), 0, 2)
    step = 2 * jax.random.randint(step_key, (n, len(space.names)), 0, 2) - 1
    resample = jax.random.uniform(resample_key, (n, len(space.names))) < resample_probability
    explored = {}
    for i, column in enumerate(space.columns):
        domain = space.domains[column.name]
        value = values[column.name]
        if column.kind in ("float", "int"):
            scaled = value * jnp.asarray(factors)[factor_pick[:, i]]
            if column.kind == "int":
                scaled = jnp.round(scaled)
            moved = jnp.clip(scaled, domain.lo, domain.hi).astype(value.dtype)
        elif column.kind == "ordinal":
            moved = jnp.clip(value + step[:, i], 0, len(domain.values) - 1)
        else:
            moved = value
        explored[column.name] = jnp.where(resample[:, i], fresh[column.name], moved)
    return space.encode(explored)
