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
        {"learning_rate": 1e-5, "momentum": 0.0, "weight_decay": 1e-9, "batch_size": 8},
    ]
    result = pop.train_configs(task, configs, pop.member_seeds(0, 2), 150)
    error = result.metrics["val_error"]
    assert set(result.metrics) == {"val_error", "val_loss", "val_accuracy"}
    # A sensible configuration learns the digits; a learning rate of 1e-5 barely moves.
    assert error[0] < 0.3 and error[1] > 0.7
    np.testing.assert_allclose(result.metrics["val_accuracy"], 1 - error, atol=1e-6)


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
