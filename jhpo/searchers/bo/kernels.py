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
                                       modelled_rows, observed_inputs, standardised_targets,
                                       told_columns)
from jhpo.searchers.bo.trend import fit_separable_quadratic, trend_minimiser
from jhpo.searchers.bo.trust import RegionBox, TrustRegionConfig, region_box
from jhpo.space import Space

# Random rows tried, in order, when an initial Halton row is already taken
# (possible in small discrete spaces).
INITIAL_FALLBACK_ROWS = 256

# Buffers up to this capacity screen ``num_screen`` random rows; larger ones screen fewer.
FULL_SCREEN_CAPACITY = 128

# Folded into a kernel's key to draw the random part of ``modelled_rows``, apart from
# the streams the fit and the acquisition's maximisation draw from.
MODEL_ROWS_STREAM = 7


@functools.partial(jax.jit, static_argnums=(0, 1), compiler_options=gp.COMPILER_OPTIONS)
def fit_kernel(config: FitConfig, outputs: Outputs, observed: Buffer, weights: jax.Array | None,
               warm: gp.GPParams, key: jax.Array, restart: jax.Array) -> gp.GPParams:
    """Every modelled output's hyperparameters (float32, a leading axis of outputs), fitted
    in one ``vmap`` over their GPs (see ``map_outputs``), each from its own ``warm`` start.

    The GPs are fitted to the rows the proposals condition on (``modelled_rows``: every
    row while the capacity is at most ``model_rows``). Up to ``fit_subset`` of them, a fit
    with restarts or a refinement of the previous fit, chosen by the traced flag
    ``restart`` so that each buffer capacity compiles exactly one fit program. More always
    restart: the restarts see a random subset of ``fit_subset`` of all the observations,
    and their winner is refined on the modelled rows.
    """
    targets, _, _ = standardised_targets(outputs, observed, weights, config.warp)
    x = observed_inputs(outputs, observed)
    model_x, model_targets, model_mask = modelled_rows(
        config.model_rows, x, targets, observed.mask, jax.random.fold_in(key, MODEL_ROWS_STREAM))

    def fit_one(y, model_y, warm_one):
        return _fit_output(config, (x, y, observed.mask), (model_x, model_y, model_mask),
                           warm_one, key, restart)

    return map_outputs(fit_one, (1, 1, 0), outputs)(targets, model_targets, warm)


def _fit_output(config: FitConfig, data, model_data, warm: gp.GPParams, key,
                restart: jax.Array) -> gp.GPParams:
    """One GP's fit to standardised targets: ``data`` is every observation ``(x, y, mask)``,
    ``model_data`` those the proposals condition on; see ``fit_kernel``."""
    warm = jax.tree.map(lambda p: p.astype(jnp.float64), warm)
    subset_key, restart_key = jax.random.split(key)
    if model_data[0].shape[0] <= config.fit_subset:  # static: shapes are known at trace time
        # One batch of chains either way (the first from the previous fit), so the
        # objective is compiled once; a refinement just runs fewer evaluations.
        evaluations = jnp.where(restart, config.fit_evaluations, config.refine_evaluations)
        params, _ = gp.fit(restart_key, *model_data, warm, num_restarts=config.num_restarts,
                           num_evaluations=evaluations)
    else:  # only called to restart
        subset = gp.random_subset(subset_key, *data, config.fit_subset)
        start, _ = gp.fit(restart_key, *subset, warm, num_restarts=config.num_restarts,
                          num_evaluations=config.fit_evaluations)
        params, _ = gp.refine(*model_data, start, num_evaluations=config.refine_evaluations)
    return jax.tree.map(lambda p: p.astype(jnp.float32), params)


