"""The "bo" searcher with many observations: the exact GP while the buffer holds at most
``model_rows`` rows, a subset (the best half and a random rest) beyond, and large batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo.searchers import make
from jhpo.searchers.bo import targets
from jhpo.space import Space

SPACE = Space({name: jhpo.uniform(0.0, 1.0) for name in ("a", "b", "c")})
# Small efforts: these tests are about which rows the GPs see, not about search quality.
OPTIONS = {"num_initial": 3, "num_screen": 128, "num_starts": 4, "ascent_steps": 10,
           "fit_evaluations": 10, "num_restarts": 4, "num_local": 32}
NUM_TOLD = 40  # a buffer of 64 rows


def told_state(searcher, count=NUM_TOLD):
    rows = jax.random.uniform(jax.random.key(5), (count, SPACE.dim))
    values = jnp.sum((rows - 0.3) ** 2, axis=1)
    return searcher.tell(searcher.init(jax.random.key(0)), rows, values)


def test_modelled_rows_are_every_row_up_to_the_limit_and_a_subset_beyond():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((64, 3)))
    values = jnp.asarray(rng.standard_normal((64, 2)))
    mask = jnp.arange(64) < 50
    key = jax.random.key(0)
    for limit in (64, 100):
        same = targets.modelled_rows(limit, x, values, mask, key)
        for got, given in zip(same, (x, values, mask)):
            np.testing.assert_array_equal(got, given)

    sub_x, sub_values, sub_mask = targets.modelled_rows(32, x, values, mask, key)
    assert sub_x.shape == (32, 3) and sub_values.shape == (32, 2) and bool(sub_mask.all())
    # Each row keeps its own values, and no row is taken twice.
    found = [int(np.flatnonzero((np.asarray(x) == row).all(1))[0]) for row in np.asarray(sub_x)]
    assert len(set(found)) == 32 and max(found) < 50
    np.testing.assert_array_equal(sub_values, np.asarray(values)[found])
    # The best half by the objective (column 0) is always in.
    best = np.argsort(np.asarray(values)[:50, 0])[:int(targets.BEST_SHARE * 32)]
    assert set(best.tolist()) <= set(found)


def asks(model_rows):
    searcher = make("bo", SPACE, model_rows=model_rows, **OPTIONS)
    rows, state, _ = searcher.ask(told_state(searcher), jax.random.key(1), 2)
    return np.asarray(rows), jax.tree.map(np.asarray, state.params)


def test_the_gp_is_exact_up_to_model_rows_and_a_subset_beyond():
    exact_rows, exact_params = asks(model_rows=1024)
    # A threshold at the buffer's capacity (64) still conditions on every row: the same asks.
    at_capacity_rows, at_capacity_params = asks(model_rows=64)
    np.testing.assert_array_equal(at_capacity_rows, exact_rows)
    for a, b in zip(at_capacity_params, exact_params):
        np.testing.assert_array_equal(a, b)
    # Below it the GPs see 32 of the 40 rows: another fit, other proposals.
    subset_rows, subset_params = asks(model_rows=32)
    assert not np.array_equal(subset_rows, exact_rows)
    assert not np.array_equal(subset_params.log_lengthscale, exact_params.log_lengthscale)


@pytest.mark.parametrize("model_rows", [0, 1, 2.5])
def test_model_rows_must_be_a_count_of_at_least_two(model_rows):
    with pytest.raises(ValueError, match="model_rows"):
        make("bo", SPACE, model_rows=model_rows)


def test_a_batch_of_64_beyond_the_threshold_is_64_distinct_fresh_rows():
    searcher = make("bo", SPACE, model_rows=32, **OPTIONS)
    state = told_state(searcher)
    rows, after, fresh = searcher.ask(state, jax.random.key(2), 64)
    rows = np.asarray(rows)
    assert rows.shape == (64, SPACE.dim) and bool(fresh.all())
    assert len({row.tobytes() for row in rows}) == 64
    observed = np.asarray(state.observed.x)[np.asarray(state.observed.mask)]
    assert not any((observed == row).all(1).any() for row in rows)
    assert after.pending.count == 64
