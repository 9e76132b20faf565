import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jhpo
from jhpo.space.encoding import codec_for, holds_within, merge_intervals

INTERVALS = st.lists(st.tuples(st.integers(-5, 30), st.integers(-5, 30)), max_size=6)


@settings(max_examples=100, deadline=None)
@given(INTERVALS)
def test_merged_intervals_hold_the_same_integers_disjoint_and_sorted(intervals):
    merged = merge_intervals(intervals)
    covered = {k for a, b in intervals for k in range(a, b + 1)}
    assert {k for a, b in merged for k in range(a, b + 1)} == covered
    assert all(a <= b for a, b in merged)
    assert all(b1 + 1 < a2 for (_, b1), (a2, _) in zip(merged, merged[1:]))


@settings(max_examples=30, deadline=None)
@given(INTERVALS)
def test_holds_within_matches_membership(intervals):
    positions = jnp.arange(-6, 32, dtype=jnp.int32)
    expected = [any(a <= p <= b for a, b in intervals) for p in range(-6, 32)]
    np.testing.assert_array_equal(np.asarray(holds_within(positions, intervals)), expected)


@pytest.mark.parametrize("domain", [
    jhpo.randint(-3, 40), jhpo.lograndint(1, 3000), jhpo.lograndint(2**50, 2**50 + 700),
    jhpo.choice(["a", "b", None]), jhpo.ordinal([3, 1, 2, 9]),
], ids=repr)
def test_every_position_survives_its_own_block(domain):
    codec = codec_for(domain)
    positions = jnp.arange(codec.size, dtype=jnp.int32)
    block = codec.block(positions)
    assert block.shape == (codec.size, codec.width) and block.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(codec.positions(block)), np.asarray(positions))


@pytest.mark.parametrize("domain", [jhpo.uniform(-1.0, 2.0), jhpo.loguniform(1e-300, 1e300)], ids=repr)
def test_float_grid_positions_survive_their_blocks(domain):
    codec = codec_for(domain)
    positions = jnp.concatenate([jnp.arange(5), 2**24 - jnp.arange(5),
                                 jax.random.randint(jax.random.key(0), (500,), 0, 2**24 + 1)])
    positions = positions.astype(jnp.int32)
    np.testing.assert_array_equal(np.asarray(codec.positions(codec.block(positions))), np.asarray(positions))


def test_integer_bins_from_uniform_draws_match_their_edges():
    # lograndint(1, 100): integer v owns [log(v - 0.5), log(v + 0.5)] of [log 0.5, log 100.5].
    codec = codec_for(jhpo.lograndint(1, 100))
    u = jnp.linspace(0.0, 1.0, 20001, dtype=jnp.float32)
    offsets = np.asarray(codec.from_uniform(u))
    continuous = 0.5 * (100.5 / 0.5) ** np.asarray(u, np.float64)
    expected = np.clip(np.floor(continuous + 0.5), 1, 100) - 1
    disagree = offsets != expected
    # only where u sits within float32 rounding of a bin edge
    edge_distance = np.abs(continuous - np.round(continuous - 0.5) - 0.5)
    assert np.all(edge_distance[disagree] < 1e-4 * continuous[disagree])
    assert disagree.mean() < 1e-3
