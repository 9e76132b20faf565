"""The trust region of ``bo`` (``jhpo.searchers.bo.trust``): its rule against a plain
Python replay of the told values, and every proposal inside its box."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo.searchers import make
from jhpo.searchers.bo import Outputs, kernels, make_config
from jhpo.searchers.bo.options import config_for_ask
from jhpo.searchers.bo.trust import TrustRegionConfig, region_box, region_history
from jhpo.space import Space

SPACE = Space({"a": jhpo.uniform(0.0, 1.0), "b": jhpo.uniform(-2.0, 2.0),
               "c": jhpo.loguniform(1e-3, 1.0)})
OPTIONS = {"num_initial": 3, "num_screen": 256, "num_starts": 4, "ascent_steps": 15,
           "fit_evaluations": 15, "num_restarts": 4, "trust_region": True}
SMALL = TrustRegionConfig(start=2, failure_tolerance=2, success_tolerance=2, initial=0.5,
                          minimum=0.1, maximum=1.0)


def replayed_history(config, values):
    """The region's side, first row and restarts, by a direct loop over the rule."""
    side, best, successes, failures, begins_at, restarts = config.initial, math.inf, 0, 0, 0, 0
    for index, value in enumerate(values):
        if index >= config.start and best < math.inf:
            if math.isfinite(value) and value < best - 1e-3 * abs(best):
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
        if successes == config.success_tolerance:
            side, successes = min(2 * side, config.maximum), 0
        if failures == config.failure_tolerance:
            side, failures = side / 2, 0
        if math.isfinite(value):
            best = min(best, value)
        if side < config.minimum:
            side, best, successes, failures = config.initial, math.inf, 0, 0
            begins_at, restarts = index + 1, restarts + 1
    return side, begins_at, restarts


def history(config, values):
    with jax.enable_x64(True):
        result = region_history(config, jnp.asarray(values, jnp.float64),
                                jnp.ones(len(values), bool))
    return float(result.side), int(result.begins_at), int(result.restarts)


@pytest.mark.parametrize("seed", range(6))
def test_the_region_follows_a_direct_replay_of_the_rule(seed):
    rng = np.random.default_rng(seed)
    # A downward drift with noise: runs of successes and of failures, some failed trials.
    values = np.cumsum(rng.normal(-0.2, 1.0, 40))
    values[rng.random(40) < 0.1] = np.nan
    side, begins_at, restarts = history(SMALL, values)
    expected = replayed_history(SMALL, values.tolist())
    assert side == pytest.approx(expected[0])
    assert (begins_at, restarts) == expected[1:]


def test_improvements_double_the_side_up_to_its_maximum():
    # After the two rows before ``start``, every row improves: two in a row double it.
    assert history(SMALL, [5.0, 4.0, 3.0, 2.0])[0] == pytest.approx(1.0)
    assert history(SMALL, [5.0, 4.0, 3.0, 2.0, 1.0, 0.5])[0] == pytest.approx(1.0)


def test_failures_halve_the_side_and_a_collapse_restarts_the_region():
    assert history(SMALL, [1.0, 2.0, 3.0, 3.0])[0] == pytest.approx(0.25)
    # 0.5 -> 0.25 -> 0.125 -> 0.0625 < 0.1: the region restarts after the sixth failure
    # (row 7), at its initial side, and begins at the next row.
    assert history(SMALL, [1.0] + [2.0] * 7) == (pytest.approx(0.5), 8, 1)
    # The first row of the new region only sets its best: one failure after it, not two.
    assert history(SMALL, [1.0] + [2.0] * 7 + [9.0, 9.5])[0] == pytest.approx(0.5)
    assert history(SMALL, [1.0] + [2.0] * 7 + [9.0, 9.5, 9.5])[0] == pytest.approx(0.25)


def test_the_box_is_centred_on_the_regions_best_row_and_shaped_by_the_length_scales():
    with jax.enable_x64(True):
        x = jnp.asarray([[0.1, 0.1], [0.5, 0.6], [0.9, 0.9]])
        values = jnp.asarray([3.0, 1.0, 2.0])
        log_lengthscale = jnp.log(jnp.asarray([0.1, 0.4]))
        box = region_box(SMALL, x, values, jnp.ones(3, bool), log_lengthscale,
                         jnp.ones(2, bool))
    # Side 0.5 (one failure), weights 0.1 / 0.2 and 0.4 / 0.2 (geometric mean 0.2).
    np.testing.assert_allclose(box.low, [0.5 - 0.125, 0.6 - 0.5], atol=1e-12)
    np.testing.assert_allclose(box.high, [0.5 + 0.125, 1.0], atol=1e-12)
    np.testing.assert_allclose(box.centre, [0.5, 0.6])
    assert bool(box.open)


def test_a_restarted_region_without_rows_is_the_whole_cube_and_unboxed_columns_stay_whole():
    x = jnp.linspace(0.0, 1.0, 16).reshape(8, 2)
    values = jnp.asarray([1.0] + [2.0] * 7)  # collapses at the last row (see above)
    with jax.enable_x64(True):
        restarted = region_box(SMALL, x, values, jnp.ones(8, bool), jnp.zeros(2),
                               jnp.ones(2, bool))
        partly_boxed = region_box(SMALL, x[:4], values[:4], jnp.ones(4, bool), jnp.zeros(2),
                                  jnp.asarray([True, False]))
    assert not bool(restarted.open)
    np.testing.assert_array_equal(restarted.low, [0.0, 0.0])
    np.testing.assert_array_equal(restarted.high, [1.0, 1.0])
    assert float(partly_boxed.high[0] - partly_boxed.low[0]) < 1.0
    np.testing.assert_array_equal([partly_boxed.low[1], partly_boxed.high[1]], [0.0, 1.0])


