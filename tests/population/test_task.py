"""``Task`` inputs: hyperparameter columns, member keys, the masked loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jhpo import population as pop
from tests.population.toy_task import TASK


def test_stack_hparams_fills_defaults_and_types():
    stacked = pop.stack_hparams(TASK, [{"learning_rate": 0.1}, {"batch_size": 3}])
    assert stacked["learning_rate"].dtype == np.float32 and stacked["batch_size"].dtype == np.int32
    np.testing.assert_allclose(stacked["learning_rate"], [0.1, 0.05])
    np.testing.assert_array_equal(stacked["batch_size"], [16, 3])


@pytest.mark.parametrize(
    "configs, match",
    [
        ([{"dropout": 0.1}], "dropout"),
        ([{"batch_size": 2.5}], "batch_size"),
        ([{"momentum": "high"}], "momentum"),
        ([], "configs"),
    ],
)
def test_stack_hparams_rejects_bad_configs(configs, match):
    with pytest.raises(ValueError, match=match):
        pop.stack_hparams(TASK, configs)


def test_check_hparams_completes_columns_with_defaults():
    columns, size = pop.check_hparams(TASK, {"learning_rate": [0.1, 0.2, 0.3]})
    assert size == 3
    np.testing.assert_array_equal(columns["batch_size"], [16, 16, 16])
    assert columns["batch_size"].dtype == np.int32 and columns["momentum"].dtype == np.float32


@pytest.mark.parametrize(
    "hparams, match",
    [
        ({"dropout": [0.1]}, "dropout"),
        ({"learning_rate": [0.1, 0.2], "momentum": [0.5]}, "same length"),
        ({"learning_rate": 0.1}, "vector"),
    ],
)
def test_check_hparams_rejects_bad_columns(hparams, match):
    with pytest.raises(ValueError, match=match):
        pop.check_hparams(TASK, hparams)


def test_member_keys_of_any_ids_match_the_contiguous_seeds():
    # A scheduled run keys slots by trial id; the unscheduled run keys members
    # offset .. offset + count - 1: the same trial must get the same key.
    contiguous = np.asarray(jax.random.key_data(pop.member_seeds(3, 6, offset=2)))
    picked = jax.random.key_data(pop.member_keys(3, np.array([7, 2, 5])))
    np.testing.assert_array_equal(picked, contiguous[[5, 0, 3]])
    other_seed = jax.random.key_data(pop.member_keys(4, np.array([7, 2, 5])))
    assert not np.array_equal(other_seed, picked)


def test_typed_keys_accepts_integers_and_keys_only():
    from_ints = pop.typed_keys(np.array([1, 2]))
    np.testing.assert_array_equal(jax.random.key_data(from_ints)[1], jax.random.key_data(jax.random.key(2)))
    assert pop.typed_keys(from_ints) is from_ints
    with pytest.raises(ValueError, match="seeds"):
        pop.typed_keys(np.array([0.5, 1.5]))


def test_masked_mean_counts_only_real_examples():
    values = jnp.array([1.0, 3.0, 100.0])
    assert float(pop.masked_mean(values, jnp.array([True, True, False]))) == 2.0
