import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import jhpo
from jhpo import analysis
from jhpo.analysis import Curve, ExperimentRecord
from jhpo.runs.records import Result, Trial

INF = math.inf


def trial(trial_id, value, *, start=None, end=None, status=None, metrics=None, resource=None):
    """A hand-made trial; by default trial i runs from i to i + 1 seconds."""
    status = status or ("completed" if value is not None else "failed")
    start = float(trial_id) if start is None else start
    record = Trial(trial_id=trial_id, config={"x": trial_id}, metrics=metrics or {}, value=value,
                   status=status, error=None, start_time=start,
                   end_time=start + 1.0 if end is None else end, seed=0)
    record.resource = resource
    return record


def run_of(values, mode="min"):
    return Result([trial(i, v) for i, v in enumerate(values)], "loss", mode)


# Two methods, three seeds each, values in the order the trials finished (None = failed).
HAND_RUNS = {
    "a": {0: [5, 3, 4], 1: [2, 6, 1], 2: [None, 4, 4]},
    "b": {0: [4, 4, 2, 1], 1: [3, 1, 1, 1], 2: [6, 5, 5, 0.5]},
}


def hand_record(mode="min", optimum=None, runs=HAND_RUNS):
    results = {m: {s: run_of(v, mode) for s, v in seeds.items()} for m, seeds in runs.items()}
    return ExperimentRecord(Path("hand"), results, "loss", mode, optimum)


