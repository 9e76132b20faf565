"""Which observations a GP conditions on: fixed-shape subsets of a buffer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jhpo import gp


def test_random_subset_takes_masked_rows_first():
    x = jnp.arange(8.0)[:, None]
    y = jnp.arange(8.0)
    mask = jnp.asarray([True, False, True, True, False, False, True, False])
    sub_x, sub_y, sub_mask = gp.random_subset(jax.random.key(0), x, y, mask, 4)
    assert bool(sub_mask.all())
    assert sorted(np.asarray(sub_y).tolist()) == [0.0, 2.0, 3.0, 6.0]
    np.testing.assert_array_equal(sub_x[:, 0], sub_y)


def test_best_and_random_takes_the_best_then_masked_then_padding():
    rng = np.random.default_rng(0)
    scores = jnp.asarray(rng.standard_normal(32))
    mask = jnp.asarray(rng.random(32) < 0.6)
    masked = np.flatnonzero(np.asarray(mask))
    best = masked[np.argsort(np.asarray(scores)[masked])[:4]]
    for seed in range(3):
        index = np.asarray(gp.best_and_random(jax.random.key(seed), scores, mask, 10, 4))
        assert len(set(index.tolist())) == 10
        assert set(best.tolist()) <= set(index.tolist())
        assert np.asarray(mask)[index].all()  # enough masked rows: no padding
    # Fewer masked rows than the size: every one of them, then padding.
    few = jnp.zeros(32, bool).at[jnp.asarray([3, 7, 11])].set(True)
    index = np.asarray(gp.best_and_random(jax.random.key(0), scores, few, 5, 2))
    assert set(index.tolist()) >= {3, 7, 11} and len(set(index.tolist())) == 5


def test_best_and_random_draws_the_rest_afresh_for_each_key():
    scores = jnp.arange(64.0)
    mask = jnp.ones(64, bool)
    draws = [set(np.asarray(gp.best_and_random(jax.random.key(s), scores, mask, 16, 8)).tolist())
             for s in range(4)]
    for draw in draws:
        assert set(range(8)) <= draw  # the 8 lowest scores
    assert len({frozenset(d - set(range(8))) for d in draws}) == 4


def test_a_subset_holding_every_observation_gives_the_exact_posterior():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.random((16, 3)))
    y = jnp.asarray(rng.standard_normal(16))
    mask = jnp.arange(16) < 11
    params = gp.GPParams(jnp.log(jnp.asarray([0.3, 0.5, 0.8])), jnp.asarray(0.2),
                         jnp.log(jnp.asarray(1e-3)), jnp.asarray(0.1))
    query = jnp.asarray(rng.random((6, 3)))
    index = gp.best_and_random(jax.random.key(0), y, mask, 12, 6)
    exact = gp.predict(gp.posterior(params, x, y, mask), query)
    subset = gp.predict(gp.posterior(params, x[index], y[index], mask[index]), query)
    for a, b in zip(subset, exact):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # A subset that leaves observations out is not the exact posterior.
    fewer = gp.best_and_random(jax.random.key(0), y, mask, 8, 4)
    mean, _ = gp.predict(gp.posterior(params, x[fewer], y[fewer], mask[fewer]), query)
    assert np.max(np.abs(np.asarray(mean) - np.asarray(exact[0]))) > 1e-3


@pytest.mark.parametrize("size, num_best", [(20, 4), (4, 5), (4, -1)])
def test_best_and_random_rejects_impossible_sizes(size, num_best):
    with pytest.raises(ValueError, match="num_best"):
        gp.best_and_random(jax.random.key(0), jnp.zeros(16), jnp.ones(16, bool), size, num_best)
