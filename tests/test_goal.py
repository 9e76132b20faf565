import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo.goal import Goal
from jhpo.runs.directory import load_run

SPACE = {"x": jhpo.uniform(0.0, 1.0), "y": jhpo.uniform(0.0, 1.0)}


def two_objectives(config):
    x, y = config["x"], config["y"]
    return {"error": x, "latency": 1.0 - x * x + 0.5 * y, "memory_margin": 0.7 - y}


def brute_force_front(points):
    return [i for i, p in enumerate(points)
            if not any(np.all(q <= p) and np.any(q < p) for q in points)]


def test_pareto_front_is_the_non_dominated_set(tmp_path):
    result = jhpo.tune(two_objectives, SPACE, metric=["error", "latency"], mode=["min", "min"],
                       num_trials=40, seed=0, run_dir=tmp_path, progress=False)
    points = np.array([t.value for t in result.trials])
    expected = brute_force_front(points)
    assert [t.trial_id for t in result.pareto_front()] == [result.trials[i].trial_id for i in expected]
    with pytest.raises(ValueError, match="pareto_front"):
        _ = result.best
    reloaded = load_run(tmp_path)
    assert [t.trial_id for t in reloaded.pareto_front()] == [t.trial_id for t in result.pareto_front()]
    assert reloaded.meta["metric"] == ["error", "latency"]


def test_maximised_objectives_are_flipped_for_dominance():
    def objective(config):
        return {"accuracy": -config["x"], "latency": config["y"]}

    result = jhpo.tune(objective, SPACE, metric=["accuracy", "latency"], mode=["max", "min"],
                       num_trials=30, seed=1, progress=False)
    signed = np.array([[-t.value[0], t.value[1]] for t in result.trials])
    front = {result.trials[i].trial_id for i in brute_force_front(signed)}
    assert {t.trial_id for t in result.pareto_front()} == front


def test_infeasible_trials_never_become_the_best():
    def objective(config):  # the smallest errors break the constraint
        return {"error": config["x"], "margin": config["x"] - 0.3}

    result = jhpo.tune(objective, SPACE, metric="error", constraints=["margin"], num_trials=40,
                       seed=2, progress=False)
    infeasible = [t for t in result.trials if t.metrics["margin"] <= 0]
    feasible = [t for t in result.trials if t.metrics["margin"] > 0]
    assert infeasible and feasible
    assert all(t.feasible is False for t in infeasible) and all(t.feasible is True for t in feasible)
    assert result.best.trial_id == min(feasible, key=lambda t: t.value).trial_id
    # the best trial ignoring the constraint is infeasible: a best that ignored it would differ
    assert min(result.trials, key=lambda t: t.value).feasible is False


def test_nothing_feasible_means_no_best():
    def never_feasible(config):
        return {"error": config["x"], "margin": -1.0}

    result = jhpo.tune(never_feasible, SPACE, metric="error", constraints=["margin"],
                       num_trials=5, progress=False)
    assert result.best is None and len(result.completed) == 5


def test_searcher_is_told_signed_objectives_then_constraints():
    optimizer = jhpo.Optimizer(SPACE, mode=["min", "max"], num_constraints=1)
    configs = optimizer.ask(2)
    optimizer.tell(configs, [[1.0, 2.0], None], constraints=[[0.5], None])
    observed = optimizer.state.observed
    told = np.asarray(observed.y[np.asarray(observed.mask)])
    np.testing.assert_array_equal(told[0], [1.0, -2.0, 0.5])
    assert np.isnan(told[1]).all()


@pytest.mark.parametrize("kwargs,pattern", [
    ({"metric": ["a", "b"], "mode": ["min"]}, "one entry per metric"),
    ({"metric": ["a", "a"]}, "twice"),
    ({"metric": ["a", None]}, "metric names"),
    ({"metric": "a", "constraints": ["a"]}, "repeat an objective"),
    ({"metric": ["a", "b"], "mode": ["min", "up"]}, "mode='up'"),
])
def test_bad_goals_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Goal.from_arguments(**kwargs)


def test_several_objectives_need_a_searcher_that_takes_them(monkeypatch):
    monkeypatch.setattr(jhpo.searchers, "_MULTI_OUTPUT", {"random"})
    with pytest.raises(ValueError, match="searcher='quasirandom' takes one objective"):
        jhpo.tune(two_objectives, SPACE, metric=["error", "latency"], searcher="quasirandom",
                  num_trials=2)


# ----------------------------------------------------------------------------- metric values

NOT_REAL_NUMBERS = [
    ("1.5", "str '1.5'"),
    (True, "bool True"),
    (np.bool_(True), "numpy.bool"),
    (1 + 2j, "complex (1+2j)"),
    (np.complex64(1.0), "dtype complex64"),
    (None, "NoneType None"),
    ([0.3], "list [0.3]"),
    (np.array([0.3, 0.4]), "shape (2,)"),
    (jnp.array(False), "jax.Array of dtype bool"),
]


@pytest.mark.parametrize("value,described", NOT_REAL_NUMBERS)
def test_a_metric_that_is_not_a_real_number_is_refused(value, described):
    with pytest.raises(TypeError, match="metric 'val' must be a real number") as raised:
        Goal.from_arguments("val").read({"val": value})
    assert described in str(raised.value)


def test_the_trial_fails_and_says_what_was_returned():
    answers = iter([{"val": "0.3"}, {"val": 0.25}, "1.5", {"val": True}])

    def objective(config):
        answer = next(answers)
        return answer if isinstance(answer, str) else {**answer, "unused": "text is fine here"}

    result = jhpo.tune(objective, SPACE, metric="val", num_trials=4, seed=0, progress=False)
    assert [t.status for t in result.trials] == ["failed", "completed", "failed", "failed"]
    assert "metric 'val' must be a real number" in result.trials[0].error
    assert "str '0.3'" in result.trials[0].error and result.trials[0].value is None
    assert result.trials[1].value == 0.25
    # a bare return is read as the goal's metric, under the same rule
    assert "metric 'val'" in result.trials[2].error and "str '1.5'" in result.trials[2].error
    assert "bool True" in result.trials[3].error


def test_a_constraint_must_be_a_real_number_too():
    goal = Goal.from_arguments("error", constraints=["margin"])
    with pytest.raises(TypeError, match="metric 'margin' must be a real number.*bool True"):
        goal.read({"error": 0.1, "margin": True})


@pytest.mark.parametrize("value", [
    3, 0.25, np.float32(0.25), np.float64(-1.5), np.int64(7), np.uint8(7), np.array(0.5),
    np.array(2, np.int32), jnp.float32(0.25), jnp.array(-3.5), jnp.bfloat16(0.5), jnp.int32(9),
])
def test_real_numbers_of_every_kind_are_read_exactly(value):
    metrics, values, constraints = Goal.from_arguments("val", constraints=["c"]).read(
        {"val": value, "c": value})
    expected = float(np.asarray(value, np.float64)) if not isinstance(value, (int, float)) else value
    assert values == [expected] and constraints == [expected]
    assert type(values[0]) is float and metrics["val"] is value
