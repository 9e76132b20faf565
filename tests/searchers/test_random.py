import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import qmc

import jhpo
from jhpo.searchers import make
from jhpo.searchers.random import halton_bases, quasirandom, scrambled_halton
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


def fills_every_box(points: np.ndarray, divisions: tuple[int, ...]) -> bool:
    """Whether ``points`` (one per box) put exactly one point in each box of the grid that
    cuts coordinate i of the unit cube into ``divisions[i]`` equal intervals."""
    boxes = {tuple(int(p * d) for p, d in zip(point, divisions)) for point in points}
    return len(points) == int(np.prod(divisions)) == len(boxes)


def halton_strata(bases: list[int], num_points: int):
    """Blocks of a Halton sequence and the grids each fills, as ``(first, count, divisions)``.

    In base b the points m b^k to (m + 1) b^k - 1 share their digits beyond the k-th
    and run through every k-digit prefix, so they fill the b^k intervals of the unit
    line; by the Chinese remainder theorem the first b1^k1 b2^k2 points fill the
    b1^k1 x b2^k2 boxes of two coordinates. Digit permutations (scrambling) keep both.
    """
    for column, base in enumerate(bases):
        count = base
        while count <= num_points:
            for first in range(0, num_points - count + 1, count):
                yield first, count, {column: count}
            count *= base
    for (a, base_a), (b, base_b) in itertools.combinations(enumerate(bases), 2):
        for count_a, count_b in [(base_a, base_b), (base_a**2, base_b), (base_a**3, base_b**2)]:
            if count_a * count_b <= num_points:
                yield 0, count_a * count_b, {a: count_a, b: count_b}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scrambled_halton_has_the_strata_of_scipys_halton(seed):
    space = Space({name: jhpo.uniform(0, 1) for name in "abcd"})
    bases = [int(b) for b in halton_bases(space)]
    assert bases == [2, 3, 5, 7]
    num_points = 343
    permutations = quasirandom(space).init(jax.random.key(seed)).permutations
    ours = np.asarray(scrambled_halton(permutations, halton_bases(space), jnp.arange(num_points)))
    reference = qmc.Halton(d=len(bases), scramble=True, seed=seed).random(num_points)
    checked = 0
    for first, count, grid in halton_strata(bases, num_points):
        columns, divisions = list(grid), tuple(grid.values())
        assert fills_every_box(reference[first:first + count, columns], divisions)
        assert fills_every_box(ours[first:first + count, columns], divisions), (first, grid)
        checked += 1
    assert checked > 300
    # Scrambled: another key, other points (the strata alone say nothing about this).
    other = quasirandom(space).init(jax.random.key(seed + 10)).permutations
    assert not np.allclose(ours, np.asarray(scrambled_halton(other, halton_bases(space),
                                                             jnp.arange(num_points))))


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
