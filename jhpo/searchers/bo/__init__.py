"""Bayesian optimization: GPs (``jhpo.gp``) and LogEI or UCB (``jhpo.acquisition``).

The first ``num_initial`` trials come from the scrambled Halton sequence of
``quasirandom``; after that each ask updates the GPs' hyperparameters once and maximises
the acquisition function once per requested row. Pending rows join the objective's data
with a provisional value (the ``liar`` option), so a batch spreads out and asynchronous
workers do not all chase one point; failed trials (NaN) count as the worst value of each
output. The GPs run in float64 inside a scoped
``jax.enable_x64(True)``: the process-wide flag and float32 training code are untouched.

``docs/design/bo.md`` explains the choices (fitting schedule, liar, ParEGO, constraints,
cost, fidelity) and the measurements behind them. The modules: ``options`` (validation and
the static records), ``targets`` (what each GP models), ``kernels`` (the compiled fit and
proposal programs).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jhpo import acquisition as acq
from jhpo import gp
from jhpo.searchers.base import (Buffer, Searcher, capacity_for, compact, empty_buffer, grow,
                                 record_told, write_after_filled)
from jhpo.searchers.bo.kernels import first_untaken, fit_kernel, propose_kernel
from jhpo.searchers.base import check_count
from jhpo.searchers.bo.options import BOConfig, Outputs, config_for_ask, make_config
from jhpo.searchers.random import halton_rows, quasirandom
from jhpo.space import Space

__all__ = ["BOConfig", "BOState", "FillLevels", "Outputs", "bo", "explores_at", "make_config",
           "propose", "read_fill_levels", "rows_since_best", "update_fit"]


class BOState(NamedTuple):
    """The searcher's state: a pytree of arrays, which the same asks and tells (keys
    included) always bring to the same values."""

    observed: Buffer
    pending: Buffer
    permutations: jax.Array  # digit scrambling of the initial Halton design
    params: gp.GPParams  # float32 copy of the last fit, one per modelled output; the warm start
    restarted_at: jax.Array  # number of observations at the last fit with restarts


def bo(space: Space, **options) -> Searcher:
    """Gaussian-process Bayesian optimization over ``space``.

    Options (all keyword):
    num_initial: quasi-random trials before the GP takes over; default
        ``clip(2 * number of parameters, 4, 10)``.
    warp (False): model the normal scores of the objective's ranks instead of its
        values (see ``jhpo.gp.rank_warp``): robust to heavy tails and outliers, but it
        discards magnitudes, and on Branin with 20 evaluations it did clearly worse
        than the plain values, hence off by default.
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
        is then refined on the rows the GPs condition on (``model_rows``). Beyond
        this many observations the hyperparameters are only updated by those restarts.
    model_rows (256): the GPs condition on every observation while the buffer's capacity
        (a power of two) is at most this (the exact GP); beyond, on this many: the best
        half by the objective and a random draw of the rest, fresh for every row
        proposed. Pending rows always enter. This bounds the cost of a fit or of a
        proposed row whatever the number of observations.
    num_screen (2048), num_starts (8), ascent_steps (40), ascent_learning_rate
        (0.03): acquisition maximisation effort (random rows screened, ascent starts,
        Adam steps and the first step's size). Buffers of more than 128 observations
        screen proportionally fewer random rows (the cost of each grows with the
        square of the count).
    num_local (256): rows screened near the best observation as well, at
        distances from 0.0001 to 0.2 of the unit cube (see ``acq.maximize``).
    incumbent ("observed"): what LogEI counts improvement from: the lowest observed
        value, or "mean", the lowest posterior mean at the observed rows. They differ
        where the fit reads part of the objective as noise (a rugged landscape): below
        the model's trend, the lowest observation leaves improvement only where the
        model is unsure, and the search wanders; "mean" follows the trend there, but
        did worse on the scikit-learn tasks of ``benchmarks/bo_ml.py``, hence not the
        default (docs/design/bo.md).
    num_objectives (1), num_constraints (0), cost_aware (False): the values told
        per trial, laid out as in ``jhpo.goal``. Several objectives are scalarised
        by ParEGO with fresh random weights per ask; each constraint ``c > 0`` gets a
        GP whose log probability of feasibility is added to LogEI (feasibility alone
        steers while nothing feasible is known); the cost's log gets a GP whose mean
        is subtracted.
    cost_exponent (1.0, with ``cost_aware``): the acquisition is LogEI minus this
        times the expected log cost, that is log(EI / cost^exponent). 1 is EI per
        unit cost; 2 avoids expensive rows more strongly.
    liar ("auto"): the provisional value of a pending row in the objective's GP:
        "believer" (the GP's own mean there, given what was observed), "best", "mean" or
        "worst" (of the observed values). "auto" is "believer" when one row is asked (a
        free worker's ask) and "best" for a batch.
    explore_after (0, off): once this many rows in a row (told or pending) have not
        improved on the best value, every other row continues the initial design's
        quasi-random sequence instead of following the GP, until one improves: a guard
        for objectives where the GP misleads (see ``explores_at``). Only with one
        objective, no constraints and no fidelity. Off by default: on the scikit-learn
        tasks measured it engaged in most runs and cost more than it gained.
    trust_region ("auto"): maximise the acquisition inside a box around the best row of
        the current region, after TuRBO (``jhpo.searchers.bo.trust``): its side, scaled per
        column by the GP's length scales, doubles after 3 improvements in a row, halves
        after max(4, columns) rows in a row without one, and restarts, the first row
        unconfined, when it falls below 2^-7. Derived from the told values in order, so a
        replay gives the same boxes. "auto" turns it on for one-row asks where it applies
        (one objective, no constraints, no fidelity) and off elsewhere: a batch searches the
        whole cube; True keeps it for batches too and raises where it does not apply;
        False maximises over the whole cube (docs/design/bo.md has the measurements).
        With the region, every third row is the minimiser of a separable quadratic fitted
        by least squares to the observations, when it leaves less than 0.1% of their
        variance unexplained (``jhpo.searchers.bo.trend``: a wide bowl whose ripples the
        GP interpolates).
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

    def init(key: jax.Array) -> BOState:
        start = initial.init(key)
        observed = empty_buffer(space.dim, outputs=outputs.told)
        params = gp.default_params(space.dim + int(outputs.multi_fidelity))
        params = jax.tree.map(lambda p: jnp.broadcast_to(p, (outputs.modelled,) + p.shape), params)
        return BOState(observed, start.pending, start.permutations, params,
                       jnp.zeros((), jnp.int32))

    def ask(state: BOState, key: jax.Array, n: int) -> tuple[jax.Array, BOState, jax.Array]:
        check_count("n", n, 1)
        levels = read_fill_levels(state)
        fit_key, *row_keys = jax.random.split(key, n + 1)
        weights = parego_weights(outputs, fit_key)
        asked_config = config_for_ask(config, n)
        initial_design = levels.observed < config.num_initial
        first = levels.observed + levels.pending  # the index of this ask's first row
        quasi = [initial_design
                 or explores_at(config, first + i, levels.since_best + levels.pending + i)
                 for i in range(n)]
        if not all(quasi):  # once per ask: only real observations move the fit
            state = update_fit(config, state, fit_key, weights, levels)
        rows, fresh = [], []
        for asked, row_key in enumerate(row_keys):
            num_pending = levels.pending + asked
            if quasi[asked]:
                row = halton_rows(space, state.permutations, first + asked, 1)[0]
                row, found = first_untaken(space, row, state.observed, state.pending, row_key)
            else:
                row, found = propose(space, asked_config, state, row_key, weights)
            state = state._replace(pending=_add_pending(state.pending, num_pending, row))
            rows.append(row)
            fresh.append(found)
        return jnp.stack(rows), state, jnp.stack(fresh)

    return Searcher(init, ask, record_told)


def explores_at(config: BOConfig, index: int, since_best: int) -> bool:
    """Whether the row of ``index`` (the rows observed and pending before it) continues
    the quasi-random design instead of following the GP: once the ``since_best`` rows
    after the best one (pending ones count as not improving), or all rows after the
    initial design if fewer, reach ``explore_after``, every other row, until one improves.

    A guard for objectives where the GP misleads (a flat or noisy objective, a length
    scale fitted too long): a stalled search turns half quasi-random. While the GP keeps
    improving it costs nothing, unlike a fixed share of quasi-random rows
    (docs/design/bo.md has the measurements).
    """
    outputs = config.outputs
    # "Improved" is plain only for one objective, unconstrained, at one fidelity.
    plain = (outputs.num_objectives == 1 and not outputs.num_constraints
             and not outputs.multi_fidelity)
    if config.explore_after == 0 or not plain or index < config.num_initial:
        return False
    # The initial design's rows are not the GP's to improve on: count from its end.
    stalled = min(since_best, index - config.num_initial) - config.explore_after
    return stalled >= 0 and stalled % 2 == 0


class FillLevels(NamedTuple):
    """What an ask decides on, copied to the host: the rows observed and pending, the
    number of observations at the last fit with restarts, and the observations told
    since the best one (see ``rows_since_best``)."""

    observed: int
    pending: int
    restarted_at: int
    since_best: int


@jax.jit
def _fill_level_array(state: BOState) -> jax.Array:
    return jnp.stack([state.observed.mask.sum(), state.pending.mask.sum(),
                      state.restarted_at, rows_since_best(state.observed)]).astype(jnp.int32)


def rows_since_best(observed: Buffer) -> jax.Array:
    """Observations told after the one of lowest first value (the objective, or the first
    of several); all of them while none is finite. The buffer keeps the order told."""
    first = observed.y.reshape(observed.capacity, -1)[:, 0]
    usable = observed.mask & jnp.isfinite(first)
    count = observed.mask.sum()
    best = jnp.argmin(jnp.where(usable, first, jnp.inf))
    return jnp.where(usable.any(), count - 1 - best, count)


def read_fill_levels(state: BOState) -> FillLevels:
    """The state's ``FillLevels``: the one read back to the host, and the one wait for the
    device, of an ask.

    It is inherent: whether the initial design or the GP proposes, whether the fit
    restarts, and the capacity the pending buffer grows to (a static shape) are decided
    on the host. Everything else in the ask stays on the device.
    """
    return FillLevels(*_fill_level_array(state).tolist())


def _add_pending(pending: Buffer, count: int, row: jax.Array) -> Buffer:
    """``base.append`` of ``row`` to ``pending``, whose ``count`` filled slots the caller
    knows, so that nothing is read back from the device."""
    room = grow(compact(pending), capacity_for(count + 1))
    return write_after_filled(room, row[None], jnp.zeros((1,) + pending.y.shape[1:], jnp.float32))


def parego_weights(outputs: Outputs, key: jax.Array) -> jax.Array | None:
    """ParEGO's weights for one ask (shared by its fit and every row), or None with one
    objective. Drawn from a key folded off ``key``, so ``key`` itself stays unused."""
    if outputs.num_objectives == 1:
        return None
    return acq.simplex_weights(jax.random.fold_in(key, 1), outputs.num_objectives)


def update_fit(config: BOConfig, state: BOState, key: jax.Array,
               weights: jax.Array | None = None, levels: FillLevels | None = None) -> BOState:
    """The state with every GP's hyperparameters fitted to its observations.

    A fit with restarts once the data has grown by ``refit_growth`` since the last one.
    In between, small buffers get a cheap refinement, and buffers whose GPs condition on
    more than ``fit_subset`` rows keep their hyperparameters: with hundreds of points one
    more barely moves them, while a single evaluation of the objective costs as much as
    the whole acquisition step. ``weights``: ParEGO's (``parego_weights``), for several
    objectives; ``levels``: the state's ``FillLevels`` when the caller has read them
    already.
    """
    if levels is None:
        levels = read_fill_levels(state)
    restart = levels.observed >= config.refit_growth * levels.restarted_at
    modelled_capacity = min(state.observed.capacity, config.fit.model_rows)
    if not restart and modelled_capacity > config.fit.fit_subset:
        return state
    with jax.enable_x64(True):
        params = fit_kernel(config.fit, config.outputs, state.observed, weights, state.params,
                            key, jnp.asarray(restart))
    restarted_at = jnp.asarray(levels.observed, jnp.int32) if restart else state.restarted_at
    return state._replace(params=params, restarted_at=restarted_at)


def propose(space: Space, config: BOConfig, state: BOState, key: jax.Array,
            weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """The acquisition maximiser given the state's fit, observations and pending rows, and
    whether it is fresh (False: every candidate was already observed or pending)."""
    with jax.enable_x64(True):
        return propose_kernel(space, config.propose, config.outputs, state.params,
                              state.observed, state.pending, weights, key)
