"""Parzen mixtures: their densities against a loop-wise numpy computation, their kernel
widths against the rules written out, their draws against the mixture, and conditional
columns."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import jhpo
from jhpo.searchers import parzen
from jhpo.space import Space

# Jitted (the space static): run op by op, these take seconds per call.
fit_parzen = jax.jit(parzen.fit_parzen, static_argnums=(0, 3, 4))
parzen_log_density = jax.jit(parzen.parzen_log_density, static_argnums=0)
sample_parzen = jax.jit(parzen.sample_parzen, static_argnums=(0, 3))

MIXED = Space({
    "x": jhpo.uniform(-2.0, 3.0),
    "lr": jhpo.loguniform(1e-4, 1e-1),
    "n": jhpo.randint(1, 6),
    "width": jhpo.lograndint(2, 64),
    "size": jhpo.ordinal([16, 32, 64]),
    "opt": jhpo.choice(["sgd", "adam", "rms"]),
    "momentum": jhpo.uniform(0.0, 1.0).when("opt", "sgd"),
})


# ----------------------------------------------------------------------------- numpy reference


def reference_widths(values):
    """Kernel widths by the neighbour rule over distinct values, one centre at a time."""
    distinct = sorted(set(values))
    m = len(values)
    widths = []
    for value in values:
        rank = distinct.index(value)
        left = distinct[rank - 1] if rank > 0 else 0.0
        right = distinct[rank + 1] if rank < len(distinct) - 1 else 1.0
        width = max(value - left, right - value)
        if len(distinct) >= 2 and rank == 0:
            width = distinct[1] - value
        if len(distinct) >= 2 and rank == len(distinct) - 1:
            width = value - distinct[-2]
        # The floor counts the prior as one more kernel.
        widths.append(min(max(width, 1.0 / min(100.0, m + 2.0)), 1.0))
    return widths


def reference_scott_widths(values, num_parameters):
    """Scott's rule, written out: one width for all centres of a column."""
    m = len(values)
    spread = np.std(values, ddof=1) if m > 1 else 0.0
    width = (4 / 3) ** 0.2 * spread * m ** (-1 / (num_parameters + 4))
    return [min(max(width, 1.0 / min(100.0, m + 2.0)), 1.0)] * m


def unit_bin(space, name, value):
    """The unit-column interval of an int's value or an ordinal's value."""
    domain = space.domains[name]
    if isinstance(domain, jhpo.space.Ordinal):
        k, index = len(domain.values), space.index_of(name, value)
        return index / k, (index + 1) / k
    warp = math.log if domain.log else (lambda v: v)
    low, high = warp(domain.lo - 0.5), warp(domain.hi + 0.5)
    return ((warp(value - 0.5) - low) / (high - low), (warp(value + 0.5) - low) / (high - low))


def log_kernel(space, column, u, config, centre, width, smoothing):
    """One parameter's log factor for a candidate (unit value u, its config) under a
    Gaussian / categorical kernel at ``centre`` (None: the prior)."""
    name = column.name
    if column.kind == "onehot":
        k = column.width
        if centre is None:
            return -math.log(k)
        same = space.index_of(name, config[name]) == centre
        return math.log(((1.0 + smoothing) if same else smoothing) / (1.0 + k * smoothing))
    mean, scale = (0.5, 1.0) if centre is None else (centre, width)
    inside = normal_mass(-mean / scale, (1 - mean) / scale)  # of the cube, [0, 1]
    if column.kind == "float":
        return stats.norm.logpdf((u - mean) / scale) - math.log(scale) - math.log(inside)
    lower, upper = unit_bin(space, name, config[name])
    return math.log(normal_mass((lower - mean) / scale, (upper - mean) / scale) / inside)


def normal_mass(a, b):
    """P(a < Z < b) for a standard normal Z; above the mean as a difference of survival
    functions, which keeps the far tail's digits."""
    if a > 0:
        return stats.norm.sf(a) - stats.norm.sf(b)
    return stats.norm.cdf(b) - stats.norm.cdf(a)


