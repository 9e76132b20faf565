"""What each of the searcher's GPs models, computed from the observed buffer.

Every GP models one column of ``output_targets``: the objective (several objectives
scalarised by ParEGO), then each constraint, then the log of the cost. Failed trials
(NaN) read as the worst finite value of their column. The functions are pure and run
inside the compiled kernels, in float64 (under ``jax.enable_x64``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jhpo import acquisition as acq
from jhpo import gp
from jhpo.searchers.base import Buffer
from jhpo.searchers.bo.options import Outputs

# A zero or negative cost (a clock's rounding) is floored here so that its log stays finite.
COST_FLOOR = 1e-9

# Of the observations a GP conditions on in a large buffer, this share are the best ones.
BEST_SHARE = 0.5


def impute_worst(values: jax.Array, mask: jax.Array, worst_is_largest: bool) -> jax.Array:
    """``values`` with failed entries (NaN, inf) read as the worst finite masked value,
    the largest or the smallest; padding becomes 0, and so does everything when no
    masked value is finite."""
    finite = mask & jnp.isfinite(values)
    pick = jnp.max if worst_is_largest else jnp.min
    fill = -jnp.inf if worst_is_largest else jnp.inf
    worst = jnp.where(finite.any(), pick(jnp.where(finite, values, fill)), 0.0)
    return jnp.where(mask & ~finite, worst, jnp.where(mask, values, 0.0))


def told_columns(observed: Buffer) -> jax.Array:
    """The observed values as a (capacity, told) float64 array, whatever the buffer's layout
    (a single-objective buffer keeps one value per row)."""
    return observed.y.astype(jnp.float64).reshape(observed.capacity, -1)


def output_targets(outputs: Outputs, observed: Buffer, weights: jax.Array | None,
                   warp: bool = False) -> jax.Array:
    """The (capacity, ``outputs.modelled``) values the GPs model, before standardisation.

    Column 0 is the objective: with several objectives, their augmented Chebyshev
    scalarisation under ParEGO's ``weights`` (each objective first normalised to [0, 1]
    over the observations; ``weights`` is unused with one objective); with ``warp``, the
    normal scores of its ranks (``jhpo.gp.rank_warp``). Then one column per constraint
    (``c > 0`` is feasible) and, with ``cost_aware``, the log of the cost.
    """
    y, mask = told_columns(observed), observed.mask
    k, c = outputs.num_objectives, outputs.num_constraints
    if k == 1:
        objective = impute_worst(y[:, 0], mask, True)
    else:
        objectives = jnp.stack([impute_worst(y[:, j], mask, True) for j in range(k)], axis=1)
        normalised = acq.normalize_columns(objectives, mask)
        objective = jnp.where(mask, acq.augmented_chebyshev(normalised, weights), 0.0)
    if warp:
        objective = gp.rank_warp(objective, mask)
    columns = [objective] + [impute_worst(y[:, k + i], mask, False) for i in range(c)]
    if outputs.cost_aware:
        log_cost = jnp.log(jnp.maximum(y[:, k + c], COST_FLOOR))
        columns.append(impute_worst(log_cost, mask, True))
    return jnp.stack(columns, axis=1)


def map_outputs(fn: Callable, in_axes: tuple, outputs: Outputs) -> Callable:
    """``fn`` mapped over the modelled outputs, as ``jax.vmap(fn, in_axes)``: each argument
    is taken along its axis in ``in_axes`` (None: shared), and the results are stacked
    along a new leading axis.

    With one modelled output (a single objective, or several scalarised without
    constraints or cost) ``fn`` is called once on the outputs' only slice: the same
    values, but the GP code vmapped over an axis of one compiled measurably slower
    (docs/design/bo.md).
    """
    if outputs.modelled > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def only_output(*args):
        sliced = [_first_slice(arg, axis) for arg, axis in zip(args, in_axes)]
        return jax.tree.map(lambda result: result[None], fn(*sliced))

    return only_output


def _first_slice(arg, axis: int | None):
    """Each leaf of ``arg`` at index 0 along ``axis`` (a static slice); ``arg`` itself for None."""
    if axis is None:
        return arg
    return jax.tree.map(lambda leaf: jax.lax.index_in_dim(leaf, 0, axis, keepdims=False), arg)


def standardised_targets(outputs: Outputs, observed: Buffer, weights: jax.Array | None,
                         warp: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``output_targets`` (capacity, modelled) with each column standardised over the
    observed rows (see ``jhpo.gp.standardize``), and each column's offset and scale."""
    targets = output_targets(outputs, observed, weights, warp)
    columns, offsets, scales = map_outputs(gp.standardize, (1, None), outputs)(targets,
                                                                              observed.mask)
    return columns.T, offsets, scales


def feasible_rows(outputs: Outputs, observed: Buffer) -> jax.Array:
    """Observed rows whose every constraint is > 0 (NaN, a failed trial, is not); every
    observed row when there is no constraint."""
    k, c = outputs.num_objectives, outputs.num_constraints
    return observed.mask & jnp.all(told_columns(observed)[:, k:k + c] > 0, axis=1)


def model_inputs(outputs: Outputs, x: jax.Array, fidelity) -> jax.Array:
    """GP inputs in float64: the rows, with their fidelity (an array per row or one number)
    as a last column when ``outputs.multi_fidelity``."""
    x = x.astype(jnp.float64)
    if not outputs.multi_fidelity:
        return x
    column = jnp.broadcast_to(jnp.asarray(fidelity, jnp.float64), x.shape[:1])
    return jnp.concatenate([x, column[:, None]], axis=1)


def observed_inputs(outputs: Outputs, observed: Buffer) -> jax.Array:
    """``model_inputs`` of the observed rows, each at the fidelity it was told with."""
    fidelity = told_columns(observed)[:, -1] if outputs.multi_fidelity else 1.0
    return model_inputs(outputs, observed.x, fidelity)


def fit_data(outputs: Outputs, observed: Buffer, weights: jax.Array | None = None,
             warp: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    """What the GPs are fitted to: ``(inputs, standardised targets (capacity, modelled), mask)``."""
    targets, _, _ = standardised_targets(outputs, observed, weights, warp)
    return observed_inputs(outputs, observed), targets, observed.mask


def modelled_rows(limit: int, x: jax.Array, targets: jax.Array, mask: jax.Array,
                  key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The observations the GPs condition on, as ``(x, targets, mask)``: every row while
    the buffer's capacity is at most ``limit``, the exact GP; beyond, ``limit`` rows, the
    best ``BEST_SHARE`` of them by the objective (column 0 of ``targets``) and a random
    draw of the others (``jhpo.gp.best_and_random``), so that the cost of a fit or a
    proposal stops growing with the buffer."""
    if mask.shape[0] <= limit:  # static: shapes are known at trace time
        return x, targets, mask
    index = gp.best_and_random(key, targets[:, 0], mask, limit, int(BEST_SHARE * limit))
    return x[index], targets[index], mask[index]
