"""Parzen mixtures over unit-cube rows: their kernel widths, densities and draws.

A mixture has one component per weighted row (a centre) plus a prior component of weight
``prior_weight``. A component is a product over parameters of

- for a numeric column (float, int, ordinal) a Gaussian truncated to [0, 1], centred on
  the row. Its width is by default one per column, Scott's rule for a product kernel in d
  parameters (``scott_bandwidths``: about ``s m ** (-1 / (d + 4))`` for the spread s of
  the m values); with ``bandwidth="neighbour"`` each row's own, the larger gap to its
  neighbours among the values in that column (the adaptive Parzen estimator of the TPE
  paper, Hyperopt's and Optuna's rule; ``neighbour_bandwidths``; rows of equal value share
  one width). Either is floored at ``1 / min(100, m + 2)`` for m rows with the parameter
  active, so that a few rows do not make spikes. A float scores the kernel's density; an
  int or ordinal column scores the kernel's mass over the bin of the candidate's value, so
  two mixtures are compared on the lattice the objective sees;
- for a one-hot block of k categories a categorical kernel: ``(1 + a) / (1 + k a)`` on the
  row's category and ``a / (1 + k a)`` on each other one, with ``a = prior_weight / (m + 1)``
  (the prior's weight shared by the m kernels and the prior component, Optuna's
  convention) or, with ``per_row_categorical_prior``, ``a = prior_weight`` (each kernel the
  prior updated by its own row alone; ``categorical_smoothing``);
- in the prior component, a Gaussian of centre 0.5 and width 1 on numeric columns and
  uniform categories.

Conditional parameters: a parameter inactive in a row takes the prior's factor in that
row's component (the row says nothing about it), and a parameter inactive in the scored
row does not enter its density at all. The TPE searcher (``jhpo.searchers.tpe``) fits one
mixture to its good trials and one to the rest.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp, ndtr

from jhpo.space import Column, Space

# The narrowest kernel is 1 / min(MAX_BANDWIDTH_DIVISOR, m + 2).
MAX_BANDWIDTH_DIVISOR = 100.0
# Scott's rule of thumb for Gaussian kernels: (4 / 3) ** (1 / 5), about 1.059.
SCOTT_FACTOR = (4.0 / 3.0) ** 0.2
# The rules for the widths of numeric kernels (see fit_parzen).
BANDWIDTH_RULES = ("scott", "neighbour")
# Width of the prior's Gaussian on a numeric column.
PRIOR_BANDWIDTH = 1.0


class Parzen(NamedTuple):
    """A Parzen mixture over unit-cube rows: a component per weighted row, plus the prior."""

    centres: jax.Array  # (N, dim) canonical rows
    active: jax.Array  # (N, dim) bool: the columns each centre speaks for
    weights: jax.Array  # (N,) component weights; 0 for unused slots
    bandwidth: jax.Array  # (N, dim) kernel width of each centre in each numeric column
    smoothing: jax.Array  # (dim,) the weight a of the categorical kernel, per one-hot column
    prior_weight: jax.Array  # () weight of the prior component


def fit_parzen(space: Space, rows: jax.Array, weights: jax.Array, prior_weight: float,
               bandwidth: str = "scott",
               per_row_categorical_prior: bool | jax.Array = False) -> Parzen:
    """The mixture of the rows with weight > 0 (rows canonical), with the bandwidth rule
    ``bandwidth`` (one of ``BANDWIDTH_RULES``: ``scott_bandwidths`` or
    ``neighbour_bandwidths``) and the categorical kernels of ``categorical_smoothing``
    (``per_row_categorical_prior`` may be traced)."""
    weights = jnp.asarray(weights, jnp.float32)
    active = space.column_mask(rows) & (weights > 0)[:, None]
    if bandwidth == "scott":
        widths = scott_bandwidths(rows, active, len(space.columns))
    else:
        widths = jax.vmap(neighbour_bandwidths, in_axes=1, out_axes=1)(rows, active)
    count = jnp.sum(active, axis=0).astype(jnp.float32)
    return Parzen(
        centres=rows,
        active=active,
        weights=weights,
        bandwidth=widths,
        smoothing=categorical_smoothing(count, prior_weight, per_row_categorical_prior),
        prior_weight=jnp.asarray(prior_weight, jnp.float32),
    )


def categorical_smoothing(count: jax.Array, prior_weight: float,
                          per_row: bool | jax.Array = False) -> jax.Array:
    """The weight ``a`` that a categorical kernel puts on every category besides the one
    of its row (``(1 + a) / (1 + k a)`` on that one, ``a / (1 + k a)`` on each of the
    other k - 1), for ``count`` rows with the parameter active.

    By default ``a = prior_weight / (count + 1)``: the prior's weight shared among the
    kernels and the prior component (Optuna's convention), so each kernel grows sharper
    as the group grows. With ``per_row``, ``a = prior_weight``: each kernel is the
    symmetric Dirichlet prior of weight ``prior_weight`` per category updated by its own
    row alone, and stays as broad however many rows there are (the TPE searcher's good
    group in its early phase; ``tpe.fit_good_parzen`` says why)."""
    shared = prior_weight / (count + 1.0)
    return jnp.where(per_row, jnp.full_like(shared, prior_weight), shared)


def scott_bandwidths(rows: jax.Array, active: jax.Array, num_parameters: int) -> jax.Array:
    """One kernel width per column, shared by its active centres: Scott's rule for a
    product kernel in ``num_parameters`` dimensions, ``1.059 s m ** (-1 / (d + 4))`` for
    the sample standard deviation s of the m active values, clipped to
    [1 / min(100, m + 2), 1] as the neighbour rule is; shape ``rows.shape``.

    Why not the neighbour rule alone: in d dimensions its widths, about the spacing of the
    values in one column, shrink like 1 / m whatever d, so the good group's mixture is a
    few narrow spikes, and on the synthetic set's mixed problem (float, log-float, int and
    choice) it ended behind Optuna's identical estimator (docs/design/tpe.md)."""
    count = jnp.sum(active, axis=0).astype(jnp.float32)
    mean = jnp.sum(jnp.where(active, rows, 0.0), axis=0) / jnp.maximum(count, 1.0)
    squares = jnp.sum(jnp.where(active, (rows - mean) ** 2, 0.0), axis=0)
    spread = jnp.sqrt(squares / jnp.maximum(count - 1.0, 1.0))
    width = SCOTT_FACTOR * spread * jnp.maximum(count, 1.0) ** (-1.0 / (num_parameters + 4))
    floor = 1.0 / jnp.minimum(MAX_BANDWIDTH_DIVISOR, count + 2.0)
    return jnp.broadcast_to(jnp.clip(width, floor, 1.0), rows.shape)


