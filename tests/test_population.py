"""Population mechanics on a toy task (linear regression), cheap to compile.

The image tasks are tested in tests/tasks/.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jhpo import population as pop

REPO = Path(__file__).resolve().parents[1]
FEATURES = 6


def regression_task(num_train: int = 256, num_val: int = 64, seed: int = 0) -> pop.Task:
    """y = x . w_true + noise, fitted by SGD with momentum and weight decay."""
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=FEATURES)
    x = rng.normal(size=(num_train + num_val, FEATURES)).astype(np.float32)
    y = (x @ w_true + 0.1 * rng.normal(size=len(x))).astype(np.float32)
    data = {"x": x[:num_train], "y": y[:num_train], "val_x": x[num_train:], "val_y": y[num_train:]}

    def sgd(hp):
        return optax.chain(optax.add_decayed_weights(hp["weight_decay"]), optax.sgd(hp["learning_rate"], hp["momentum"]))

    def init(key, hp):
        w = 0.1 * jax.random.normal(key, (FEATURES,))
        return {"w": w, "opt": sgd(hp).init(w)}

    def draw_batch(data, key, size):
        index = jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (), 0, num_train))(jnp.arange(size))
        return {"x": data["x"][index], "y": data["y"][index]}

    def train_step(state, hp, batch, key):
        def loss_fn(w):
            return pop.masked_mean((batch["x"] @ w - batch["y"]) ** 2, batch["mask"])

        loss, grad = jax.value_and_grad(loss_fn)(state["w"])
        updates, opt = sgd(hp).update(grad, state["opt"], state["w"])
        return {"w": optax.apply_updates(state["w"], updates), "opt": opt}, {"loss": loss}

    def evaluate(state, hp, data):
        return {"val_error": jnp.mean((data["val_x"] @ state["w"] - data["val_y"]) ** 2)}

    defaults = {"learning_rate": 0.05, "momentum": 0.5, "weight_decay": 0.0, "batch_size": 16}
    return pop.Task(init, train_step, evaluate, draw_batch, data, defaults, name="regression")


TASK = regression_task()
CONFIGS = [
    {"learning_rate": 0.05, "batch_size": 4},
    {"learning_rate": 0.02, "momentum": 0.9, "batch_size": 16},
    {"learning_rate": 0.1, "momentum": 0.0, "batch_size": 9},
    {"learning_rate": 0.03, "weight_decay": 1e-3, "batch_size": 32},
    {"learning_rate": 0.08, "batch_size": 1},
    {"learning_rate": 0.01, "momentum": 0.8, "batch_size": 23},
]
SEEDS = np.arange(100, 100 + len(CONFIGS))
STEPS = 12


def _train(configs=CONFIGS, seeds=SEEDS, **options):
    return pop.train_configs(TASK, configs, seeds, STEPS, keep_states=True, **options)


def test_stack_hparams_fills_defaults_and_types():
    stacked = pop.stack_hparams(TASK, [{"learning_rate": 0.1}, {"batch_size": 3}])
    assert stacked["learning_rate"].dtype == np.float32 and stacked["batch_size"].dtype == np.int32
    np.testing.assert_allclose(stacked["learning_rate"], [0.1, 0.05])
    np.testing.assert_array_equal(stacked["batch_size"], [16, 3])


@pytest.mark.parametrize(
    "configs, match",
    [
        ([{"dropout": 0.1}], "dropout"),
        ([{"batch_size": 2.5}], "batch_size"),
        ([{"momentum": "high"}], "momentum"),
        ([], "configs"),
    ],
)
def test_stack_hparams_rejects_bad_configs(configs, match):
    with pytest.raises(ValueError, match=match):
        pop.stack_hparams(TASK, configs)


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
    result = _train()
    assert result.losses.shape == (len(CONFIGS), STEPS)
    assert result.metrics["val_error"].shape == (len(CONFIGS),)
    assert not result.failed.any() and (result.failed_step == -1).all()
    initial_error = jnp.mean(TASK.data["val_y"] ** 2)
    assert (result.metrics["val_error"] < initial_error).all()


def test_member_result_depends_only_on_its_config_and_seed():
    together = _train()
    alone = _train(configs=CONFIGS[3:4], seeds=SEEDS[3:4])
    np.testing.assert_allclose(alone.states["w"][0], together.states["w"][3], rtol=1e-5, atol=1e-6)


def test_effective_batch_size_is_the_configured_one():
    # Member 0 has batch size 4 inside a population padded to batches of 32.
    together = _train()
    # Trained alone with batches of exactly 4 (no padding at all) it must end
    # in the same place; with 5 real examples it must not.
    alone = _train(configs=CONFIGS[:1], seeds=SEEDS[:1], max_batch_size=4)
    bigger = _train(configs=[{**CONFIGS[0], "batch_size": 5}], seeds=SEEDS[:1], max_batch_size=8)
    np.testing.assert_allclose(alone.states["w"][0], together.states["w"][0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(bigger.states["w"][0], together.states["w"][0], rtol=1e-3)


def test_bucketed_batch_sizes_match_masked():
    # Batch sizes 16, 9 | 32, 23: two buckets (16 and 32) of two members each.
    members = [1, 2, 3, 5]
    configs, seeds = [CONFIGS[i] for i in members], SEEDS[members]
    masked = _train(configs=configs, seeds=seeds, batch_strategy="mask")
    bucketed = _train(configs=configs, seeds=seeds, batch_strategy="bucket")
    assert bucketed.num_compiles == 4  # init and evaluate for width 2, one block per bucket
    np.testing.assert_allclose(bucketed.states["w"], masked.states["w"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bucketed.metrics["val_error"], masked.metrics["val_error"], rtol=1e-5)


def test_chunks_and_blocks_do_not_change_results():
    whole = _train()
    progress = []
    pieces = _train(chunk_size=3, block_steps=6, on_block=lambda done, total: progress.append((done, total)))
    np.testing.assert_allclose(pieces.states["w"], whole.states["w"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pieces.losses, whole.losses, rtol=1e-5, atol=1e-6)
    assert progress == [(6, 24), (12, 24), (18, 24), (24, 24)]


def test_pad_to_trains_copies_but_reports_only_the_population():
    result = _train(configs=CONFIGS[:4], seeds=SEEDS[:4], pad_to=len(CONFIGS))
    assert result.losses.shape == (4, STEPS) and result.states["w"].shape == (4, FEATURES)
    np.testing.assert_allclose(result.states["w"], _train().states["w"][:4], rtol=1e-5, atol=1e-6)


def test_diverging_member_is_frozen_and_others_are_bit_identical():
    diverging = {"learning_rate": 50.0, "momentum": 0.9, "batch_size": 8}
    configs = CONFIGS[:2] + [diverging] + CONFIGS[2:]
    seeds = np.concatenate([SEEDS[:2], [7], SEEDS[2:]])
    with_bad = _train(configs=configs, seeds=seeds)
    without = _train()
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
    _train()
    shuffled = [CONFIGS[i] for i in (5, 4, 3, 2, 1, 0)]
    again = _train(configs=shuffled, seeds=SEEDS[::-1] + 1)
    assert again.num_compiles == 0 and again.compile_s == 0.0


def test_steps_per_block_divides_steps():
    assert pop.steps_per_block(100) == 10
    assert pop.steps_per_block(97) == 1
    assert pop.steps_per_block(5) == 1
    assert 120 % pop.steps_per_block(120, blocks=7) == 0
    with pytest.raises(ValueError, match="steps"):
        pop.steps_per_block(0)


def test_masked_mean_counts_only_real_examples():
    values = jnp.array([1.0, 3.0, 100.0])
    assert float(pop.masked_mean(values, jnp.array([True, True, False]))) == 2.0


SHARDED_SCRIPT = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {tests!r})
from test_population import CONFIGS, SEEDS, TASK, STEPS
from jhpo import population as pop
result = pop.train_configs(TASK, CONFIGS[:5], SEEDS[:5], STEPS, keep_states=True)
print(json.dumps({{"devices": jax.device_count(), "w": result.states["w"].tolist(),
                  "val_error": result.metrics["val_error"].tolist()}}))
"""


def test_four_devices_match_one_device():
    # Five members on four devices: padded to eight, the padding never reported.
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    script = SHARDED_SCRIPT.format(tests=str(Path(__file__).parent))
    completed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    sharded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert sharded["devices"] == 4
    local = _train(configs=CONFIGS[:5], seeds=SEEDS[:5])
    assert len(sharded["val_error"]) == 5
    np.testing.assert_allclose(np.array(sharded["w"]), local.states["w"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sharded["val_error"], local.metrics["val_error"], rtol=1e-5)
