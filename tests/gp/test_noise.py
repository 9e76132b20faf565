"""The GP's noise model on repeated noisy observations (several y at the same x).

Repeats are what noisy objectives produce (a configuration trained with several seeds, or
its k folds reported separately): without noise their kernel matrix is singular, and the
fit must attribute their spread to noise rather than to a wiggly function.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jhpo import gp

NOISE_SD = 0.15
LOCATIONS = np.linspace(0.05, 0.95, 8)
REPEATS = 5


def _observations():
    rng = np.random.default_rng(0)
    x = np.repeat(LOCATIONS, REPEATS)[:, None]
    y = np.sin(5.0 * x[:, 0]) + NOISE_SD * rng.normal(size=len(x))
    return x, y


def _dense_posterior_mean(params, x, y, query):
    """The textbook GP posterior mean, written with numpy: m + k(q, X) (K + s I)^-1 (y - m)."""
    lengthscale = np.exp(np.asarray(params.log_lengthscale))
    amplitude, noise, mean = (float(np.exp(params.log_amplitude)), float(np.exp(params.log_noise)), float(params.mean))

    def matern52(a, b):
        r = np.sqrt((((a[:, None, :] - b[None, :, :]) / lengthscale) ** 2).sum(-1))
        return amplitude * (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)

    weights = np.linalg.solve(matern52(x, x) + noise * np.eye(len(x)), y - mean)
    return mean + matern52(query, x) @ weights


def test_repeated_observations_are_explained_by_noise():
    x, y = _observations()
    with jax.enable_x64(True):
        mask = jnp.ones(len(y), bool)
        standardised, offset, scale = gp.standardize(jnp.asarray(y), mask)
        xs = jnp.asarray(x)
        params, log_posterior = gp.fit(jax.random.key(0), xs, standardised, mask, gp.default_params(1, jnp.float64))
        assert np.isfinite(float(log_posterior))
        # Fitted noise variance, back in the units of y, against the true NOISE_SD ** 2
        # (measured: 0.0128 against 0.0225).
        noise = float(jnp.exp(params.log_noise)) * float(scale) ** 2
        assert NOISE_SD**2 / 3 < noise < NOISE_SD**2 * 3
        query = jnp.asarray(LOCATIONS[:, None])
        mean, variance = gp.predict(gp.posterior(params, xs, standardised, mask), query)
        mean = np.asarray(mean) * float(scale) + float(offset)
    expected = _dense_posterior_mean(params, x, np.asarray(standardised), LOCATIONS[:, None])
    expected = expected * float(scale) + float(offset)
    np.testing.assert_allclose(mean, expected, rtol=1e-6, atol=1e-8)
    # At each repeated x the posterior mean sits near the average of its observations:
    # within one standard error of that average (measured: 0.037 against 0.067).
    averages = y.reshape(len(LOCATIONS), REPEATS).mean(1)
    assert np.max(np.abs(mean - averages)) < NOISE_SD / np.sqrt(REPEATS)
    # The latent function's uncertainty at a repeated x is below one observation's noise.
    assert np.all(np.asarray(variance) * float(scale) ** 2 < NOISE_SD**2)


def test_noise_is_small_without_repeats_on_a_smooth_function():
    """The contrast: exact observations of a smooth function fit with almost no noise."""
    x = LOCATIONS[:, None]
    y = np.sin(5.0 * x[:, 0])
    with jax.enable_x64(True):
        mask = jnp.ones(len(y), bool)
        standardised, _, scale = gp.standardize(jnp.asarray(y), mask)
        params, _ = gp.fit(jax.random.key(0), jnp.asarray(x), standardised, mask, gp.default_params(1, jnp.float64))
    assert float(jnp.exp(params.log_noise)) * float(scale) ** 2 < NOISE_SD**2 / 10
