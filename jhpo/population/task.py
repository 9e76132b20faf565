"""One member's training as pure functions, and the per-member inputs of a population.

A ``Task`` describes one member; the population programs (``programs.py``) vmap it.
This module turns configurations into hyperparameter columns (one array per name,
one row per member) and derives each member's PRNG key, once for every caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
HParams = dict[str, Array]


class Task(NamedTuple):
    """One member's training, as pure functions (all traced under vmap and jit).

    init(key, hp) -> state
        A fresh member for the hyperparameters ``hp`` (a dict of scalars).
    train_step(state, hp, batch, key) -> (state, metrics)
        One step; ``metrics`` has a scalar "loss". ``batch`` is what ``draw_batch``
        returned plus "mask", a bool vector marking the member's ``batch_size`` real
        examples: the step must weight its loss (and any batch statistics) by it.
    evaluate(state, hp, data) -> metrics
        Scalars, including ``metric``.
    draw_batch(data, key, size) -> batch
        A dict of arrays with leading axis ``size``; the first n examples must not
        depend on ``size``.
    data
        A pytree of arrays, passed to the compiled programs as an argument
        (closed-over arrays would be baked into every program as constants).
    defaults
        Every hyperparameter the task reads, with the value used when a configuration
        omits it; must include "batch_size". An int default makes the hyperparameter
        int32, a float one float32.
    metric
        The name in evaluate's metrics that a tuner minimises.
    """

    init: Callable[[Array, HParams], Any]
    train_step: Callable[[Any, HParams, dict, Array], tuple[Any, dict]]
    evaluate: Callable[[Any, HParams, Any], dict]
    draw_batch: Callable[[Any, Array, int], dict]
    data: Any
    defaults: Mapping[str, float | int]
    metric: str = "val_error"
    name: str = "task"


def stack_hparams(task: Task, configs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Configurations (plain dicts) -> one (P,) array per hyperparameter the task reads.

    Missing hyperparameters take the task's default; unknown ones are an error.
    """
    if not configs:
        raise ValueError("configs is empty: a population needs at least one member")
    known = set(task.defaults)
    for index, config in enumerate(configs):
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"configs[{index}] has hyperparameters {unknown} that task {task.name!r} does not read; "
                f"it reads {sorted(known)}"
            )
    return {
        name: _as_hparam_column(name, [config.get(name, default) for config in configs], default)
        for name, default in task.defaults.items()
    }


def _as_hparam_column(name: str, values: list, default) -> np.ndarray:
    """``values`` as int32 when the task's default is an int, else float32."""
    try:
        column = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"hyperparameter {name!r} must be numeric; got {values!r}") from error
    if isinstance(default, (int, np.integer)):
        if not np.all(column == np.round(column)):
            raise ValueError(f"hyperparameter {name!r} must be an integer; got {values!r}")
        return column.astype(np.int32)
    return column.astype(np.float32)


def check_hparams(task: Task, hparams: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
    """Hyperparameter columns (name -> (P,) values) completed with the task's defaults.

    Returns the columns and P; unknown names, columns of different lengths and a
    task without a "batch_size" default are errors.
    """
    unknown = sorted(set(hparams) - set(task.defaults))
    if unknown:
        raise ValueError(f"hparams has {unknown} that task {task.name!r} does not read; it reads {sorted(task.defaults)}")
    if "batch_size" not in task.defaults:
        raise ValueError(f"task {task.name!r} must declare a default 'batch_size'")
    columns = {name: np.asarray(value) for name, value in hparams.items()}
    sizes = {name: column.shape for name, column in columns.items()}
    if len(set(sizes.values())) != 1 or len(next(iter(sizes.values()))) != 1:
        raise ValueError(f"every hyperparameter must be a vector of the same length; got shapes {sizes}")
    size = len(next(iter(columns.values())))
    for name, default in task.defaults.items():
        if name not in columns:
            columns[name] = _as_hparam_column(name, [default] * size, default)
    return columns, size


def member_keys(seed: int, members) -> Array:
    """The PRNG key of each member (a trial id) of a run seeded with ``seed``.

    A member's key depends on its id alone, not on its slot in a population, so a
    trial trains the same whichever members share its program.
    """
    base = jax.random.key(seed)
    return jax.vmap(lambda member: jax.random.fold_in(base, member))(jnp.asarray(members))


def member_seeds(seed: int, count: int, offset: int = 0) -> Array:
    """Keys for members ``offset .. offset + count - 1`` of a run seeded with ``seed``."""
    return member_keys(seed, jnp.arange(offset, offset + count))


def typed_keys(seeds) -> Array:
    """(P,) integer seeds or typed PRNG keys -> typed PRNG keys."""
    seeds = jnp.asarray(seeds) if not isinstance(seeds, jax.Array) else seeds
    if jnp.issubdtype(seeds.dtype, jax.dtypes.prng_key):
        return seeds
    if not jnp.issubdtype(seeds.dtype, jnp.integer):
        raise ValueError(f"seeds must be integers or typed PRNG keys; got dtype {seeds.dtype}")
    return jax.vmap(jax.random.key)(seeds)


def masked_mean(values: Array, mask: Array) -> Array:
    """Mean of ``values`` over the examples where ``mask`` is set (a member's real batch)."""
    weights = mask.astype(values.dtype)
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1)
