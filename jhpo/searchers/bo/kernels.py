"""The compiled programs of the ``bo`` searcher: fitting its GPs and proposing a row.

One program serves every layout of outputs; a single objective is the case of one
modelled output. The kernels are jitted with the space and the static option records as
static arguments, so each compiles once per pair of buffer capacities (powers of two),
never once per trial. Call them inside ``jax.enable_x64(True)``: they cast the float32
buffers up, work in float64, and cast their results back down.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jhpo import acquisition as acq
from jhpo import gp
from jhpo.searchers.base import Buffer
from jhpo.searchers.bo.options import FitConfig, Outputs, ProposeConfig
from jhpo.searchers.bo.targets import (feasible_rows, map_outputs, model_inputs,
                                       observed_inputs, standardised_targets)
from jhpo.space import Space

# Random rows tried, in order, when an initial Halton row is already taken
# (possible in small discrete spaces).
INITIAL_FALLBACK_ROWS = 256

# Buffers up to this capacity screen ``num_screen`` random rows; larger ones screen fewer.
FULL_SCREEN_CAPACITY = 128


@functools.partial(jax.jit, static_argnums=(0, 1), compiler_options=gp.COMPILER_OPTIONS)
def fit_kernel(config: FitConfig, outputs: Outputs, observed: Buffer, weights: jax.Array | None,
               warm: gp.GPParams, key: jax.Array, restart: jax.Array) -> gp.GPParams:
    """Every modelled output's hyperparameters (float32, a leading axis of outputs), fitted
    in one ``vmap`` over their GPs (see ``map_outputs``), each from its own ``warm`` start.

    For buffers of up to ``fit_subset`` rows, a fit with restarts or a refinement of the
    previous fit, chosen by the traced flag ``restart`` so that each buffer capacity
    compiles exactly one fit program. Larger buffers always restart: the restarts see a
    random subset of ``fit_subset`` rows and their winner is refined on all rows.
    """
    targets, _, _ = standardised_targets(outputs, observed, weights, config.warp)
    x = observed_inputs(outputs, observed)

    def fit_one(y, warm_one):
        return _fit_output(config, x, y, observed.mask, warm_one, key, restart)

    return map_outputs(fit_one, (1, 0), outputs)(targets, warm)


def _fit_output(config: FitConfig, x, y, mask, warm: gp.GPParams, key,
                restart: jax.Array) -> gp.GPParams:
    """One GP's fit to standardised targets ``y``; see ``fit_kernel``."""
    warm = jax.tree.map(lambda p: p.astype(jnp.float64), warm)
    subset_key, restart_key = jax.random.split(key)
    if x.shape[0] <= config.fit_subset:  # static: shapes are known at trace time
        # One batch of chains either way (the first from the previous fit), so the
        # objective is compiled once; a refinement just runs fewer evaluations.
        evaluations = jnp.where(restart, config.fit_evaluations, config.refine_evaluations)
        params, _ = gp.fit(restart_key, x, y, mask, warm, num_restarts=config.num_restarts,
                           num_evaluations=evaluations)
    else:  # only called to restart
        subset = gp.random_subset(subset_key, x, y, mask, config.fit_subset)
        start, _ = gp.fit(restart_key, *subset, warm, num_restarts=config.num_restarts,
                          num_evaluations=config.fit_evaluations)
        params, _ = gp.refine(x, y, mask, start, num_evaluations=config.refine_evaluations)
    return jax.tree.map(lambda p: p.astype(jnp.float32), params)


