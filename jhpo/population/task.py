"""One member's training as pure functions, and the per-member inputs of a population.

A ``Task`` describes one member; the population programs (``programs.py``) vmap it.
This module turns configurations into hyperparameter columns (one array per name,
one row per member) and derives each member's PRNG key, once for every caller.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jhpo.space import Choice, Ordinal, Space

Array = jax.Array
HParams = dict[str, Array]


class Task(NamedTuple):
    """One member's training, as pure functions (all traced under vmap and jit).

    init(key, hp) -> state
        A fresh member for the hyperparameters ``hp``: a dict of scalars by (dotted)
        name, int32 where the default is an int, else float32; a ``choice`` of values
        that are not all numbers (strings, booleans) arrives as the index of its value.
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


def task_config(space: Space, config: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration as a task reads it: flat dotted names (``{"optim": {"lr": x}}`` is
    ``optim.lr``), and a ``choice`` or ``ordinal`` of values that are not all numbers
    (strings, booleans, None) as the index of its value, since compiled code takes
    numbers only. Numeric choices (``choice([16, 32, 64])``) keep their values."""
    flat = space.flat_config(config)
    return {name: space.index_of(name, value) if _by_index(space.domains.get(name)) else value
            for name, value in flat.items()}


def _by_index(domain) -> bool:
    if not isinstance(domain, (Choice, Ordinal)):
        return False
    return not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in domain.values)


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


class TaskError(ValueError):
    """A task's functions do not return what ``Task`` promises."""


# The batch size of the one-member trace that checks a task.
_CHECK_BATCH = 4


def check_task(task: Task) -> list[str]:
    """Trace one member of ``task`` (shapes only, no arithmetic) and raise one
    ``TaskError`` naming the function, what it returned and what was expected, instead of
    a long traceback from inside a compiled population. Returns evaluate's metric names."""
    if "batch_size" not in task.defaults:
        raise TaskError(f"task {task.name!r}: defaults must give 'batch_size'; it gives "
                        f"{sorted(task.defaults)}")
    hp = {name: column[0] for name, column in stack_hparams(task, [{}]).items()}
    key = jax.random.key(0)
    state = _traced(task, "init", lambda: jax.eval_shape(task.init, key, hp))
    batch = _traced(task, "draw_batch",
                    lambda: jax.eval_shape(lambda d, k: task.draw_batch(d, k, _CHECK_BATCH),
                                           task.data, key))
    wrong = {name: leaf.shape for name, leaf in _items(batch) if leaf.shape[:1] != (_CHECK_BATCH,)}
    if not isinstance(batch, Mapping) or wrong:
        raise TaskError(f"task {task.name!r}: draw_batch(data, key, size={_CHECK_BATCH}) must return "
                        f"a dict of arrays with leading axis {_CHECK_BATCH}; got "
                        f"{wrong or type(batch).__name__}")
    batch = {**batch, "mask": jax.ShapeDtypeStruct((_CHECK_BATCH,), bool)}
    stepped = _traced(task, "train_step", lambda: jax.eval_shape(task.train_step, state, hp, batch, key))
    if not (isinstance(stepped, tuple) and len(stepped) == 2 and isinstance(stepped[1], Mapping)):
        raise TaskError(f"task {task.name!r}: train_step must return (state, metrics), metrics a "
                        f"dict; got {_summary(stepped)}")
    new_state, step_metrics = stepped
    loss = step_metrics.get("loss")
    if loss is None or loss.shape != ():
        raise TaskError(f"task {task.name!r}: train_step's metrics need a scalar 'loss'; got "
                        f"{_summary(dict(step_metrics))}")
    if jax.tree.structure(new_state) != jax.tree.structure(state) or any(
            (a.shape, a.dtype) != (b.shape, b.dtype)
            for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state))):
        raise TaskError(f"task {task.name!r}: train_step must return a state shaped as init's; "
                        f"init gave {_summary(state)}, train_step {_summary(new_state)}")
    metrics = _traced(task, "evaluate", lambda: jax.eval_shape(task.evaluate, state, hp, task.data))
    not_scalar = {k: v.shape for k, v in _items(metrics) if v.shape != ()}
    if not isinstance(metrics, Mapping) or not_scalar:
        raise TaskError(f"task {task.name!r}: evaluate must return a dict of scalars; got "
                        f"{not_scalar or type(metrics).__name__}")
    if task.metric not in metrics:
        raise TaskError(f"task {task.name!r}: evaluate's metrics {sorted(metrics)} lack the task's "
                        f"metric {task.metric!r}")
    return sorted(metrics)


def _traced(task: Task, function: str, trace: Callable[[], Any]):
    try:
        return trace()
    except KeyError as error:
        raise TaskError(f"task {task.name!r}: {function} read {error}, which is missing (a "
                        f"hyperparameter must be in defaults {sorted(task.defaults)}; a batch has "
                        "draw_batch's keys and 'mask')") from None
    except Exception as error:  # noqa: BLE001 - one message instead of a trace from inside jit
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise TaskError(f"task {task.name!r}: {function} failed when traced for one member: "
                        f"{type(error).__name__}: {first}") from None


def _items(tree) -> list[tuple[str, Any]]:
    return list(tree.items()) if isinstance(tree, Mapping) else []


def _summary(tree) -> str:
    """A short text of a traced pytree: its structure with shapes for leaves."""
    text = str(jax.tree.map(lambda leaf: f"{getattr(leaf, 'dtype', '?')}{list(getattr(leaf, 'shape', []))}",
                            tree))
    return text if len(text) <= 200 else text[:197] + "..."
