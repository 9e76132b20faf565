import math

import numpy as np
import pytest

from jhpo.runs.records import Result, Trial, best_so_far, clean_metrics


def make_trial(trial_id, value, status="completed", start=0.0, end=1.0):
    return Trial(trial_id=trial_id, config={"x": trial_id}, metrics={"loss": value}, value=value,
                 status=status, error=None if status == "completed" else "boom",
                 start_time=start, end_time=end, seed=0)


def test_best_respects_mode_and_skips_failed_trials():
    trials = [make_trial(0, 3.0), make_trial(1, None, "failed"), make_trial(2, 1.0),
              make_trial(3, 5.0)]
    assert Result(trials, "loss", "min").best.trial_id == 2
    assert Result(trials, "loss", "max").best.trial_id == 3
    assert Result([make_trial(0, None, "failed")]).best is None


def test_best_so_far_skips_nan_and_follows_mode():
    values = np.array([np.nan, 3.0, 4.0, np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(best_so_far(values, "min"), [np.nan, 3, 3, 3, 1, 1])
    np.testing.assert_array_equal(best_so_far(values, "max"), [np.nan, 3, 4, 4, 4, 4])


def test_anytime_orders_by_finishing_time_from_the_first_start():
    trials = [make_trial(0, 5.0, start=10.0, end=14.0), make_trial(1, 2.0, start=10.5, end=12.0),
              make_trial(2, 3.0, start=12.0, end=13.0)]
    elapsed, best = Result(trials).anytime()
    np.testing.assert_allclose(elapsed, [2.0, 3.0, 4.0])
    np.testing.assert_allclose(best, [2.0, 2.0, 2.0])


def test_clean_metrics_makes_plain_values_and_keeps_non_finite_ones():
    cleaned = clean_metrics({"a": np.float32(1.5), "b": float("inf"), "c": "text", "d": np.int64(3),
                             "e": np.array([0.5, np.nan])})
    assert {k: cleaned[k] for k in "acd"} == {"a": 1.5, "c": "text", "d": 3}
    assert cleaned["b"] == math.inf and cleaned["e"][0] == 0.5 and math.isnan(cleaned["e"][1])
    assert isinstance(cleaned["d"], int) and isinstance(cleaned["e"], list)


def test_to_pandas_has_one_row_per_trial():
    pd = pytest.importorskip("pandas")
    frame = Result([make_trial(0, 1.0), make_trial(1, 2.0)]).to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["config/x"]) == [0, 1] and math.isclose(frame["metrics/loss"][1], 2.0)


def test_the_pareto_front_holds_only_feasible_trials():
    def trial(trial_id, values, feasible):
        return Trial(trial_id=trial_id, config={}, metrics={}, value=values, status="completed",
                     error=None, start_time=0.0, end_time=1.0, seed=0, feasible=feasible)

    # trial 0 dominates every other one but breaks a constraint
    trials = [trial(0, [0.0, 0.0], False), trial(1, [1.0, 2.0], True), trial(2, [2.0, 1.0], True),
              trial(3, [2.0, 3.0], True)]
    result = Result(trials, ["a", "b"], ["min", "min"], constraints=["margin"])
    assert [t.trial_id for t in result.pareto_front()] == [1, 2]
    assert [t.trial_id for t in Result(trials[1:], ["a", "b"], ["min", "min"]).pareto_front()] == [1, 2]