def test_run_curve_against_time_evaluations_and_resources():
    result = Result([
        trial(0, 5.0, start=10.0, end=14.0, metrics={"steps": 40}, resource=4),
        trial(1, 2.0, start=10.5, end=12.0, metrics={"steps": 10}, resource=1),
        trial(2, None, start=12.0, end=13.0, metrics={"steps": 5}, resource=1),
        trial(3, 1.0, start=14.0, end=15.5, status="stopped", metrics={"steps": 20}, resource=2),
    ], "loss", "min")
    by_time = analysis.run_curve(result, "time")
    np.testing.assert_allclose(by_time.x, [2.0, 3.0, 4.0, 5.5])
    # Finishing order is 1, 2 (failed), 0, 3 (stopped early, but its value counts).
    np.testing.assert_allclose(by_time.y, [2.0, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(analysis.run_curve(result, "evals").x, [1, 2, 3, 4])
    np.testing.assert_allclose(analysis.run_curve(result, "steps").x, [10, 15, 55, 75])
    np.testing.assert_allclose(analysis.run_curve(result, "resource").x, [1, 2, 6, 8])
    with pytest.raises(ValueError, match="x='epochs'.*trials \\[1, 2, 0, 3\\] lack it"):
        analysis.run_curve(result, "epochs")


def test_infeasible_trials_never_become_the_incumbent():
    trials = [trial(0, 3.0), trial(1, 1.0), trial(2, 2.0)]
    trials[1].feasible = False
    curve = analysis.run_curve(Result(trials, "loss", "min"), "evals")
    np.testing.assert_array_equal(curve.y, [3.0, 3.0, 2.0])


def test_anytime_curves_refuse_several_objectives():
    result = Result([trial(0, 1.0)], ["error", "latency"], ["min", "min"])
    with pytest.raises(ValueError, match=r"follow one objective.*\['error', 'latency'\]"):
        analysis.run_curve(result)


def test_run_curve_follows_the_mode_and_matches_result_anytime():
    result = run_of([3.0, None, 4.0, 1.0, 2.0], mode="max")
    curve = analysis.run_curve(result, "time")
    np.testing.assert_array_equal(curve.y, [3, 3, 4, 4, 4])
    elapsed, best = result.anytime()
    np.testing.assert_array_equal(curve.x, elapsed)
    np.testing.assert_array_equal(curve.y, best)
    np.testing.assert_array_equal(analysis.run_curve(run_of([None, 2.0])).y, [np.nan, 2.0])


def test_values_hold_until_the_next_improvement_and_after_the_end():
    curve = Curve([1.0, 3.0, 6.0], [5.0, 4.0, 2.0])
    grid = [0.0, 1.0, 2.0, 3.0, 5.9, 6.0, 100.0]
    np.testing.assert_array_equal(analysis.values_on_grid(curve, grid),
                                  [np.nan, 5, 5, 4, 4, 2, 2])
    late_start = Curve([1.0, 2.0], [np.nan, 3.0])
    np.testing.assert_array_equal(analysis.values_on_grid(late_start, [1.5, 2.0]), [np.nan, 3.0])
    np.testing.assert_array_equal(analysis.values_on_grid(Curve([], []), [1.0]), [np.nan])


def test_curves_reject_bad_shapes_and_decreasing_x():
    with pytest.raises(ValueError, match="never decrease"):
        Curve([2.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="one length"):
        Curve([1.0, 2.0], [1.0])


def test_common_grid_spans_every_curve():
    curves = [Curve([0.5, 2.0], [1, 1]), Curve([0.25, 8.0], [1, 1])]
    np.testing.assert_allclose(analysis.common_grid(curves, num_points=5), [0, 2, 4, 6, 8])
    np.testing.assert_allclose(analysis.common_grid(curves, num_points=6, log=True),
                               [0.25, 0.5, 1, 2, 4, 8])
    by_count = [Curve([1, 2, 3], [1, 1, 1]), Curve([1, 2], [1, 1])]
    np.testing.assert_array_equal(analysis.common_grid(by_count, integer=True), [1, 2, 3])
    with pytest.raises(ValueError, match="num_points=1"):
        analysis.common_grid(curves, num_points=1)
    with pytest.raises(ValueError, match="no finished trial"):
        analysis.common_grid([Curve([], [])])


def test_median_and_interquartile_mean_by_hand():
    assert analysis.median(np.array([1.0, 2.0, 3.0, 4.0, 100.0])) == 3.0
    assert analysis.median(np.array([1.0, 2.0, 3.0, 10.0])) == 2.5
    # Five values: cut one from each end, mean of 2, 3, 4.
    assert analysis.interquartile_mean(np.array([100.0, 1.0, 3.0, 2.0, 4.0])) == 3.0
    # Eight values: cut two from each end, mean of 3, 4, 5, 6.
    assert analysis.interquartile_mean(np.arange(1.0, 9.0)) == 4.5
    # A run without a result (+inf) makes the median undefined only once it is the middle.
    np.testing.assert_array_equal(analysis.median(np.array([[1.0, 1.0], [2.0, INF], [INF, INF]])),
                                  [2.0, INF])
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(11, 4))
    np.testing.assert_allclose(analysis.interquartile_mean(sample),
                               stats.trim_mean(sample, 0.25, axis=0))


def test_bootstrap_band_reproduces_a_hand_resampling():
    loss = np.array([[1.0, 5.0], [2.0, 3.0], [4.0, 4.0], [8.0, 1.0]])
    lower, upper = analysis.bootstrap_band(loss, "median", confidence=0.8, num_resamples=50, seed=3)
    draws = np.random.default_rng(3).integers(0, 4, size=(50, 4))
    medians = np.sort([np.median(loss[d], axis=0) for d in draws], axis=0)
    # 10% tails of 50 sorted resamples: the 5th smallest below, the 46th smallest above.
    np.testing.assert_array_equal(lower, medians[4])
    np.testing.assert_array_equal(upper, medians[45])
    again = analysis.bootstrap_band(loss, "median", confidence=0.8, num_resamples=50, seed=3)
    np.testing.assert_array_equal(again[0], lower)


def test_bootstrap_band_collapses_on_identical_runs_and_widens_with_confidence():
    same = np.full((5, 3), 2.5)
    np.testing.assert_array_equal(analysis.bootstrap_band(same, "iqm")[0], [2.5] * 3)
    np.testing.assert_array_equal(analysis.bootstrap_band(same, "iqm")[1], [2.5] * 3)
    # Two runs a < b: the resampled medians are a, (a + b) / 2 and b, so a 95% band
    # over 1000 resamples is [a, b].
    two = np.array([[1.0], [3.0]])
    np.testing.assert_array_equal(np.concatenate(analysis.bootstrap_band(two)), [1.0, 3.0])
    spread = np.random.default_rng(1).normal(size=(9, 4))
    narrow = analysis.bootstrap_band(spread, confidence=0.5)
    wide = analysis.bootstrap_band(spread, confidence=0.99)
    assert np.all(wide[0] <= narrow[0]) and np.all(narrow[1] <= wide[1])
    assert np.all(narrow[0] < narrow[1])


@pytest.mark.parametrize("kwargs,pattern", [
    ({"confidence": 1.0}, "confidence=1.0"),
    ({"num_resamples": 0}, "num_resamples=0"),
    ({"statistic": "mean"}, "statistic='mean'"),
])
def test_bootstrap_band_names_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        analysis.bootstrap_band(np.ones((3, 2)), **kwargs)


def test_regret_and_normalised_regret_by_hand():
    np.testing.assert_array_equal(analysis.regret([3.0, 2.0], 1.0, "min"), [2.0, 1.0])
    np.testing.assert_array_equal(analysis.regret([3.0, 2.0], 4.0, "max"), [1.0, 2.0])
    np.testing.assert_array_equal(analysis.normalised_regret([3.0, 2.0], 1.0, 5.0, "min"),
                                  [0.5, 0.25])
    np.testing.assert_array_equal(analysis.normalised_regret([3.0, 2.0], 4.0, 0.0, "max"),
                                  [0.25, 0.5])
    with pytest.raises(ValueError, match="worst=1.0 must be worse than optimum=1.0"):
        analysis.normalised_regret([2.0], 1.0, 1.0, "min")


def test_average_rank_by_hand():
    # seed 0: values 1, 2, 2 -> ranks 1, 2.5, 2.5; seed 1: 3, 1, no result -> 2, 1, 3.
    loss = np.array([[[1.0], [3.0]], [[2.0], [1.0]], [[2.0], [INF]]])
    np.testing.assert_allclose(analysis.average_rank(loss)[:, 0], [1.5, 1.75, 2.75])
    rng = np.random.default_rng(2)
    ranks = analysis.average_rank(rng.integers(0, 3, size=(4, 6, 5)).astype(float))
    np.testing.assert_allclose(ranks.sum(axis=0), 4 * 5 / 2)
    with pytest.raises(ValueError, match="shape \\(methods, seeds, points\\)"):
        analysis.average_rank(np.ones((2, 3)))


def test_first_reach_of_a_target():
    curve = Curve([1.0, 3.0, 6.0], [5.0, 4.0, 2.0])
    assert analysis.first_reach(curve, 4.0, "min") == 3.0
    assert analysis.first_reach(curve, 4.5, "min") == 3.0
    assert analysis.first_reach(curve, 1.0, "min") == INF
    rising = Curve([1.0, 2.0], [0.5, 0.9])
    assert analysis.first_reach(rising, 0.8, "max") == 2.0


def test_pareto_mask_by_hand_and_against_brute_force():
    points = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2], [np.nan, 0]], float)
    np.testing.assert_array_equal(analysis.pareto_mask(points, ["min", "min"]),
                                  [True, True, False, True, True, False])
    np.testing.assert_array_equal(analysis.pareto_mask(points[:5], ["min", "max"]),
                                  [True, False, False, False, False])
    rng = np.random.default_rng(4)
    cloud = rng.integers(0, 6, size=(40, 3)).astype(float)
    brute = [not any(np.all(q <= p) and np.any(q < p) for q in cloud) for p in cloud]
    np.testing.assert_array_equal(analysis.pareto_mask(cloud, ["min"] * 3), brute)
    with pytest.raises(ValueError, match="shape \\(n, 2\\)"):
        analysis.pareto_mask(np.ones((3, 3)), ["min", "min"])


