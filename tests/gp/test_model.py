"""The GP model (kernel, marginal likelihood and its gradient, posterior) against dense
numpy/scipy computations of the same formulas."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy import stats

from jhpo import gp
from tests.gp.helpers import (
    DIM,
    lml,
    lml_grad,
    matern52_numpy,
    numpy_params,
    padded,
    posterior_predict,
    robust_cholesky,
    some_data,
    some_params,
)


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