def neighbour_bandwidths(values: jax.Array, active: jax.Array) -> jax.Array:
    """Each active centre's kernel width in one column: the larger of the gaps between its
    value and the next lower and next higher distinct values among the active centres, the
    faces 0 and 1 counting as neighbours, except that the lowest and highest of two or more
    distinct values take the gap to their inner neighbour; then clipped to
    [1 / min(100, m + 2), 1] for m active centres (the floor counts the prior as one more
    kernel). Centres of equal value (ints and ordinals repeat) share one width: taken
    between sorted neighbours as in Hyperopt and Optuna, the first of a tied run would get
    the gap below, the last the gap above and those between the floor, an arbitrary
    pick by slot that the joint density over several columns turns into differences of
    several nats. Widths of inactive centres are meaningless."""
    size = values.shape[0]
    count = jnp.sum(active)
    order = ascending_order(values, active)
    ranked = values[order]
    position = jnp.arange(size)
    starts = (position == 0) | (ranked != jnp.roll(ranked, 1))
    ends = (position == count - 1) | (ranked != jnp.roll(ranked, -1))
    first = jax.lax.cummax(jnp.where(starts, position, 0))  # first position of each run
    last = jax.lax.cummin(jnp.where(ends, position, size - 1), reverse=True)
    lowest, highest = first == 0, last == count - 1
    below = ranked[jnp.maximum(first - 1, 0)]
    above = ranked[jnp.minimum(last + 1, size - 1)]
    width = jnp.maximum(ranked - jnp.where(lowest, 0.0, below),
                        jnp.where(highest, 1.0, above) - ranked)
    several = ranked[0] != ranked[jnp.maximum(count - 1, 0)]
    width = jnp.where(several & lowest, above - ranked, width)
    width = jnp.where(several & highest, ranked - below, width)
    floor = 1.0 / jnp.minimum(MAX_BANDWIDTH_DIVISOR, count + 2.0)
    return jnp.zeros_like(values).at[order].set(jnp.clip(width, floor, 1.0))


