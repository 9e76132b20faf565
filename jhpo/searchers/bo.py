"""Bayesian optimization: a GP surrogate (``jhpo.gp``) and LogEI or UCB (``jhpo.acquisition``).

The first ``num_initial`` trials come from the scrambled Halton sequence of
``quasirandom``; after that each ask updates the GP hyperparameters once and
maximises the acquisition function once per requested row.

Fitting cost. A MAP fit with restarts (several starts in one ``vmap``, L-BFGS,
the previous fit as one start) runs whenever the number of observations has
grown by ``refit_growth`` since the last one. Other asks refine the previous
fit with a few evaluations while the buffer holds at most ``fit_subset`` rows,
and keep it as it is beyond that. In large buffers the restarts see a random
subset of ``fit_subset`` rows and their winner is refined on all rows. Each
evaluation costs a Cholesky factor and a triangular inverse of the buffer, so
between restarts a large-buffer ask costs about as much as its acquisition
step alone.

Precision. The GP runs in float64 inside ``jax.enable_x64(True)``, a context
manager that scopes the flag to the current thread and block; the compiled
kernels cast their float32 inputs up and their outputs back down. The user's
process-wide ``jax_enable_x64`` and their float32 training code are untouched.

Pending trials: a constant liar. While a trial runs, its row joins the GP data
with the worst value observed so far as a provisional result. Only the
posterior is recomputed (one Cholesky factor per proposed row); the
hyperparameters stay those fitted on real observations. A pessimistic lie
pushes the next proposals away from rows already being evaluated, which is
what a batch or an asynchronous pool of workers needs: diversity. Fantasies
(averaging the acquisition over posterior samples at the pending rows) are
more faithful but cost one posterior per sample per proposal; with many
workers and small budgets the liar's spread matters more than its bias.

Failed trials (NaN values) stay in the observed buffer as NaN, and every
kernel reads them as the worst finite value observed. The GP then believes the
region is bad, so BO steers away from it; the exclusion of observed rows
forbids proposing the exact row again in any case.

Compilation. The kernels are jitted with the space and the options as static
arguments, so they compile once per pair of buffer capacities (powers of two),
never once per trial.
"""

from __future__ import annotations

import functools
import numbers
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jhpo import acquisition as acq
from jhpo import gp
from jhpo.searchers.base import Buffer, Searcher, append, record_told
from jhpo.searchers.random import QuasiRandomState, quasirandom
from jhpo.space import Space

ACQUISITIONS = ("logei", "ucb")

# Random rows tried, in order, when an initial Halton row is already taken
# (possible in small discrete spaces).
_INITIAL_FALLBACK_ROWS = 256


class FitConfig(NamedTuple):
    """Static options of the fit kernel (hashable: they key its jit cache)."""

    warp: bool
    num_restarts: int
    fit_evaluations: int
    refine_evaluations: int
    fit_subset: int


class ProposeConfig(NamedTuple):
    """Static options of the proposal kernel."""

    warp: bool
    acquisition: str
    ucb_beta: float
    maximize: acq.MaximizeConfig


class BOConfig(NamedTuple):
    """Every option of the searcher. Only ``fit`` and ``propose`` reach the
    compiled kernels, so the other options never cause a recompilation."""

    num_initial: int
    refit_growth: float
    fit: FitConfig
    propose: ProposeConfig


class BOState(NamedTuple):
    observed: Buffer
    pending: Buffer
    permutations: jax.Array  # digit scrambling of the initial Halton design
    params: gp.GPParams  # float32 copy of the last fit; the next fit's warm start
    restarted_at: jax.Array  # number of observations at the last fit with restarts


def make_config(
    space: Space,
    *,
    num_initial: int | None = None,
    warp: bool = False,
    acquisition: str = "logei",
    ucb_beta: float = 4.0,
    num_restarts: int = 8,
    fit_evaluations: int = 30,
    refine_evaluations: int = 5,
    refit_growth: float = 1.25,
    fit_subset: int = 64,
    num_screen: int = 2048,
    num_starts: int = 8,
    ascent_steps: int = 40,
    ascent_learning_rate: float = 0.03,
) -> BOConfig:
    """Check the options of ``bo`` and gather them; see ``bo`` for their meaning."""
    if num_initial is None:
        num_initial = min(10, max(4, 2 * len(space.names)))
    _check_count("num_initial", num_initial, 1)
    if not isinstance(warp, bool):
        raise ValueError(f"warp={warp!r} must be True or False")
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"acquisition={acquisition!r} must be one of {ACQUISITIONS}")
    _check_count("num_restarts", num_restarts, 1)
    _check_count("fit_evaluations", fit_evaluations, 0)
    _check_count("refine_evaluations", refine_evaluations, 0)
    _check_count("fit_subset", fit_subset, 2)
    _check_count("num_screen", num_screen, 1)
    _check_count("num_starts", num_starts, 1)
    _check_count("ascent_steps", ascent_steps, 0)
    _check_number("refit_growth", refit_growth, 1.0, allow_equal=True)
    _check_number("ucb_beta", ucb_beta, 0.0)
    _check_number("ascent_learning_rate", ascent_learning_rate, 0.0)
    return BOConfig(
        num_initial=int(num_initial),
        refit_growth=float(refit_growth),
        fit=FitConfig(
            warp=bool(warp),
            num_restarts=int(num_restarts),
            fit_evaluations=int(fit_evaluations),
            refine_evaluations=int(refine_evaluations),
            fit_subset=int(fit_subset),
        ),
        propose=ProposeConfig(
            warp=bool(warp),
            acquisition=acquisition,
            ucb_beta=float(ucb_beta),
            maximize=acq.MaximizeConfig(
                num_screen=int(num_screen),
                num_starts=int(num_starts),
                num_steps=int(ascent_steps),
                learning_rate=float(ascent_learning_rate),
            ),
        ),
    )


