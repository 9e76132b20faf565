"""The GP model: Matérn-5/2 ARD kernel, constant mean, Gaussian noise; its marginal
likelihood (with a hand-written gradient) and its posterior.

Observations live in fixed-capacity buffers ``(x, y, mask)``: rows whose mask is False
are padding and never influence a result, because their kernel rows and columns are
replaced by the identity and their residuals by 0.

Speed. Fitting maximises the log marginal likelihood (LML) with a hand-written
VJP. For one hyperparameter θ the gradient is ``0.5 tr((a aᵀ - K⁻¹) ∂K/∂θ)``
with ``a = K⁻¹ r``; each ``∂K/∂θ`` is an elementwise function of quantities we
already hold, so the whole gradient costs one Cholesky factor, one triangular
inverse and a few n×n products, instead of reverse-mode through the
factorisation. The "where the time goes" table of ``benchmarks/bo_latency.py``
times both.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

SQRT5 = math.sqrt(5.0)

# Pass as ``jax.jit(..., compiler_options=COMPILER_OPTIONS)`` around GP code.
# XLA's newer CPU fusion emitters took about twice as long to compile these
# programs (jaxlib 0.10) for the same run time. The option applies only to the
# jitted function it is given to, never to the user's programs, and backends
# other than the CPU ignore it.
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}

# Box constraints on the unconstrained (log) parameters. They keep the kernel
# matrix well conditioned and the optimiser away from degenerate corners.
LOG_LENGTHSCALE_BOUNDS = (math.log(1e-3), math.log(1e3))
LOG_AMPLITUDE_BOUNDS = (math.log(1e-3), math.log(1e2))
# The noise floor is relative to the standardised variance, so on a wide-ranging
# noise-free objective (Branin: 0.4 to 300) a floor of 1e-6 blurred the values near
# the minimum by ~1e-3 and BO stalled there (benchmarks/bo_synthetic.py, median log10
# regret at 60 evaluations: Branin -4.4 with it, -5.8 with 1e-10; the mixed problem
# -5.9 and -7.7). Fits run in float64 and robust_cholesky adds jitter when needed.
LOG_NOISE_BOUNDS = (math.log(1e-10), math.log(2.0))
MEAN_BOUNDS = (-5.0, 5.0)


class GPParams(NamedTuple):
    """Unconstrained GP hyperparameters (targets are standardised first)."""

    log_lengthscale: jax.Array  # (d,) one length scale per input column (ARD)
    log_amplitude: jax.Array  # () log signal variance
    log_noise: jax.Array  # () log noise variance
    mean: jax.Array  # () constant prior mean


class Prior(NamedTuple):
    """Independent normal priors on the log parameters and the mean.

    Weak on purpose: they only make the MAP fit well posed with few points.
    """

    # Centred on the side of the unit cube whatever the dimension. Measured with
    # benchmarks/bo_synthetic.py (median log10 regret after 60 evaluations, 5 seeds):
    # a centre of sqrt(d) made Hartmann-6 fits too smooth, and BO settled in its local
    # minimum in most seeds (-0.9; -4.1 with a centre of 1). A centre of sqrt(d / 6)
    # did better on Branin (-4.8 against -4.3) but worse on Rosenbrock-4 (2.2 against
    # 2.0). A scale of 1.5 let fits on 5-10 points declare one input irrelevant and
    # another wiggly (Branin); 1.0 does not.
    log_lengthscale_loc: float = 0.0
    log_lengthscale_scale: float = 1.0
    log_amplitude_loc: float = 0.0
    log_amplitude_scale: float = 1.5
    # Noise variance of the standardised targets. A centre of 1e-4 rather than 1e-3
    # sharpened the fits near the optimum (same benchmark: Rosenbrock-4 1.7 against
    # 2.0, the mixed problem -5.9 against -5.4, Hartmann-6 -4.5 against -4.1, the
    # others level); the scale leaves room for noisy objectives, whose likelihood
    # soon outweighs the prior.
    log_noise_loc: float = math.log(1e-4)
    log_noise_scale: float = 2.5
    mean_scale: float = 1.0


class Posterior(NamedTuple):
    """What prediction needs, computed once per data set and hyperparameters."""

    params: GPParams
    x: jax.Array  # (cap, d)
    mask: jax.Array  # (cap,) bool
    alpha: jax.Array  # (cap,) K⁻¹ (y - mean), 0 on padded rows
    chol_inv: jax.Array  # (cap, cap) L⁻¹ with K = L Lᵀ


def default_params(dim: int, dtype=jnp.float32) -> GPParams:
    """The prior's centre: a reasonable first guess before any fit."""
    prior = Prior()
    return GPParams(
        log_lengthscale=jnp.full((dim,), prior.log_lengthscale_loc, dtype),
        log_amplitude=jnp.asarray(prior.log_amplitude_loc, dtype),
        log_noise=jnp.asarray(prior.log_noise_loc, dtype),
        mean=jnp.asarray(0.0, dtype),
    )