@functools.partial(jax.jit, static_argnums=(0, 1, 2), compiler_options=gp.COMPILER_OPTIONS)
def propose_kernel(space: Space, config: ProposeConfig, outputs: Outputs, params: gp.GPParams,
                   observed: Buffer, pending: Buffer, weights: jax.Array | None,
                   key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The best row of ``space`` neither observed nor pending, and whether one was found.

    The acquisition is LogEI (or UCB) of the objective's GP, plus the log probability of
    feasibility under the constraints' GPs, minus ``cost_exponent`` times the expected log
    cost, all at fidelity 1. Pending rows join the objective's data with the worst
    observed value (a constant liar); the other GPs see only what was observed.
    """
    targets, offsets, scales = standardised_targets(outputs, observed, weights, config.warp)
    objective = targets[:, 0]
    lie = jnp.max(jnp.where(observed.mask, objective, -jnp.inf))
    x_all = jnp.concatenate([observed.x, pending.x]).astype(jnp.float64)
    mask_all = jnp.concatenate([observed.mask, pending.mask])
    # Pending trials will be trained in full, so their lie stands at fidelity 1.
    x_model = jnp.concatenate([observed_inputs(outputs, observed),
                               model_inputs(outputs, pending.x, 1.0)])
    pending_values = jnp.zeros((pending.capacity, outputs.modelled)).at[:, 0].set(lie)
    y_all = jnp.concatenate([targets, pending_values])
    pending_in_model = jnp.arange(outputs.modelled)[:, None] == 0
    masks = jnp.concatenate([jnp.broadcast_to(observed.mask, (outputs.modelled, observed.capacity)),
                             pending.mask[None, :] & pending_in_model], axis=1)
    params64 = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    posteriors = map_outputs(gp.posterior, (0, None, 1, 0), outputs)(params64, x_model, y_all,
                                                                     masks)

    def predict_full(rows):
        return map_outputs(gp.predict, (0, None), outputs)(posteriors,
                                                           model_inputs(outputs, rows, 1.0))

    feasible = feasible_rows(outputs, observed)
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
            # While nothing feasible is known, feasibility alone steers the search.
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


def screen_effort(config: acq.MaximizeConfig, capacity: int) -> acq.MaximizeConfig:
    """``config`` with the random rows screened shrunk in proportion to the capacity
    beyond ``FULL_SCREEN_CAPACITY`` (a static shape, so still one program per capacity),
    never below ``num_starts``.

    Screening costs rows x capacity² and dominated large asks. With hundreds of
    observations the model is sharp where the search has been, and the rows screened
    around the incumbent (``num_local``, kept whole) carry most late proposals.
    """
    if capacity <= FULL_SCREEN_CAPACITY:
        return config
    rows = max(config.num_screen * FULL_SCREEN_CAPACITY // capacity, config.num_starts)
    return config._replace(num_screen=rows)


def _maximize_over_space(space: Space, score, key, x_all, mask_all, config: ProposeConfig,
                         observed: Buffer, rank: jax.Array):
    """The best valid row of ``space`` for ``score`` (float64 inside, float32 out), never
    one of the rows in ``x_all`` under ``mask_all``; ``found`` is False when none is left.
    Rows are also screened around the observed row of lowest ``rank`` (the incumbent; see
    ``acq.maximize``), and fewer random rows in large buffers (``screen_effort``)."""
    best_row = observed.x[jnp.argmin(jnp.where(observed.mask, rank, jnp.inf))][None]
    maximize_config = screen_effort(config.maximize, observed.capacity)
    neighbours = space.lattice_neighbours(best_row)[0]

    def sample(sample_key, num):
        # The incumbent's lattice neighbours are screened too: a perturbation smaller
        # than half a bin rounds back to the incumbent's integers, so without them a
        # step of one on a wide integer range is rarely tried.
        return jnp.concatenate([space.sample(sample_key, num), neighbours]).astype(jnp.float64)

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


@functools.partial(jax.jit, static_argnums=0, compiler_options=gp.COMPILER_OPTIONS)
def first_untaken(space: Space, row: jax.Array, observed: Buffer, pending: Buffer,
                  key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``row`` unless it is observed or pending, else the first of ``INITIAL_FALLBACK_ROWS``
    random rows that is not; and whether one was found (else ``row`` is returned, taken)."""
    candidates = jnp.concatenate([row[None], space.sample(key, INITIAL_FALLBACK_ROWS)])
    taken = (acq.rows_in(candidates, observed.x, observed.mask)
             | acq.rows_in(candidates, pending.x, pending.mask))
    return candidates[jnp.argmax(~taken)], (~taken).any()
