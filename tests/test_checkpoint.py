import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jhpo.checkpoint import Checkpoints


def population_state(seed):
    keys = jax.random.split(jax.random.key(seed), 4)
    return {"params": {"w": jax.random.normal(keys[0], (4, 3, 2))},
            "hp": {"lr": jnp.arange(4, dtype=jnp.float32)},
            "keys": keys,
            "step": jnp.int32(7)}


def test_save_and_restore_round_trip_with_keys(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ckpt")
    state = population_state(0)
    checkpoints.save(3, state, {"trial_ids": [4, 5, 6, 7], "rung": 1})
    restored, record = Checkpoints(tmp_path / "ckpt").restore(population_state(1))
    assert record == {"trial_ids": [4, 5, 6, 7], "rung": 1}
    np.testing.assert_array_equal(restored["params"]["w"], state["params"]["w"])
    np.testing.assert_array_equal(jax.random.key_data(restored["keys"]),
                                  jax.random.key_data(state["keys"]))
    # restored keys are usable keys, giving the same draws
    np.testing.assert_array_equal(jax.random.uniform(restored["keys"][2]),
                                  jax.random.uniform(state["keys"][2]))


def test_only_the_newest_are_kept_and_latest_is_restored(tmp_path):
    checkpoints = Checkpoints(tmp_path, max_to_keep=2)
    for step in (1, 2, 3):
        checkpoints.save(step, population_state(step), {"step": step})
    assert checkpoints.latest_step() == 3
    _, record = checkpoints.restore(population_state(0))
    assert record == {"step": 3}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["2", "3"]


def test_restore_without_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Checkpoints(tmp_path).restore(population_state(0))
