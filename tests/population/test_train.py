"""``train``: a whole population trained in pieces, on the toy task of ``toy_task.py``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jhpo import population as pop
from tests.population.toy_task import (
    CONFIGS,
    FEATURES,
    SEEDS,
    STEPS,
    TASK,
    regression_task,
    train_toy,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"steps": 0}, "steps"),
        ({"batch_strategy": "sort"}, "batch_strategy"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"block_steps": 50}, "block_steps"),
        ({"max_batch_size": 8}, "max_batch_size"),
    ],
)
def test_train_rejects_bad_options(options, match):
    options = {"steps": STEPS, **options}
    with pytest.raises(ValueError, match=match):
        pop.train_configs(TASK, CONFIGS, SEEDS, options.pop("steps"), **options)


def test_population_trains_every_member():
    result = train_toy()
    assert result.losses.shape == (len(CONFIGS), STEPS)
    assert result.metrics["val_error"].shape == (len(CONFIGS),)
    assert not result.failed.any() and (result.failed_step == -1).all()
    initial_error = jnp.mean(TASK.data["val_y"] ** 2)
    assert (result.metrics["val_error"] < initial_error).all()


def test_member_result_depends_only_on_its_config_and_seed():
    together = train_toy()
    alone = train_toy(configs=CONFIGS[3:4], seeds=SEEDS[3:4])
    np.testing.assert_allclose(alone.states["w"][0], together.states["w"][3], rtol=1e-5, atol=1e-6)


def test_effective_batch_size_is_the_configured_one():
    # Member 0 has batch size 4 inside a population padded to batches of 32.
    together = train_toy()
    # Trained alone with batches of exactly 4 (no padding at all) it must end
    # in the same place; with 5 real examples it must not.
    alone = train_toy(configs=CONFIGS[:1], seeds=SEEDS[:1], max_batch_size=4)
    bigger = train_toy(configs=[{**CONFIGS[0], "batch_size": 5}], seeds=SEEDS[:1], max_batch_size=8)
    np.testing.assert_allclose(alone.states["w"][0], together.states["w"][0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(bigger.states["w"][0], together.states["w"][0], rtol=1e-3)


def test_bucketed_batch_sizes_match_masked():
    # Batch sizes 16, 9 | 32, 23: two buckets (16 and 32) of two members each.
    members = [1, 2, 3, 5]
    configs, seeds = [CONFIGS[i] for i in members], SEEDS[members]
    masked = train_toy(configs=configs, seeds=seeds, batch_strategy="mask")
    # A task of its own, so that programs other tests compiled are not counted out.
    task = regression_task()
    bucketed = pop.train_configs(task, configs, seeds, STEPS, keep_states=True, batch_strategy="bucket")
    assert bucketed.num_compiles == 4  # init and evaluate for width 2, one block per bucket
    np.testing.assert_allclose(bucketed.states["w"], masked.states["w"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bucketed.metrics["val_error"], masked.metrics["val_error"], rtol=1e-5)


def test_chunks_and_blocks_do_not_change_results():
    whole = train_toy()
    progress = []
    pieces = train_toy(chunk_size=3, block_steps=6, on_block=lambda done, total: progress.append((done, total)))
    np.testing.assert_allclose(pieces.states["w"], whole.states["w"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pieces.losses, whole.losses, rtol=1e-5, atol=1e-6)
    assert progress == [(6, 24), (12, 24), (18, 24), (24, 24)]


def test_pad_to_trains_copies_but_reports_only_the_population():
    result = train_toy(configs=CONFIGS[:4], seeds=SEEDS[:4], pad_to=len(CONFIGS))
    assert result.losses.shape == (4, STEPS) and result.states["w"].shape == (4, FEATURES)
    np.testing.assert_allclose(result.states["w"], train_toy().states["w"][:4], rtol=1e-5, atol=1e-6)


def test_diverging_member_is_frozen_and_others_are_bit_identical():
    diverging = {"learning_rate": 50.0, "momentum": 0.9, "batch_size": 8}
    configs = CONFIGS[:2] + [diverging] + CONFIGS[2:]
    seeds = np.concatenate([SEEDS[:2], [7], SEEDS[2:]])
    with_bad = train_toy(configs=configs, seeds=seeds)
    without = train_toy()
    assert with_bad.failed.tolist() == [False, False, True] + [False] * (len(CONFIGS) - 2)
    step = with_bad.failed_step[2]
    assert 0 < step < STEPS and np.isnan(with_bad.losses[2, step:]).all()
    assert np.isfinite(with_bad.losses[2, :step]).all()
    # Frozen at its last finite state.
    assert all(np.isfinite(leaf[2]).all() for leaf in jax.tree.leaves(with_bad.states))
    healthy = np.array([0, 1, 3, 4, 5, 6])
    np.testing.assert_array_equal(with_bad.losses[healthy], without.losses)
    np.testing.assert_array_equal(with_bad.states["w"][healthy], without.states["w"])
    np.testing.assert_array_equal(with_bad.metrics["val_error"][healthy], without.metrics["val_error"])


def test_programs_are_reused_across_populations():
    train_toy()
    shuffled = [CONFIGS[i] for i in (5, 4, 3, 2, 1, 0)]
    again = train_toy(configs=shuffled, seeds=SEEDS[::-1] + 1)
    assert again.num_compiles == 0 and again.compile_s == 0.0


def test_steps_per_block_divides_steps():
    assert pop.steps_per_block(100) == 10
    assert pop.steps_per_block(97) == 1
    assert pop.steps_per_block(5) == 1
    assert 120 % pop.steps_per_block(120, blocks=7) == 0
    with pytest.raises(ValueError, match="steps"):
        pop.steps_per_block(0)


def test_batches_and_buckets_pad_to_the_next_power_of_two():
    """One helper sizes a searcher's buffers and a population's padded batches."""
    from jhpo.searchers.base import MIN_CAPACITY, capacity_for, next_power_of_two

    for n in range(300):
        brute = min(2**k for k in range(12) if 2**k >= n)
        assert next_power_of_two(n) == brute
        assert capacity_for(n) == max(MIN_CAPACITY, brute)


SHARDED_SCRIPT = """
import json
import jax
from tests.population.toy_task import CONFIGS, SEEDS, TASK, STEPS
from jhpo import population as pop
result = pop.train_configs(TASK, CONFIGS[:5], SEEDS[:5], STEPS, keep_states=True)
print(json.dumps({"devices": jax.device_count(), "w": result.states["w"].tolist(),
                  "val_error": result.metrics["val_error"].tolist()}))
"""


def test_four_devices_match_one_device():
    # Five members on four devices: padded to eight, the padding never reported.
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    completed = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    sharded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert sharded["devices"] == 4
    local = train_toy(configs=CONFIGS[:5], seeds=SEEDS[:5])
    assert len(sharded["val_error"]) == 5
    np.testing.assert_allclose(np.array(sharded["w"]), local.states["w"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sharded["val_error"], local.metrics["val_error"], rtol=1e-5)
