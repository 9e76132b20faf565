"""MAP fitting: restarts, refinement, padding, and the noise floor."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jhpo import gp, problems
from tests.gp.helpers import (
    DIM,
    fit,
    log_posterior,
    padded,
    posterior_predict,
    refine,
    some_data,
)


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


def test_fit_rejects_zero_restarts():
    x, y = some_data(5)
    with pytest.raises(ValueError, match="num_restarts"):
        fit(jax.random.key(0), jnp.asarray(x), jnp.asarray(y), jnp.ones(5, bool),
               gp.default_params(DIM), num_restarts=0)