def reference_log_density(space, centres, weights, prior_weight, candidates, rule="scott",
                          per_row_prior=False):
    centres, candidates = np.asarray(centres, float), np.asarray(candidates, float)
    used = [i for i in range(len(centres)) if weights[i] > 0]
    centre_configs = space.to_configs(centres)
    widths, smoothing = {}, {}
    for column in space.columns:
        holders = [i for i in used if column.name in centre_configs[i]]
        # The categorical kernel's weight on the other categories: the prior's weight
        # shared among the kernels and the prior component, or all of it for each kernel.
        smoothing[column.name] = (prior_weight if per_row_prior
                                  else prior_weight / (len(holders) + 1))
        column_values = [centres[i, column.start] for i in holders]
        rule_widths = (reference_widths(column_values) if rule == "neighbour"
                       else reference_scott_widths(column_values, len(space.columns)))
        for i, width in zip(holders, rule_widths):
            widths[i, column.name] = width
    densities = []
    for x, config in zip(candidates, space.to_configs(candidates)):
        logs = []
        for i in used:
            total = math.log(weights[i])
            for column in space.columns:
                if column.name not in config:
                    continue
                u = x[column.start]
                if column.name not in centre_configs[i]:
                    total += log_kernel(space, column, u, config, None, None, None)
                elif column.kind == "onehot":
                    category = space.index_of(column.name, centre_configs[i][column.name])
                    total += log_kernel(space, column, u, config, category, None,
                                        smoothing[column.name])
                else:
                    total += log_kernel(space, column, u, config, centres[i, column.start],
                                        widths[i, column.name], None)
            logs.append(total)
        prior = math.log(prior_weight) + sum(
            log_kernel(space, c, x[c.start], config, None, None, None)
            for c in space.columns if c.name in config)
        logs.append(prior)
        densities.append(logsumexp(logs) - math.log(sum(weights) + prior_weight))
    return np.array(densities)


# ----------------------------------------------------------------------------- densities


@pytest.mark.parametrize("per_row_prior", [False, True])
@pytest.mark.parametrize("rule", parzen.BANDWIDTH_RULES)
@pytest.mark.parametrize("prior_weight", [1.0, 0.3])
def test_log_density_matches_a_loop_wise_numpy_computation(prior_weight, rule, per_row_prior):
    centres = MIXED.sample(jax.random.key(0), 14)
    weights = np.array([0.3, 1.0, 0.55] + [1.0] * 7 + [0.0] * 4)  # the last four are unused
    candidates = MIXED.sample(jax.random.key(1), 30)
    parzen = fit_parzen(MIXED, centres, weights, prior_weight, rule, jnp.asarray(per_row_prior))
    ours = np.asarray(parzen_log_density(MIXED, parzen, candidates))
    expected = reference_log_density(MIXED, centres, weights, prior_weight, candidates, rule,
                                     per_row_prior)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("per_row", [False, True])
def test_categorical_smoothing_shares_the_prior_or_gives_it_to_each_row(per_row):
    counts = np.array([0.0, 1.0, 6.0, 25.0, 400.0], np.float32)
    ours = np.asarray(jax.jit(parzen.categorical_smoothing)(jnp.asarray(counts), 0.7,
                                                            jnp.asarray(per_row)))
    expected = np.full(counts.shape, 0.7) if per_row else 0.7 / (counts + 1.0)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_log_density_is_a_density_over_one_float():
    # Integrated over [0, 1] (trapezoid on a fine grid) the density of one float is 1.
    space = Space({"x": jhpo.uniform(0.0, 1.0)})
    parzen = fit_parzen(space, jnp.array([[0.02], [0.3], [0.35]]), jnp.ones(3), 1.0)
    grid = np.linspace(0.0, 1.0, 20001)
    density = np.exp(np.asarray(parzen_log_density(space, parzen, jnp.asarray(grid[:, None]))))
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-4)


def test_far_bins_keep_finite_log_masses():
    # A narrow kernel at one end and a bin at the other: the mass underflows float32 when
    # taken as a difference of CDFs, but its log must stay finite and match float64.
    space = Space({"n": jhpo.randint(0, 99)})
    centres = space.from_configs([{"n": 0}, {"n": 1}, {"n": 2}])
    parzen = fit_parzen(space, centres, jnp.ones(3), 1.0)
    far = space.from_configs([{"n": 90}])
    ours = np.asarray(parzen_log_density(space, parzen, far))
    expected = reference_log_density(space, centres, [1.0, 1.0, 1.0], 1.0, far)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, expected, rtol=1e-4)


@pytest.mark.parametrize("size", [1, 2, 3, 40, 1153])
def test_bandwidths_follow_the_neighbour_rule(size):
    # Ties (values on a lattice, as ints and ordinals are) and inactive slots included.
    rng = np.random.default_rng(size)
    values = np.where(rng.random(size) < 0.5, rng.random(size), rng.integers(0, 8, size) / 7)
    active = rng.random(size) < 0.8
    active[0] = True
    widths = jax.jit(parzen.neighbour_bandwidths)(jnp.asarray(values, jnp.float32),
                                               jnp.asarray(active))
    expected = reference_widths(values[active].astype(np.float32).tolist())
    np.testing.assert_allclose(np.asarray(widths)[active], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [1, 2, 30, 1153])
