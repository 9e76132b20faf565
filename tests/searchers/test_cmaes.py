"""CMA-ES from evosax as a searcher: generation bookkeeping against evosax's own update,
rows in the cube and canonical, failed trials, the missing-extra error, and regret."""

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo import problems
from jhpo.searchers import make
from jhpo.space import Space
from tests.searchers.driving import best_after

evosax_algorithms = pytest.importorskip("evosax.algorithms")

SPACE = Space({"x": jhpo.uniform(0.0, 1.0), "y": jhpo.uniform(-3.0, 3.0)})
MIXED = Space({
    "x": jhpo.uniform(-2.0, 3.0),
    "lr": jhpo.loguniform(1e-4, 1e-1),
    "n": jhpo.randint(1, 6),
    "size": jhpo.ordinal([16, 32, 64]),
    "opt": jhpo.choice(["sgd", "adam", "rms"]),
    "momentum": jhpo.uniform(0.0, 1.0).when("opt", "sgd"),
})


def solutions_of(state, rows):
    """The unbounded solutions the searcher drew for ``rows`` (from its pending buffer)."""
    pending = np.asarray(state.pending.x)
    found = [int(np.flatnonzero(np.all(pending == np.asarray(r), axis=1)
                                & np.asarray(state.pending.mask))[0]) for r in rows]
    return jnp.asarray(np.asarray(state.pending.y)[found, :-1])


def evosax_update(state, solutions, fitness, population_size, dim):
    """evosax's own CMA-ES update of the searcher's distribution, called directly."""
    strategy = evosax_algorithms.CMA_ES(population_size=population_size,
                                        solution=jnp.zeros(dim))
    params = strategy.default_params.replace(std_init=jnp.asarray(0.25, jnp.float32))
    updated, _ = strategy.tell(jax.random.key(0), solutions, fitness, state.strategy, params)
    return updated


def test_a_generation_updates_once_when_complete_whatever_the_order():
    searcher = make("cmaes", SPACE, population_size=4)
    state = searcher.init(jax.random.key(0))
    rows, state, fresh = searcher.ask(state, jax.random.key(1), 6)  # more than a generation
    assert bool(fresh.all()) and state.pending.count == 6
    order = [5, 2, 0, 3]
    values = jnp.array([3.0, 1.0, 4.0, 2.0])
    expected = evosax_update(state, solutions_of(state, rows[jnp.array(order)]), values, 4, 2)
    for told, index in enumerate(order[:3]):
        state = searcher.tell(state, rows[index][None], values[told][None])
        assert int(state.strategy.generation_counter) == 0
    state = searcher.tell(state, rows[order[3]][None], values[3][None])
    assert int(state.strategy.generation_counter) == 1
    np.testing.assert_allclose(np.asarray(state.strategy.mean), np.asarray(expected.mean),
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(state.strategy.std), np.asarray(expected.std), rtol=1e-6)
    # The two members left over were drawn from the old distribution: recorded, not used.
    state = searcher.tell(state, rows[jnp.array([1, 4])], jnp.array([0.0, 0.0]))
    assert int(state.strategy.generation_counter) == 1
    assert int(state.generation.num_told) == 0
    assert state.observed.count == 6 and state.pending.count == 0


def test_one_tell_may_complete_a_generation_and_start_the_next():
    searcher = make("cmaes", SPACE, population_size=4)
    state = searcher.init(jax.random.key(0))
    rows, state, _ = searcher.ask(state, jax.random.key(1), 4)
    more_rows, state, _ = searcher.ask(state, jax.random.key(2), 4)
    state = searcher.tell(state, rows[:2], jnp.zeros(2))
    state = searcher.tell(state, jnp.concatenate([more_rows[:2], rows[2:]]), jnp.ones(4))
    # Four of the first generation's members complete it; the fifth and sixth, drawn
    # before the update, are too late for the next one.
    assert int(state.strategy.generation_counter) == 1
    assert int(state.generation.num_told) == 0
    rows, state, _ = searcher.ask(state, jax.random.key(3), 4)
    state = searcher.tell(state, rows, jnp.arange(4.0))
    assert int(state.strategy.generation_counter) == 2


