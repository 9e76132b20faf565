import jax.numpy as jnp
import numpy as np

from jhpo.searchers.base import append, capacity_for, compact, empty_buffer, remove_rows


def test_capacity_grows_by_powers_of_two():
    assert [capacity_for(n) for n in (0, 8, 9, 16, 17, 100)] == [8, 8, 16, 16, 32, 128]
    buffer = empty_buffer(2)
    capacities = []
    for i in range(20):
        buffer = append(buffer, jnp.full((1, 2), i / 20.0), jnp.array([float(i)]))
        capacities.append(buffer.capacity)
    assert sorted(set(capacities)) == [8, 16, 32]
    assert buffer.count == 20
    np.testing.assert_array_equal(np.asarray(buffer.y[:20]), np.arange(20.0))
    assert not bool(buffer.mask[20:].any())


def test_remove_rows_masks_only_equal_rows_and_append_reuses_slots():
    buffer = append(empty_buffer(2), jnp.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    buffer = remove_rows(buffer, jnp.array([[0.3, 0.4], [0.9, 0.9]]))
    assert buffer.count == 2
    kept = np.asarray(buffer.x[np.asarray(buffer.mask)])
    np.testing.assert_allclose(kept, [[0.1, 0.2], [0.5, 0.6]])
    buffer = append(buffer, jnp.array([[0.7, 0.8]]))
    assert buffer.count == 3 and buffer.capacity == 8
    np.testing.assert_allclose(np.asarray(compact(buffer).x[:3]), [[0.1, 0.2], [0.5, 0.6], [0.7, 0.8]])
