"""The synthetic problems attain their stated optimum and never go below it."""

import jax
import numpy as np
import pytest

from jhpo import problems


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
    # Branin's three minimisers, from the literature.
    branin = problems.branin()
    for x1, x2 in [(-np.pi, 12.275), (np.pi, 2.275), (9.42478, 2.475)]:
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
