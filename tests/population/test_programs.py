"""``PopulationPrograms``: the compiled population programs and their cache."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jhpo import nn as jnn
from jhpo import population as pop
from tests.population.toy_task import CONFIGS, SEEDS, TASK

REPO = Path(__file__).resolve().parents[2]
SIZE = 4


def _trees(seed):
    """Two host pytrees with a leading member axis of SIZE, leaves of several ranks."""
    rng = np.random.default_rng(seed)

    def tree():
        return {"a": rng.normal(size=SIZE).astype(np.float32),
                "b": rng.normal(size=(SIZE, 3)).astype(np.float32),
                "c": rng.integers(0, 100, size=(SIZE, 2, 2)).astype(np.int32)}

    return tree(), tree()


def test_select_takes_new_where_the_mask_is_set():
    programs = pop.PopulationPrograms(TASK, SIZE, 16, 1)
    new, old = _trees(0)
    for mask in (np.array([True, False, False, True]), np.array([False, True, True, False])):
        got = programs.select(mask, new, old)
        for name in new:
            shape = (SIZE,) + (1,) * (new[name].ndim - 1)
            np.testing.assert_array_equal(np.asarray(got[name]), np.where(mask.reshape(shape), new[name], old[name]))
            assert got[name].sharding.is_equivalent_to(programs.sharding, new[name].ndim)
    assert programs.compiles["select"] <= 1  # one program for every mask


def test_gather_copies_other_members():
    programs = pop.PopulationPrograms(TASK, SIZE, 16, 1)
    tree, _ = _trees(1)
    index = np.array([2, 2, 0, 3])
    got = programs.gather(tree, index)
    for name, leaf in tree.items():
        np.testing.assert_array_equal(np.asarray(got[name]), leaf[index])
        assert got[name].sharding.is_equivalent_to(programs.sharding, leaf.ndim)


def test_each_member_advances_from_its_own_step():
    # Member 1 restarts from a fresh state while member 0 has trained 3 steps; after
    # 3 more steps each holds what training it alone for 6 and 3 steps gives.
    programs = pop.PopulationPrograms(TASK, 2, 32, 3)
    hp = programs.put(pop.stack_hparams(TASK, CONFIGS[:2]))
    keys = programs.put(pop.typed_keys(SEEDS[:2]))
    carry, _ = programs.advance(programs.init(keys, hp), hp, keys, np.array([0, 0]))
    carry = programs.select(np.array([False, True]), programs.init(keys, hp), carry)
    carry, losses = programs.advance(carry, hp, keys, np.array([3, 0]))
    assert losses.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(carry[0]["w"][0]), _trained_alone(0, 6), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(carry[0]["w"][1]), _trained_alone(1, 3), rtol=1e-5, atol=1e-6)


def _trained_alone(member, steps):
    result = pop.train_configs(TASK, CONFIGS[member : member + 1], SEEDS[member : member + 1], steps,
                               max_batch_size=32, keep_states=True)
    return result.states["w"][0]


def test_size_is_padded_to_a_multiple_of_the_devices_and_checked():
    assert pop.PopulationPrograms(TASK, 3, 16, 1).size % jax.local_device_count() == 0
    with pytest.raises(ValueError, match="interval"):
        pop.PopulationPrograms(TASK, 3, 16, 0)


def conv_task() -> pop.Task:
    """A tiny regression through one convolution whose implementation is ``jhpo.nn``'s default."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(32, 5, 5, 1)).astype(np.float32)
    data = {"x": images, "y": images.mean(axis=(1, 2, 3))}

    def predict(state, x):
        features = jnn.conv2d(x, state["kernel"])  # impl None: resolved while tracing
        return features.mean(axis=(1, 2)) @ state["w"]

    def init(key, hp):
        kernel_key, w_key = jax.random.split(key)
        return {"kernel": 0.1 * jax.random.normal(kernel_key, (3, 3, 1, 2)), "w": jax.random.normal(w_key, (2,))}

    def loss(state, x, y, mask):
        return pop.masked_mean((predict(state, x) - y) ** 2, mask)

    def train_step(state, hp, batch, key):
        value, grads = jax.value_and_grad(loss)(state, batch["x"], batch["y"], batch["mask"])
        return jax.tree.map(lambda p, g: p - hp["learning_rate"] * g, state, grads), {"loss": value}

    def evaluate(state, hp, data):
        return {"val_error": loss(state, data["x"], data["y"], jnp.ones(len(data["y"]), bool))}

    def draw_batch(data, key, size):
        index = jax.random.randint(key, (size,), 0, len(data["y"]))
        return {"x": data["x"][index], "y": data["y"][index]}

    return pop.Task(init, train_step, evaluate, draw_batch, data, {"learning_rate": 0.1, "batch_size": 8})


def test_the_conv_implementation_is_part_of_the_program_key(monkeypatch):
    task = conv_task()
    configs = [{"learning_rate": 0.1}, {"learning_rate": 0.3}]

    def run():
        return pop.train_configs(task, configs, pop.member_seeds(0, 2), 3, keep_states=True)

    monkeypatch.delenv(jnn.CONV_IMPL_ENV, raising=False)
    default = run()
    assert default.num_compiles > 0
    # The variable naming the backend's default resolves to the same program.
    monkeypatch.setenv(jnn.CONV_IMPL_ENV, jnn.default_conv_impl())
    assert run().num_compiles == 0
    other = next(impl for impl in jnn.CONV_IMPLS if impl != jnn.default_conv_impl())
    monkeypatch.setenv(jnn.CONV_IMPL_ENV, other)
    changed = run()
    assert changed.num_compiles > 0  # a stale cached program would compile nothing
    assert run().num_compiles == 0
    # Both implementations compute the same convolution.
    np.testing.assert_allclose(changed.losses, default.losses, rtol=1e-4, atol=1e-5)


SHARDED_SCRIPT = """
import json
import jax, numpy as np
from jhpo import population as pop
from tests.population.toy_task import TASK
programs = pop.PopulationPrograms(TASK, 8, 16, 1)
tree = {"w": np.arange(24, dtype=np.float32).reshape(8, 3)}
index = np.array([7, 0, 5, 5, 1, 2, 3, 6])
mask = np.arange(8) % 3 == 0
gathered = programs.gather(tree, index)["w"]
selected = programs.select(mask, tree, {"w": -tree["w"]})["w"]
print(json.dumps({"devices": len(gathered.sharding.device_set), "gathered": np.asarray(gathered).tolist(),
                  "selected": np.asarray(selected).tolist()}))
"""


def test_select_and_gather_across_four_devices():
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    completed = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    sharded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert sharded["devices"] == 4
    w = np.arange(24, dtype=np.float32).reshape(8, 3)
    np.testing.assert_array_equal(sharded["gathered"], w[[7, 0, 5, 5, 1, 2, 3, 6]])
    np.testing.assert_array_equal(sharded["selected"], np.where((np.arange(8) % 3 == 0)[:, None], w, -w))
