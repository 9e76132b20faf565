"""Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), in its multivariate form.

The observations are split by value into a good group, the lowest ``gamma`` fraction (at
most ``max_good`` rows, the convention of Optuna's default ``gamma(n) = min(ceil(0.1 n),
25)``), and a bad group, the rest; failed trials (NaN) are always bad, and rows still
pending join the bad group too, so that the rows of one batch, and of batches asked before
the last ones are told, spread out. Each group becomes a Parzen mixture over unit-cube
rows: one component per row, plus a prior component of weight ``prior_weight``. Rows weigh
1, except that beyond the newest 25 of the bad group older ones fade linearly
(``fading_weights``). A component is a product over parameters of

- for a numeric column (float, int, ordinal) a Gaussian truncated to [0, 1], centred on
  the row. Its width is by default one per column and group, Scott's rule for a product
  kernel in d parameters (``scott_bandwidths``: about ``s m ** (-1 / (d + 4))`` for the
  spread s of the group's m values); with ``bandwidth="neighbour"`` each row's own, the
  larger gap to its neighbours among the group's values in that column (the adaptive
  Parzen estimator of the TPE paper, Hyperopt's and Optuna's rule;
  ``neighbour_bandwidths``; rows of equal value share one width). Either is floored at
  ``1 / min(100, m + 2)`` for m rows with the parameter active, so that a few rows do not
  make spikes. A float scores the kernel's density; an int or ordinal column scores the
  kernel's mass over the bin of the candidate's value, so two groups are compared on the
  lattice the objective sees;
- for a one-hot block of k categories a categorical kernel: ``(1 + a) / (1 + k a)`` on the
  row's category and ``a / (1 + k a)`` on each other one, with ``a = prior_weight / (m + 1)``;
- in the prior component, a Gaussian of centre 0.5 and width 1 on numeric columns and
  uniform categories.

Conditional parameters: a parameter inactive in a row takes the prior's factor in that
row's component (the row says nothing about it), and a parameter inactive in the candidate
does not enter its density at all; candidates are canonicalised, so their inactive columns
are zero. Each ask draws ``num_candidates`` rows from the good mixture and returns the one
maximising ``log l(x) - log g(x)``, drawing, scoring and choosing a whole batch in one
jitted call. The first ``num_initial`` trials (and every trial until one has a finite
value) are uniform random draws.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp, ndtr

from jhpo.searchers.base import (
    Buffer,
    Searcher,
    SearchState,
    grow,
    init_search_state,
    record_asked,
    record_told,
    taken,
)
from jhpo.space import Column, Space

# The narrowest kernel is 1 / min(MAX_BANDWIDTH_DIVISOR, m + 2).
MAX_BANDWIDTH_DIVISOR = 100.0
# Scott's rule of thumb for Gaussian kernels: (4 / 3) ** (1 / 5), about 1.059.
SCOTT_FACTOR = (4.0 / 3.0) ** 0.2
# The rules for the widths of numeric kernels (see tpe).
BANDWIDTH_RULES = ("scott", "neighbour")
# Members of a group that keep full weight, the newest ones (see fading_weights).
RECENT_ROWS = 25
# Width of the prior's Gaussian on a numeric column.
PRIOR_BANDWIDTH = 1.0
# Uniform rows tried when every candidate repeats an observed or pending row.
FALLBACK_ROWS = 32
# Buffers reach the kernel with at least this many slots: below that its cost hardly
# depends on their size, and fewer sizes mean fewer compilations.
MIN_KERNEL_SLOTS = 128


class TPEConfig(NamedTuple):
    """The settings of one TPE searcher (hashable: jitted kernels take it as static)."""

    num_initial: int = 10
    num_candidates: int = 64
    gamma: float = 0.1
    max_good: int = 25
    prior_weight: float = 1.0
    bandwidth: str = "scott"


class Parzen(NamedTuple):
    """A Parzen mixture over unit-cube rows: a component per weighted row, plus the prior."""

    centres: jax.Array  # (N, dim) canonical rows
    active: jax.Array  # (N, dim) bool: the columns each centre speaks for
    weights: jax.Array  # (N,) component weights; 0 for unused slots
    bandwidth: jax.Array  # (N, dim) kernel width of each centre in each numeric column
    smoothing: jax.Array  # (dim,) the weight a of the categorical kernel, per one-hot column
    prior_weight: jax.Array  # () weight of the prior component


def tpe(space: Space, *, num_initial: int = 10, num_candidates: int = 64, gamma: float = 0.1,
        max_good: int = 25, prior_weight: float = 1.0, bandwidth: str = "scott") -> Searcher:
    """The TPE searcher over ``space`` (see the module docstring for the model).

    ``num_initial`` random trials come first; each row is then the best of
    ``num_candidates`` draws from the good group's mixture; the good group is the lowest
    ``ceil(gamma n)`` of the n observations, at most ``max_good``; ``prior_weight`` weighs
    the prior component against one observation; ``bandwidth`` is the rule for the widths of
    numeric kernels, ``"scott"`` (``scott_bandwidths``) or ``"neighbour"``
    (``neighbour_bandwidths``, Hyperopt's and Optuna's rule).
    """
    _check_integer("num_initial", num_initial, 0)
    _check_integer("num_candidates", num_candidates, 1)
    _check_integer("max_good", max_good, 1)
    if not _is_real(gamma) or not 0 < gamma <= 1:
        raise ValueError(f"gamma={gamma!r} must be a number in (0, 1]")
    if not _is_real(prior_weight) or not prior_weight > 0:
        raise ValueError(f"prior_weight={prior_weight!r} must be a number > 0")
    if bandwidth not in BANDWIDTH_RULES:
        raise ValueError(f"bandwidth={bandwidth!r} must be one of {', '.join(BANDWIDTH_RULES)}")
    config = TPEConfig(int(num_initial), int(num_candidates), float(gamma), int(max_good),
                       float(prior_weight), bandwidth)

    def init(key: jax.Array) -> SearchState:
        del key
        return init_search_state(space.dim)

    def ask(state: SearchState, key: jax.Array, n: int):
        _check_integer("n", n, 1)
        startup = _needs_startup(state.observed, config.num_initial)
        observed = grow(state.observed, MIN_KERNEL_SLOTS)
        pending = grow(state.pending, MIN_KERNEL_SLOTS)
        rows, fresh = _ask_kernel(space, config, int(n), startup, observed, pending, key)
        return rows, record_asked(state, rows), fresh

    return Searcher(init, ask, record_told)


def _check_integer(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _needs_startup(observed: Buffer, num_initial: int) -> bool:
    finite = observed.mask & jnp.isfinite(observed.y)
    return observed.count < num_initial or not bool(finite.any())


# ----------------------------------------------------------------------------- the groups


def good_slots(values: jax.Array, mask: jax.Array, gamma: float,
               max_good: int) -> tuple[jax.Array, jax.Array]:
    """The good group: the ``min(ceil(gamma n), max_good)`` lowest finite values among the n
    filled slots (ties go to the earlier slot); failed trials (NaN) are never good. Returned
    as ``min(max_good, len(values))`` slots, lowest value first, and whether each is a
    member. A partial selection (``top_k``) rather than a full sort: on XLA's CPU backend a
    sort that carries indices costs about 7x a sort of one array of keys."""
    finite = mask & jnp.isfinite(values)
    count = jnp.sum(mask)
    num_good = jnp.minimum(jnp.minimum(jnp.ceil(gamma * count), max_good), jnp.sum(finite))
    size = min(max_good, values.shape[0])
    _, slots = jax.lax.top_k(-jnp.where(finite, values, jnp.inf), size)
    return slots, finite[slots] & (jnp.arange(size) < num_good)


def fading_weights(members: jax.Array) -> jax.Array:
    """Component weights for a group, slots in the order told: the newest
    ``RECENT_ROWS`` members weigh 1, older ones fade linearly to ``1 / m`` for the oldest
    of m (Hyperopt's linear forgetting), so a search that has moved on is compared with
    where it is now; 0 for non-members."""
    count = jnp.sum(members)
    age_rank = jnp.cumsum(members) - 1  # 0 for the oldest member
    num_fading = count - RECENT_ROWS
    fraction = age_rank / jnp.maximum(num_fading - 1, 1)
    fading = 1.0 / count + (1.0 - 1.0 / count) * fraction
    return jnp.where(members, jnp.where(age_rank < num_fading, fading, 1.0), 0.0)


def fit_parzen(space: Space, rows: jax.Array, weights: jax.Array, prior_weight: float,
               bandwidth: str = "scott") -> Parzen:
    """The mixture of the rows with weight > 0 (rows canonical), with the bandwidth rule
    ``bandwidth`` (see ``tpe``) and the module's categorical smoothing."""
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
        smoothing=prior_weight / (count + 1.0),
        prior_weight=jnp.asarray(prior_weight, jnp.float32),
    )


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


