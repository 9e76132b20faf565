"""Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), in its multivariate form.

The observations are split by value into a good group, the lowest ``gamma`` fraction (at
most ``max_good`` rows, the convention of Optuna's default ``gamma(n) = min(ceil(0.1 n),
25)``), and a bad group, the rest; failed trials (NaN) are always bad, and rows still
pending join the bad group too, so that the rows of one batch, and of batches asked before
the last ones are told, spread out. Each group becomes a Parzen mixture over unit-cube
rows (``jhpo.searchers.parzen``: truncated Gaussians on numeric columns, categorical
kernels on choices, a prior component of weight ``prior_weight``). Rows weigh 1, except
that beyond the newest 25 of the bad group older ones fade linearly (``fading_weights``).
Numeric kernels take the widths of the rule ``bandwidth`` (Scott's by default), except in
an early phase, while fewer than ``early_trials`` trials are told: there the bad group's
kernels take the neighbour rule (``fit_bad_parzen`` says why), the good group is the
larger ``early_gamma`` fraction, which did better beside those narrow bad kernels, and the
good group's categorical kernels stay broad (``fit_good_parzen``), since the narrow bad
kernels leave the choice of category to the good mixture alone.

Each ask draws ``num_candidates`` rows from the good mixture and returns the one
maximising ``log l(x) - log g(x)``, drawing, scoring and choosing a whole batch in one
jitted call; candidates are canonicalised, so their inactive columns are zero. The first
``num_initial`` trials (and every trial until one has a finite value) are uniform random
draws.
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jhpo.searchers.base import (
    Buffer,
    Searcher,
    SearchState,
    check_count,
    check_number,
    grow,
    init_search_state,
    record_asked,
    record_told,
    taken,
)
from jhpo.searchers.parzen import (
    BANDWIDTH_RULES,
    Parzen,
    fit_parzen,
    parzen_log_density,
    sample_parzen,
)
from jhpo.space import Space

# Members of a group that keep full weight, the newest ones (see fading_weights).
RECENT_ROWS = 25
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
    early_trials: int = 100
    early_gamma: float = 0.2


def tpe(space: Space, *, num_initial: int = 10, num_candidates: int = 64, gamma: float = 0.1,
        max_good: int = 25, prior_weight: float = 1.0, bandwidth: str = "scott",
        early_trials: int = 100, early_gamma: float = 0.2) -> Searcher:
    """The TPE searcher over ``space`` (see the module docstring for the model).

    ``num_initial`` random trials come first; each row is then the best of
    ``num_candidates`` draws from the good group's mixture; the good group is the lowest
    ``ceil(gamma n)`` of the n observations, at most ``max_good``; ``prior_weight`` weighs
    the prior component against one observation; ``bandwidth`` is the rule for the widths of
    numeric kernels, ``"scott"`` (``parzen.scott_bandwidths``) or ``"neighbour"``
    (``parzen.neighbour_bandwidths``, Hyperopt's and Optuna's rule). While fewer than
    ``early_trials`` trials are told, the bad group's kernels take the neighbour rule, the
    good group is the lowest ``early_gamma`` fraction instead and its categorical kernels
    stay broad (see the module docstring; ``early_trials=0`` turns this off).
    """
    check_count("num_initial", num_initial, 0)
    check_count("num_candidates", num_candidates, 1)
    check_count("max_good", max_good, 1)
    check_count("early_trials", early_trials, 0)
    for name, value in (("gamma", gamma), ("early_gamma", early_gamma)):
        if not _is_real(value) or not 0 < value <= 1:
            raise ValueError(f"{name}={value!r} must be a number in (0, 1]")
    check_number("prior_weight", prior_weight, 0.0)
    if bandwidth not in BANDWIDTH_RULES:
        raise ValueError(f"bandwidth={bandwidth!r} must be one of {', '.join(BANDWIDTH_RULES)}")
    config = TPEConfig(int(num_initial), int(num_candidates), float(gamma), int(max_good),
                       float(prior_weight), bandwidth, int(early_trials), float(early_gamma))

    def init(key: jax.Array) -> SearchState:
        del key
        return init_search_state(space.dim)

    def ask(state: SearchState, key: jax.Array, n: int):
        check_count("n", n, 1)
        startup = _needs_startup(state.observed, config.num_initial)
        observed = grow(state.observed, MIN_KERNEL_SLOTS)
        pending = grow(state.pending, MIN_KERNEL_SLOTS)
        rows, fresh = _ask_kernel(space, config, int(n), startup, observed, pending, key)
        return rows, record_asked(state, rows), fresh

    return Searcher(init, ask, record_told)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _needs_startup(observed: Buffer, num_initial: int) -> bool:
    finite = observed.mask & jnp.isfinite(observed.y)
    return observed.count < num_initial or not bool(finite.any())


# ----------------------------------------------------------------------------- the groups


def good_slots(values: jax.Array, mask: jax.Array, gamma: float | jax.Array,
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


def fit_good_parzen(space: Space, config: TPEConfig, early: bool | jax.Array, rows: jax.Array,
                    weights: jax.Array) -> Parzen:
    """The good group's mixture: numeric kernels by the rule ``config.bandwidth``;
    categorical kernels that, while ``early``, put ``a = prior_weight`` on the categories
    besides their row's instead of ``prior_weight / (m + 1)``
    (``parzen.categorical_smoothing``). Beside the early phase's narrow bad kernels, g(x)
    at most candidates is its prior component, whose categories are uniform, so g does
    not tell categories apart and the choice falls to l alone. With kernels that sharpen
    as the good group grows (14 to 1 for their row's category against each other one at
    m = 12) the search stayed on the first category to fill the good group: on the
    synthetic set's mixed problem, half the seeds spent most of trials 41 to 60 on a worse
    category (docs/design/tpe.md). Broad kernels keep proposing the others."""
    return fit_parzen(space, rows, weights, config.prior_weight, config.bandwidth,
                      per_row_categorical_prior=early)


def fit_bad_parzen(space: Space, config: TPEConfig, early: bool | jax.Array, rows: jax.Array,
                   weights: jax.Array) -> Parzen:
    """The bad group's mixture: its kernels take the neighbour rule while ``early``, the
    rule ``config.bandwidth`` after. Narrow kernels early make g(x) small only close to
    the bad rows, so the candidates l(x) prefers are only kept off the rows already
    tried; Scott's broad kernels make g a smooth estimate that steers the search away
    from whole regions of bad rows. Measured on the synthetic set (docs/design/tpe.md),
    the narrow kernels reached lower regret after 60 trials and the broad ones after 200
    (the neighbour rule throughout fell behind on the mixed problem)."""
    return jax.lax.cond(early, functools.partial(fit_parzen, space, bandwidth="neighbour"),
                        functools.partial(fit_parzen, space, bandwidth=config.bandwidth),
                        rows, weights, config.prior_weight)


# ----------------------------------------------------------------------------- ask


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _ask_kernel(space: Space, config: TPEConfig, n: int, startup: bool, observed: Buffer,
                pending: Buffer, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``n`` rows, each the best candidate given the rows chosen before it in the batch,
    and whether each is fresh."""
    early = jnp.sum(observed.mask) < config.early_trials
    gamma = jnp.where(early, config.early_gamma, config.gamma)
    slots, members = good_slots(observed.y, observed.mask, gamma, config.max_good)
    good_mixture = fit_good_parzen(space, config, early, observed.x[slots], members)
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
            bad_mixture = fit_bad_parzen(
                space, config, early, jnp.concatenate([observed.x, pending.x, chosen.x]),
                jnp.concatenate([bad_weights, chosen.mask]))
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
