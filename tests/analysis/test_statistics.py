import math

import numpy as np
import pytest
from scipy import stats

from jhpo.analysis.statistics import (
    average_rank,
    bootstrap_band,
    interquartile_mean,
    median,
    pareto_mask,
)

INF = math.inf


def test_median_and_interquartile_mean_by_hand():
    assert median(np.array([1.0, 2.0, 3.0, 4.0, 100.0])) == 3.0
    assert median(np.array([1.0, 2.0, 3.0, 10.0])) == 2.5
    # Five values: cut one from each end, mean of 2, 3, 4.
    assert interquartile_mean(np.array([100.0, 1.0, 3.0, 2.0, 4.0])) == 3.0
    # Eight values: cut two from each end, mean of 3, 4, 5, 6.
    assert interquartile_mean(np.arange(1.0, 9.0)) == 4.5
    # A run without a result (+inf) makes the median undefined only once it is the middle.
    np.testing.assert_array_equal(median(np.array([[1.0, 1.0], [2.0, INF], [INF, INF]])),
                                  [2.0, INF])
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(11, 4))
    np.testing.assert_allclose(interquartile_mean(sample),
                               stats.trim_mean(sample, 0.25, axis=0))


def test_bootstrap_band_reproduces_a_hand_resampling():
    loss = np.array([[1.0, 5.0], [2.0, 3.0], [4.0, 4.0], [8.0, 1.0]])
    lower, upper = bootstrap_band(loss, "median", confidence=0.8, num_resamples=50, seed=3)
    draws = np.random.default_rng(3).integers(0, 4, size=(50, 4))
    medians = np.sort([np.median(loss[d], axis=0) for d in draws], axis=0)
    # 10% tails of 50 sorted resamples: the 5th smallest below, the 46th smallest above.
    np.testing.assert_array_equal(lower, medians[4])
    np.testing.assert_array_equal(upper, medians[45])
    again = bootstrap_band(loss, "median", confidence=0.8, num_resamples=50, seed=3)
    np.testing.assert_array_equal(again[0], lower)


def test_bootstrap_band_collapses_on_identical_runs_and_widens_with_confidence():
    same = np.full((5, 3), 2.5)
    np.testing.assert_array_equal(bootstrap_band(same, "iqm")[0], [2.5] * 3)
    np.testing.assert_array_equal(bootstrap_band(same, "iqm")[1], [2.5] * 3)
    # Two runs a < b: the resampled medians are a, (a + b) / 2 and b, so a 95% band
    # over 1000 resamples is [a, b].
    two = np.array([[1.0], [3.0]])
    np.testing.assert_array_equal(np.concatenate(bootstrap_band(two)), [1.0, 3.0])
    spread = np.random.default_rng(1).normal(size=(9, 4))
    narrow = bootstrap_band(spread, confidence=0.5)
    wide = bootstrap_band(spread, confidence=0.99)
    assert np.all(wide[0] <= narrow[0]) and np.all(narrow[1] <= wide[1])
    assert np.all(narrow[0] < narrow[1])


@pytest.mark.parametrize("kwargs,pattern", [
    ({"confidence": 1.0}, "confidence=1.0"),
    ({"num_resamples": 0}, "num_resamples=0"),
    ({"statistic": "mean"}, "statistic='mean'"),
])
def test_bootstrap_band_names_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        bootstrap_band(np.ones((3, 2)), **kwargs)


def test_average_rank_by_hand():
    # seed 0: values 1, 2, 2 -> ranks 1, 2.5, 2.5; seed 1: 3, 1, no result -> 2, 1, 3.
    loss = np.array([[[1.0], [3.0]], [[2.0], [1.0]], [[2.0], [INF]]])
    np.testing.assert_allclose(average_rank(loss)[:, 0], [1.5, 1.75, 2.75])
    rng = np.random.default_rng(2)
    ranks = average_rank(rng.integers(0, 3, size=(4, 6, 5)).astype(float))
    np.testing.assert_allclose(ranks.sum(axis=0), 4 * 5 / 2)
    with pytest.raises(ValueError, match="shape \\(methods, seeds, points\\)"):
        average_rank(np.ones((2, 3)))


def test_pareto_mask_by_hand_and_against_brute_force():
    points = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2], [np.nan, 0]], float)
    np.testing.assert_array_equal(pareto_mask(points, ["min", "min"]),
                                  [True, True, False, True, True, False])
    np.testing.assert_array_equal(pareto_mask(points[:5], ["min", "max"]),
                                  [True, False, False, False, False])
    rng = np.random.default_rng(4)
    cloud = rng.integers(0, 6, size=(40, 3)).astype(float)
    brute = [not any(np.all(q <= p) and np.any(q < p) for q in cloud) for p in cloud]
    np.testing.assert_array_equal(pareto_mask(cloud, ["min"] * 3), brute)
    with pytest.raises(ValueError, match="shape \\(n, 2\\)"):
        pareto_mask(np.ones((3, 3)), ["min", "min"])
