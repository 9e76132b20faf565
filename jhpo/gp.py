"""Gaussian-process surrogate: Matérn-5/2 ARD kernel, constant mean, Gaussian noise.

Everything here is a pure function of arrays, so it composes with ``jit`` and
``vmap``. Observations live in fixed-capacity buffers ``(x, y, mask)``: rows
whose mask is False are padding and never influence a result, because their
kernel rows and columns are replaced by the identity and their residuals by 0.

The functions follow the dtype of their inputs. The Bayesian-optimization
searcher calls them in float64 inside a scoped ``jax.enable_x64(True)`` so the
process-wide flag (and the user's float32 training code) is left alone; see
``jhpo.searchers.bo``.

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
from jax.flatten_util import ravel_pytree

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


def sample_params(key: jax.Array, dim: int, dtype, prior: Prior = Prior()) -> GPParams:
    """Draw starting points for the fit from the prior, inside the bounds."""
    keys = jax.random.split(key, 4)
    draw = GPParams(
        log_lengthscale=prior.log_lengthscale_loc
        + prior.log_lengthscale_scale * jax.random.normal(keys[0], (dim,), dtype),
        log_amplitude=prior.log_amplitude_loc
        + prior.log_amplitude_scale * jax.random.normal(keys[1], (), dtype),
        log_noise=prior.log_noise_loc + prior.log_noise_scale * jax.random.normal(keys[2], (), dtype),
        mean=prior.mean_scale * jax.random.normal(keys[3], (), dtype),
    )
    return clip_params(draw)


_LBFGS_MEMORY = 6
_MAX_BACKTRACKS = 8
_ARMIJO = 1e-4
_BACKTRACK_FACTOR = 0.3


def _bounds_like(params: GPParams) -> tuple[GPParams, GPParams]:
    def full(value):
        return lambda leaf: jnp.full_like(leaf, value)

    lower = GPParams(*(jax.tree.map(full(b[0]), leaf) for leaf, b in zip(params, _BOUNDS)))
    upper = GPParams(*(jax.tree.map(full(b[1]), leaf) for leaf, b in zip(params, _BOUNDS)))
    return lower, upper


_BOUNDS = (LOG_LENGTHSCALE_BOUNDS, LOG_AMPLITUDE_BOUNDS, LOG_NOISE_BOUNDS, MEAN_BOUNDS)


def _two_loop_direction(grad, s_memory, y_memory, num_stored):
    """L-BFGS descent direction -H g from the stored pairs (newest in slot 0)."""
    valid = jnp.arange(s_memory.shape[0]) < num_stored
    curvature = (s_memory * y_memory).sum(-1)
    rho = jnp.where(valid, 1.0 / jnp.where(valid, curvature, 1.0), 0.0)
    q = grad
    alphas = []
    for i in range(s_memory.shape[0]):
        alpha = rho[i] * (s_memory[i] @ q)
        q = q - alpha * y_memory[i]
        alphas.append(alpha)
    # Without history, scale the first step so that no parameter moves by more than 0.5.
    first_scale = 0.5 / jnp.maximum(jnp.max(jnp.abs(grad)), 1e-12)
    newest_scale = curvature[0] / jnp.maximum((y_memory[0] ** 2).sum(), 1e-300)
    r = jnp.where(num_stored > 0, newest_scale, first_scale) * q
    for i in reversed(range(s_memory.shape[0])):
        beta = rho[i] * (y_memory[i] @ r)
        r = r + s_memory[i] * (alphas[i] - beta)
    return -r


def _lbfgs_ascent(objective, start: GPParams, num_evaluations: int):
    """L-BFGS maximising ``objective`` in the box, within a budget of evaluations.

    L-BFGS rather than Adam: the objective is smooth and low-dimensional and
    each evaluation costs a Cholesky factor, so fewer, better steps win. The
    loop is a small state machine that evaluates the objective (value and
    gradient) exactly once per pass, trying either a new L-BFGS step or a
    shorter one (projected backtracking with the Armijo test). One pass, one
    copy of the objective in the compiled program: a separate initial
    evaluation and line search compiled three copies, and optax's zoom line
    search more, which multiplied the compile time. Returns the best
    parameters and their objective value (-inf if never finite).
    """
    flat_start, unravel = ravel_pytree(start)
    lower, upper = (ravel_pytree(b)[0] for b in _bounds_like(start))
    memory = jnp.zeros((_LBFGS_MEMORY, flat_start.shape[0]), flat_start.dtype)

    def loss_and_grad(flat):
        value, grad = jax.value_and_grad(lambda f: -objective(unravel(f)))(flat)
        finite = jnp.isfinite(value)
        return jnp.where(finite, value, jnp.inf), jnp.where(finite, jnp.nan_to_num(grad), 0.0)

    def evaluate_and_decide(_, carry):
        point, value, grad, direction, step, trial, tries, s_memory, y_memory, stored = carry
        trial_value, trial_grad = loss_and_grad(trial)
        armijo = value + _ARMIJO * (grad @ (trial - point))
        accept = jnp.isfinite(trial_value) & ~(trial_value > armijo)

        change, grad_change = trial - point, trial_grad - grad
        store = accept & jnp.isfinite(value) & (change @ grad_change > 1e-10)
        s_memory = jnp.where(store, jnp.roll(s_memory, 1, 0).at[0].set(change), s_memory)
        y_memory = jnp.where(store, jnp.roll(y_memory, 1, 0).at[0].set(grad_change), y_memory)
        stored = jnp.where(store, stored + 1, stored)

        point = jnp.where(accept, trial, point)
        value = jnp.where(accept, trial_value, value)
        grad = jnp.where(accept, trial_grad, grad)
        # After too many rejections, forget the curvature pairs and restart from the gradient.
        give_up = ~accept & (tries + 1 >= _MAX_BACKTRACKS)
        stored = jnp.where(give_up, 0, stored)
        new_direction = _two_loop_direction(grad, s_memory, y_memory, stored)
        new_direction = jnp.where(grad @ new_direction < 0, new_direction, -grad)
        fresh = accept | give_up
        direction = jnp.where(fresh, new_direction, direction)
        step = jnp.where(fresh, 1.0, step * _BACKTRACK_FACTOR)
        tries = jnp.where(fresh, 0, tries + 1)
        trial = jnp.clip(point + step * direction, lower, upper)
        return point, value, grad, direction, step, trial, tries, s_memory, y_memory, stored

    flat_start = jnp.clip(flat_start, lower, upper)
    inf = jnp.asarray(jnp.inf, flat_start.dtype)
    zeros = jnp.zeros_like(flat_start)
    carry = (flat_start, inf, zeros, zeros, jnp.ones_like(inf), flat_start,
             jnp.asarray(0), memory, memory, jnp.asarray(0))
    point, value, *_ = lax.fori_loop(0, num_evaluations, evaluate_and_decide, carry)
    return unravel(point), -value


def fit(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    mask: jax.Array,
    warm_start: GPParams,
    *,
    num_restarts: int = 8,
    num_evaluations: int = 30,
    prior: Prior = Prior(),
) -> tuple[GPParams, jax.Array]:
    """MAP fit of the hyperparameters with several restarts in one ``vmap``.

    ``y`` must already be standardised (see ``standardize``). The first start is
    ``warm_start`` (typically the previous fit), the others are prior draws.
    ``num_evaluations`` (objective evaluations per start) may be a traced
    integer. Returns the best parameters and their log posterior; with no
    evaluations at all that is the warm start, scored -inf.
    """
    if num_restarts < 1:
        raise ValueError(f"num_restarts={num_restarts!r} must be >= 1")
    dim = x.shape[-1]
    draws = jax.vmap(lambda k: sample_params(k, dim, x.dtype, prior))(
        jax.random.split(key, num_restarts - 1)
    )
    warm = jax.tree.map(lambda w: jnp.asarray(w, x.dtype)[None], clip_params(warm_start))
    starts = jax.tree.map(lambda w, d: jnp.concatenate([w, d]), warm, draws)

    def objective(params):
        return log_posterior(params, x, y, mask, prior)

    params, values = jax.vmap(lambda s: _lbfgs_ascent(objective, s, num_evaluations))(starts)
    best = jnp.argmax(values)
    return jax.tree.map(lambda p: p[best], params), values[best]


def refine(
    x: jax.Array,
    y: jax.Array,
    mask: jax.Array,
    start: GPParams,
    *,
    num_evaluations: int = 5,
    prior: Prior = Prior(),
) -> tuple[GPParams, jax.Array]:
    """A few L-BFGS evaluations from ``start``: cheap upkeep of a previous fit."""
    start = jax.tree.map(lambda p: jnp.asarray(p, x.dtype), clip_params(start))
    return _lbfgs_ascent(lambda p: log_posterior(p, x, y, mask, prior), start, num_evaluations)


def random_subset(key: jax.Array, x: jax.Array, y: jax.Array, mask: jax.Array, size: int):
    """``size`` rows drawn without replacement from the masked rows (all of them,
    padded, when fewer are masked). Fixed output shape, so it works under jit."""
    priority = jax.random.uniform(key, mask.shape) + mask.astype(jnp.float32)
    _, index = lax.top_k(priority, size)
    return x[index], y[index], mask[index]


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
