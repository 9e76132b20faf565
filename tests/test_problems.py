"""The synthetic problems attain their stated optimum and never go below it."""

import math

import jax
import numpy as np
import pytest
from scipy.optimize import brentq

from jhpo import problems

# Branin's three minimisers, from the literature.
BRANIN_MINIMISERS = [(-math.pi, 12.275), (math.pi, 2.275), (3 * math.pi, 2.475)]


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("name", sorted(problems.PROBLEMS))
def test_argmin_attains_the_optimum(name):
    problem = problems.get(name)
    assert problem(problem.argmin) == pytest.approx(problem.optimum, abs=1e-5)


@pytest.mark.parametrize("name", sorted(problems.PROBLEMS))
def test_random_configurations_are_never_better_than_the_optimum(name):
    problem = problems.get(name)
    rows = problem.space.sample(jax.random.key(0), 200)
    values = [problem(config) for config in problem.space.to_configs(rows)]
    assert min(values) >= problem.optimum - 1e-9
    assert min(values) > problem.optimum + 1e-3  # random search does not hit it by luck


def test_vectorised_evaluation_matches_one_at_a_time():
    problem = problems.hartmann6()
    rows = problem.space.sample(jax.random.key(1), 5)
    configs = problem.space.to_configs(rows)
    batch = {name: np.array([c[name] for c in configs]) for name in problem.space.names}
    np.testing.assert_allclose(problem.fn(batch), [problem(c) for c in configs], rtol=1e-12)


def test_known_values():
    branin = problems.branin()
    for x1, x2 in BRANIN_MINIMISERS:
        assert branin({"x1": x1, "x2": x2}) == pytest.approx(0.397887, abs=1e-5)
    ackley = problems.ackley5()
    assert ackley({f"x{i}": 0.0 for i in range(5)}) > 5  # the centre is far from the optimum


def test_mixed_problem_prefers_its_best_category_and_integer():
    problem = problems.mixed()
    best = problem.argmin
    assert problem({**best, "activation": "gelu"}) > problem(best)
    assert problem({**best, "layers": 12}) > problem(best)


def test_unknown_problem_names_the_choices():
    with pytest.raises(ValueError, match="branin"):
        problems.get("sphere")


@pytest.mark.parametrize("name", ["branin_disc", "gardner"])
def test_constrained_optimum_is_feasible_and_no_feasible_grid_point_beats_it(name):
    problem = problems.get(name)
    assert problem.is_feasible(problem.argmin)
    axes = [np.linspace(d.lo, d.hi, 301) for d in problem.space.domains.values()]
    grid = dict(zip(problem.space.names, np.meshgrid(*axes)))
    values = np.asarray(problem.fn(grid))
    feasible = np.all(np.asarray(problem.constraints(grid)) > 0, axis=-1)
    assert values[feasible].min() >= problem.optimum - 1e-9
    assert values[feasible].min() < problem.optimum + 1e-2
    assert 0.05 < feasible.mean() < 0.95  # the constraint cuts the box


def test_branin_disc_cuts_off_two_of_the_three_minimisers():
    problem = problems.branin_disc()
    assert [problem.is_feasible({"x1": a, "x2": b})
            for a, b in BRANIN_MINIMISERS] == [False, True, False]


def test_branin_costly_minima_costs_most_at_every_minimiser():
    problem = problems.branin_costly_minima()
    for x1, x2 in BRANIN_MINIMISERS:
        assert float(problem.cost({"x1": x1, "x2": x2})) == pytest.approx(100.0)
    assert float(problem.cost({"x1": -5.0, "x2": 0.0})) < 1.1
    # Halfway between two minimisers the cost is far below the peak.
    assert float(problem.cost({"x1": 0.0, "x2": 7.3})) < 10.0


def test_branin_cost_varies_a_hundredfold():
    problem = problems.branin_cost()
    assert float(problem.cost({"x1": -5.0, "x2": 0.0})) == pytest.approx(1.0)
    assert float(problem.cost({"x1": 10.0, "x2": 0.0})) == pytest.approx(100.0)
    assert problem(problem.argmin) == pytest.approx(problem.optimum, abs=1e-5)


@pytest.mark.parametrize("name, front", [
    ("zdt1", lambda f1: 1 - np.sqrt(f1)),
    ("zdt2", lambda f1: 1 - f1**2),
])
def test_zdt_front_where_the_tail_is_zero(name, front):
    problem = problems.get(name)
    f1 = np.linspace(0, 1, 7)
    config = {n: (f1 if n == "x0" else np.zeros_like(f1)) for n in problem.space.names}
    values = np.asarray(problem.fn(config))
    np.testing.assert_allclose(values, np.stack([f1, front(f1)], axis=-1), atol=1e-12)
    # Moving any tail coordinate off zero makes the second objective worse.
    config["x3"] = np.full_like(f1, 0.5)
    assert np.all(np.asarray(problem.fn(config))[:, 1] > front(f1))