def assert_inside(rows, box):
    rows = np.asarray(rows, np.float64)
    # Canonical floats lie on a grid of 2^-24 of the cube.
    assert np.all(rows >= np.asarray(box.low) - 1e-6), (rows, box.low)
    assert np.all(rows <= np.asarray(box.high) + 1e-6), (rows, box.high)


def told_state(searcher, num):
    """A state told ``num`` rows whose first one stays the best (every later one fails)."""
    rows = jax.random.uniform(jax.random.key(5), (num, SPACE.dim))
    rows = SPACE.canonicalize(rows)
    values = 1.0 + jnp.arange(num, dtype=jnp.float32) / num
    return searcher.tell(searcher.init(jax.random.key(0)), rows, values)


def box_of(state, config):
    y = state.observed.y.reshape(state.observed.capacity, -1)[:, 0]
    with jax.enable_x64(True):
        return region_box(config.propose.trust_region, state.observed.x.astype(jnp.float64),
                          y.astype(jnp.float64), state.observed.mask,
                          state.params.log_lengthscale[0].astype(jnp.float64),
                          jnp.ones(SPACE.dim, bool))


@pytest.mark.parametrize("n", [1, 4])
def test_every_proposal_lies_in_the_box_of_the_told_history(n):
    searcher = make("bo", SPACE, **OPTIONS)
    config = make_config(SPACE, **OPTIONS)
    state = told_state(searcher, 15)  # 12 failures after the design: the side is 0.2
    rows, after, fresh = searcher.ask(state, jax.random.key(1), n)
    box = box_of(after, config)  # the fit the proposals used; pending rows do not move it
    assert float(np.max(np.asarray(box.high - box.low))) < 0.9
    assert_inside(rows, box)
    assert bool(np.all(np.asarray(fresh)))
    assert len({np.asarray(r).tobytes() for r in rows}) == n


def test_a_small_box_confines_the_proposal_kernel():
    config = make_config(SPACE, **OPTIONS)
    tiny = config.propose._replace(trust_region=config.propose.trust_region._replace(
        initial=0.05, minimum=0.01))
    searcher = make("bo", SPACE, **OPTIONS)
    state = told_state(searcher, 6)
    with jax.enable_x64(True):
        row, found = kernels.propose_kernel(SPACE, tiny, Outputs(), state.params,
                                            state.observed, state.pending, None,
                                            jax.random.key(2))
    box = box_of(state, config._replace(propose=tiny))
    assert bool(found)
    assert float(np.max(np.asarray(box.high - box.low))) < 0.5
    assert_inside(row[None], box)


@pytest.mark.parametrize("options", [
    {"trust_region": "yes"},
    {"trust_region": 1},
    {"trust_region": True, "num_objectives": 2},
    {"trust_region": True, "num_constraints": 1},
    {"trust_region": True, "multi_fidelity": True},
])
def test_bad_trust_region_options_name_the_option(options):
    with pytest.raises(ValueError, match="trust_region"):
        make_config(SPACE, **options)


@pytest.mark.parametrize("options, expected", [
    ({}, True),
    ({"trust_region": "auto"}, True),
    ({"trust_region": False}, False),
    ({"num_objectives": 2}, False),
    ({"num_constraints": 1}, False),
    ({"multi_fidelity": True}, False),
    ({"cost_aware": True}, True),
])
def test_auto_trust_region_is_on_only_for_a_single_value(options, expected):
    config = make_config(SPACE, **options)
    assert (config.propose.trust_region is not None) == expected


@pytest.mark.parametrize("taken, expected", [
    ([0.1, 0.3, 0.9], 0.5),  # the untaken row that scores best (score: -x)
    ([0.3, 0.5, 0.7, 0.9], 0.1),
])
def test_the_fallback_is_the_best_scoring_untaken_row_of_the_whole_space(taken, expected):
    lattice = Space({"n": jhpo.randint(1, 5)})  # five rows: 0.1, 0.3, ..., 0.9
    with jax.enable_x64(True):
        x_all = jnp.asarray(taken, jnp.float64)[:, None]
        row, found = kernels.best_untaken(lattice, lambda rows: -rows[:, 0], jax.random.key(0),
                                          x_all, jnp.ones(len(taken), bool))
    assert bool(found)
    assert float(row[0]) == pytest.approx(expected, abs=1e-6)


def test_the_fallback_says_when_every_row_is_taken():
    lattice = Space({"n": jhpo.randint(1, 5)})
    with jax.enable_x64(True):
        x_all = jnp.asarray([0.1, 0.3, 0.5, 0.7, 0.9], jnp.float64)[:, None]
        _, found = kernels.best_untaken(lattice, lambda rows: -rows[:, 0], jax.random.key(0),
                                        x_all, jnp.ones(5, bool))
    assert not bool(found)


@pytest.mark.parametrize("trust_region, n, boxed", [
    ("auto", 1, True), ("auto", 4, False), (True, 1, True), (True, 4, True), (False, 1, False),
])
def test_auto_keeps_the_region_to_one_row_asks_and_true_to_batches_too(trust_region, n, boxed):
    config = config_for_ask(make_config(SPACE, trust_region=trust_region), n)
    assert (config.propose.trust_region is not None) == boxed