def test_summarise_medians_ranks_and_end_of_runs_by_hand():
    summary = analysis.summarise(hand_record(), x="evals", num_resamples=200)
    np.testing.assert_array_equal(summary.grid, [1, 2, 3, 4])
    a, b = summary.methods["a"], summary.methods["b"]
    # a's seeds on the grid: [5,3,3,3], [2,2,1,1], [none,4,4,4]; its runs end after 3.
    np.testing.assert_array_equal(a.center, [5, 3, 3, np.nan])
    np.testing.assert_array_equal(b.center, [4, 4, 2, 1])
    assert (a.end, b.end, a.num_runs) == (3.0, 4.0, 3)
    np.testing.assert_allclose(a.rank, [5 / 3, 4 / 3, 1.5, 5.5 / 3])
    np.testing.assert_allclose(b.rank, [4 / 3, 5 / 3, 1.5, 3.5 / 3])
    assert np.all(b.lower <= b.center) and np.all(b.center <= b.upper)
    iqm = analysis.summarise(hand_record(), x="evals", statistic="iqm", num_resamples=20)
    # three seeds: nothing cut, the plain mean; seed 2 has no result at first, so +inf.
    np.testing.assert_allclose(iqm.methods["b"].center, [13 / 3, 10 / 3, 8 / 3, 2.5 / 3])
    assert np.isnan(iqm.methods["a"].center[0])


