import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo.searchers import make
from jhpo.space import Space

SPACE = Space({"x": jhpo.uniform(0, 1), "y": jhpo.uniform(0, 1), "c": jhpo.choice(["a", "b", "c"])})


@pytest.mark.parametrize("name", ["random", "quasirandom"])
def test_same_key_same_rows_and_asked_rows_become_pending(name):
    searcher = make(name, SPACE)
    rows_a, state_a, _ = searcher.ask(searcher.init(jax.random.key(0)), jax.random.key(1), 5)
    rows_b, _, _ = searcher.ask(searcher.init(jax.random.key(0)), jax.random.key(1), 5)
    np.testing.assert_array_equal(np.asarray(rows_a), np.asarray(rows_b))
    assert state_a.pending.count == 5
    state = searcher.tell(state_a, rows_a[:3], jnp.arange(3.0))
    assert state.pending.count == 2 and state.observed.count == 3


def test_quasirandom_stratifies_each_parameter():
    # Scrambled Halton: the first b^k points put exactly one point in each of the b^k
    # equal intervals of the parameter whose base is b (2 for the first, 3 for the second).
    space = Space({"x": jhpo.uniform(0, 1), "y": jhpo.uniform(0, 1)})
    searcher = make("quasirandom", space)
    state = searcher.init(jax.random.key(7))
    rows, state, _ = searcher.ask(state, jax.random.key(0), 64)
    x = np.asarray(rows[:, 0])
    assert sorted(np.floor(x * 64).astype(int)) == list(range(64))
    rows81, _, _ = make("quasirandom", space).ask(searcher.init(jax.random.key(7)), jax.random.key(0), 81)
    assert sorted(np.floor(np.asarray(rows81[:, 1]) * 81).astype(int)) == list(range(81))


def test_quasirandom_continues_the_sequence_across_asks_and_tells():
    space = Space({"x": jhpo.uniform(0, 1), "y": jhpo.uniform(0, 1)})
    searcher = make("quasirandom", space)
    all_at_once, _, _ = searcher.ask(searcher.init(jax.random.key(3)), jax.random.key(0), 12)
    state = searcher.init(jax.random.key(3))
    first, state, _ = searcher.ask(state, jax.random.key(0), 5)
    state = searcher.tell(state, first[:2], jnp.zeros(2))
    second, _, _ = searcher.ask(state, jax.random.key(1), 7)
    np.testing.assert_array_equal(np.asarray(jnp.concatenate([first, second])), np.asarray(all_at_once))


def test_quasirandom_spreads_better_than_random():
    def min_distance(rows):
        diff = np.asarray(rows)[:, None, :2] - np.asarray(rows)[None, :, :2]
        distance = np.sqrt((diff**2).sum(-1)) + np.eye(len(rows)) * 9
        return distance.min()

    space = Space({"x": jhpo.uniform(0, 1), "y": jhpo.uniform(0, 1)})
    quasi = [min_distance(make("quasirandom", space).ask(
        make("quasirandom", space).init(jax.random.key(s)), jax.random.key(0), 32)[0]) for s in range(5)]
    plain = [min_distance(space.sample(jax.random.key(s), 32)) for s in range(5)]
    assert np.median(quasi) > 1.5 * np.median(plain)


def test_unknown_searcher_names_the_choices():
    with pytest.raises(ValueError, match=r"searcher='grid' is not one of .*random"):
        make("grid", SPACE)
