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

Several outputs (options ``num_objectives``, ``num_constraints``, ``cost_aware``;
the row told per trial is laid out as in ``jhpo.goal``). Each modelled output has
its own GP, all fitted together in one ``vmap``:
- several objectives become one by ParEGO (Knowles, 2006): each ask draws fresh
  weights from the simplex and models the augmented Chebyshev scalarisation of the
  objectives, each normalised to [0, 1] over the observations. We chose it over
  expected hypervolume improvement because it reuses the single-objective path
  whole (LogEI, the liar, one GP whatever the number of objectives) and its cost
  does not grow with the number of objectives, while EHVI needs box decompositions
  that grow quickly with the size of the front and with each extra objective. The
  Chebyshev max reaches non-convex parts of a front, which a weighted sum cannot, and
  over many asks the random weights spread the proposals along the front;
- each constraint ``c_i > 0`` gets a GP, and the acquisition adds
  ``sum_i log P(c_i > 0)`` to LogEI. The incumbent is the best feasible value; while
  nothing feasible has been observed the acquisition is the log probability of
  feasibility alone (search for feasibility first);
- ``cost_aware`` models the log of the cost and subtracts its posterior mean: LogEI
  minus log cost is log(EI per unit cost), so cheap promising rows come first. With
  ``cost_exponent`` 2 the log cost counts twice. EI per unit cost still pays for
  expensive rows far from the data: there a stationary GP's spread, set by the
  largest values seen, promises improvements far larger than any left near the
  incumbent, and where little is known the log-cost GP's mean reverts towards the
  average cost, so the most expensive corners look cheaper than they are. On Branin
  with a 100-fold cost gradient that exploration came before the cheap minimum was
  refined, and EI per unit cost reached cost-blind BO's final regret only at 0.58 of
  its cost (14 seeds, benchmarks/cost_aware.py); with the exponent 2, at 0.37, and no
  worse than exponent 1 where every minimum is expensive;
- ``multi_fidelity`` (with a rung scheduler: ASHA, Hyperband, median stopping): every
  trial is told at the resource it stopped at, and that fidelity (log resource scaled to
  [0, 1] between the first and last rung) is one more input column of every GP, with its
  own ARD length scale. One joint GP over configuration and resource, rather than one
  model per rung as in BOHB: a stopped trial's low-rung value informs the prediction at
  full resource through the learned length scale, so the model is usable after a handful
  of trials instead of waiting for enough trials to reach a high rung, and the fitted
  length scale says how far low rungs can be trusted, where a per-rung model must guess
  when to switch rungs. The acquisition scores rows at fidelity 1, and the incumbent is
  the lowest posterior mean at fidelity 1 over the observed configurations (few of
  which were trained fully). Configurations observed at any rung are never proposed
  again.
Failed trials count as the worst value of each output: the largest objective, the
smallest constraint value (the most infeasible) and the largest cost. Pending rows
enter only the objective's model (the liar); constraints and cost are what they are.
The single-objective searcher does not go through any of this: its kernels and
their compilation are unchanged.

Compilation. The kernels are jitted with the space and the options as static
arguments, so they compile once per pair of buffer capacities (powers of two),
never once per trial.
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jhpo import acquisition as acq
from jhpo import gp
from jhpo.searchers.base import Buffer, Searcher, append, empty_buffer, record_told
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
    cost_exponent: float = 1.0


class Outputs(NamedTuple):
    """What is told per trial (see ``jhpo.goal``): objectives, constraints, cost, fidelity."""

    num_objectives: int = 1
    num_constraints: int = 0
    cost_aware: bool = False
    multi_fidelity: bool = False

    @property
    def told(self) -> int:
        """Numbers told per trial."""
        return (self.num_objectives + self.num_constraints + int(self.cost_aware)
                + int(self.multi_fidelity))

    @property
    def modelled(self) -> int:
        """GPs fitted: the (scalarised) objective, each constraint and the log cost."""
        return 1 + self.num_constraints + int(self.cost_aware)