@functools.partial(jax.jit, static_argnums=(0, 1, 2), compiler_options=gp.COMPILER_OPTIONS)
def propose_kernel(space: Space, config: ProposeConfig, outputs: Outputs, params: gp.GPParams,
                   observed: Buffer, pending: Buffer, weights: jax.Array | None,
                   key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The best row of ``space`` neither observed nor pending, and whether one was found.

    The acquisition is LogEI (or UCB) of the objective's GP, plus the log probability of
    feasibility under the constraints' GPs, minus ``cost_exponent`` times the expected log
    cost, all at fidelity 1. Pending rows join the objective's data with the values
    ``config.liar`` gives them (``pending_lies``); the other GPs see only what was
    observed.
    """
    targets, offsets, scales = standardised_targets(outputs, observed, weights, config.warp)
    objective = targets[:, 0]
    params64 = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    x_all = jnp.concatenate([observed.x, pending.x]).astype(jnp.float64)
    mask_all = jnp.concatenate([observed.mask, pending.mask])
    # Large buffers condition on a subset of the observations; pending rows always enter.
    model_x, model_targets, model_mask = modelled_rows(
        config.model_rows, observed_inputs(outputs, observed), targets, observed.mask,
        jax.random.fold_in(key, MODEL_ROWS_STREAM))
    # Pending trials will be trained in full, so their lie stands at fidelity 1.
    x_pending = model_inputs(outputs, pending.x, 1.0)
    lie = pending_lies(config.liar, jax.tree.map(lambda p: p[0], params64), model_x,
                       model_targets[:, 0], model_mask, x_pending)
    x_model = jnp.concatenate([model_x, x_pending])
    pending_values = jnp.zeros((pending.capacity, outputs.modelled)).at[:, 0].set(lie)
    y_all = jnp.concatenate([model_targets, pending_values])
    pending_in_model = jnp.arange(outputs.modelled)[:, None] == 0
    masks = jnp.concatenate([jnp.broadcast_to(model_mask, (outputs.modelled, model_mask.shape[0])),
                             pending.mask[None, :] & pending_in_model], axis=1)
    posteriors = map_outputs(gp.posterior, (0, None, 1, 0), outputs)(params64, x_model, y_all,
                                                                     masks)

    def predict_full(rows):
        return map_outputs(gp.predict, (0, None), outputs)(posteriors,
                                                           model_inputs(outputs, rows, 1.0))

    feasible = feasible_rows(outputs, observed)
    any_feasible = feasible.any()
    # With several fidelities the observed values are not comparable at fidelity 1;
    # the model's prediction there is. Where the fit gives the objective noise (a rugged
    # landscape read as a smooth trend), LogEI measured against the lowest observation,
    # which lies below the trend, sees improvement only where the model is unsure and
    # explores at random; against the lowest mean it follows the trend.
    reference = predict_full(observed.x)[0][0] if outputs.multi_fidelity else objective
    smoothed = reference
    if config.incumbent == "mean" and not outputs.multi_fidelity:
        # The posterior's first rows are the observed ones only while it is exact.
        exact = observed.capacity <= config.model_rows
        smoothed = (_means_at_observed(params64, posteriors, objective) if exact
                    else predict_full(observed.x)[0][0])
    incumbent = jnp.where(any_feasible, jnp.min(jnp.where(feasible, smoothed, jnp.inf)), 0.0)
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
    box = None
    if config.trust_region is not None:
        told = told_columns(observed)[:, 0]
        boxed = jnp.asarray([c.kind != "onehot" for c in space.columns
                             for _ in range(c.width)])
        box = region_box(config.trust_region, observed.x.astype(jnp.float64), told,
                         observed.mask, params64.log_lengthscale[0][:space.dim], boxed)
    row, found = _maximize_over_space(space, score, key, x_all, mask_all, config, observed,
                                      centre_scores, box)
    if box is None:
        return row, found
    trend_row, use_trend = _trend_proposal(space, config.trust_region, observed, told, boxed,
                                           box, x_all, mask_all)
    return jnp.where(use_trend, trend_row, row), found | use_trend


def _trend_proposal(space: Space, region: TrustRegionConfig, observed: Buffer, told: jax.Array,
                    boxed: jax.Array, box: RegionBox, x_all: jax.Array, mask_all: jax.Array):
    """The trend row (``trend.trend_minimiser`` of a separable quadratic fitted to every
    finite value of ``told``, on the columns the box applies to, ``boxed``, clipped to the
    box) and whether to propose it: when the fit's adjusted R^2 reaches
    ``region.trend_fit``, on every ``region.trend_period``-th row (the rows observed and
    pending counted), and when it is neither observed nor pending."""
    x = observed.x.astype(jnp.float64)
    weights = (observed.mask & jnp.isfinite(told)).astype(jnp.float64)
    fit = fit_separable_quadratic(x, told, weights, boxed)
    best = x[jnp.argmin(jnp.where(weights > 0, told, jnp.inf))]
    raw = trend_minimiser(fit, best, box.low, box.high)
    row = space.canonicalize(raw[None].astype(jnp.float32))[0]
    index = observed.mask.sum() + mask_all[observed.capacity:].sum()
    taken = acq.rows_in(row[None].astype(jnp.float64), x_all, mask_all)[0]
    use = (fit.adjusted_r2 >= region.trend_fit) & (index % region.trend_period == 0) & ~taken
    return row, use


def _means_at_observed(params: gp.GPParams, posteriors: gp.Posterior,
                       objective: jax.Array) -> jax.Array:
    """The objective GP's posterior mean at the observed rows, in O(n): where (K + s I) a = y - m
    on the training rows, the mean there is m + K a = y - s a (s the noise variance)."""
    alpha = posteriors.alpha[0, :objective.shape[0]]
    return objective - jnp.exp(params.log_noise[0]) * alpha


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
                         observed: Buffer, rank: jax.Array, box: RegionBox | None = None):
    """The best valid row of ``space`` for ``score`` (float64 inside, float32 out), never
    one of the rows in ``x_all`` under ``mask_all``; ``found`` is False when none is left.
    Rows are also screened around the observed row of lowest ``rank`` (the incumbent; see
    ``acq.maximize``), and fewer random rows in large buffers (``screen_effort``). With a
    trust region's ``box``, the random and local rows and the ascent stay inside it, and
    the local rows are centred on the region's best row."""
    best_row = observed.x[jnp.argmin(jnp.where(observed.mask, rank, jnp.inf))][None]
    bounds = (0.0, 1.0)
    if box is not None:
        best_row = jnp.where(box.open, box.centre.astype(best_row.dtype), best_row)
        bounds = (box.low, box.high)
    maximize_config = screen_effort(config.maximize, min(observed.capacity, config.model_rows))
    neighbours = space.lattice_neighbours(best_row)[0]

    def sample(sample_key, num):
        # The incumbent's lattice neighbours are screened too: a perturbation smaller
        # than half a bin rounds back to the incumbent's integers, so without them a
        # step of one on a wide integer range is rarely tried.
        if box is None:
            drawn = space.sample(sample_key, num)
        else:
            unit = jax.random.uniform(sample_key, (num, space.dim), jnp.float64)
            drawn = space.canonicalize((box.low + unit * (box.high - box.low)).astype(jnp.float32))
        return jnp.concatenate([drawn, neighbours]).astype(jnp.float64)

    def canonicalize(rows):
        return space.canonicalize(rows.astype(jnp.float32)).astype(rows.dtype)

    def column_mask(rows):
        return space.column_mask(rows.astype(jnp.float32))

    row, _, found = acq.maximize(
        score, key, sample, x_all, mask_all,
        canonicalize=canonicalize, column_mask=column_mask, config=maximize_config,
        centres=best_row.astype(jnp.float64), bounds=bounds,
    )
    if box is not None:
        # On a lattice the box can hold only taken rows (a small integer space searched
        # around its incumbent): the whole cube has the untaken ones.
        row, found = jax.lax.cond(
            found, lambda: (row, found),
            lambda: best_untaken(space, score, jax.random.fold_in(key, 1), x_all, mask_all))
    return row.astype(jnp.float32), found


def best_untaken(space: Space, score, key: jax.Array, x_all: jax.Array,
                 mask_all: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The best-scoring of ``INITIAL_FALLBACK_ROWS`` random rows of the whole space that is
    not among ``x_all`` under ``mask_all``, and whether there was one."""
    candidates = space.sample(key, INITIAL_FALLBACK_ROWS).astype(jnp.float64)
    taken = acq.rows_in(candidates, x_all, mask_all)
    scores = jnp.where(taken, -jnp.inf, score(candidates))
    return candidates[jnp.argmax(scores)], (~taken).any()


def pending_lies(liar: str, params: gp.GPParams, x_observed: jax.Array, objective: jax.Array,
                 mask: jax.Array, x_pending: jax.Array) -> jax.Array:
    """The values pending rows stand in with in the objective's GP (``params``).

    "believer": the GP's mean at each pending row given what was observed, so the mean
    surface stays as it is and only the variance at pending rows shrinks; otherwise one
    constant for all (``constant_lie``).
    """
    if liar == "believer":
        believed = gp.posterior(params, x_observed, objective, mask)
        return gp.predict(believed, x_pending)[0]
    return jnp.broadcast_to(constant_lie(liar, objective, mask), x_pending.shape[:1])


def constant_lie(liar: str, objective: jax.Array, mask: jax.Array) -> jax.Array:
    """The value a pending row stands in with: the mean, worst (largest) or best
    (smallest) of the observed (minimised) ``objective`` values."""
    if liar == "mean":
        return jnp.sum(jnp.where(mask, objective, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
    if liar == "worst":
        return jnp.max(jnp.where(mask, objective, -jnp.inf))
    if liar == "best":
        return jnp.min(jnp.where(mask, objective, jnp.inf))
    raise ValueError(f"liar={liar!r} must be resolved to 'believer', 'best', 'mean' or 'worst' "
                     "before proposing (see options.config_for_ask)")


@functools.partial(jax.jit, static_argnums=0, compiler_options=gp.COMPILER_OPTIONS)
def first_untaken(space: Space, row: jax.Array, observed: Buffer, pending: Buffer,
                  key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``row`` unless it is observed or pending, else the first of ``INITIAL_FALLBACK_ROWS``
    random rows that is not; and whether one was found (else ``row`` is returned, taken)."""
    candidates = jnp.concatenate([row[None], space.sample(key, INITIAL_FALLBACK_ROWS)])
    taken = (acq.rows_in(candidates, observed.x, observed.mask)
             | acq.rows_in(candidates, pending.x, pending.mask))
    return candidates[jnp.argmax(~taken)], (~taken).any()
