"""MAP fitting of the GP's hyperparameters: prior draws as starts, a hand-written
projected L-BFGS, restarts in one ``vmap``, and cheap refinement of a previous fit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from jhpo.gp.model import (
    LOG_AMPLITUDE_BOUNDS,
    LOG_LENGTHSCALE_BOUNDS,
    LOG_NOISE_BOUNDS,
    MEAN_BOUNDS,
    GPParams,
    Prior,
    clip_params,
    log_posterior,
)


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