def ascending_order(values: jax.Array, active: jax.Array) -> jax.Array:
    """The slots of unit-interval ``values`` in ascending order, the active ones first; ties,
    and values closer than ``2**-(31 - b)`` for ``2**b`` slots, in slot order.

    One int32 key per slot, the value rounded to ``31 - b`` bits above the slot's ``b``
    bits, sorted alone: on XLA's CPU backend a sort of one array of int32 keys costs about
    a seventh of an argsort (a sort that carries indices). The rounding only orders; the
    gaps are taken between the exact values."""
    size = values.shape[0]
    slot_bits = max(1, (size - 1).bit_length())
    inactive_level = 2 ** (31 - slot_bits) - 1
    level = jnp.round(jnp.clip(values, 0.0, 1.0) * (inactive_level - 1)).astype(jnp.int32)
    level = jnp.where(active, level, inactive_level)
    keys = jnp.sort(level * (1 << slot_bits) + jnp.arange(size, dtype=jnp.int32))
    return keys & ((1 << slot_bits) - 1)


# ----------------------------------------------------------------------------- densities


def parzen_log_density(space: Space, parzen: Parzen, rows: jax.Array) -> jax.Array:
    """Log density of each canonical row under the mixture, over the row's active
    parameters (ints and ordinals as the mass of their bin), shape ``(len(rows),)``."""
    rows_active = space.column_mask(rows)
    values = space.decode(rows)
    per_component, per_prior = _numeric_log_factors(space, parzen, rows, values, rows_active)
    for column in space.columns:
        if column.kind != "onehot":
            continue
        kernel, prior = _categorical_log_factors(column, parzen, values[column.name])
        factor = jnp.where(parzen.active[None, :, column.start], kernel, prior)
        counted = rows_active[:, column.start]
        per_component += jnp.where(counted[:, None], factor, 0.0)
        per_prior += jnp.where(counted, prior, 0.0)
    log_weights = jnp.where(parzen.weights > 0, jnp.log(jnp.maximum(parzen.weights, 1e-30)),
                            -jnp.inf)
    logits = jnp.concatenate(
        [log_weights[None, :] + per_component,
         (jnp.log(parzen.prior_weight) + per_prior)[:, None]], axis=1)
    return logsumexp(logits, axis=1) - jnp.log(jnp.sum(parzen.weights) + parzen.prior_weight)