def test_scott_widths_follow_the_formula(size):
    rng = np.random.default_rng(size)
    rows = rng.random((size, 3)).astype(np.float32)
    active = rng.random((size, 3)) < 0.8
    active[0] = True
    widths = np.asarray(jax.jit(parzen.scott_bandwidths, static_argnums=2)(
        jnp.asarray(rows), jnp.asarray(active), 5))
    for j in range(3):
        expected = reference_scott_widths(rows[active[:, j], j].astype(float), 5)
        np.testing.assert_allclose(widths[active[:, j], j], expected, rtol=1e-4)


@pytest.mark.parametrize("size", [5, 128, 1153])
def test_ascending_order_sorts_active_values_first_ties_by_slot(size):
    rng = np.random.default_rng(size)
    values = np.round(rng.random(size), 2).astype(np.float32)
    active = rng.random(size) < 0.7
    order = np.asarray(jax.jit(parzen.ascending_order)(jnp.asarray(values), jnp.asarray(active)))
    key = [(not active[i], values[i] if active[i] else 0.0, i) for i in range(size)]
    np.testing.assert_array_equal(order, sorted(range(size), key=lambda i: key[i]))


# ----------------------------------------------------------------------------- sampling


def test_samples_follow_the_mixture():
    space = Space({"x": jhpo.uniform(0.0, 1.0), "n": jhpo.randint(1, 4),
                   "c": jhpo.choice(["a", "b", "c"])})
    centres = space.from_configs([{"x": 0.1, "n": 1, "c": "a"}, {"x": 0.15, "n": 3, "c": "b"},
                                  {"x": 0.8, "n": 4, "c": "a"}, {"x": 0.5, "n": 2, "c": "c"}])
    weights = jnp.array([1.0, 1.0, 1.0, 0.0])
    parzen = fit_parzen(space, centres, weights, 1.0)
    draws = 40_000
    rows = np.asarray(sample_parzen(space, parzen, jax.random.key(3), draws))
    configs = space.to_configs(rows)

    # The exact law, component by component (weights 1, 1, 1 and the prior's 1).
    widths = np.asarray(parzen.bandwidth)
    smoothing = float(parzen.smoothing[space.columns[2].start])
    means = [(float(centres[i, 0]), widths[i, 0], float(centres[i, 1]), widths[i, 1],
              int(np.argmax(centres[i, 2:]))) for i in range(3)] + [(0.5, 1.0, 0.5, 1.0, None)]

    def law(mean, width):  # a Gaussian truncated to [0, 1]
        return stats.truncnorm(-mean / width, (1 - mean) / width, loc=mean, scale=width)

    joint = np.zeros((4, 3))
    for x_mean, x_width, n_mean, n_width, category in means:
        n_law = law(n_mean, n_width)
        n_mass = np.diff(n_law.cdf(np.linspace(0, 1, 5)))
        c_mass = (np.full(3, 1 / 3) if category is None
                  else (np.eye(3)[category] + smoothing) / (1 + 3 * smoothing))
        joint += np.outer(n_mass, c_mass) / 4
    seen = np.zeros((4, 3))
    for config in configs:
        seen[config["n"] - 1, "abc".index(config["c"])] += 1
    # Each cell's frequency within 4.5 standard errors of its probability.
    np.testing.assert_array_less(np.abs(seen / draws - joint),
                                 4.5 * np.sqrt(joint * (1 - joint) / draws))

    x = np.sort(rows[:, 0])
    expected_cdf = sum(law(m, w).cdf(x) for m, w, *_ in means) / 4
    empirical_cdf = np.arange(1, draws + 1) / draws
    assert np.max(np.abs(empirical_cdf - expected_cdf)) < 1.95 / math.sqrt(draws)  # KS, 0.1%


# ----------------------------------------------------------------------------- conditionals


def test_inactive_columns_do_not_count():
    momentum = MIXED.columns[MIXED.names.index("momentum")].start
    centres = np.array(MIXED.sample(jax.random.key(4), 12))
    candidates = np.array(MIXED.sample(jax.random.key(5), 50))
    inactive_centres = ~np.asarray(MIXED.column_mask(jnp.asarray(centres)))[:, momentum]
    inactive_candidates = ~np.asarray(MIXED.column_mask(jnp.asarray(candidates)))[:, momentum]
    assert inactive_centres.any() and inactive_candidates.any() and not inactive_candidates.all()
    parzen = fit_parzen(MIXED, jnp.asarray(centres), jnp.ones(12), 1.0)
    before = np.asarray(parzen_log_density(MIXED, parzen, jnp.asarray(candidates)))
    # Whatever the (non-canonical) value in an inactive column, nothing changes: neither
    # a centre's nor a candidate's.
    centres[inactive_centres, momentum] = 0.37
    candidates[inactive_candidates, momentum] = 0.91
    parzen = fit_parzen(MIXED, jnp.asarray(centres), jnp.ones(12), 1.0)
    after = np.asarray(parzen_log_density(MIXED, parzen, jnp.asarray(candidates)))
    np.testing.assert_allclose(after, before, rtol=1e-6)