def test_summarise_curves_from_outside_an_experiment():
    curves = {"a": {0: analysis.Curve([1.0, 3.0], [5.0, 2.0]),
                    1: analysis.Curve([2.0, 4.0], [4.0, 1.0])}}
    summary = analysis.summarise_curves(curves, "min", x="member_steps", metric="val_error",
                                        num_points=7, num_resamples=20)
    grid, center = summary.grid, summary.methods["a"].center
    # both seeds have a result from x = 2 on; the median of the two incumbents
    expected = np.where(grid >= 4, 1.5, np.where(grid >= 3, 3.0, 4.5))
    np.testing.assert_allclose(center[grid >= 2], expected[grid >= 2])
    assert (summary.x, summary.metric, summary.methods["a"].end) == ("member_steps", "val_error", 4.0)
    with pytest.raises(ValueError, match="mode='lowest'"):
        analysis.summarise_curves(curves, "lowest", x="member_steps")
    with pytest.raises(ValueError, match="at least one seed"):
        analysis.summarise_curves({"a": {}}, "min", x="member_steps")


def test_summarise_regret_and_maximisation():
    regret = analysis.summarise(hand_record(optimum=0.0), x="evals", quantity="regret",
                                num_resamples=20)
    np.testing.assert_array_equal(regret.methods["b"].center, [4, 4, 2, 1])
    normalised = analysis.summarise(hand_record(optimum=0.0), x="evals",
                                    quantity="normalised_regret", num_resamples=20)
    # The worst value any trial reported is 6.
    np.testing.assert_allclose(normalised.methods["b"].center, np.array([4, 4, 2, 1]) / 6)
    flipped = {m: {s: [None if v is None else -v for v in vals] for s, vals in seeds.items()}
               for m, seeds in HAND_RUNS.items()}
    maximised = analysis.summarise(hand_record("max", runs=flipped), x="evals", num_resamples=50)
    b = maximised.methods["b"]
    np.testing.assert_array_equal(b.center, [-4, -4, -2, -1])
    assert np.all(b.lower <= b.center) and np.all(b.center <= b.upper)
    np.testing.assert_allclose(b.rank, [4 / 3, 5 / 3, 1.5, 3.5 / 3])
    as_regret = analysis.summarise(hand_record("max", optimum=0.0, runs=flipped), x="evals",
                                   quantity="regret", num_resamples=20)
    assert as_regret.mode == "min"
    np.testing.assert_array_equal(as_regret.methods["b"].center, [4, 4, 2, 1])
    with pytest.raises(ValueError, match="needs the optimum"):
        analysis.summarise(hand_record(), quantity="regret")


def test_compare_final_values_ranks_and_time_to_target_by_hand():
    rows = {r.name: r for r in analysis.compare(hand_record(), x="evals", target=3.0,
                                                num_resamples=100)}
    a, b = rows["a"], rows["b"]
    assert (a.final, b.final) == (3.0, 1.0)
    assert a.final_lower <= a.final <= a.final_upper
    assert (a.final_rank, b.final_rank) == pytest.approx((5.5 / 3, 3.5 / 3))
    assert a.mean_rank == pytest.approx(76 / 48) and b.mean_rank == pytest.approx(3 - 76 / 48)
    # a reaches 3 at evaluations 2 and 1 and never in seed 2; b at 3, 1 and 4.
    assert (a.time_to_target, a.reached) == (2.0, 2)
    assert (b.time_to_target, b.reached) == (3.0, 3)
    no_target = analysis.compare(hand_record(), x="evals", num_resamples=10)[0]
    assert math.isnan(no_target.time_to_target)
    flipped = {m: {s: [None if v is None else -v for v in vals] for s, vals in seeds.items()}
               for m, seeds in HAND_RUNS.items()}
    maximised = {r.name: r for r in analysis.compare(hand_record("max", runs=flipped), x="evals",
                                                     target=-3.0, num_resamples=100)}
    b = maximised["b"]
    assert b.final == -1.0 and b.final_lower <= b.final <= b.final_upper
    assert (b.time_to_target, b.reached) == (3.0, 3)
    assert b.final_rank == pytest.approx(3.5 / 3)


def test_load_experiment_reads_a_single_run_and_rejects_other_directories(tmp_path):
    jhpo.tune(lambda c: c["x"] ** 2, {"x": jhpo.uniform(-1, 1)}, num_trials=3, seed=7,
              run_dir=tmp_path / "run", progress=False)
    record = analysis.load_experiment(tmp_path / "run")
    assert record.methods == ["random"] and list(record.runs["random"]) == [7]
    assert len(record.runs["random"][7].trials) == 3
    with pytest.raises(FileNotFoundError, match="neither a jhpo experiment"):
        analysis.load_experiment(tmp_path)


def test_regret_keeps_missing_values_missing():
    np.testing.assert_array_equal(analysis.regret([np.nan, 2.0], 1.0, "min"), [np.nan, 1.0])