# ----------------------------------------------------------------------------- ask


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _ask_kernel(space: Space, config: TPEConfig, n: int, startup: bool, observed: Buffer,
                pending: Buffer, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``n`` rows, each the best candidate given the rows chosen before it in the batch,
    and whether each is fresh."""
    slots, members = good_slots(observed.y, observed.mask, config.gamma, config.max_good)
    good_mixture = fit_parzen(space, observed.x[slots], members, config.prior_weight,
                              config.bandwidth)
    good = jnp.zeros(observed.mask.shape, bool).at[slots].set(members)
    bad_weights = jnp.concatenate([fading_weights(observed.mask & ~good), pending.mask])

    def choose(chosen: Buffer, inputs):
        index, step_key = inputs
        candidate_key, fallback_key = jax.random.split(step_key)
        if startup:
            candidates = space.sample(candidate_key, 1)
            scores = jnp.zeros(1)
        else:
            candidates = sample_parzen(space, good_mixture, candidate_key, config.num_candidates)
            bad_mixture = fit_parzen(
                space, jnp.concatenate([observed.x, pending.x, chosen.x]),
                jnp.concatenate([bad_weights, chosen.mask]), config.prior_weight,
                config.bandwidth)
            scores = (parzen_log_density(space, good_mixture, candidates)
                      - parzen_log_density(space, bad_mixture, candidates))
        fallback = space.sample(fallback_key, FALLBACK_ROWS)
        row, fresh = _best_untaken(candidates, scores, fallback, observed, pending, chosen)
        chosen = Buffer(chosen.x.at[index].set(row), chosen.y, chosen.mask.at[index].set(True))
        return chosen, (row, fresh)

    batch = Buffer(jnp.zeros((n, space.dim)), jnp.zeros(n), jnp.zeros(n, bool))
    _, (rows, fresh) = jax.lax.scan(choose, batch, (jnp.arange(n), jax.random.split(key, n)))
    return rows, fresh


def _best_untaken(candidates, scores, fallback, *buffers) -> tuple[jax.Array, jax.Array]:
    """The best-scoring candidate not in ``buffers``; else the first such fallback row; else
    the best candidate, marked not fresh."""
    open_candidates = ~taken(candidates, *buffers)
    open_fallback = ~taken(fallback, *buffers)
    best = jnp.argmax(jnp.where(open_candidates, scores, -jnp.inf))
    row = jnp.where(
        open_candidates.any(), candidates[best],
        jnp.where(open_fallback.any(), fallback[jnp.argmax(open_fallback)],
                  candidates[jnp.argmax(scores)]))
    return row, open_candidates.any() | open_fallback.any()
