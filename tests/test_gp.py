"""The GP surrogate against dense numpy/scipy computations of the same formulas."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy import stats

from jhpo import gp, problems

DIM = 3

# Eager calls would compile every primitive on its own; jit each entry point once.
jit = functools.partial(jax.jit, compiler_options=gp.COMPILER_OPTIONS)
lml = jit(gp.log_marginal_likelihood)
lml_grad = jit(jax.grad(gp.log_marginal_likelihood))
log_posterior = jit(gp.log_posterior)
fit = jit(gp.fit, static_argnames=("num_restarts", "num_evaluations"))
refine = jit(gp.refine, static_argnames=("num_evaluations",))
robust_cholesky = jit(gp.robust_cholesky)


@jit
def posterior_predict(params, x, y, mask, query):
    return gp.predict(gp.posterior(params, x, y, mask), query)


def matern52_numpy(a, b, lengthscale, amplitude):
    r = np.linalg.norm((a[:, None, :] - b[None, :, :]) / lengthscale, axis=-1)
    return amplitude * (1 + math.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-math.sqrt(5) * r)


def some_params():
    return gp.GPParams(
        log_lengthscale=jnp.log(jnp.array([0.3, 0.7, 1.5])),
        log_amplitude=jnp.asarray(0.4),
        log_noise=jnp.log(jnp.asarray(1e-2)),
        mean=jnp.asarray(0.2),
    )


def numpy_params(params):
    return (np.exp(np.asarray(params.log_lengthscale)), float(np.exp(params.log_amplitude)),
            float(np.exp(params.log_noise)), float(params.mean))


def some_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, DIM))
    y = np.sin(5 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * rng.standard_normal(n)
    return x, y


def padded(x, y, extra, seed=1):
    """The same data followed by ``extra`` junk rows that the mask switches off."""
    rng = np.random.default_rng(seed)
    x_pad = np.concatenate([x, rng.random((extra, x.shape[1]))])
    y_pad = np.concatenate([y, 100 * rng.standard_normal(extra)])
    mask = np.arange(len(y_pad)) < len(y)
    return jnp.asarray(x_pad), jnp.asarray(y_pad), jnp.asarray(mask)


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def test_posterior_matches_dense_numpy():
    x, y = some_data(12)
    query = np.random.default_rng(5).random((7, DIM))
    params = some_params()
    mean, variance = posterior_predict(params, jnp.asarray(x), jnp.asarray(y), jnp.ones(12, bool),
                                       jnp.asarray(query))

    lengthscale, amplitude, noise, constant = numpy_params(params)
    cov = matern52_numpy(x, x, lengthscale, amplitude) + noise * np.eye(12)
    cross = matern52_numpy(query, x, lengthscale, amplitude)
    expected_mean = constant + cross @ np.linalg.solve(cov, y - constant)
    expected_variance = amplitude - np.einsum("ij,ji->i", cross, np.linalg.solve(cov, cross.T))
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-7, atol=1e-10)


def test_log_marginal_likelihood_matches_scipy():
    x, y = some_data(15)
    params = some_params()
    lengthscale, amplitude, noise, constant = numpy_params(params)
    cov = matern52_numpy(x, x, lengthscale, amplitude) + noise * np.eye(15)
    expected = stats.multivariate_normal(np.full(15, constant), cov).logpdf(y)
    value = lml(params, jnp.asarray(x), jnp.asarray(y), jnp.ones(15, bool))
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_custom_gradient_matches_finite_differences():
    x, y = some_data(15)
    x, y, mask = jnp.asarray(x), jnp.asarray(y), jnp.ones(15, bool)
    params = some_params()
    grad = lml_grad(params, x, y, mask)
    flat_grad = np.concatenate([np.ravel(g) for g in grad])
    flat, unravel = ravel_pytree(params)
    step = 1e-6
    numeric = []
    for i in range(flat.shape[0]):
        delta = jnp.zeros_like(flat).at[i].set(step)
        up = lml(unravel(flat + delta), x, y, mask)
        down = lml(unravel(flat - delta), x, y, mask)
        numeric.append((up - down) / (2 * step))
    np.testing.assert_allclose(flat_grad, numeric, rtol=1e-5, atol=1e-6)


def test_padded_rows_change_nothing():
    x, y = some_data(10)
    x_pad, y_pad, mask = padded(x, y, extra=6)
    x, y, full = jnp.asarray(x), jnp.asarray(y), jnp.ones(10, bool)
    params = some_params()
    query = jnp.asarray(np.random.default_rng(3).random((5, DIM)))

    np.testing.assert_allclose(lml(params, x_pad, y_pad, mask),
                               lml(params, x, y, full), rtol=1e-12)
    grad_pad = lml_grad(params, x_pad, y_pad, mask)
    grad = lml_grad(params, x, y, full)
    for a, b in zip(grad_pad, grad):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(posterior_predict(params, x_pad, y_pad, mask, query),
                    posterior_predict(params, x, y, full, query)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_padded_rows_do_not_change_the_fit():
    x, y = some_data(10)
    x_pad, y_pad, mask = padded(x, y, extra=6)
    warm = gp.default_params(DIM, jnp.float64)
    key = jax.random.key(0)
    fitted_pad, value_pad = fit(key, x_pad, y_pad, mask, warm, num_restarts=4, num_evaluations=15)
    fitted, value = fit(key, jnp.asarray(x), jnp.asarray(y), jnp.ones(10, bool), warm,
                           num_restarts=4, num_evaluations=15)
    np.testing.assert_allclose(value_pad, value, rtol=1e-8)
    for a, b in zip(fitted_pad, fitted):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


def test_fit_improves_the_objective_and_finds_the_irrelevant_inputs():
    # The shape and options of the padded fit above, so the compiled fit is shared.
    rng = np.random.default_rng(0)
    x = rng.random((16, DIM))
    y = np.sin(6 * x[:, 0])  # depends on the first input only
    x, y, mask = jnp.asarray(x), jnp.asarray(y), jnp.ones(16, bool)
    y, _, _ = gp.standardize(y, mask)
    warm = gp.default_params(DIM, jnp.float64)
    fitted, value = fit(jax.random.key(1), x, y, mask, warm, num_restarts=4, num_evaluations=15)
    assert value > log_posterior(warm, x, y, mask) + 10
    np.testing.assert_allclose(value, log_posterior(fitted, x, y, mask), rtol=1e-10)
    lengthscale = np.exp(np.asarray(fitted.log_lengthscale))
    assert np.all(lengthscale[1:] > 5 * lengthscale[0]), lengthscale


def test_refine_never_makes_the_fit_worse():
    x, y = some_data(20)
    x, y, mask = jnp.asarray(x), jnp.asarray(y), jnp.ones(20, bool)
    y, _, _ = gp.standardize(y, mask)
    start = gp.default_params(DIM, jnp.float64)
    refined, value = refine(x, y, mask, start, num_evaluations=5)
    assert value >= log_posterior(start, x, y, mask)
    np.testing.assert_allclose(value, log_posterior(refined, x, y, mask), rtol=1e-10)


def test_cholesky_adds_jitter_only_when_needed():
    well_conditioned = jnp.eye(4) + 0.1
    chol, jitter = robust_cholesky(well_conditioned)
    assert float(jitter) == 0.0
    np.testing.assert_allclose(chol @ chol.T, well_conditioned, rtol=1e-12)

    rank_one = jnp.ones((4, 4))  # four identical rows: singular
    chol, jitter = robust_cholesky(rank_one)
    assert np.all(np.isfinite(chol)) and float(jitter) > 0


def test_duplicate_rows_and_tiny_noise_stay_finite():
    x = jnp.asarray(np.repeat(np.random.default_rng(0).random((3, DIM)), 4, axis=0))
    y = jnp.arange(12.0) % 3
    params = some_params()._replace(log_noise=jnp.asarray(gp.LOG_NOISE_BOUNDS[0]))
    mask = jnp.ones(12, bool)
    assert np.isfinite(lml(params, x, y, mask))
    mean, variance = posterior_predict(params, x, y, mask, x[:2])
    assert np.all(np.isfinite(mean)) and np.all(variance > 0)


def test_noise_free_fit_resolves_the_minimum_under_a_wide_range():
    # Branin spans about 0.4 to 300, and the points near a minimum differ by about
    # 0.1: a noise floor of 1e-6 (of the standardised variance) smoothed them by
    # 3e-3, more than BO needs to refine the minimum; the fit must reach below it.
    rng = np.random.default_rng(0)
    centre = np.array([(math.pi + 5) / 15, 2.275 / 15])
    x = np.concatenate([rng.random((40, 2)), centre + 0.01 * rng.standard_normal((10, 2))])
    mask = jnp.ones(50, bool)
    with jax.enable_x64(True):
        y = np.asarray(problems.branin().fn({"x1": 15 * x[:, 0] - 5, "x2": 15 * x[:, 1]}))
        standardized, offset, scale = gp.standardize(jnp.asarray(y), mask)
        params, _ = fit(jax.random.key(0), jnp.asarray(x), standardized, mask,
                        gp.default_params(2, jnp.float64))
        mean, _ = posterior_predict(params, jnp.asarray(x), standardized, mask, jnp.asarray(x[40:]))
    residuals = np.abs(np.asarray(mean) * float(scale) + float(offset) - y[40:])
    assert residuals.max() < 3e-4


@pytest.mark.parametrize("values", [[3.0, 3.0, 3.0, 3.0], [5.0]])
def test_standardize_handles_constant_and_single_targets(values):
    y = jnp.asarray(values + [123.0])  # the last slot is padding
    mask = jnp.arange(len(values) + 1) < len(values)
    standardized, offset, scale = gp.standardize(y, mask)
    np.testing.assert_array_equal(standardized, np.zeros(len(values) + 1))
    assert float(offset) == values[0] and float(scale) == 1.0


def test_standardize_gives_zero_mean_unit_spread():
    y = jnp.asarray([1.0, 4.0, 10.0, -2.0, 99.0])
    mask = jnp.asarray([True, True, True, True, False])
    standardized, offset, scale = gp.standardize(y, mask)
    np.testing.assert_allclose(offset, 3.25)
    np.testing.assert_allclose(np.mean(np.asarray(standardized)[:4]), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.std(np.asarray(standardized)[:4]), 1.0)
    assert float(standardized[4]) == 0.0


def test_random_subset_takes_masked_rows_first():
    x = jnp.arange(8.0)[:, None]
    y = jnp.arange(8.0)
    mask = jnp.asarray([True, False, True, True, False, False, True, False])
    sub_x, sub_y, sub_mask = gp.random_subset(jax.random.key(0), x, y, mask, 4)
    assert bool(sub_mask.all())
    assert sorted(np.asarray(sub_y).tolist()) == [0.0, 2.0, 3.0, 6.0]
    np.testing.assert_array_equal(sub_x[:, 0], sub_y)


def test_fit_rejects_zero_restarts():
    x, y = some_data(5)
    with pytest.raises(ValueError, match="num_restarts"):
        fit(jax.random.key(0), jnp.asarray(x), jnp.asarray(y), jnp.ones(5, bool),
               gp.default_params(DIM), num_restarts=0)
