import math

import numpy as np
import pytest

from jhpo.analysis.curves import Curve, common_grid, first_reach, run_curve, values_on_grid
from jhpo.runs.records import Result
from tests.analysis.hand_made import run_of, trial

INF = math.inf


def test_run_curve_against_time_evaluations_and_resources():
    result = Result([
        trial(0, 5.0, start=10.0, end=14.0, metrics={"steps": 40}, resource=4),
        trial(1, 2.0, start=10.5, end=12.0, metrics={"steps": 10}, resource=1),
        trial(2, None, start=12.0, end=13.0, metrics={"steps": 5}, resource=1),
        trial(3, 1.0, start=14.0, end=15.5, status="stopped", metrics={"steps": 20}, resource=2),
    ], "loss", "min")
    by_time = run_curve(result, "time")
    np.testing.assert_allclose(by_time.x, [2.0, 3.0, 4.0, 5.5])
    # Finishing order is 1, 2 (failed), 0, 3 (stopped early, but its value counts).
    np.testing.assert_allclose(by_time.y, [2.0, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(run_curve(result, "evals").x, [1, 2, 3, 4])
    np.testing.assert_allclose(run_curve(result, "steps").x, [10, 15, 55, 75])
    np.testing.assert_allclose(run_curve(result, "resource").x, [1, 2, 6, 8])
    with pytest.raises(ValueError, match="x='epochs'.*trials \\[1, 2, 0, 3\\] lack it"):
        run_curve(result, "epochs")


def test_infeasible_trials_never_become_the_incumbent():
    trials = [trial(0, 3.0), trial(1, 1.0), trial(2, 2.0)]
    trials[1].feasible = False
    curve = run_curve(Result(trials, "loss", "min"), "evals")
    np.testing.assert_array_equal(curve.y, [3.0, 3.0, 2.0])


def test_anytime_curves_refuse_several_objectives():
    result = Result([trial(0, 1.0)], ["error", "latency"], ["min", "min"])
    with pytest.raises(ValueError, match=r"follow one objective.*\['error', 'latency'\]"):
        run_curve(result)


def test_run_curve_follows_the_mode_and_matches_result_anytime():
    result = run_of([3.0, None, 4.0, 1.0, 2.0], mode="max")
    curve = run_curve(result, "time")
    np.testing.assert_array_equal(curve.y, [3, 3, 4, 4, 4])
    elapsed, best = result.anytime()
    np.testing.assert_array_equal(curve.x, elapsed)
    np.testing.assert_array_equal(curve.y, best)
    np.testing.assert_array_equal(run_curve(run_of([None, 2.0])).y, [np.nan, 2.0])


def test_values_hold_until_the_next_improvement_and_after_the_end():
    curve = Curve([1.0, 3.0, 6.0], [5.0, 4.0, 2.0])
    grid = [0.0, 1.0, 2.0, 3.0, 5.9, 6.0, 100.0]
    np.testing.assert_array_equal(values_on_grid(curve, grid),
                                  [np.nan, 5, 5, 4, 4, 2, 2])
    late_start = Curve([1.0, 2.0], [np.nan, 3.0])
    np.testing.assert_array_equal(values_on_grid(late_start, [1.5, 2.0]), [np.nan, 3.0])
    np.testing.assert_array_equal(values_on_grid(Curve([], []), [1.0]), [np.nan])


def test_curves_reject_bad_shapes_and_decreasing_x():
    with pytest.raises(ValueError, match="never decrease"):
        Curve([2.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="one length"):
        Curve([1.0, 2.0], [1.0])


def test_common_grid_spans_every_curve():
    curves = [Curve([0.5, 2.0], [1, 1]), Curve([0.25, 8.0], [1, 1])]
    np.testing.assert_allclose(common_grid(curves, num_points=5), [0, 2, 4, 6, 8])
    np.testing.assert_allclose(common_grid(curves, num_points=6, log=True),
                               [0.25, 0.5, 1, 2, 4, 8])
    by_count = [Curve([1, 2, 3], [1, 1, 1]), Curve([1, 2], [1, 1])]
    np.testing.assert_array_equal(common_grid(by_count, integer=True), [1, 2, 3])
    with pytest.raises(ValueError, match="num_points=1"):
        common_grid(curves, num_points=1)
    with pytest.raises(ValueError, match="no finished trial"):
        common_grid([Curve([], [])])


def test_first_reach_of_a_target():
    curve = Curve([1.0, 3.0, 6.0], [5.0, 4.0, 2.0])
    assert first_reach(curve, 4.0, "min") == 3.0
    assert first_reach(curve, 4.5, "min") == 3.0
    assert first_reach(curve, 1.0, "min") == INF
    rising = Curve([1.0, 2.0], [0.5, 0.9])
    assert first_reach(rising, 0.8, "max") == 2.0