def bo(space: Space, **options) -> Searcher:
    """Gaussian-process Bayesian optimization over ``space``.

    Options (all keyword):
    num_initial: quasi-random trials before the GP takes over; default
        ``clip(2 * number of parameters, 4, 10)``.
    warp (False): model the normal scores of the values' ranks instead of the
        values (see ``jhpo.gp.rank_warp``): robust to heavy tails and outliers,
        but it discards magnitudes, and on Branin with 20 evaluations it did
        clearly worse than the plain values, hence off by default.
    acquisition: "logei" (log expected improvement, default) or "ucb" (with
        ``ucb_beta``, default 4).
    num_restarts (8), fit_evaluations (20): the hyperparameter fit with restarts, all
        run together in one ``vmap`` (the first start is the previous fit), with
        ``fit_evaluations`` L-BFGS iterations each. It runs when the number of
        observations has grown by the factor ``refit_growth`` (1.25) since the
        last one; in between, ``refine_evaluations`` (4) iterations update the
        previous fit.
    fit_subset (64): restarts see at most this many observations (a random
        subset), since their cost grows with the cube of the count; the winner
        is then refined on all of them. Beyond this many observations the
        hyperparameters are only updated by those restarts.
    num_screen (2048), num_starts (8), ascent_steps (40), ascent_learning_rate
        (0.03): acquisition maximisation effort (rows screened, ascent starts,
        Adam steps and their size).
    """
    if not isinstance(space, Space):
        space = Space(space)
    if not space.names:
        raise ValueError("bo needs a space with at least one tunable parameter")
    config = make_config(space, **options)
    initial = quasirandom(space)

    def init(key: jax.Array) -> BOState:
        start = initial.init(key)
        return BOState(start.observed, start.pending, start.permutations,
                       gp.default_params(space.dim), jnp.zeros((), jnp.int32))

    def ask(state: BOState, key: jax.Array, n: int) -> tuple[jax.Array, BOState]:
        _check_count("n", n, 1)
        fit_key, *row_keys = jax.random.split(key, n + 1)
        fitted = False
        rows = []
        for row_key in row_keys:
            if state.observed.count < config.num_initial:
                row = _initial_row(space, initial, state, row_key)
            else:
                if not fitted:  # once per ask: only real observations move the fit
                    state = update_fit(config, state, fit_key)
                    fitted = True
                row = propose(space, config, state, row_key)
            state = state._replace(pending=append(state.pending, row[None]))
            rows.append(row)
        return jnp.stack(rows), state

    return Searcher(init, ask, record_told)


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def _check_number(name: str, value, bound: float, allow_equal: bool = False) -> None:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not (value >= bound if allow_equal else value > bound):
        relation = ">=" if allow_equal else ">"
        raise ValueError(f"{name}={value!r} must be a number {relation} {bound:g}")


def update_fit(config: BOConfig, state: BOState, key: jax.Array) -> BOState:
    """The state with hyperparameters fitted to its observations.

    A fit with restarts once the data has grown enough since the last one. In
    between, small buffers get a cheap refinement, and buffers larger than
    ``fit_subset`` keep their hyperparameters: with hundreds of points one more
    barely moves them, while a single evaluation of the objective costs as much
    as the whole acquisition step.
    """
    count = state.observed.count
    restart = count >= config.refit_growth * int(state.restarted_at)
    if not restart and state.observed.capacity > config.fit.fit_subset:
        return state
    with jax.enable_x64(True):
        params = _fit_kernel(config.fit, state.observed, state.params, key, jnp.asarray(restart))
    restarted_at = jnp.asarray(count, jnp.int32) if restart else state.restarted_at
    return state._replace(params=params, restarted_at=restarted_at)


def propose(space: Space, config: BOConfig, state: BOState, key: jax.Array) -> jax.Array:
    """The acquisition maximiser given the state's fit, observations and pending rows."""
    with jax.enable_x64(True):
        row, found = _propose_kernel(space, config.propose, state.params, state.observed,
                                     state.pending, key)
    if not bool(found):
        warnings.warn(
            "bo: every candidate configuration was already observed or pending (a small "
            "discrete space may be used up); proposing an observed configuration again",
            stacklevel=3,
        )
    return row


def _initial_row(space: Space, initial: Searcher, state: BOState, key: jax.Array) -> jax.Array:
    halton_state = QuasiRandomState(state.observed, state.pending, state.permutations)
    rows, _ = initial.ask(halton_state, key, 1)
    return _first_untaken(space, rows[0], state.observed, state.pending, key)