class BOConfig(NamedTuple):
    """Every option of the searcher. Only ``fit``, ``propose`` and ``outputs`` reach
    the compiled kernels, so the other options never cause a recompilation."""

    num_initial: int
    refit_growth: float
    fit: FitConfig
    propose: ProposeConfig
    outputs: Outputs = Outputs()


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
    num_local: int = 256,
    num_objectives: int = 1,
    num_constraints: int = 0,
    cost_aware: bool = False,
    cost_exponent: float = 1.0,
    multi_fidelity: bool = False,
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
    _check_count("num_local", num_local, 0)
    _check_number("refit_growth", refit_growth, 1.0, allow_equal=True)
    _check_number("ucb_beta", ucb_beta, 0.0)
    _check_number("ascent_learning_rate", ascent_learning_rate, 0.0)
    _check_count("num_objectives", num_objectives, 1)
    _check_count("num_constraints", num_constraints, 0)
    if not isinstance(cost_aware, bool):
        raise ValueError(f"cost_aware={cost_aware!r} must be True or False")
    _check_number("cost_exponent", cost_exponent, 0.0)
    if cost_exponent != 1.0 and not cost_aware:
        raise ValueError(f"cost_exponent={cost_exponent!r} only applies with cost_aware=True")
    if not isinstance(multi_fidelity, bool):
        raise ValueError(f"multi_fidelity={multi_fidelity!r} must be True or False")
    if acquisition == "ucb" and (num_constraints or cost_aware):
        raise ValueError(
            f"acquisition={acquisition!r} cannot be combined with constraints or cost_aware: "
            "their log-probability and log-cost terms are added to LogEI; use 'logei'"
        )
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
                num_local=int(num_local),
            ),
            cost_exponent=float(cost_exponent),
        ),
        outputs=Outputs(int(num_objectives), int(num_constraints), cost_aware, multi_fidelity),
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
    num_restarts (8), fit_evaluations (30): the hyperparameter fit with restarts, all
        run together in one ``vmap`` (the first start is the previous fit), with
        ``fit_evaluations`` L-BFGS iterations each. It runs when the number of
        observations has grown by the factor ``refit_growth`` (1.25) since the
        last one; in between, ``refine_evaluations`` (5) iterations update the
        previous fit.
    fit_subset (64): restarts see at most this many observations (a random
        subset), since their cost grows with the cube of the count; the winner
        is then refined on all of them. Beyond this many observations the
        hyperparameters are only updated by those restarts.
    num_screen (2048), num_starts (8), ascent_steps (40), ascent_learning_rate
        (0.03): acquisition maximisation effort (random rows screened, ascent starts,
        Adam steps and the first step's size). Buffers of more than 128 observations
        screen proportionally fewer random rows (the cost of each grows with the
        square of the count).
    num_local (256): rows screened near the best observation as well, at
        distances from 0.0001 to 0.2 of the unit cube (see ``acq.maximize``).
    num_objectives (1), num_constraints (0), cost_aware (False): the values told
        per trial, laid out as in ``jhpo.goal``; see the module notes for how
        several objectives, constraints and costs steer the search.
    cost_exponent (1.0, with ``cost_aware``): the acquisition is LogEI minus this
        times the expected log cost, that is log(EI / cost^exponent). 1 is EI per
        unit cost; 2 avoids expensive rows more strongly, which did better on one
        problem of benchmarks/cost_aware.py and no worse on the other (see the
        module notes).
    multi_fidelity (False): each told row ends with the trial's fidelity in [0, 1]
        (``jhpo.goal.Goal.fidelity_of``); the GPs take it as one more input and the
        acquisition looks at fidelity 1. ``jhpo.tune`` and ``jhpo.tune_population`` turn
        it on for ``searcher="bo"`` with a rung scheduler.
    """
    if not isinstance(space, Space):
        space = Space(space)
    if not space.names:
        raise ValueError("bo needs a space with at least one tunable parameter")
    config = make_config(space, **options)
    outputs = config.outputs
    initial = quasirandom(space)
    single = outputs == Outputs()
    fit_update = update_fit if single else update_output_fits
    proposer = propose if single else propose_for_outputs

    def init(key: jax.Array) -> BOState:
        start = initial.init(key)
        observed = empty_buffer(space.dim, outputs=outputs.told)
        params = gp.default_params(space.dim + int(outputs.multi_fidelity))
        if not single:
            params = jax.tree.map(lambda p: jnp.broadcast_to(p, (outputs.modelled,) + p.shape),
                                  params)
        return BOState(observed, start.pending, start.permutations, params,
                       jnp.zeros((), jnp.int32))

    def ask(state: BOState, key: jax.Array, n: int) -> tuple[jax.Array, BOState, jax.Array]:
        _check_count("n", n, 1)
        fit_key, *row_keys = jax.random.split(key, n + 1)
        # Fresh ParEGO weights per ask, shared by the fit and every row of the batch. Drawn
        # from a key folded off the fit's, so one-objective runs keep the keys they had.
        weights = None if single else acq.simplex_weights(jax.random.fold_in(fit_key, 1),
                                                          outputs.num_objectives)
        fitted = False
        rows, fresh = [], []
        for row_key in row_keys:
            if state.observed.count < config.num_initial:
                row, found = _initial_row(space, initial, state, row_key)
            else:
                if not fitted:  # once per ask: only real observations move the fit
                    state = fit_update(config, state, fit_key, weights)
                    fitted = True
                row, found = proposer(space, config, state, row_key, weights)
            state = state._replace(pending=append(state.pending, row[None]))
            rows.append(row)
            fresh.append(found)
        return jnp.stack(rows), state, jnp.stack(fresh)

    return Searcher(init, ask, record_told)


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def _check_number(name: str, value, bound: float, allow_equal: bool = False) -> None:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not (value >= bound if allow_equal else value > bound):
        relation = ">=" if allow_equal else ">"
        raise ValueError(f"{name}={value!r} must be a number {relation} {bound:g}")


def update_fit(config: BOConfig, state: BOState, key: jax.Array,
               weights: jax.Array | None = None) -> BOState:
    """The state with hyperparameters fitted to its observations.

    A fit with restarts once the data has grown enough since the last one. In
    between, small buffers get a cheap refinement, and buffers larger than
    ``fit_subset`` keep their hyperparameters: with hundreds of points one more
    barely moves them, while a single evaluation of the objective costs as much
    as the whole acquisition step. ``weights`` (ParEGO's) play no part with one objective.
    """
    del weights
    count = state.observed.count
    restart = count >= config.refit_growth * int(state.restarted_at)
    if not restart and state.observed.capacity > config.fit.fit_subset:
        return state
    with jax.enable_x64(True):
        params = _fit_kernel(config.fit, state.observed, state.params, key, jnp.asarray(restart))
    restarted_at = jnp.asarray(count, jnp.int32) if restart else state.restarted_at
    return state._replace(params=params, restarted_at=restarted_at)


def propose(space: Space, config: BOConfig, state: BOState, key: jax.Array,
            weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """The acquisition maximiser given the state's fit, observations and pending rows, and
    whether it is fresh (False: every candidate was already observed or pending)."""
    del weights
    with jax.enable_x64(True):
        return _propose_kernel(space, config.propose, state.params, state.observed,
                               state.pending, key)


def update_output_fits(config: BOConfig, state: BOState, key: jax.Array,
                       weights: jax.Array) -> BOState:
    """``update_fit`` for several outputs: every modelled output's GP at once."""
    count = state.observed.count
    restart = count >= config.refit_growth * int(state.restarted_at)
    if not restart and state.observed.capacity > config.fit.fit_subset:
        return state
    with jax.enable_x64(True):
        params = _fit_outputs_kernel(config.fit, config.outputs, state.observed, weights,
                                     state.params, key, jnp.asarray(restart))
    restarted_at = jnp.asarray(count, jnp.int32) if restart else state.restarted_at
    return state._replace(params=params, restarted_at=restarted_at)


def propose_for_outputs(space: Space, config: BOConfig, state: BOState, key: jax.Array,
                        weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``propose`` for several outputs: scalarised objective, feasibility and cost."""
    with jax.enable_x64(True):
        return _propose_outputs_kernel(space, config.propose, config.outputs, state.params,
                                       state.observed, state.pending, weights, key)


def _initial_row(space: Space, initial: Searcher, state: BOState,
                 key: jax.Array) -> tuple[jax.Array, jax.Array]:
    halton_state = QuasiRandomState(state.observed, state.pending, state.permutations)
    rows, _, _ = initial.ask(halton_state, key, 1)
    return _first_untaken(space, rows[0], state.observed, state.pending, key)


@functools.partial(jax.jit, static_argnums=0, compiler_options=gp.COMPILER_OPTIONS)
def _first_untaken(space: Space, row, observed: Buffer, pending: Buffer,
                   key) -> tuple[jax.Array, jax.Array]:
    """``row`` unless it is observed or pending, else the first random row that is not;
    and whether one was found (else ``row`` is returned, taken)."""
    candidates = jnp.concatenate([row[None], space.sample(key, _INITIAL_FALLBACK_ROWS)])
    untaken = ~_taken(candidates, observed, pending)
    return candidates[jnp.argmax(untaken)], untaken.any()


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
    return _fit_standardised(config, x, y, mask, warm, key, restart)


def _fit_standardised(config: FitConfig, x, y, mask, warm: gp.GPParams, key,
                      restart: jax.Array) -> gp.GPParams:
    """The body of ``_fit_kernel`` for standardised targets ``y``."""
    warm = jax.tree.map(lambda p: p.astype(jnp.float64), warm)
    subset_key, restart_key = jax.random.split(key)
    if x.shape[0] <= config.fit_subset:  # static: shapes are known at trace time
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

    return _maximize_over_space(space, score, key, x_all, mask_all, config, observed, y)


# Buffers up to this capacity screen ``num_screen`` random rows; larger ones screen fewer.
_FULL_SCREEN_CAPACITY = 128


def _screen_effort(config: acq.MaximizeConfig, capacity: int) -> acq.MaximizeConfig:
    """``config`` with the random rows screened shrunk in proportion to the capacity
    beyond ``_FULL_SCREEN_CAPACITY`` (a static shape, so still one program per capacity).

    Screening costs rows x capacity² and dominated large asks (d = 6, 800
    observations: about half of the ask). With hundreds of observations the model is
    sharp where the search has been, and the rows screened around the incumbent
    (``num_local``, kept whole) carry most late proposals.
    """
    if capacity <= _FULL_SCREEN_CAPACITY:
        return config
    rows = max(config.num_screen * _FULL_SCREEN_CAPACITY // capacity, config.num_starts)
    return config._replace(num_screen=rows)


def _maximize_over_space(space: Space, score, key, x_all, mask_all, config, observed: Buffer,
                         rank: jax.Array):
    """The best valid row of ``space`` for ``score`` (float64 inside, float32 out), never
    one of the rows in ``x_all`` under ``mask_all``; ``found`` is False when none is left.
    Rows are also screened around the observed row of lowest ``rank`` (the incumbent; see
    ``acq.maximize``), and fewer random rows in large buffers (``_screen_effort``)."""
    best_row = observed.x[jnp.argmin(jnp.where(observed.mask, rank, jnp.inf))][None]
    maximize_config = _screen_effort(config.maximize, observed.capacity)

    def sample(sample_key, num):
        return space.sample(sample_key, num).astype(jnp.float64)

    def canonicalize(rows):
        return space.canonicalize(rows.astype(jnp.float32)).astype(rows.dtype)

    def column_mask(rows):
        return space.column_mask(rows.astype(jnp.float32))

    row, _, found = acq.maximize(
        score, key, sample, x_all, mask_all,
        canonicalize=canonicalize, column_mask=column_mask, config=maximize_config,
        centres=best_row.astype(jnp.float64),
    )
    return row.astype(jnp.float32), found


def _impute_column(values: jax.Array, mask: jax.Array, worst_is_largest: bool) -> jax.Array:
    """A column with failed entries (NaN) read as its worst finite value; padding is 0."""
    finite = mask & jnp.isfinite(values)
    pick = jnp.max if worst_is_largest else jnp.min
    fill = -jnp.inf if worst_is_largest else jnp.inf
    worst = jnp.where(finite.any(), pick(jnp.where(finite, values, fill)), 0.0)
    return jnp.where(mask & ~finite, worst, jnp.where(mask, values, 0.0))


def _model_inputs(outputs: Outputs, x: jax.Array, fidelity: jax.Array) -> jax.Array:
    """GP inputs in float64: the rows, with their fidelity as a last column when modelled."""
    x = x.astype(jnp.float64)
    if not outputs.multi_fidelity:
        return x
    return jnp.concatenate([x, jnp.broadcast_to(fidelity, x.shape[:1]).astype(jnp.float64)[:, None]],
                           axis=1)


def _observed_inputs(outputs: Outputs, observed: Buffer) -> jax.Array:
    return _model_inputs(outputs, observed.x, observed.y[:, -1] if outputs.multi_fidelity else 1.0)


def _output_targets(outputs: Outputs, observed: Buffer, weights: jax.Array) -> jax.Array:
    """The (capacity, modelled) values the GPs model, before standardisation: the
    scalarised objective, each constraint, then the log cost."""
    y = observed.y.astype(jnp.float64)
    mask = observed.mask
    k, c = outputs.num_objectives, outputs.num_constraints
    objectives = jnp.stack([_impute_column(y[:, j], mask, True) for j in range(k)], axis=1)
    if k == 1:
        columns = [objectives[:, 0]]
    else:
        normalised = acq.normalize_columns(objectives, mask)
        columns = [jnp.where(mask, acq.augmented_chebyshev(normalised, weights), 0.0)]
    columns += [_impute_column(y[:, k + i], mask, False) for i in range(c)]
    if outputs.cost_aware:
        # A zero or negative cost (a clock's rounding) is floored so its log stays finite.
        log_cost = jnp.log(jnp.maximum(y[:, k + c], 1e-9))
        columns.append(_impute_column(log_cost, mask, True))
    return jnp.stack(columns, axis=1)


def _feasible_rows(outputs: Outputs, observed: Buffer) -> jax.Array:
    """Observed rows whose every constraint is > 0 (NaN, a failed trial, is not)."""
    k, c = outputs.num_objectives, outputs.num_constraints
    return observed.mask & jnp.all(observed.y[:, k:k + c] > 0, axis=1)


def _standardised_outputs(outputs: Outputs, observed: Buffer, weights: jax.Array):
    """Standardised targets (capacity, modelled) and each column's offset and scale."""
    targets = _output_targets(outputs, observed, weights)
    return jax.vmap(gp.standardize, in_axes=(1, None), out_axes=(1, 0, 0))(targets, observed.mask)


@functools.partial(jax.jit, static_argnums=(0, 1), compiler_options=gp.COMPILER_OPTIONS)
def _fit_outputs_kernel(config: FitConfig, outputs: Outputs, observed: Buffer, weights: jax.Array,
                        warm: gp.GPParams, key, restart: jax.Array) -> gp.GPParams:
    """``_fit_kernel`` for every modelled output, in one ``vmap`` over their GPs."""
    targets, _, _ = _standardised_outputs(outputs, observed, weights)
    x = _observed_inputs(outputs, observed)

    def fit_one(y, warm_one):
        return _fit_standardised(config, x, y, observed.mask, warm_one, key, restart)

    return jax.vmap(fit_one, in_axes=(1, 0))(targets, warm)


@functools.partial(jax.jit, static_argnums=(0, 1, 2), compiler_options=gp.COMPILER_OPTIONS)
def _propose_outputs_kernel(space: Space, config: ProposeConfig, outputs: Outputs,
                            params: gp.GPParams, observed: Buffer, pending: Buffer,
                            weights: jax.Array, key):
    """The best fresh row under LogEI of the (scalarised) objective, plus the log
    probability of feasibility, minus the expected log cost, all at fidelity 1."""
    targets, offsets, scales = _standardised_outputs(outputs, observed, weights)
    objective = targets[:, 0]
    lie = jnp.max(jnp.where(observed.mask, objective, -jnp.inf))
    x_all = jnp.concatenate([observed.x, pending.x]).astype(jnp.float64)
    mask_all = jnp.concatenate([observed.mask, pending.mask])
    # Pending trials will be trained in full, so their lie stands at fidelity 1.
    x_model = jnp.concatenate([_observed_inputs(outputs, observed),
                               _model_inputs(outputs, pending.x, 1.0)])
    # Pending rows join the objective's data with the lie; the other GPs ignore them.
    pending_values = jnp.zeros((pending.capacity, outputs.modelled)).at[:, 0].set(lie)
    y_all = jnp.concatenate([targets, pending_values])
    pending_in_model = jnp.arange(outputs.modelled)[:, None] == 0
    masks = jnp.concatenate([jnp.broadcast_to(observed.mask, (outputs.modelled, observed.capacity)),
                             pending.mask[None, :] & pending_in_model], axis=1)
    params64 = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    posteriors = jax.vmap(gp.posterior, in_axes=(0, None, 1, 0))(params64, x_model, y_all, masks)

    def predict_full(rows):
        return jax.vmap(gp.predict, in_axes=(0, None))(posteriors, _model_inputs(outputs, rows, 1.0))

    feasible = _feasible_rows(outputs, observed)
    any_feasible = feasible.any()
    # With several fidelities the observed values are not comparable at fidelity 1;
    # the model's prediction there is.
    reference = predict_full(observed.x)[0][0] if outputs.multi_fidelity else objective
    incumbent = jnp.where(any_feasible, jnp.min(jnp.where(feasible, reference, jnp.inf)), 0.0)
    c = outputs.num_constraints
    # c_i > 0 in reported units is c_i > -offset / scale in the GP's standardised units.
    thresholds = (-offsets[1:1 + c] / scales[1:1 + c])[:, None]

    def score(rows):
        means, variances = predict_full(rows)
        if config.acquisition == "ucb":
            value = acq.upper_confidence_bound(means[0], variances[0], config.ucb_beta)
        else:
            improvement = acq.log_expected_improvement(means[0], variances[0], incumbent)
            value = jnp.where(any_feasible, improvement, 0.0)
        if c:
            value = value + acq.log_probability_of_feasibility(
                means[1:1 + c], variances[1:1 + c], thresholds)
        if outputs.cost_aware:
            value = value - config.cost_exponent * (means[-1] * scales[-1] + offsets[-1])
        return value

    # The ascent also starts near the best feasible row (the best row while none is).
    centre_scores = jnp.where(any_feasible & ~feasible, jnp.inf, reference)
    return _maximize_over_space(space, score, key, x_all, mask_all, config, observed, centre_scores)
