import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jhpo import population as pop
from jhpo import tasks
from jhpo.tasks import data as image_data


def test_digits_cnn_learns_with_per_member_hyperparameters():
    task = tasks.digits_cnn(cnn_widths=(8, 16))
    configs = [
        {"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 32},
        {"learning_rate": 1e-5, "momentum": 0.0, "weight_decay": 1e-9, "batch_size": 8, "width_multiplier": 0.5},
    ]
    result = pop.train_configs(task, configs, pop.member_seeds(0, 2), 150)
    error = result.metrics["val_error"]
    assert set(result.metrics) == {"val_error", "val_loss", "val_accuracy", "num_params"}
    # A sensible configuration learns the digits; a learning rate of 1e-5 barely moves.
    assert error[0] < 0.3 and error[1] > 0.7
    np.testing.assert_allclose(result.metrics["val_accuracy"], 1 - error, atol=1e-6)
    # Each member's own network size: the default full width, and half the channels.
    full = (9 * 1 + 1) * 8 + (9 * 8 + 1) * 16 + (16 + 1) * 10
    half = (9 * 1 + 1) * 4 + (9 * 4 + 1) * 8 + (8 + 1) * 10
    np.testing.assert_array_equal(result.metrics["num_params"], [full, half])


def test_task_hyperparameter_names_are_checked():
    with pytest.raises(ValueError, match="optimizer"):
        pop.stack_hparams(tasks.digits_cnn(), [{"optimizer": 1.0}])
    with pytest.raises(ValueError, match="dataset"):
        tasks.make("mnist")
    with pytest.raises(ValueError, match="model"):
        tasks.make("digits", "vgg")


def test_resnet18_is_the_cifar_form():
    model = tasks.ResNet18(width=2)
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    params = shapes["params"]
    assert params["Conv_0"]["kernel"].shape == (3, 3, 3, 2)  # 3x3 stem, stride 1
    convs = [path for path, _ in jax.tree_util.tree_flatten_with_path(params)[0] if "kernel" in str(path[-1])]
    assert len(convs) == 1 + 16 + 3 + 1  # stem, 8 blocks x 2, 3 projections, head
    assert set(shapes["batch_stats"]) == {"MaskedBatchNorm_0"} | {f"BasicBlock_{i}" for i in range(8)}
    features = jax.eval_shape(
        lambda x: model.apply(jax.tree.map(jnp.zeros_like, shapes), x, train=False), jnp.zeros((1, 32, 32, 3))
    )
    assert features.shape == (1, 10)


def test_resnet_population_on_mocked_cifar10():
    # Two one-block stages instead of ResNet-18's four two-block stages: the
    # same layers (stem, masked batch norm, projection shortcut) at a fraction
    # of ResNet-18's XLA compile time, which is tens of seconds on a small CPU.
    with tfds.testing.mock_data(num_examples=24):
        cifar = image_data.load_cifar10(validation_size=8)
    task = tasks.make("cifar10", "resnet18", data=cifar, resnet_width=2, resnet_stages=(1, 1), eval_batch_size=8)
    configs = [{"batch_size": 4, "learning_rate": 0.01}, {"batch_size": 2, "momentum": 0.5}]
    result = pop.train_configs(task, configs, pop.member_seeds(1, 2), 2, keep_states=True)
    assert not result.failed.any()
    assert np.isfinite(result.losses).all() and np.isfinite(result.metrics["val_error"]).all()
    # Batch statistics were updated in training (they start at zero mean, unit variance).
    stem_stats = result.states["model_state"]["batch_stats"]["MaskedBatchNorm_0"]
    assert np.abs(stem_stats["mean"]).max() > 0


def test_width_multiplier_trains_the_narrower_network():
    wide = tasks.SmallCNN(widths=(8, 16))
    narrow = tasks.SmallCNN(widths=(3, 6))  # ceil(0.35 * 8) = 3, ceil(0.35 * 16) = 6
    x = jax.random.normal(jax.random.key(0), (5, 8, 8, 1))
    params = wide.init(jax.random.key(1), x, train=False)["params"]
    # The narrow network's weights are the slices of the wide one that the mask keeps.
    sliced = {
        "Conv_0": {"kernel": params["Conv_0"]["kernel"][..., :3], "bias": params["Conv_0"]["bias"][:3]},
        "Conv_1": {"kernel": params["Conv_1"]["kernel"][:, :, :3, :6], "bias": params["Conv_1"]["bias"][:6]},
        "Dense_0": {"kernel": params["Dense_0"]["kernel"][:6], "bias": params["Dense_0"]["bias"]},
    }
    masked = wide.apply({"params": params}, x, train=False, width_multiplier=jnp.float32(0.35))
    expected = narrow.apply({"params": sliced}, x, train=False)
    np.testing.assert_allclose(masked, expected, rtol=1e-5, atol=1e-5)
    narrow_count = sum(leaf.size for leaf in jax.tree.leaves(sliced))
    assert int(wide.num_params(1, 0.35)) == narrow_count
    assert int(wide.num_params(1, 1.0)) == sum(leaf.size for leaf in jax.tree.leaves(params))
    # Every layer keeps at least one channel; 0.3 * 10 rounds to 3, not 4.
    assert int(tasks.models.active_channels(8, jnp.float32(1e-3))) == 1
    assert int(tasks.models.active_channels(10, jnp.float32(0.3))) == 3