@functools.partial(jax.jit, static_argnums=0, compiler_options=gp.COMPILER_OPTIONS)
def _first_untaken(space: Space, row, observed: Buffer, pending: Buffer, key) -> jax.Array:
    """``row`` unless it is observed or pending, else the first random row that is not."""
    candidates = jnp.concatenate([row[None], space.sample(key, _INITIAL_FALLBACK_ROWS)])
    taken = _taken(candidates, observed, pending)
    return candidates[jnp.argmax(~taken)]


def _taken(rows: jax.Array, observed: Buffer, pending: Buffer) -> jax.Array:
    return acq.rows_in(rows, observed.x, observed.mask) | acq.rows_in(rows, pending.x, pending.mask)


def _imputed_targets(observed: Buffer) -> jax.Array:
    """Observed values in float64 with failed trials (NaN) read as the worst finite value."""
    y = observed.y.astype(jnp.float64)
    finite = observed.mask & jnp.isfinite(y)
    worst = jnp.where(finite.any(), jnp.max(jnp.where(finite, y, -jnp.inf)), 0.0)
    return jnp.where(observed.mask & ~finite, worst, jnp.where(observed.mask, y, 0.0))


def _model_targets(observed: Buffer, warp: bool) -> jax.Array:
    """The values the GP models: imputed, optionally rank-warped, standardised."""
    y = _imputed_targets(observed)
    if warp:
        y = gp.rank_warp(y, observed.mask)
    return gp.standardize(y, observed.mask)[0]


def _fit_data(observed: Buffer, warp: bool):
    return observed.x.astype(jnp.float64), _model_targets(observed, warp), observed.mask


def _as_float32(params: gp.GPParams) -> gp.GPParams:
    return jax.tree.map(lambda p: p.astype(jnp.float32), params)


@functools.partial(jax.jit, static_argnums=0, compiler_options=gp.COMPILER_OPTIONS)
def _fit_kernel(config: FitConfig, observed: Buffer, warm: gp.GPParams, key,
                restart: jax.Array) -> gp.GPParams:
    """For buffers of up to ``fit_subset`` rows, a fit with restarts or a refinement
    of the previous fit, chosen by the traced flag ``restart`` so that each buffer
    capacity compiles exactly one fit program. Larger buffers always restart."""
    x, y, mask = _fit_data(observed, config.warp)
    warm = jax.tree.map(lambda p: p.astype(jnp.float64), warm)
    subset_key, restart_key = jax.random.split(key)
    if observed.capacity <= config.fit_subset:  # static: shapes are known at trace time
        # One batch of chains either way (the first from the previous fit), so the
        # objective is compiled once; a refinement just runs fewer evaluations.
        evaluations = jnp.where(restart, config.fit_evaluations, config.refine_evaluations)
        params, _ = gp.fit(restart_key, x, y, mask, warm, num_restarts=config.num_restarts,
                           num_evaluations=evaluations)
    else:  # only called to restart: the restarts see a subset, the winner all rows
        subset = gp.random_subset(subset_key, x, y, mask, config.fit_subset)
        start, _ = gp.fit(restart_key, *subset, warm, num_restarts=config.num_restarts,
                          num_evaluations=config.fit_evaluations)
        params, _ = gp.refine(x, y, mask, start, num_evaluations=config.refine_evaluations)
    return _as_float32(params)


@functools.partial(jax.jit, static_argnums=(0, 1), compiler_options=gp.COMPILER_OPTIONS)
def _propose_kernel(space: Space, config: ProposeConfig, params: gp.GPParams, observed: Buffer,
                    pending: Buffer, key):
    """The best fresh row under the acquisition, pending rows standing in with the lie."""
    y = _model_targets(observed, config.warp)
    lie = jnp.max(jnp.where(observed.mask, y, -jnp.inf))
    x_all = jnp.concatenate([observed.x, pending.x]).astype(jnp.float64)
    y_all = jnp.concatenate([y, jnp.full(pending.y.shape, lie)])
    mask_all = jnp.concatenate([observed.mask, pending.mask])
    params64 = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    posterior = gp.posterior(params64, x_all, y_all, mask_all)
    incumbent = jnp.min(jnp.where(observed.mask, y, jnp.inf))

    def score(rows):
        mean, variance = gp.predict(posterior, rows.astype(jnp.float64))
        if config.acquisition == "ucb":
            return acq.upper_confidence_bound(mean, variance, config.ucb_beta)
        return acq.log_expected_improvement(mean, variance, incumbent)

    def sample(sample_key, num):
        return space.sample(sample_key, num).astype(jnp.float64)

    def canonicalize(rows):
        return space.canonicalize(rows.astype(jnp.float32)).astype(rows.dtype)

    def column_mask(rows):
        return space.column_mask(rows.astype(jnp.float32))

    row, _, found = acq.maximize(
        score, key, sample, x_all, mask_all,
        canonicalize=canonicalize, column_mask=column_mask, config=config.maximize,
    )
    return row.astype(jnp.float32), found
