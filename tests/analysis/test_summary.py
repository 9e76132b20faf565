import math

import numpy as np
import pytest

from jhpo.analysis.curves import Curve
from jhpo.analysis.summary import compare, summarise, summarise_curves
from tests.analysis.hand_made import HAND_RUNS, hand_record


def test_summarise_medians_ranks_and_end_of_runs_by_hand():
    summary = summarise(hand_record(), x="evals", num_resamples=200)
    np.testing.assert_array_equal(summary.grid, [1, 2, 3, 4])
    a, b = summary.methods["a"], summary.methods["b"]
    # a's seeds on the grid: [5,3,3,3], [2,2,1,1], [none,4,4,4]; its runs end after 3.
    np.testing.assert_array_equal(a.center, [5, 3, 3, np.nan])
    np.testing.assert_array_equal(b.center, [4, 4, 2, 1])
    assert (a.end, b.end, a.num_runs) == (3.0, 4.0, 3)
    np.testing.assert_allclose(a.rank, [5 / 3, 4 / 3, 1.5, 5.5 / 3])
    np.testing.assert_allclose(b.rank, [4 / 3, 5 / 3, 1.5, 3.5 / 3])
    assert np.all(b.lower <= b.center) and np.all(b.center <= b.upper)
    iqm = summarise(hand_record(), x="evals", statistic="iqm", num_resamples=20)
    # three seeds: nothing cut, the plain mean; seed 2 has no result at first, so +inf.
    np.testing.assert_allclose(iqm.methods["b"].center, [13 / 3, 10 / 3, 8 / 3, 2.5 / 3])
    assert np.isnan(iqm.methods["a"].center[0])


def test_summarise_curves_from_outside_an_experiment():
    curves = {"a": {0: Curve([1.0, 3.0], [5.0, 2.0]),
                    1: Curve([2.0, 4.0], [4.0, 1.0])}}
    summary = summarise_curves(curves, "min", x="member_steps", metric="val_error",
                               num_points=7, num_resamples=20)
    grid, center = summary.grid, summary.methods["a"].center
    # both seeds have a result from x = 2 on; the median of the two incumbents
    expected = np.where(grid >= 4, 1.5, np.where(grid >= 3, 3.0, 4.5))
    np.testing.assert_allclose(center[grid >= 2], expected[grid >= 2])
    assert (summary.x, summary.metric, summary.methods["a"].end) == ("member_steps", "val_error", 4.0)
    with pytest.raises(ValueError, match="mode='lowest'"):
        summarise_curves(curves, "lowest", x="member_steps")
    with pytest.raises(ValueError, match="at least one seed"):
        summarise_curves({"a": {}}, "min", x="member_steps")


def test_summarise_regret_and_maximisation():
    regret = summarise(hand_record(optimum=0.0), x="evals", quantity="regret",
                       num_resamples=20)
    np.testing.assert_array_equal(regret.methods["b"].center, [4, 4, 2, 1])
    normalised = summarise(hand_record(optimum=0.0), x="evals",
                           quantity="normalised_regret", num_resamples=20)
    # The worst value any trial reported is 6.
    np.testing.assert_allclose(normalised.methods["b"].center, np.array([4, 4, 2, 1]) / 6)
    flipped = {m: {s: [None if v is None else -v for v in vals] for s, vals in seeds.items()}
               for m, seeds in HAND_RUNS.items()}
    maximised = summarise(hand_record("max", runs=flipped), x="evals", num_resamples=50)
    b = maximised.methods["b"]
    np.testing.assert_array_equal(b.center, [-4, -4, -2, -1])
    assert np.all(b.lower <= b.center) and np.all(b.center <= b.upper)
    np.testing.assert_allclose(b.rank, [4 / 3, 5 / 3, 1.5, 3.5 / 3])
    as_regret = summarise(hand_record("max", optimum=0.0, runs=flipped), x="evals",
                          quantity="regret", num_resamples=20)
    assert as_regret.mode == "min"
    np.testing.assert_array_equal(as_regret.methods["b"].center, [4, 4, 2, 1])
    with pytest.raises(ValueError, match="needs the optimum"):
        summarise(hand_record(), quantity="regret")


def test_compare_final_values_ranks_and_time_to_target_by_hand():
    rows = {r.name: r for r in compare(hand_record(), x="evals", target=3.0,
                                       num_resamples=100)}
    a, b = rows["a"], rows["b"]
    assert (a.final, b.final) == (3.0, 1.0)
    assert a.final_lower <= a.final <= a.final_upper
    assert (a.final_rank, b.final_rank) == pytest.approx((5.5 / 3, 3.5 / 3))
    assert a.mean_rank == pytest.approx(76 / 48) and b.mean_rank == pytest.approx(3 - 76 / 48)
    # a reaches 3 at evaluations 2 and 1 and never in seed 2; b at 3, 1 and 4.
    assert (a.time_to_target, a.reached) == (2.0, 2)
    assert (b.time_to_target, b.reached) == (3.0, 3)
    no_target = compare(hand_record(), x="evals", num_resamples=10)[0]
    assert math.isnan(no_target.time_to_target)
    flipped = {m: {s: [None if v is None else -v for v in vals] for s, vals in seeds.items()}
               for m, seeds in HAND_RUNS.items()}
    maximised = {r.name: r for r in compare(hand_record("max", runs=flipped), x="evals",
                                            target=-3.0, num_resamples=100)}
    b = maximised["b"]
    assert b.final == -1.0 and b.final_lower <= b.final <= b.final_upper
    assert (b.time_to_target, b.reached) == (3.0, 3)
    assert b.final_rank == pytest.approx(3.5 / 3)
