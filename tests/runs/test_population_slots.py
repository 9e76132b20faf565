import numpy as np

from jhpo.runs.population_slots import (
    LossTail,
    Paused,
    pack_paused,
    tail_length,
    unpack_paused,
)


def test_a_loss_tail_averages_each_slots_last_losses_as_numpy_does():
    rng = np.random.default_rng(0)
    tail = LossTail.empty(3, 4)
    history = [[], [], []]
    for width in (1, 3, 2, 5):
        slots = np.array([0, 2]) if width == 3 else np.arange(3)
        losses = rng.random((len(slots), width)).astype(np.float32)
        tail.extend(losses, slots)
        for row, slot in zip(losses, slots):
            history[slot] += list(row)
        expected = [np.mean(np.asarray(h[-4:], np.float32)) for h in history]
        # bit for bit the mean numpy takes of the same last losses
        np.testing.assert_array_equal(tail.means(), np.asarray(expected, np.float32))
    tail.clear(1)
    assert np.isnan(tail.means()[1]) and not np.isnan(tail.means()[[0, 2]]).any()
    tail.extend(np.array([[2.0, 4.0]], np.float32), np.array([1]))
    assert tail.means()[1] == 3.0  # a trial with fewer losses than the tail averages those


def test_the_tail_is_a_tenth_of_the_training():
    assert [tail_length(s) for s in (1, 9, 10, 27, 500)] == [1, 1, 1, 2, 50]


def test_paused_trials_pack_into_fixed_shapes_and_back():
    member = {"w": np.zeros((1, 3), np.float32), "count": np.zeros((1,), np.int32)}
    paused = {7: Paused({"w": np.arange(3, dtype=np.float32), "count": np.int32(2)},
                        np.array([0.5, 0.25], np.float32), 9, 12.5, {"val_error": 0.3}),
              2: Paused({"w": -np.ones(3, np.float32), "count": np.int32(5)},
                        np.array([0.1, 0.9], np.float32), 3, 4.0, {"val_error": 0.7})}
    packed = pack_paused(paused, member, dim=2)
    assert packed["trial"].tolist() == [2, 7, -1, -1, -1, -1, -1, -1]  # ids first, 8 at least
    assert packed["state"]["w"].shape == (8, 3) and packed["row"].shape == (8, 2)
    assert pack_paused(paused, member, dim=2, capacity=2)["trial"].tolist() == [2, 7]
    back = unpack_paused(packed, {"2": paused[2].metrics, "7": paused[7].metrics})
    assert sorted(back) == [2, 7]
    for trial_id, original in paused.items():
        np.testing.assert_array_equal(back[trial_id].state["w"], original.state["w"])
        assert back[trial_id].state["count"] == original.state["count"]
        np.testing.assert_array_equal(back[trial_id].row, original.row)
        assert (back[trial_id].steps, back[trial_id].started_at, back[trial_id].metrics) == (
            original.steps, original.started_at, original.metrics)