def test_branin_currin_known_values():
    problem = problems.branin_currin()
    # Branin's minimiser (pi, 2.275) rescaled to the unit box; Currin by hand there.
    u1, u2 = (math.pi + 5) / 15, 2.275 / 15
    currin = ((1 - math.exp(-1 / (2 * u2))) * (2300 * u1**3 + 1900 * u1**2 + 2092 * u1 + 60)
              / (100 * u1**3 + 500 * u1**2 + 4 * u1 + 20))
    np.testing.assert_allclose(problem({"x1": u1, "x2": u2}), [0.397887, currin], rtol=1e-5)
    assert np.all(np.isfinite(problem({"x1": 0.5, "x2": 0.0})))  # the u2 -> 0 limit


def test_michalewicz_minimum_is_the_sum_of_each_coordinates_grid_minimum():
    # The function is a sum of one term per coordinate: brute force each term on a fine grid.
    problem = problems.michalewicz5()
    grid = np.linspace(0.0, np.pi, 400_001)
    total = 0.0
    for i, name in enumerate(problem.space.names):
        config = {n: (grid if n == name else np.full_like(grid, 1e-9)) for n in problem.space.names}
        # A coordinate near 0 adds sin(0) = 0, so only `name`'s term remains.
        term = np.asarray(problem.fn(config))
        assert abs(grid[np.argmin(term)] - problem.argmin[name]) < 1e-4, name
        total += term.min()
    assert total == pytest.approx(problem.optimum, abs=1e-8)


def test_schwefel_constant_is_the_peak_it_cancels():
    # With every coordinate equal to x, f = 4 (constant - x sin(sqrt|x|)): brute force over x.
    problem = problems.schwefel4()
    x = np.linspace(-500.0, 500.0, 2_000_001)
    values = np.asarray(problem.fn({n: x for n in problem.space.names}))
    assert values.min() >= -1e-9
    assert values.min() < 1e-6
    assert abs(x[np.argmin(values)] - problem.argmin["x0"]) < 1e-3
    # The second-best basin, at the other end of the box, is far worse.
    assert values[x < 0].min() > 100.0


def _rastrigin_term_local_minimum():
    # Where 2 z + 20 pi sin(2 pi z) = 0 next to z = 1, the value of z^2 - 10 cos(2 pi z) + 10.
    z = brentq(lambda z: 2 * z + 20 * math.pi * math.sin(2 * math.pi * z), 0.9, 1.0)
    return z**2 - 10 * math.cos(2 * math.pi * z) + 10


@pytest.mark.parametrize("name, step, local_value", [
    ("rastrigin4", 1.0, _rastrigin_term_local_minimum()),
    # After one period of cos(z) Griewank's bowl term alone remains, about (2 pi)^2 / 4000.
    ("griewank6", 2 * math.pi, (2 * math.pi) ** 2 / 4000),
])
def test_local_minima_next_to_the_global_one(name, step, local_value):
    problem = problems.get(name)
    near = dict(problem.argmin)
    values = []
    for offset in np.linspace(step - 0.2, step + 0.2, 4001):
        near["x0"] = problem.argmin["x0"] + offset
        values.append(problem(near))
    assert 0 < int(np.argmin(values)) < len(values) - 1  # a minimum strictly inside
    assert min(values) == pytest.approx(local_value, rel=2e-3)
    assert min(values) > problem.optimum + 1e-3


# The textbook formulas, written here in numpy apart from jhpo's: Rastrigin and Griewank
# about their (moved) minimiser, Schwefel with the literature's 418.9829 per coordinate.
def _rastrigin_reference(x, centre):
    z = x - centre
    return np.sum(z**2 - 10 * np.cos(2 * np.pi * z) + 10, axis=-1)


def _schwefel_reference(x, _):
    return 418.9829 * x.shape[-1] - np.sum(x * np.sin(np.sqrt(np.abs(x))), axis=-1)


def _michalewicz_reference(x, _):
    i = np.arange(1, x.shape[-1] + 1)
    return -np.sum(np.sin(x) * np.sin(i * x**2 / np.pi) ** 20, axis=-1)


def _griewank_reference(x, centre):
    z = x - centre
    i = np.arange(1, x.shape[-1] + 1)
    return 1 + np.sum(z**2, axis=-1) / 4000 - np.prod(np.cos(z / np.sqrt(i)), axis=-1)


@pytest.mark.parametrize("name, reference", [
    ("rastrigin4", _rastrigin_reference),
    ("schwefel4", _schwefel_reference),
    ("michalewicz5", _michalewicz_reference),
    ("griewank6", _griewank_reference),
])
def test_multimodal_problems_match_their_textbook_formulas(name, reference):
    problem = problems.get(name)
    names = problem.space.names
    centre = np.array([problem.argmin[n] for n in names])
    rows = problem.space.sample(jax.random.key(3), 6)
    configs = problem.space.to_configs(rows) + [problem.argmin]
    x = np.array([[c[n] for n in names] for c in configs], float)
    expected = reference(x, centre)
    values = np.array([problem(c) for c in configs])
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-4)
    assert expected[-1] == pytest.approx(problem.optimum, abs=1e-4)  # the stated minimum
