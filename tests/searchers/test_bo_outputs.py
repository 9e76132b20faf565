"""The "bo" searcher with several outputs: constraints, several objectives, cost."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jhpo
from jhpo import acquisition as acq
from jhpo import problems
from jhpo.searchers import make
from jhpo.searchers.base import Buffer
from jhpo.searchers.bo import Outputs, targets

# One layout (an objective, a constraint, the cost) and one set of options for the
# searching tests, so that they share compiled kernels: a constant cost makes the cost
# term constant (cost-blind BO), a constant positive constraint makes everything feasible.
OPTIONS = {"num_initial": 5, "num_screen": 256, "num_starts": 4, "ascent_steps": 15,
           "fit_evaluations": 15, "num_restarts": 6, "num_constraints": 1, "cost_aware": True}
EVALUATIONS = 16
BRANIN = problems.branin_cost()


def run_branin(seed, constraint, cost, **options):
    """(value, constraint, true cost) of each evaluation; the searcher is told
    ``constraint(config)`` and ``cost(true cost)``."""
    searcher = make("bo", BRANIN.space, **{**OPTIONS, **options})
    state, evaluated = searcher.init(jax.random.key(seed)), []
    for i in range(EVALUATIONS):
        row, state, _ = searcher.ask(state, jax.random.key(1000 * seed + i), 1)
        config = BRANIN.space.to_configs(row)[0]
        with jax.enable_x64(True):
            value, true_cost = BRANIN(config), float(BRANIN.cost(config))
        told = [value, constraint(config), cost(true_cost)]
        state = searcher.tell(state, row, jnp.asarray([told], jnp.float32))
        evaluated.append((value, told[1], true_cost))
    return np.asarray(evaluated)


def test_log_probability_of_feasibility_matches_scipy():
    mean = np.array([[0.3, -2.0, -40.0, 5.0], [1.0, 0.0, 0.5, -3.0]])
    variance = np.array([[1.0, 0.25, 1.0, 4.0], [0.5, 2.0, 1.0, 0.01]])
    threshold = np.array([[0.1], [-0.2]])
    with jax.enable_x64(True):
        ours = acq.log_probability_of_feasibility(jnp.asarray(mean), jnp.asarray(variance),
                                                  jnp.asarray(threshold))
    reference = stats.norm.logsf(threshold, loc=mean, scale=np.sqrt(variance)).sum(0)
    np.testing.assert_allclose(np.asarray(ours), reference, rtol=1e-10)
    assert np.all(np.isfinite(np.asarray(ours)))  # even 40 standard deviations infeasible


def test_gradient_of_log_feasibility_is_finite_deep_in_the_infeasible_region():
    grad = jax.grad(lambda m: acq.log_probability_of_feasibility(m, jnp.ones(1), 0.0).sum())
    slope = float(grad(jnp.asarray([-30.0]))[0])
    assert 29.0 < slope < 31.5  # d/dz log Φ(z) ≈ -z for very negative z


def test_parego_scalarisation_matches_a_hand_computation():
    objectives = jnp.asarray([[1.0, 10.0], [3.0, 30.0], [2.0, 0.0], [99.0, 99.0]])
    mask = jnp.asarray([True, True, True, False])
    normalised = acq.normalize_columns(objectives, mask)
    # Column ranges over the masked rows: [1, 3] and [0, 30]; the padded row is untouched.
    np.testing.assert_allclose(np.asarray(normalised),
                               [[0.0, 1 / 3], [1.0, 1.0], [0.5, 0.0], [99.0, 99.0]], rtol=1e-6)
    weights = jnp.asarray([0.25, 0.75])
    scalar = acq.augmented_chebyshev(normalised[:3], weights, rho=0.05)
    by_hand = [max(0.0, 0.25) + 0.05 * 0.25,        # w·f = (0, 0.25)
               max(0.25, 0.75) + 0.05 * 1.0,        # (0.25, 0.75)
               max(0.125, 0.0) + 0.05 * 0.125]      # (0.125, 0)
    np.testing.assert_allclose(np.asarray(scalar), by_hand, rtol=1e-6)


def test_simplex_weights_are_uniform_on_the_simplex():
    keys = jax.random.split(jax.random.key(0), 2000)
    weights = np.asarray(jax.vmap(lambda k: acq.simplex_weights(k, 3))(keys))
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)
    # Uniform on the simplex of three weights, each weight is Beta(1, 2) distributed; any
    # symmetric distribution would give each the mean 1/3, but not this law.
    for column in weights.T:
        assert stats.kstest(column, stats.beta(1, 2).cdf).pvalue > 0.01


def test_targets_impute_failures_per_output_and_take_the_log_of_cost():
    outputs = Outputs(num_objectives=1, num_constraints=1, cost_aware=True)
    observed = Buffer(
        x=jnp.zeros((4, 2)),
        y=jnp.asarray([[1.0, 0.5, 10.0], [np.nan, np.nan, 100.0], [3.0, -2.0, np.nan],
                       [7.0, 7.0, 7.0]]),
        mask=jnp.asarray([True, True, True, False]))
    with jax.enable_x64(True):
        modelled = targets.output_targets(outputs, observed, None)
        feasible = targets.feasible_rows(outputs, observed)
    # Failed entries read as the worst: largest objective, smallest constraint, largest cost.
    np.testing.assert_allclose(np.asarray(modelled)[:3],
                               [[1.0, 0.5, np.log(10.0)], [3.0, -2.0, np.log(100.0)],
                                [3.0, -2.0, np.log(100.0)]], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(feasible), [True, False, False, False])


def test_warp_ranks_the_objective_alone():
    outputs = Outputs(num_objectives=1, num_constraints=1)
    objective = jnp.asarray([5.0, np.nan, 1.0, 1000.0, 7.0])
    constraint = jnp.asarray([0.5, -1.0, 2.0, 0.1, 9.0])
    mask = jnp.asarray([True, True, True, True, False])
    observed = Buffer(x=jnp.zeros((5, 2)), y=jnp.stack([objective, constraint], axis=1), mask=mask)
    with jax.enable_x64(True):
        warped = np.asarray(targets.output_targets(outputs, observed, None, warp=True))
    # Ranks of (5, worst = 1000, 1, 1000) among the four observed: mid-ranks 1, 2.5, 0, 2.5.
    np.testing.assert_allclose(warped[:4, 0], stats.norm.ppf((np.array([1, 2.5, 0, 2.5]) + 0.5) / 4))
    np.testing.assert_allclose(warped[:4, 1], [0.5, -1.0, 2.0, 0.1], rtol=1e-6)


@pytest.mark.parametrize("num_constraints", [0, 2])
def test_map_outputs_is_vmap_over_the_outputs(num_constraints):
    outputs = Outputs(num_constraints=num_constraints)
    columns = jax.random.normal(jax.random.key(0), (6, outputs.modelled))
    scales = jnp.arange(1.0, outputs.modelled + 1.0)

    def scaled_sum(column, scale, shift):
        return {"total": scale * column.sum() + shift, "column": scale * column}

    mapped = targets.map_outputs(scaled_sum, (1, 0, None), outputs)(columns, scales, 3.0)
    reference = jax.vmap(scaled_sum, in_axes=(1, 0, None))(columns, scales, 3.0)
    for key in ("total", "column"):
        assert mapped[key].shape == reference[key].shape
        np.testing.assert_allclose(np.asarray(mapped[key]), np.asarray(reference[key]), rtol=1e-6)


def test_constrained_bo_proposes_mostly_where_it_has_learnt_feasibility():
    # Feasible only where x1 < 0: a third of the box, holding one of Branin's three minima.
    evaluated = run_branin(0, constraint=lambda config: -config["x1"], cost=lambda c: 1.0)
    after_initial = evaluated[OPTIONS["num_initial"]:]
    feasible_share = np.mean(after_initial[:, 1] > 0)
    assert feasible_share >= 0.8, feasible_share  # random search: 1/3
    best_feasible = evaluated[evaluated[:, 1] > 0, 0].min()
    assert BRANIN.regret(best_feasible) < 0.5, best_feasible


def test_feasibility_comes_first_while_nothing_feasible_is_known():
    searcher = make("bo", BRANIN.space, **OPTIONS)
    rows = BRANIN.space.sample(jax.random.key(3), 5)
    configs = BRANIN.space.to_configs(rows)
    # Infeasible everywhere seen, less so towards small x2: the next row should go there.
    told = [[BRANIN(c), -c["x2"] - 1.0, 1.0] for c in configs]
    state = searcher.tell(searcher.init(jax.random.key(0)), rows, jnp.asarray(told, jnp.float32))
    proposed, _, _ = searcher.ask(state, jax.random.key(4), 1)
    x2 = BRANIN.space.to_configs(proposed)[0]["x2"]
    assert x2 < min(c["x2"] for c in configs), x2


def test_cost_aware_bo_reaches_a_target_for_less_cost_than_cost_blind_bo():
    always_feasible = lambda config: 1.0  # noqa: E731
    aware = run_branin(0, always_feasible, cost=lambda c: c)
    blind = run_branin(0, always_feasible, cost=lambda c: 1.0)

    def cost_to_reach(evaluated, regret):
        reached = BRANIN.regret(np.minimum.accumulate(evaluated[:, 0])) < regret
        return np.cumsum(evaluated[:, 2])[np.argmax(reached)] if reached.any() else np.inf

    assert cost_to_reach(aware, 1.0) < 0.5 * cost_to_reach(blind, 1.0)
    assert aware[:, 2].sum() < blind[:, 2].sum()


def test_cost_exponent_acts_as_telling_the_cost_to_that_power():
    # LogEI - 2 E[log c] with c told equals LogEI - E[log c^2] with c^2 told: the
    # log-cost GP models standardised values, which are the same for both.
    always_feasible = lambda config: 1.0  # noqa: E731
    squared_cost = run_branin(1, always_feasible, cost=lambda c: c * c)
    exponent_two = run_branin(1, always_feasible, cost=lambda c: c, cost_exponent=2.0)
    np.testing.assert_allclose(exponent_two[:, 2], squared_cost[:, 2], rtol=1e-3)
    exponent_one = run_branin(1, always_feasible, cost=lambda c: c)
    assert not np.allclose(exponent_one[:, 2], exponent_two[:, 2], rtol=1e-3)


def test_several_objectives_through_tune():
    def objective(config):
        return {"a": config["x"] ** 2, "b": (config["x"] - 1.0) ** 2 + config["y"]}

    space = {"x": jhpo.uniform(0.0, 1.0), "y": jhpo.uniform(0.0, 1.0)}
    result = jhpo.tune(objective, space, searcher="bo", metric=["a", "b"], mode=["min", "min"],
                       num_trials=9, seed=0, progress=False,
                       searcher_options={"num_initial": 4, "num_screen": 256, "num_starts": 4,
                                         "ascent_steps": 15, "fit_evaluations": 15})
    assert len(result.trials) == 9
    # The model-based trials learn that y only hurts: most of them set it to (nearly) 0,
    # where three of five random draws land about one time in a thousand.
    later_y = [t.config["y"] for t in result.trials[4:]]
    assert np.median(later_y) < 0.05, later_y


@pytest.mark.parametrize("options, parameter", [
    ({"num_objectives": 0}, "num_objectives"),
    ({"num_constraints": -1}, "num_constraints"),
    ({"cost_aware": "yes"}, "cost_aware"),
    ({"cost_aware": True, "cost_exponent": 0.0}, "cost_exponent"),
    ({"cost_exponent": 2.0}, "cost_exponent"),
    ({"num_constraints": 1, "acquisition": "ucb"}, "acquisition"),
])
def test_bad_output_options_name_the_parameter(options, parameter):
    with pytest.raises(ValueError, match=parameter):
        make("bo", BRANIN.space, **options)
