"""TPE: the good/bad split and the weights of old trials, proposals drawn where the good
group is, conditional columns, fresh rows, and regret."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo import problems
from jhpo.searchers import make, parzen, tpe
from jhpo.space import Space
from tests.searchers.driving import best_after
from tests.searchers.test_parzen import MIXED

good_slots = jax.jit(tpe.good_slots, static_argnums=(2, 3))


# ----------------------------------------------------------------------------- proposals


def test_ask_draws_from_the_good_group():
    # The best tenth of the observations lie at x < 0.2, the rest at x > 0.5: the
    # proposals should fall where the good mixture has its mass.
    space = Space({"x": jhpo.uniform(0.0, 1.0), "y": jhpo.uniform(0.0, 1.0)})
    rng = np.random.default_rng(0)
    good = np.column_stack([rng.uniform(0.0, 0.2, 5), rng.uniform(0, 1, 5)])
    bad = np.column_stack([rng.uniform(0.5, 1.0, 45), rng.uniform(0, 1, 45)])
    searcher = make("tpe", space)
    state = searcher.init(jax.random.key(0))
    state = searcher.tell(state, jnp.asarray(np.vstack([good, bad]), jnp.float32),
                          jnp.asarray(np.r_[np.zeros(5), np.ones(45)], jnp.float32))
    rows = np.vstack([np.asarray(searcher.ask(state, jax.random.key(k), 1)[0]) for k in range(40)])
    assert np.mean(rows[:, 0] < 0.3) > 0.9


# ----------------------------------------------------------------------------- the split


@pytest.mark.parametrize("count", [1, 9, 37, 300])
def test_good_group_is_the_lowest_gamma_fraction(count):
    rng = np.random.default_rng(count)
    capacity = 512
    values = np.round(rng.normal(size=capacity), 1).astype(np.float32)  # with ties
    values[rng.random(capacity) < 0.2] = np.nan  # failed trials are never good
    mask = np.arange(capacity) < count
    slots, members = good_slots(jnp.asarray(values), jnp.asarray(mask), 0.1, 25)
    ours = np.zeros(capacity, bool)
    ours[np.asarray(slots)[np.asarray(members)]] = True
    finite = [i for i in range(count) if np.isfinite(values[i])]
    num_good = min(math.ceil(0.1 * count), 25, len(finite))
    expected = np.zeros(capacity, bool)
    expected[sorted(finite, key=lambda i: values[i])[:num_good]] = True
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("count", [10, 25, 26, 60])
def test_old_members_fade_linearly_beyond_the_newest_25(count):
    members = np.zeros(count + 7, bool)
    members[np.random.default_rng(count).permutation(count + 7)[:count]] = True
    weights = np.asarray(jax.jit(tpe.fading_weights)(jnp.asarray(members)))
    fading = max(count - 25, 0)
    expected = np.r_[np.linspace(1.0 / count, 1.0, fading), np.ones(count - fading)]
    np.testing.assert_allclose(weights[members], expected, rtol=1e-6)
    assert np.all(weights[~members] == 0)


# ----------------------------------------------------------------------------- the early phase


def told(searcher, space, count, seed=0):
    """A state told ``count`` uniform rows, their values a smooth function of the row."""
    rows = space.sample(jax.random.key(seed), count)
    values = jnp.sum((rows - 0.3) ** 2, axis=1)
    return searcher.tell(searcher.init(jax.random.key(seed)), rows, values)


def asked_rows(searcher, state, asks=4):
    return np.concatenate([np.asarray(searcher.ask(state, jax.random.key(k), 2)[0])
                           for k in range(asks)])


@pytest.mark.parametrize("count, same_as", [
    (50, {"gamma": 0.3, "early_trials": 0}),  # early: the early gamma
    (120, {"early_trials": 0}),  # past the early phase: the plain searcher
])
def test_early_phase_takes_the_early_gamma_until_early_trials_are_told(count, same_as):
    # With the neighbour rule the phases differ only in gamma.
    space = Space({"x": jhpo.uniform(0.0, 1.0), "n": jhpo.randint(1, 9)})
    with_phase = make("tpe", space, bandwidth="neighbour", early_gamma=0.3)
    without = make("tpe", space, bandwidth="neighbour", **same_as)
    state = told(with_phase, space, count)
    np.testing.assert_array_equal(asked_rows(with_phase, state), asked_rows(without, state))


@pytest.mark.parametrize("space", [
    Space({"x": jhpo.uniform(0.0, 1.0), "y": jhpo.uniform(0.0, 1.0)}),
    Space({"x": jhpo.uniform(0.0, 1.0), "c": jhpo.choice(["a", "b", "c", "d"])}),
])
def test_early_phase_changes_the_proposals_of_scotts_rule_only_before_early_trials(space):
    with_phase = make("tpe", space, early_trials=60, early_gamma=0.1)
    without = make("tpe", space, early_trials=0)
    early, late = told(with_phase, space, 59), told(with_phase, space, 60)
    assert not np.array_equal(asked_rows(with_phase, early), asked_rows(without, early))
    np.testing.assert_array_equal(asked_rows(with_phase, late), asked_rows(without, late))


@pytest.mark.parametrize("early, rule", [(True, "neighbour"), (False, "scott")])
def test_bad_mixture_takes_the_neighbour_rule_early(early, rule):
    rows = MIXED.sample(jax.random.key(2), 20)
    weights = jnp.r_[jnp.ones(16), jnp.zeros(4)]
    config = tpe.TPEConfig(bandwidth="scott")
    ours = jax.jit(tpe.fit_bad_parzen, static_argnums=(0, 1))(
        MIXED, config, jnp.asarray(early), rows, weights)
    expected = jax.jit(parzen.fit_parzen, static_argnums=(0, 3, 4))(
        MIXED, rows, weights, config.prior_weight, rule)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


@pytest.mark.parametrize("early", [True, False])
def test_good_mixture_has_broad_categorical_kernels_only_early(early):
    rows = MIXED.sample(jax.random.key(3), 20)
    weights = jnp.r_[jnp.ones(12), jnp.zeros(8)]
    config = tpe.TPEConfig(prior_weight=0.8)
    ours = jax.jit(tpe.fit_good_parzen, static_argnums=(0, 1))(
        MIXED, config, jnp.asarray(early), rows, weights)
    opt = MIXED.columns[MIXED.names.index("opt")].start
    expected = 0.8 if early else 0.8 / (12 + 1)  # "opt" is active in all 12 rows
    assert float(ours.smoothing[opt]) == pytest.approx(expected, rel=1e-6)
    plain = jax.jit(parzen.fit_parzen, static_argnums=(0, 3, 4))(
        MIXED, rows, weights, config.prior_weight, config.bandwidth)
    for name in ("centres", "active", "weights", "bandwidth"):  # numeric kernels unchanged
        np.testing.assert_allclose(np.asarray(getattr(ours, name)),
                                   np.asarray(getattr(plain, name)), rtol=1e-6)


# ----------------------------------------------------------------------------- conditionals


def test_conditional_proposals_are_canonical():
    searcher = make("tpe", MIXED, num_initial=5)
    state = searcher.init(jax.random.key(0))
    for k in range(3):
        rows, state, _ = searcher.ask(state, jax.random.key(k), 6)
        values = jnp.asarray(np.asarray(rows).sum(axis=1), jnp.float32)
        state = searcher.tell(state, rows, values)
    np.testing.assert_array_equal(np.asarray(MIXED.canonicalize(rows)), np.asarray(rows))


# ----------------------------------------------------------------------------- the searcher


def test_ask_avoids_observed_pending_and_batch_rows_until_the_space_is_used_up():
    space = Space({"c": jhpo.choice(["a", "b", "c"]), "n": jhpo.randint(1, 4)})  # 12 configs
    searcher = make("tpe", space, num_initial=3)
    state = searcher.init(jax.random.key(0))
    first, state, fresh = searcher.ask(state, jax.random.key(1), 4)
    state = searcher.tell(state, first, jnp.arange(4.0))
    second, state, fresh_second = searcher.ask(state, jax.random.key(2), 8)
    seen = {tuple(r) for r in np.asarray(jnp.concatenate([first, second]))}
    assert len(seen) == 12 and bool(fresh.all()) and bool(fresh_second.all())
    _, state, fresh_last = searcher.ask(state, jax.random.key(3), 1)
    assert not bool(fresh_last[0])  # nothing left: a repeat, flagged


def test_same_sequence_same_state_and_rows():
    searcher = make("tpe", MIXED, num_initial=4)

    def run():
        state = searcher.init(jax.random.key(0))
        outputs = []
        for k in range(3):
            rows, state, _ = searcher.ask(state, jax.random.key(k), 3)
            state = searcher.tell(state, rows[:2], jnp.arange(2.0) + k)
            outputs.append(np.asarray(rows))
        return outputs, state

    (rows_a, state_a), (rows_b, state_b) = run(), run()
    np.testing.assert_array_equal(np.concatenate(rows_a), np.concatenate(rows_b))
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("option, value, message", [
    ("num_initial", -1, "num_initial=-1 must be an integer >= 0"),
    ("num_candidates", 0, "num_candidates=0 must be an integer >= 1"),
    ("gamma", 1.5, r"gamma=1.5 must be a number in \(0, 1\]"),
    ("max_good", 0, "max_good=0 must be an integer >= 1"),
    ("prior_weight", 0.0, "prior_weight=0.0 must be a number > 0"),
    ("bandwidth", "silverman", "bandwidth='silverman' must be one of scott, neighbour"),
    ("early_trials", -1, "early_trials=-1 must be an integer >= 0"),
    ("early_gamma", 0.0, r"early_gamma=0.0 must be a number in \(0, 1\]"),
])
def test_bad_options_name_the_rule(option, value, message):
    with pytest.raises(ValueError, match=message):
        make("tpe", MIXED, **{option: value})


def test_tpe_beats_random_search_on_a_smooth_function():
    problem = problems.branin()
    tpe = [best_after("tpe", problem, seed, 50) for seed in range(5)]
    plain = [best_after("random", problem, seed, 50) for seed in range(5)]
    assert np.median(tpe) < np.median(plain) - 0.1
