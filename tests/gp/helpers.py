"""Data, parameters and jitted entry points shared by the GP tests."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jhpo import gp

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
