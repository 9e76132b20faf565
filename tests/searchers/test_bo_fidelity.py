"""The multi-fidelity "bo" searcher: one GP over configuration and fidelity."""

import math

import numpy as np
import pytest

import jhpo
from jhpo.goal import Goal

SPACE = {"x": jhpo.uniform(0.0, 1.0)}
OPTIONS = {"num_initial": 3, "num_screen": 256, "num_starts": 4, "ascent_steps": 20,
           "fit_evaluations": 20, "num_restarts": 6}
LOW, HIGH = 1.0, 27.0
LOW_X = np.linspace(0.02, 0.98, 12)
HIGH_X = np.array([0.1, 0.3, 0.5, 0.7, 0.9])


def low_fidelity(x):
    """Short training ranks configurations differently: its best is at 0.3."""
    return (x - 0.3) ** 2 - 0.3


def high_fidelity(x):
    return (x - 0.7) ** 2


def proposal_after(searcher_options, resource_low, resource_high, fidelity):
    optimizer = jhpo.Optimizer(SPACE, "bo", seed=0, fidelity=fidelity,
                               searcher_options={**OPTIONS, **searcher_options})
    configs = [{"x": float(x)} for x in np.concatenate([LOW_X, HIGH_X])]
    values = [float(low_fidelity(x)) for x in LOW_X] + [float(high_fidelity(x)) for x in HIGH_X]
    resources = [resource_low] * len(LOW_X) + [resource_high] * len(HIGH_X)
    optimizer.tell(configs, values, resources=resources if fidelity else None)
    return optimizer.ask(1)[0]["x"], optimizer


def test_fidelity_is_the_log_resource_between_the_first_and_last_rung():
    goal = Goal.from_arguments(None, "min", fidelity=(1, 81))
    assert goal.fidelity_of(1) == 0.0
    assert goal.fidelity_of(81) == 1.0
    assert math.isclose(goal.fidelity_of(9), 0.5)
    assert goal.fidelity_of(0.5) == 0.0 and goal.fidelity_of(200) == 1.0  # clipped
    assert goal.fidelity_of(None) == 1.0  # a trial with no reports trained in full
    np.testing.assert_allclose(goal.searcher_row([2.0], None, None, 3.0), [2.0, 0.25])
    np.testing.assert_allclose(goal.searcher_row(None, None, None, 81.0), [np.nan, 1.0])


def test_searcher_is_told_each_trials_fidelity():
    _, optimizer = proposal_after({}, LOW, HIGH, (LOW, HIGH))
    observed = optimizer.state.observed
    told = np.asarray(observed.y)[np.asarray(observed.mask)]
    expected = [0.0] * len(LOW_X) + [1.0] * len(HIGH_X)
    np.testing.assert_allclose(told[:, -1], expected, atol=1e-6)


def test_proposals_follow_the_full_fidelity_optimum():
    # Cheap evaluations say 0.3, full ones say 0.7. The joint model predicts at
    # fidelity 1; a model blind to fidelity is pulled towards the low values at 0.3.
    aware, _ = proposal_after({}, LOW, HIGH, (LOW, HIGH))
    blind, _ = proposal_after({}, LOW, HIGH, None)
    assert abs(aware - 0.7) < 0.12
    assert abs(blind - 0.3) < abs(aware - 0.3)


def test_bad_multi_fidelity_settings_are_named():
    with pytest.raises(ValueError, match="fidelity=.*needs searcher='bo'"):
        jhpo.Optimizer(SPACE, "random", fidelity=(1, 9))
    with pytest.raises(ValueError, match="multi_fidelity=True needs the resource range"):
        jhpo.Optimizer(SPACE, "bo", searcher_options={"multi_fidelity": True})
    with pytest.raises(ValueError, match="min_resource < max_resource"):
        jhpo.Optimizer(SPACE, "bo", fidelity=(9, 1))


def learning_curve_objective(config, report):
    """Validation error falling with epochs, towards a floor set by x."""
    floor = (config["x"] - 0.6) ** 2
    for epoch in range(1, 10):
        report(epoch, {"error": floor + 0.5 / epoch})
    return {"error": floor + 0.5 / 9}


def test_bo_with_asha_learns_from_stopped_trials_and_never_repeats(tmp_path):
    result = jhpo.tune(learning_curve_objective, SPACE, searcher="bo", metric="error",
                       num_trials=14, scheduler="asha", seed=1, progress=False,
                       searcher_options=OPTIONS, run_dir=str(tmp_path / "run"),
                       scheduler_options={"min_resource": 1, "max_resource": 9, "eta": 3})
    statuses = [t.status for t in result.trials]
    assert statuses.count("stopped") >= 4  # stopped trials were told at their low rung
    xs = [t.config["x"] for t in result.trials]
    assert len(set(xs)) == len(xs)
    # Random search lands this close to 0.6 in 14 trials about one time in eight, and puts
    # three of its last five there about one time in a thousand.
    assert abs(result.best.config["x"] - 0.6) < 0.005
    assert abs(np.median(xs[-5:]) - 0.6) < 0.02
    # a resumed run tells the recorded trials the same rows, fidelity included
    again = jhpo.tune(learning_curve_objective, SPACE, searcher="bo", metric="error",
                      num_trials=15, scheduler="asha", seed=1, progress=False,
                      searcher_options=OPTIONS, run_dir=str(tmp_path / "run"),
                      scheduler_options={"min_resource": 1, "max_resource": 9, "eta": 3})
    assert [t.config for t in again.trials[:14]] == [t.config for t in result.trials]
    assert len(again.trials) == 15


def test_population_bo_with_asha_tells_each_trial_at_its_rung(monkeypatch):
    from jhpo.runs.population import tune_population
    from jhpo.runs.optimizer import Optimizer
    from tests.population.toy_task import TASK

    told = []
    original = Optimizer.tell_rows

    def spy(self, rows, values):
        told.extend(np.asarray(v) for v in values)
        return original(self, rows, values)

    monkeypatch.setattr(Optimizer, "tell_rows", spy)
    space = {"learning_rate": jhpo.loguniform(1e-3, 3e-1), "momentum": jhpo.uniform(0.0, 0.9)}
    result = tune_population(TASK, space, searcher="bo", searcher_options=OPTIONS, population_size=4,
                             num_trials=12, steps=9, seed=0, progress=False, scheduler="asha",
                             scheduler_options={"interval": 1})
    goal = Goal.from_arguments(None, "min", fidelity=(1, 9))
    by_value = {round(float(t.value), 5): goal.fidelity_of(t.resource) for t in result.trials if t.ok}
    assert {t.resource for t in result.trials} >= {1.0, 9.0}  # stopped at the first rung, and full
    for row in told:
        if np.isfinite(row[0]):
            assert row[-1] == pytest.approx(by_value[round(float(row[0]), 5)], abs=1e-6)
