import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jhpo.schedulers import (
    asha_continues,
    asha_promotion,
    halving_survivors,
    hyperband_brackets,
    median_continues,
    pareto_ahead,
    pareto_asha_continues,
    pareto_asha_promotion,
    pbt_parents,
    rung_levels,
)

maybe_values = st.lists(st.one_of(st.none(), st.integers(0, 6).map(float)), min_size=1, max_size=12)


def as_array(values):
    return jnp.asarray([np.nan if v is None else v for v in values], jnp.float32)


def test_rung_levels_and_hyperband_brackets_match_li_et_al():
    assert rung_levels(1, 81, 3) == (1.0, 3.0, 9.0, 27.0, 81.0)
    assert rung_levels(1, 100, 3)[-1] == 100.0 and rung_levels(1, 100, 3)[-2] == 81.0
    # Hyperband with R = 81, eta = 3 starts 81, 34, 15, 8 and 5 configurations (Li et al., 2018)
    assert hyperband_brackets(1, 81, 3) == [(0, 81), (1, 34), (2, 15), (3, 8), (4, 5)]
    with pytest.raises(ValueError, match="eta=1"):
        rung_levels(1, 81, 1)
    with pytest.raises(ValueError, match="max_resource=0.5"):
        rung_levels(1, 0.5, 3)


@settings(max_examples=60, deadline=None)
@given(maybe_values, st.integers(0, 6).map(float), st.sampled_from([2.0, 3.0, 4.0]))
def test_asha_continues_matches_the_top_fraction_rule(others, value, eta):
    rung = list(others) + [value]
    recorded = [v for v in rung if v is not None]
    better = sum(1 for v in recorded if v < value)
    expected = len(recorded) < eta or better < math.floor(len(recorded) / eta)
    assert bool(asha_continues(as_array(rung), jnp.float32(value), eta)) == expected


def test_asha_continues_stops_a_nan_value():
    assert not bool(asha_continues(jnp.array([1.0, 2.0]), jnp.float32(np.nan), 3.0))


def reference_promotion(values, promoted, eta):
    trials, rungs = values.shape
    for rung in reversed(range(rungs - 1)):
        column = values[:, rung]
        recorded = [v for v in column if not np.isnan(v)]
        keep = math.floor(len(recorded) / eta)
        candidates = [t for t in range(trials) if not np.isnan(column[t]) and not promoted[t, rung]
                      and sum(1 for v in recorded if v < column[t]) < keep]
        if candidates:
            return True, min(candidates, key=lambda t: (column[t], t)), rung
    return False, None, None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_asha_promotion_matches_a_reference(seed):
    rng = np.random.default_rng(seed)
    trials, rungs = 9, 3
    values = rng.integers(0, 8, (trials, rungs)).astype(np.float32)
    reached = rng.integers(0, rungs + 1, trials)  # trials reached rungs < reached[t]
    values[np.arange(rungs)[None, :] >= reached[:, None]] = np.nan
    promoted = (rng.random((trials, rungs)) < 0.3) & ~np.isnan(values)
    found, trial, rung = asha_promotion(jnp.asarray(values), jnp.asarray(promoted), 3.0)
    expected = reference_promotion(values, promoted, 3.0)
    assert bool(found) == expected[0]
    if expected[0]:
        assert (int(trial), int(rung)) == expected[1:]


@settings(max_examples=60, deadline=None)
@given(maybe_values, st.sampled_from([2.0, 3.0]))
def test_halving_keeps_the_best_alive_fraction(values, eta):
    alive = np.array([i % 5 != 4 for i in range(len(values))])
    survivors = np.asarray(halving_survivors(as_array(values), jnp.asarray(alive), eta))
    finite = [(v, i) for i, v in enumerate(values) if alive[i] and v is not None]
    keep = max(1, math.floor(alive.sum() / eta))
    expected = {i for _, i in sorted(finite)[:keep]}
    assert set(np.flatnonzero(survivors)) == expected


def reference_median(curves, trial, level, min_trials):
    upto = curves[:, : level + 1]
    others = [t for t in range(len(curves)) if t != trial and not np.isnan(curves[t, level])]
    best = np.nanmin(upto[trial])
    if len(others) < min_trials:
        return True
    return best <= np.median([np.nanmean(upto[t]) for t in others])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 3))
def test_median_rule_matches_a_reference(seed, level):
    rng = np.random.default_rng(seed)
    curves = rng.random((7, 4)).astype(np.float32)
    curves[rng.random((7, 4)) < 0.3] = np.nan
    curves[0, : level + 1] = rng.random(level + 1)
    go_on = median_continues(jnp.asarray(curves), 0, level, 2)
    assert bool(go_on) == reference_median(curves, 0, level, 2)


def test_pbt_parents_copy_top_into_bottom_and_leave_the_rest():
    values = jnp.array([5.0, 1.0, 7.0, 3.0, 2.0, 8.0, 4.0, 6.0, 0.0, 0.0])
    alive = jnp.array([True] * 8 + [False] * 2)
    for seed in range(20):
        parents = np.asarray(pbt_parents(values, alive, jax.random.key(seed), 0.25))
        # 8 alive, quantile 0.25: the two worst (5: 8.0, 2: 7.0) copy one of the two best
        assert parents[5] in (1, 4) and parents[2] in (1, 4)
        unchanged = [i for i in range(10) if i not in (2, 5)]
        assert list(parents[unchanged]) == unchanged


def test_pbt_parents_replace_every_failed_member():
    values = jnp.array([1.0, np.nan, 2.0, np.nan, 3.0, 4.0, 5.0, 6.0])
    parents = np.asarray(pbt_parents(values, jnp.ones(8, bool), jax.random.key(0), 0.125))
    assert parents[1] == 0 and parents[3] == 0
    assert list(parents[[0, 2, 4, 5, 6, 7]]) == [0, 2, 4, 5, 6, 7]