def _numeric_log_factors(space: Space, parzen: Parzen, rows: jax.Array, values: dict,
                         rows_active: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The numeric parameters' summed log factors for each (row, component), shape
    (rows, N), and under the prior, shape (rows,). Floats (a density) and ints and ordinals
    (a bin's mass) each go through one array op over all their columns, so the compiled
    kernel does not grow with the number of columns."""
    per_component = jnp.zeros((rows.shape[0], parzen.centres.shape[0]))
    per_prior = jnp.zeros(rows.shape[0])
    floats = [c for c in space.columns if c.kind == "float"]
    lattice = [c for c in space.columns if c.kind in ("int", "ordinal")]
    for columns in (floats, lattice):
        if not columns:
            continue
        index = np.array([c.start for c in columns])
        if columns is floats:
            u = rows[:, index][:, None, :]
            factor = functools.partial(_log_truncated_normal_density, u)
        else:
            edges = [bin_edges(space, c, values[c.name]) for c in columns]
            lower = jnp.stack([low for low, _ in edges], axis=1)[:, None, :]
            upper = jnp.stack([high for _, high in edges], axis=1)[:, None, :]
            factor = functools.partial(_log_truncated_normal_mass, lower, upper)
        kernel = factor(parzen.centres[None, :, index], parzen.bandwidth[None, :, index])
        prior = factor(jnp.full((1, 1, len(columns)), 0.5), PRIOR_BANDWIDTH)[:, 0, :]
        kernel = jnp.where(parzen.active[None, :, index], kernel, prior[:, None, :])
        counted = rows_active[:, index]
        per_component += jnp.sum(jnp.where(counted[:, None, :], kernel, 0.0), axis=-1)
        per_prior += jnp.sum(jnp.where(counted, prior, 0.0), axis=-1)
    return per_component, per_prior


def _categorical_log_factors(column: Column, parzen: Parzen,
                             value: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One choice's log factor for each (row, component), shape (rows, N), and under the
    (uniform) prior, a scalar."""
    width = column.width
    smoothing = parzen.smoothing[column.start]
    centre_category = jnp.argmax(parzen.centres[:, column.start:column.start + width], axis=1)
    same = value[:, None] == centre_category[None, :]
    kernel = jnp.log(jnp.where(same, 1.0 + smoothing, smoothing)) - jnp.log(
        1.0 + width * smoothing)
    return kernel, jnp.full((), -math.log(width))


def bin_edges(space: Space, column: Column, value: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The interval of the unit column that decodes to ``value`` (an int's value, an
    ordinal's rank), for an int or ordinal column."""
    domain = space.domains[column.name]
    if column.kind == "ordinal":
        count = len(domain.values)
        return value / count, (value + 1) / count
    warp = jnp.log if domain.log else (lambda v: v)
    low, high = warp(domain.lo - 0.5), warp(domain.hi + 0.5)
    value = value.astype(jnp.float32)
    return (warp(value - 0.5) - low) / (high - low), (warp(value + 0.5) - low) / (high - low)


def _log_normal_mass(a: jax.Array, b: jax.Array) -> jax.Array:
    """log(Phi(b) - Phi(a)) for a < b; above the mean as Phi(-a) - Phi(-b), which keeps
    the digits of the upper tail. A mass that underflows float32 (a bin some 13 widths
    from a kernel) is floored at the smallest normal number: beside the broad prior
    component such a kernel adds nothing to a mixture anyway."""
    upper_tail = a > 0
    mass = jnp.where(upper_tail, ndtr(-a) - ndtr(-b), ndtr(b) - ndtr(a))
    return jnp.log(jnp.maximum(mass, jnp.finfo(jnp.float32).tiny))


def _log_truncated_normal_mass(lower, upper, centre, width):
    """Log mass of [lower, upper] under a Gaussian (centre, width) truncated to [0, 1]."""
    inside = _log_normal_mass((lower - centre) / width, (upper - centre) / width)
    return inside - _log_normal_mass(-centre / width, (1.0 - centre) / width)


def _log_truncated_normal_density(u, centre, width):
    """Log density at u of a Gaussian (centre, width) truncated to [0, 1]."""
    z = (u - centre) / width
    normal = -0.5 * z**2 - jnp.log(width) - 0.5 * math.log(2 * math.pi)
    return normal - _log_normal_mass(-centre / width, (1.0 - centre) / width)


# ----------------------------------------------------------------------------- sampling


def sample_parzen(space: Space, parzen: Parzen, key: jax.Array, count: int) -> jax.Array:
    """``count`` canonical rows drawn from the mixture: a component by weight, then each
    parameter from that component's kernel (the prior's where the component's row lacks the
    parameter); ints and ordinals are drawn continuous and fall into their bins."""
    num_centres = parzen.centres.shape[0]
    component_key, numeric_key, *column_keys = jax.random.split(key, 2 + len(space.columns))
    logits = jnp.log(jnp.concatenate([parzen.weights, parzen.prior_weight[None]]))
    component = jax.random.categorical(component_key, logits, shape=(count,))
    from_prior = component == num_centres
    index = jnp.minimum(component, num_centres - 1)
    centre = parzen.centres[index]
    speaks = parzen.active[index] & ~from_prior[:, None]
    bandwidth = parzen.bandwidth[index]
    unit = jnp.zeros((count, space.dim))
    numeric = np.array([c.start for c in space.columns if c.kind != "onehot"], int)
    if numeric.size:
        use_centre = speaks[:, numeric]
        mean = jnp.where(use_centre, centre[:, numeric], 0.5)
        width = jnp.where(use_centre, bandwidth[:, numeric], PRIOR_BANDWIDTH)
        z = jax.random.truncated_normal(numeric_key, -mean / width, (1.0 - mean) / width)
        unit = unit.at[:, numeric].set(mean + width * z)
    for column, column_key in zip(space.columns, column_keys):
        if column.kind != "onehot":
            continue
        block = centre[:, column.start:column.start + column.width]
        smoothing = parzen.smoothing[column.start]
        logits = jnp.where(speaks[:, column.start, None], jnp.log(block + smoothing), 0.0)
        category = jax.random.categorical(column_key, logits)
        unit = unit.at[:, column.start:column.start + column.width].set(
            jax.nn.one_hot(category, column.width))
    return space.canonicalize(unit)
