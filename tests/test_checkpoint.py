import hashlib
import json
import shutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jhpo.checkpoint import Checkpoints, CorruptCheckpointError, fingerprint_of


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


# ----------------------------------------------------------------------------- damage and identity

FINGERPRINT = fingerprint_of({"space": {"x": "uniform(0, 1)"}, "seed": 0})


def state_leaves(state):
    """Every array of ``state``, keys as their raw data, for bit-for-bit comparison."""
    return [np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
                       else leaf) for leaf in jax.tree.leaves(state)]


def assert_bit_equal(state, expected):
    for got, want in zip(state_leaves(state), state_leaves(expected), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


@pytest.fixture(scope="module")
def two_saved(tmp_path_factory):
    """A directory with checkpoints 1 and 2 of one run (states of seeds 1 and 2)."""
    directory = tmp_path_factory.mktemp("saved") / "ckpt"
    checkpoints = Checkpoints(directory, fingerprint=FINGERPRINT)
    for step in (1, 2):
        checkpoints.save(step, population_state(step), {"step": step})
    checkpoints.close()
    return directory


def damaged_copy(two_saved, tmp_path, damage):
    directory = tmp_path / "ckpt"
    shutil.copytree(two_saved, directory)
    damage(directory / "2")
    return directory


def restore_recording_warnings(directory):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state, record = Checkpoints(directory, fingerprint=FINGERPRINT).restore(population_state(0))
    return state, record, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def flip_middle_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate_to_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# orbax's failed reads can leave tensorstore callbacks for an event loop it has closed
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", [flip_middle_byte, truncate_to_half])
def test_any_damaged_file_of_the_newest_falls_back_to_the_older_bit_for_bit(two_saved, tmp_path, damage):
    files = sorted(p.relative_to(two_saved / "2") for p in (two_saved / "2").rglob("*")
                   if p.is_file() and p.stat().st_size > 1)
    fell_back = 0
    for index, name in enumerate(files):
        directory = damaged_copy(two_saved, tmp_path / str(index), lambda step: damage(step / name))
        state, record, warned = restore_recording_warnings(directory)
        if warned:
            # the older checkpoint, exactly; the damaged one moved aside, and said so
            fell_back += 1
            assert record == {"step": 1}, name
            assert_bit_equal(state, population_state(1))
            assert len(warned) == 1 and "checkpoint 2" in warned[0] and "unreadable" in warned[0]
            assert "restored checkpoint 1" in warned[0]
            assert (directory / "unreadable-2").is_dir() and not (directory / "2").exists()
        else:
            # a file orbax does not need to read (a marker, an unused copy): the newest, exactly
            assert record == {"step": 2}, name
            assert_bit_equal(state, population_state(2))
    assert fell_back >= 3  # the arrays, their metadata and the record at least


def test_edited_arrays_or_record_count_as_damage(two_saved, tmp_path):
    def swap_in_other_arrays(step):
        # arrays orbax reads without complaint, from a checkpoint of the same run
        shutil.rmtree(step / "state")
        shutil.copytree(step.parent / "1" / "state", step / "state")

    def edit_record(step):
        [record_file] = [p for p in (step / "record").iterdir() if "commit" not in p.name]
        record_file.write_text(json.dumps({"step": 3}))

    for index, damage in enumerate([swap_in_other_arrays, edit_record]):
        directory = damaged_copy(two_saved, tmp_path / str(index), damage)
        state, record, warned = restore_recording_warnings(directory)
        assert record == {"step": 1} and len(warned) == 1
        assert "do not match the digest" in warned[0]
        assert_bit_equal(state, population_state(1))


def test_a_run_that_fell_back_saves_the_replayed_steps_again(two_saved, tmp_path):
    directory = damaged_copy(two_saved, tmp_path, lambda step: truncate_to_half(
        max((p for p in (step / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)))
    checkpoints = Checkpoints(directory, fingerprint=FINGERPRINT)
    with pytest.warns(UserWarning, match="checkpoint 2 is unreadable"):
        checkpoints.restore(population_state(0))
    assert checkpoints.latest_step() == 1
    checkpoints.save(2, population_state(5), {"step": "replayed"})
    state, record = Checkpoints(directory, fingerprint=FINGERPRINT).restore(population_state(0))
    assert record == {"step": "replayed"}
    assert_bit_equal(state, population_state(5))


def test_no_intact_checkpoint_is_an_error_naming_each(two_saved, tmp_path):
    def damage_both(step):
        for checkpoint in (step, step.parent / "1"):
            for path in (checkpoint / "record").iterdir():
                path.write_text("{")

    directory = damaged_copy(two_saved, tmp_path, damage_both)
    with pytest.raises(CorruptCheckpointError, match="no intact checkpoint") as raised:
        Checkpoints(directory, fingerprint=FINGERPRINT).restore(population_state(0))
    assert "checkpoint 2:" in str(raised.value) and "checkpoint 1:" in str(raised.value)
    with pytest.raises(CorruptCheckpointError, match="checkpoint 2 .* is unreadable"):
        Checkpoints(directory, fingerprint=FINGERPRINT).restore(population_state(0), step=2)
    # nothing is moved aside when nothing could be restored
    assert sorted(p.name for p in directory.iterdir()) == ["1", "2"]


def test_a_checkpoint_of_another_run_is_refused(two_saved, tmp_path):
    shutil.copytree(two_saved, tmp_path / "ckpt")
    other = fingerprint_of({"space": {"x": "uniform(0, 1)"}, "seed": 1})
    with pytest.raises(ValueError, match="checkpoint 2 .* belongs to another run") as raised:
        Checkpoints(tmp_path / "ckpt", fingerprint=other).restore(population_state(0))
    assert f"{FINGERPRINT[:12]}..." in str(raised.value) and f"{other[:12]}..." in str(raised.value)
    # a caller that gives no fingerprint does not get a fingerprinted run's checkpoints either
    with pytest.raises(ValueError, match="is not this run's none"):
        Checkpoints(tmp_path / "ckpt").restore(population_state(0))


def test_fingerprints_are_canonical():
    assert fingerprint_of({"a": 1, "b": [1, 2]}) == fingerprint_of({"b": [1, 2], "a": 1})
    assert fingerprint_of({"a": 1}) != fingerprint_of({"a": 2})
    assert fingerprint_of({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