def standardize(y: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Centre and scale the masked targets; padded entries become 0.

    Returns ``(standardised y, offset, scale)``. Constant targets (including a
    single observation) get scale 1 rather than a division by zero.
    """
    count = jnp.maximum(mask.sum(), 1)
    offset = jnp.where(mask, y, 0.0).sum() / count
    centred = jnp.where(mask, y - offset, 0.0)
    spread = jnp.sqrt((centred**2).sum() / count)
    scale = jnp.where(spread > 1e-12 * (1.0 + jnp.abs(offset)), spread, 1.0)
    return centred / scale, offset, scale


def rank_warp(y: jax.Array, mask: jax.Array) -> jax.Array:
    """Replace masked targets by normal scores of their mid-ranks; padding becomes 0.

    A Gaussian-copula transform: heavy tails and outliers (a diverged training
    run, Rosenbrock's huge values far from the valley) no longer dominate the
    fit, and the order of the values, which is all that minimisation needs, is
    kept. Tied values share their average rank, so constant targets stay
    constant.
    """
    count = jnp.maximum(mask.sum(), 1)
    pair = mask[:, None] & mask[None, :]
    below = (pair & (y[None, :] < y[:, None])).sum(1)
    ties = (pair & (y[None, :] == y[:, None])).sum(1)
    mid_rank = below + 0.5 * (ties - 1)
    scores = jax.scipy.special.ndtri((mid_rank + 0.5) / count)
    return jnp.where(mask, scores, 0.0)


def scaled_sq_distance(x1: jax.Array, x2: jax.Array, lengthscale: jax.Array) -> jax.Array:
    """Pairwise squared distances after dividing each column by its length scale."""
    z1 = x1 / lengthscale
    z2 = x2 / lengthscale
    # The expanded form is a matrix product (fast); clamp the rounding error below 0.
    sq = (z1**2).sum(-1)[:, None] + (z2**2).sum(-1)[None, :] - 2.0 * z1 @ z2.T
    return jnp.maximum(sq, 0.0)


def matern52_from_sq(sq_dist: jax.Array, amplitude: jax.Array) -> jax.Array:
    """Matérn-5/2 covariance as a function of the scaled squared distance."""
    # The floor keeps sqrt differentiable at coincident points; its effect on k is < 1e-15.
    r = jnp.sqrt(jnp.maximum(sq_dist, 1e-30))
    return amplitude * (1.0 + SQRT5 * r + (5.0 / 3.0) * sq_dist) * jnp.exp(-SQRT5 * r)


def matern52_dsq(sq_dist: jax.Array, amplitude: jax.Array) -> jax.Array:
    """Derivative of ``matern52_from_sq`` with respect to the squared distance.

    Finite at zero distance, unlike the derivative with respect to the distance.
    """
    r = jnp.sqrt(sq_dist)
    return -(5.0 / 6.0) * amplitude * (1.0 + SQRT5 * r) * jnp.exp(-SQRT5 * r)


def kernel(x1: jax.Array, x2: jax.Array, params: GPParams) -> jax.Array:
    """Signal covariance between two sets of rows (no noise)."""
    sq = scaled_sq_distance(x1, x2, jnp.exp(params.log_lengthscale))
    return matern52_from_sq(sq, jnp.exp(params.log_amplitude))


def clip_params(params: GPParams) -> GPParams:
    """Project parameters onto the box constraints."""
    return GPParams(
        log_lengthscale=jnp.clip(params.log_lengthscale, *LOG_LENGTHSCALE_BOUNDS),
        log_amplitude=jnp.clip(params.log_amplitude, *LOG_AMPLITUDE_BOUNDS),
        log_noise=jnp.clip(params.log_noise, *LOG_NOISE_BOUNDS),
        mean=jnp.clip(params.mean, *MEAN_BOUNDS),
    )


def robust_cholesky(matrix: jax.Array, max_tries: int = 6) -> tuple[jax.Array, jax.Array]:
    """Cholesky factor, adding diagonal jitter (x100 per try) until it is finite.

    Returns ``(L, jitter)``. The first factorisation, without jitter, happens
    outside the retry loop: a loop whose carry holds the factor cost twice the
    factorisation itself at n = 1000 even when it never iterates (measured, CPU).
    A failed factorisation is NaN throughout, so its diagonal tells. If every try
    fails the factor contains NaN and callers treat the result as invalid.
    """
    diagonal = jnp.diagonal(matrix)
    base = 1e-10 * jnp.mean(diagonal)
    index = jnp.arange(matrix.shape[-1])

    def failed(carry):
        tries, _, chol = carry
        return (tries < max_tries) & ~jnp.all(jnp.isfinite(jnp.diagonal(chol)))

    def attempt(carry):
        tries, _, _ = carry
        jitter = base * 100.0 ** (tries - 1)
        return tries + 1, jitter, jnp.linalg.cholesky(matrix.at[index, index].add(jitter))

    carry = (jnp.asarray(1), jnp.zeros((), matrix.dtype), jnp.linalg.cholesky(matrix))
    _, jitter, chol = lax.while_loop(failed, attempt, carry)
    return chol, jitter


def _masked_kernel_parts(params: GPParams, x: jax.Array, mask: jax.Array):
    """The training covariance with padded rows/columns replaced by the identity."""
    sq = scaled_sq_distance(x, x, jnp.exp(params.log_lengthscale))
    pair = mask[:, None] & mask[None, :]
    signal = jnp.where(pair, matern52_from_sq(sq, jnp.exp(params.log_amplitude)), 0.0)
    noise = jnp.exp(params.log_noise)
    diagonal = jnp.where(mask, noise, 1.0)
    cov = signal + jnp.diag(diagonal)
    return cov, sq, pair


def _lml_forward(params: GPParams, x: jax.Array, y: jax.Array, mask: jax.Array):
    cov, sq, pair = _masked_kernel_parts(params, x, mask)
    chol, _ = robust_cholesky(cov)
    residual = jnp.where(mask, y - params.mean, 0.0)
    half = lax.linalg.triangular_solve(chol, residual[:, None], left_side=True, lower=True)
    alpha = lax.linalg.triangular_solve(
        chol, half, left_side=True, lower=True, transpose_a=True
    )[:, 0]
    count = mask.sum()
    # Padded rows have unit diagonal in L, so they add log(1) = 0 to the log determinant.
    value = (
        -0.5 * (residual * alpha).sum()
        - jnp.log(jnp.diagonal(chol)).sum()
        - 0.5 * count * math.log(2.0 * math.pi)
    )
    return value, (chol, alpha, sq, pair)


@jax.custom_vjp
def log_marginal_likelihood(params: GPParams, x: jax.Array, y: jax.Array, mask: jax.Array):
    """Log marginal likelihood of the masked observations.

    Differentiable with respect to ``params`` only: the VJP reports zero
    cotangents for ``x``, ``y`` and ``mask``, which fitting never needs.
    """
    return _lml_forward(params, x, y, mask)[0]


def _lml_fwd(params, x, y, mask):
    value, (chol, alpha, sq, pair) = _lml_forward(params, x, y, mask)
    return value, (params, x, mask, chol, alpha, sq, pair)


def _lml_bwd(residuals, cotangent):
    params, x, mask, chol, alpha, sq, pair = residuals
    eye = jnp.eye(chol.shape[-1], dtype=chol.dtype)
    chol_inv = lax.linalg.triangular_solve(chol, eye, left_side=True, lower=True)
    k_inv = chol_inv.T @ chol_inv
    # Gradient of the LML with respect to K, up to the factor 1/2: W = a aᵀ - K⁻¹.
    weight = jnp.outer(alpha, alpha) - k_inv
    amplitude = jnp.exp(params.log_amplitude)
    signal = jnp.where(pair, matern52_from_sq(sq, amplitude), 0.0)
    dsq = jnp.where(pair, matern52_dsq(sq, amplitude), 0.0)

    # ∂K_ab/∂log ℓ_j = k'(s_ab) · (-2) (z_aj - z_bj)² with z = x / ℓ; the sum over
    # pairs expands into matrix products so no (n, n, d) array is built.
    z = x / jnp.exp(params.log_lengthscale)
    g = weight * dsq
    pair_sum = g.sum(1) @ (z**2) - (z * (g @ z)).sum(0)
    d_log_lengthscale = -2.0 * pair_sum
    d_log_amplitude = 0.5 * (weight * signal).sum()
    d_log_noise = 0.5 * jnp.exp(params.log_noise) * jnp.where(mask, jnp.diagonal(weight), 0.0).sum()
    d_mean = alpha.sum()
    grad = GPParams(d_log_lengthscale, d_log_amplitude, d_log_noise, d_mean)
    grad = jax.tree.map(lambda g_: cotangent * g_, grad)
    return grad, jnp.zeros_like(x), jnp.zeros_like(alpha), None


log_marginal_likelihood.defvjp(_lml_fwd, _lml_bwd)


def log_prior(params: GPParams, prior: Prior = Prior()) -> jax.Array:
    """Sum of the independent normal log densities (up to a constant)."""
    def normal(value, loc, scale):
        return -0.5 * (((value - loc) / scale) ** 2).sum()

    return (
        normal(params.log_lengthscale, prior.log_lengthscale_loc, prior.log_lengthscale_scale)
        + normal(params.log_amplitude, prior.log_amplitude_loc, prior.log_amplitude_scale)
        + normal(params.log_noise, prior.log_noise_loc, prior.log_noise_scale)
        + normal(params.mean, 0.0, prior.mean_scale)
    )


def log_posterior(params: GPParams, x, y, mask, prior: Prior = Prior()) -> jax.Array:
    """The MAP objective: log marginal likelihood plus log prior."""
    return log_marginal_likelihood(params, x, y, mask) + log_prior(params, prior)

def posterior(params: GPParams, x: jax.Array, y: jax.Array, mask: jax.Array) -> Posterior:
    """Condition the GP on the masked observations."""
    cov, _, _ = _masked_kernel_parts(params, x, mask)
    chol, _ = robust_cholesky(cov)
    eye = jnp.eye(chol.shape[-1], dtype=chol.dtype)
    chol_inv = lax.linalg.triangular_solve(chol, eye, left_side=True, lower=True)
    residual = jnp.where(mask, y - params.mean, 0.0)
    alpha = chol_inv.T @ (chol_inv @ residual)
    return Posterior(params=params, x=x, mask=mask, alpha=alpha, chol_inv=chol_inv)


def predict(post: Posterior, query: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Posterior mean and variance of the latent function at ``query`` rows (m, d).

    The variance excludes observation noise and is floored at a tiny positive
    value so that its square root stays differentiable.
    """
    cross = jnp.where(post.mask[None, :], kernel(query, post.x, post.params), 0.0)
    mean = post.params.mean + cross @ post.alpha
    projected = cross @ post.chol_inv.T
    amplitude = jnp.exp(post.params.log_amplitude)
    variance = amplitude - (projected**2).sum(-1)
    return mean, jnp.maximum(variance, 1e-12 * amplitude)
