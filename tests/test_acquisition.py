"""LogEI against scipy references, and the acquisition maximiser on known landscapes."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from jhpo import acquisition as acq
from jhpo import gp

jit = functools.partial(jax.jit, compiler_options=gp.COMPILER_OPTIONS)
log_h = jit(acq.log_h)
log_h_grad = jit(jax.vmap(jax.grad(acq.log_h)))
log_ei = jit(acq.log_expected_improvement)


def reference_log_h(z: float) -> float:
    """log(φ(z) + zΦ(z)) for z < 0 without cancellation: h(z) = ∫_0^∞ t φ(t - z) dt,
    and dividing by φ(z) leaves an integrand of moderate size."""
    ratio, _ = integrate.quad(lambda t: t * math.exp(-0.5 * t * t + t * z), 0, np.inf,
                              epsabs=0, epsrel=1e-13, limit=200)
    return stats.norm.logpdf(z) + math.log(ratio)


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def test_log_h_matches_the_direct_formula_where_it_is_accurate():
    z = np.linspace(-4.0, 6.0, 41)
    expected = np.log(stats.norm.pdf(z) + z * stats.norm.cdf(z))
    np.testing.assert_allclose(log_h(jnp.asarray(z)), expected, rtol=1e-11)


@pytest.mark.parametrize("z", [-1.0, -1.5, -3.0, -8.0, -25.0, -60.0, -400.0])
def test_log_h_matches_the_integral_far_below_the_incumbent(z):
    np.testing.assert_allclose(float(log_h(jnp.asarray([z]))[0]), reference_log_h(z), rtol=1e-10)


def test_log_expected_improvement_matches_scipy_expected_improvement():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=50)
    std = rng.uniform(0.05, 2.0, size=50)
    best = 0.3
    z = (best - mean) / std
    expected_ei = std * (stats.norm.pdf(z) + z * stats.norm.cdf(z))
    assert expected_ei.min() > 1e-200  # the reference itself has not underflowed
    np.testing.assert_allclose(log_ei(jnp.asarray(mean), jnp.asarray(std**2), best),
                               np.log(expected_ei), rtol=1e-9)


@pytest.mark.parametrize("z", [-40.0, -1e3, -1e6, -1e9])
def test_log_h_is_finite_with_a_useful_gradient_where_ei_underflows(z):
    assert stats.norm.pdf(z) + z * stats.norm.cdf(z) == 0.0  # plain EI is exactly zero here
    value = float(log_h(jnp.asarray([z]))[0])
    grad = float(log_h_grad(jnp.asarray([z]))[0])
    assert np.isfinite(value) and value < -700
    # d/dz log h(z) = Φ(z) / h(z) = |z| + 2/|z| - 6/|z|^3 + O(|z|^-5) for very negative z.
    assert np.isfinite(grad)
    assert grad == pytest.approx(abs(z) + 2 / abs(z) - 6 / abs(z) ** 3, rel=1e-7)


def test_log_h_in_float32_is_finite_and_monotone():
    with jax.enable_x64(False):
        z = jnp.linspace(-1e4, 30.0, 2001, dtype=jnp.float32)
        values = np.asarray(jax.jit(acq.log_h)(z))
        grads = np.asarray(jax.jit(jax.vmap(jax.grad(acq.log_h)))(z))
    assert values.dtype == np.float32
    assert np.all(np.isfinite(values)) and np.all(np.diff(values) > 0)
    assert np.all(np.isfinite(grads)) and np.all(grads > 0)


def test_upper_confidence_bound_rewards_low_mean_and_high_variance():
    mean = jnp.asarray([0.0, -1.0, 0.0])
    variance = jnp.asarray([1.0, 1.0, 4.0])
    np.testing.assert_allclose(acq.upper_confidence_bound(mean, variance, 4.0), [2.0, 3.0, 4.0])


def test_rows_in_uses_only_masked_rows():
    rows = jnp.asarray([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    others = jnp.asarray([[0.1, 0.2], [0.5, 0.6]])
    found = acq.rows_in(rows, others, jnp.asarray([True, False]))
    np.testing.assert_array_equal(found, [True, False, False])


SMALL = acq.MaximizeConfig(num_screen=128, num_starts=4, num_steps=60, learning_rate=0.05)
TARGET = jnp.asarray([0.2, 0.7, 0.55])


def peak(rows):
    return -((rows - TARGET) ** 2).sum(-1)


def uniform_rows(key, n):
    return jax.random.uniform(key, (n, 3), jnp.float64)


def nothing_excluded():
    return jnp.zeros((1, 3)), jnp.zeros(1, bool)


def test_maximize_climbs_to_the_peak():
    row, value, found = jit(lambda k: acq.maximize(peak, k, uniform_rows, *nothing_excluded(),
                                                  config=SMALL))(jax.random.key(0))
    assert bool(found)
    np.testing.assert_allclose(row, TARGET, atol=2e-3)
    assert float(value) == pytest.approx(float(peak(row[None])[0]))


def test_maximize_refines_a_narrow_peak_near_a_centre():
    # A bump 0.03 wide: 16 random rows (and the ascent from them, on a flat landscape)
    # miss it; rows screened around a centre 0.05 away find it.
    def bump(rows):
        return jnp.exp(-(((rows - TARGET) / 0.03) ** 2).sum(-1))

    config = SMALL._replace(num_screen=16, num_local=64)

    def run(key, centres):
        return acq.maximize(bump, key, uniform_rows, *nothing_excluded(), config=config,
                            centres=centres)

    near = (TARGET + 0.05)[None]
    row, _, _ = jit(lambda k: run(k, near))(jax.random.key(4))
    np.testing.assert_allclose(row, TARGET, atol=2e-3)
    _, value, _ = jit(lambda k: run(k, None))(jax.random.key(4))
    assert float(value) < 0.01


def test_maximize_refines_within_2e_4_next_to_an_excluded_maximum():
    # As in BO late in a run: the incumbent is observed (excluded) and the best
    # fresh row is a hair away from it.
    excluded = TARGET[None].astype(jnp.float64)
    config = acq.MaximizeConfig(num_screen=256)
    for seed in range(3):
        row, _, found = jit(lambda k: acq.maximize(peak, k, uniform_rows, excluded, jnp.ones(1, bool),
                                                   config=config, centres=excluded))(jax.random.key(seed))
        assert bool(found)
        assert 0 < float(jnp.abs(row - TARGET).max()) < 2e-4


def snap_to_grid(rows):
    return jnp.round(rows * 4) / 4


def test_maximize_returns_valid_rows_and_skips_excluded_ones():
    # On a 5-level grid the best point is (0.25, 0.75, 0.5); exclude it.
    best = jnp.asarray([[0.25, 0.75, 0.5]])

    def run(key):
        return acq.maximize(peak, key, lambda k, n: snap_to_grid(uniform_rows(k, n)), best,
                            jnp.ones(1, bool), canonicalize=snap_to_grid, config=SMALL)

    row, _, found = jit(run)(jax.random.key(1))
    assert bool(found)
    np.testing.assert_array_equal(row, snap_to_grid(row[None])[0])  # on the grid
    assert not np.array_equal(row, best[0])
    # The runner-up differs from the best point in one coordinate by one step.
    assert np.abs(np.asarray(row) - np.asarray(best[0])).sum() == pytest.approx(0.25)


def test_maximize_keeps_inactive_columns_fixed():
    def sample(key, n):  # the last column always sits at 0.9 and is inactive
        return uniform_rows(key, n).at[:, 2].set(0.9)

    def column_mask(rows):
        return jnp.ones(rows.shape, bool).at[:, 2].set(False)

    row, _, _ = jit(lambda k: acq.maximize(peak, k, sample, *nothing_excluded(),
                                           column_mask=column_mask, config=SMALL))(jax.random.key(2))
    assert float(row[2]) == 0.9  # the peak wants 0.55 there
    np.testing.assert_allclose(row[:2], TARGET[:2], atol=2e-3)


def test_maximize_reports_when_every_candidate_is_taken():
    corners = jnp.asarray([[0.0], [1.0]])

    def run(key):
        return acq.maximize(lambda r: -r.sum(-1), key,
                            lambda k, n: jnp.round(jax.random.uniform(k, (n, 1), jnp.float64)),
                            corners, jnp.ones(2, bool), canonicalize=jnp.round, config=SMALL)

    _, _, found = jit(run)(jax.random.key(3))
    assert not bool(found)