# ----------------------------------------------------------------------------- several objectives


def reference_pareto_ahead(points):
    """Plain-Python non-dominated sorting and crowding distance (rows with NaN unrecorded)."""
    n = len(points)
    recorded = [i for i in range(n) if not np.isnan(points[i]).any()]

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    rank, remaining, level = {}, set(recorded), 0
    while remaining:
        front = {i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)}
        rank.update({i: level for i in front})
        remaining -= front
        level += 1
    crowding = {}
    for i in recorded:
        front = [j for j in recorded if rank[j] == rank[i]]
        total = 0.0
        for k in range(points.shape[1]):
            column = sorted({float(points[j, k]) for j in front})
            value = float(points[i, k])
            if value in (column[0], column[-1]):
                total = math.inf
                break
            position = column.index(value)
            total += (column[position + 1] - column[position - 1]) / (column[-1] - column[0])
        crowding[i] = total
    def ahead(i, j):
        return rank[j] < rank[i] or (rank[j] == rank[i] and crowding[j] > crowding[i])

    return [sum(ahead(i, j) for j in recorded) if i in rank else None for i in range(n)]


def random_points(rng, n, m):
    """``n`` rows (a fixed shape, so one compilation) of which a random number are
    unrecorded (NaN); small integers, so that ties and duplicate points occur often."""
    points = rng.integers(0, 5, (n, m)).astype(np.float32)
    points[rng.permutation(n)[: rng.integers(0, n)]] = np.nan
    return points


jitted_pareto_ahead = jax.jit(pareto_ahead)
jitted_continues = jax.jit(pareto_asha_continues, static_argnums=2)
jitted_promotion = jax.jit(pareto_asha_promotion, static_argnums=2)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 3))
def test_pareto_ahead_matches_a_reference(seed, m):
    points = random_points(np.random.default_rng(seed), 12, m)
    ahead = np.asarray(jitted_pareto_ahead(jnp.asarray(points)))
    expected = reference_pareto_ahead(points)
    recorded = [i for i, e in enumerate(expected) if e is not None]
    assert [int(ahead[i]) for i in recorded] == [expected[i] for i in recorded]


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([2.0, 3.0]))
def test_pareto_asha_continues_keeps_the_top_fraction(seed, eta):
    rng = np.random.default_rng(seed)
    points = random_points(rng, 12, 2)
    trial = int(rng.integers(0, 12))
    expected_ahead = reference_pareto_ahead(points)
    recorded = sum(e is not None for e in expected_ahead)
    expected = expected_ahead[trial] is not None and (
        recorded < eta or expected_ahead[trial] < math.floor(recorded / eta))
    assert bool(jitted_continues(jnp.asarray(points), trial, eta)) == expected


def test_pareto_asha_keeps_the_front_before_dominated_points():
    # (0, 3), (3, 0) and (1, 1) form the front; eta = 2 keeps floor(6 / 2) = 3 of the six
    points = jnp.array([[5.0, 5.0], [0.0, 3.0], [4.0, 4.0], [3.0, 0.0], [1.0, 1.0], [2.0, 6.0]])
    kept = [i for i in range(6) if pareto_asha_continues(points, i, 2.0)]
    assert kept == [1, 3, 4]


def reference_pareto_promotion(values, promoted, eta):
    trials, rungs, _ = values.shape
    for rung in reversed(range(rungs - 1)):
        ahead = reference_pareto_ahead(values[:, rung])
        keep = math.floor(sum(a is not None for a in ahead) / eta)
        candidates = [t for t in range(trials)
                      if ahead[t] is not None and not promoted[t, rung] and ahead[t] < keep]
        if candidates:
            return True, min(candidates, key=lambda t: (ahead[t], t)), rung
    return False, None, None


def random_rungs(rng, trials, rungs, m):
    values = rng.integers(0, 5, (trials, rungs, m)).astype(np.float32)
    reached = rng.integers(0, rungs + 1, trials)  # trials reached rungs < reached[t]
    values[np.arange(rungs)[None, :] >= reached[:, None]] = np.nan
    recorded = ~np.isnan(values).any(axis=2)
    promoted = (rng.random((trials, rungs)) < 0.3) & recorded
    return values, promoted


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_pareto_asha_promotion_matches_a_reference(seed):
    values, promoted = random_rungs(np.random.default_rng(seed), 9, 3, 2)
    found, trial, rung = jitted_promotion(jnp.asarray(values), jnp.asarray(promoted), 3.0)
    expected = reference_pareto_promotion(values, promoted, 3.0)
    assert bool(found) == expected[0]
    if expected[0]:
        assert (int(trial), int(rung)) == expected[1:]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([2.0, 3.0]))
def test_pareto_asha_with_one_objective_is_asha(seed, eta):
    rng = np.random.default_rng(seed)
    values, promoted = random_rungs(rng, 9, 3, 1)
    for trial in range(9):
        column = values[:, 0, 0]
        assert bool(jitted_continues(jnp.asarray(values[:, 0]), trial, eta)) == bool(
            asha_continues(jnp.asarray(column), jnp.float32(column[trial]), eta))
    pareto = jitted_promotion(jnp.asarray(values), jnp.asarray(promoted), eta)
    single = asha_promotion(jnp.asarray(values[..., 0]), jnp.asarray(promoted), eta)
    assert bool(pareto[0]) == bool(single[0])
    if bool(single[0]):
        assert (int(pareto[1]), int(pareto[2])) == (int(single[1]), int(single[2]))
