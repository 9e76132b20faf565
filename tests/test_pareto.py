import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jhpo.pareto import (
    hypervolume,
    hypervolume_monte_carlo,
    nondominated,
    nondominated_ranks,
)


def brute_force_front(points):
    return np.array([
        not any(np.all(q <= p) and np.any(q < p) for q in points) for p in points
    ])


def brute_force_hypervolume(points, reference):
    """Union of boxes by coordinate compression: every grid cell is either inside some
    point's dominated box or not."""
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    axes = [np.unique(np.append(points[:, k], reference[k])) for k in range(points.shape[1])]
    volume = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        lower = np.array([axes[k][i] for k, i in enumerate(cell)])
        upper = np.array([axes[k][i + 1] for k, i in enumerate(cell)])
        if np.any(np.all(points <= lower, axis=1)):
            volume += np.prod(upper - lower)
    return volume


point_sets = st.integers(0, 2**31 - 1).flatmap(
    lambda seed: st.tuples(st.just(seed), st.integers(1, 9), st.sampled_from([2, 3])))


def random_points(seed, n, m):
    rng = np.random.default_rng(seed)
    # a coarse grid makes ties and duplicates common, the hard cases
    return rng.integers(0, 6, (n, m)).astype(np.float64) / 5.0


PADDED = 9


def padded(points):
    """``points`` in a buffer of PADDED rows (junk below) and its mask: one compilation
    serves every case, and masking is exercised on the way."""
    junk = np.full((PADDED - len(points), points.shape[1]), -1.0)
    mask = np.arange(PADDED) < len(points)
    return jnp.asarray(np.concatenate([points, junk])), jnp.asarray(mask)


@settings(max_examples=60, deadline=None)
@given(point_sets)
def test_front_and_ranks_match_brute_force(case):
    points = random_points(*case)
    buffer, mask = padded(points)
    front = np.asarray(nondominated(buffer, mask))[: len(points)]
    np.testing.assert_array_equal(front, brute_force_front(points))
    ranks = np.asarray(nondominated_ranks(buffer, mask))[: len(points)]
    remaining = np.ones(len(points), bool)
    rank = 0
    while remaining.any():
        sub = brute_force_front(points[remaining])
        idx = np.flatnonzero(remaining)[sub]
        assert np.all(ranks[idx] == rank)
        remaining[idx] = False
        rank += 1


@settings(max_examples=60, deadline=None)
@given(point_sets)
def test_exact_hypervolume_matches_brute_force(case):
    points = random_points(*case)
    reference = np.full(points.shape[1], 0.9)
    with jax.enable_x64(True):
        buffer, mask = padded(points)
        value = float(hypervolume(buffer, jnp.asarray(reference), mask))
    assert value == pytest.approx(brute_force_hypervolume(points, reference), abs=1e-9)


def test_one_objective_hypervolume_matches_brute_force():
    reference = np.array([0.9])
    for seed in range(20):
        # 1 to 9 points on a grid from 0 to 1: some beyond the reference, sometimes all
        points = random_points(seed, 1 + seed % 9, 1)
        with jax.enable_x64(True):
            buffer, mask = padded(points)
            value = float(hypervolume(buffer, jnp.asarray(reference), mask))
        assert value == pytest.approx(brute_force_hypervolume(points, reference), abs=1e-12)


def test_masked_rows_do_not_count():
    points = jnp.array([[0.2, 0.8], [0.5, 0.5], [0.0, 0.0]])
    mask = jnp.array([True, True, False])
    assert float(hypervolume(points, jnp.array([1.0, 1.0]), mask)) == pytest.approx(
        float(hypervolume(points[:2], jnp.array([1.0, 1.0]))))
    assert list(np.asarray(nondominated(points, mask))) == [True, True, False]
    assert int(nondominated_ranks(points, mask)[2]) == 3


def test_monte_carlo_hypervolume_and_its_standard_error_match_the_exact_ones():
    points = random_points(3, 12, 3)
    reference = np.full(3, 1.0)
    exact = brute_force_hypervolume(points, reference)
    # the estimate is a box volume times a binomial fraction: its standard error is known
    # from the exact hypervolume
    box = np.prod(reference - points[np.all(points < reference, axis=1)].min(axis=0))
    fraction, samples, repeats = exact / box, 10_000, 64
    assert 0.2 < fraction < 0.9  # a fraction that leaves the error room to be wrong
    expected_error = box * np.sqrt(fraction * (1 - fraction) / samples)
    keys = jax.random.split(jax.random.key(0), repeats)
    estimates, errors = jax.vmap(lambda key: hypervolume_monte_carlo(
        jnp.asarray(points), jnp.asarray(reference), key, num_samples=samples))(keys)
    estimates, errors = np.asarray(estimates, np.float64), np.asarray(errors, np.float64)
    # each reported error is the binomial one, bounded from below as well as above
    np.testing.assert_allclose(errors, expected_error, rtol=0.05)
    # each estimate lies within a few of its standard errors of the exact value
    assert np.all(np.abs(estimates - exact) < 4.5 * expected_error)
    # and the spread over independent keys is the reported error (sample standard
    # deviation of 64 draws: about 9% relative noise)
    assert 0.7 < np.std(estimates, ddof=1) / expected_error < 1.3
    assert abs(estimates.mean() - exact) < 4 * expected_error / np.sqrt(repeats)


def test_four_objectives_need_monte_carlo():
    with pytest.raises(ValueError, match="hypervolume_monte_carlo"):
        hypervolume(jnp.zeros((2, 4)), jnp.ones(4))
