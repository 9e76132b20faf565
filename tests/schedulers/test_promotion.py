import jax.numpy as jnp
import numpy as np

from jhpo.schedulers import asha_promotion, promotion


def test_admit_grows_the_state_in_powers_of_two_and_targets_the_first_rung():
    state = promotion.init_promotions(num_rungs=3, num_objectives=1)
    assert state.values.shape == (8, 3, 1)
    state = promotion.admit(state, 8)
    assert state.values.shape == (16, 3, 1) and state.target.shape == (16,)
    assert promotion.target_rung(state, 8) == 0
    assert np.all(np.asarray(state.target)[:8] == promotion.NOT_RUNNING)
    assert np.isnan(np.asarray(state.values)[8:]).all()


def test_record_keeps_the_values_at_the_target_rung_and_stops_the_trial():
    state = promotion.admit(promotion.init_promotions(3, 2), 1)
    state, rung = promotion.record(state, 1, [0.5, -2.0])
    assert rung == 0 and promotion.target_rung(state, 1) == promotion.NOT_RUNNING
    np.testing.assert_array_equal(np.asarray(state.values)[1, 0], [0.5, -2.0])
    assert np.isnan(np.asarray(state.values)[1, 1:]).all()


def test_promote_next_follows_the_asha_rule_and_targets_the_rung_above():
    state = promotion.init_promotions(3)
    values = [0.9, 0.1, 0.5, 0.7, 0.3, 0.8]
    for trial, value in enumerate(values):
        state = promotion.admit(state, trial)
        state, _ = promotion.record(state, trial, [value])
    found, expected, rung = (int(x) for x in asha_promotion(
        state.values[..., 0], state.promoted, 3.0))
    assert found and rung == 0 and expected == 1  # the best of six, floor(6 / 3) = 2 promotable
    state, trial = promotion.promote_next(state, 3.0)
    assert trial == expected and promotion.target_rung(state, trial) == 1
    assert bool(state.promoted[trial, 0])
    state, second = promotion.promote_next(state, 3.0)
    assert second == 4  # the second best; then rung 0 has no more promotable trials
    state, third = promotion.promote_next(state, 3.0)
    assert third is None


def test_a_dropped_trial_is_never_promoted():
    state = promotion.init_promotions(2)
    for trial in range(3):
        state = promotion.admit(state, trial)
    for trial, value in ((0, 0.2), (1, 0.4)):
        state, _ = promotion.record(state, trial, [value])
    state = promotion.drop(state, 2)
    assert promotion.target_rung(state, 2) == promotion.NOT_RUNNING
    assert np.isnan(np.asarray(state.values)[2]).all() and not jnp.any(state.promoted)