def test_failed_members_count_as_the_worst_of_their_generation():
    searcher = make("cmaes", SPACE, population_size=4)
    state = searcher.init(jax.random.key(0))
    rows, state, _ = searcher.ask(state, jax.random.key(1), 4)
    expected = evosax_update(state, solutions_of(state, rows),
                             jnp.array([2.0, 5.0, 1.0, 5.0]), 4, 2)
    state = searcher.tell(state, rows, jnp.array([2.0, 5.0, 1.0, jnp.nan]))
    np.testing.assert_allclose(np.asarray(state.strategy.mean), np.asarray(expected.mean),
                               rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(state.strategy.C)))


def test_rows_never_asked_join_the_current_generation():
    # A resumed run tells its records without asking: they still drive the update.
    searcher = make("cmaes", SPACE, population_size=4)
    state = searcher.init(jax.random.key(0))
    rows = SPACE.sample(jax.random.key(5), 4)
    expected = evosax_update(state, rows, jnp.arange(4.0), 4, 2)
    state = searcher.tell(state, rows, jnp.arange(4.0))
    assert int(state.strategy.generation_counter) == 1
    np.testing.assert_allclose(np.asarray(state.strategy.mean), np.asarray(expected.mean),
                               rtol=1e-6)


def test_rows_are_canonical_and_in_the_cube():
    searcher = make("cmaes", MIXED, std_init=2.0)  # wide: many solutions leave the cube
    state = searcher.init(jax.random.key(0))
    rows, state, _ = searcher.ask(state, jax.random.key(1), 64)
    solutions = np.asarray(state.pending.y[:64, :-1])
    assert np.mean((solutions < 0) | (solutions > 1)) > 0.3
    rows = np.asarray(rows)
    assert rows.min() >= 0.0 and rows.max() <= 1.0
    np.testing.assert_array_equal(np.asarray(MIXED.canonicalize(jnp.asarray(rows))), rows)


def test_reflection_is_the_identity_inside_and_a_mirror_at_each_face():
    from jhpo.searchers.cmaes import reflect_into_cube

    inside = jnp.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(np.asarray(reflect_into_cube(inside)), np.asarray(inside),
                               atol=1e-6)
    z = jnp.linspace(-5.0, 5.0, 101)
    np.testing.assert_allclose(np.asarray(reflect_into_cube(-z)),
                               np.asarray(reflect_into_cube(z)), atol=1e-5)  # mirror at 0
    np.testing.assert_allclose(np.asarray(reflect_into_cube(2.0 - z)),
                               np.asarray(reflect_into_cube(z)), atol=1e-5)  # mirror at 1


def test_repeats_are_flagged():
    space = Space({"c": jhpo.choice(["a", "b"])})
    searcher = make("cmaes", space, population_size=4)
    state = searcher.init(jax.random.key(0))
    rows, state, fresh = searcher.ask(state, jax.random.key(1), 4)
    distinct = len({tuple(r) for r in np.asarray(rows)})
    assert int(np.sum(np.asarray(fresh))) == distinct == 2


def test_same_sequence_same_state():
    def run():
        searcher = make("cmaes", MIXED)
        state = searcher.init(jax.random.key(0))
        for k in range(4):
            rows, state, _ = searcher.ask(state, jax.random.key(k), 5)
            state = searcher.tell(state, rows[::-1], jnp.arange(5.0))
        return state

    for a, b in zip(jax.tree.leaves(run()), jax.tree.leaves(run())):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_missing_evosax_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "evosax", None)
    monkeypatch.setitem(sys.modules, "evosax.algorithms", None)
    with pytest.raises(ImportError, match=r'pip install "jhpo\[cmaes\]"'):
        make("cmaes", SPACE)


@pytest.mark.parametrize("option, value, message", [
    ("population_size", 1, "population_size=1 must be an integer >= 2"),
    ("std_init", 0.0, "std_init=0.0 must be a number > 0"),
])
def test_bad_options_name_the_rule(option, value, message):
    with pytest.raises(ValueError, match=message):
        make("cmaes", SPACE, **{option: value})


def test_cmaes_beats_random_search_on_a_smooth_function():
    problem = problems.hartmann6()
    regret = {name: [math.log10(best_after(name, problem, seed, 200) - problem.optimum)
                     for seed in range(5)] for name in ("cmaes", "random")}
    assert np.median(regret["cmaes"]) < np.median(regret["random"]) - 0.5
