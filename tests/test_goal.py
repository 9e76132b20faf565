import numpy as np
import pytest

import jhpo
from jhpo.goal import Goal
from jhpo.runs.records import load_run

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
    result = jhpo.tune(two_objectives, SPACE, metric="error", constraints=["memory_margin"],
                       num_trials=40, seed=2, progress=False)
    infeasible = [t for t in result.trials if t.metrics["memory_margin"] <= 0]
    assert infeasible and all(t.feasible is False for t in infeasible)
    feasible = [t for t in result.trials if t.metrics["memory_margin"] > 0]
    assert result.best.feasible is True
    assert result.best.value == min(t.value for t in feasible)
    # the unconstrained optimum lies in the infeasible region here
    assert min(t.value for t in result.trials) <= result.best.value


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
