"""A toy task (linear regression by SGD), cheap to compile, shared by the population tests.

The image tasks are tested in tests/tasks/.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jhpo import population as pop

FEATURES = 6


def regression_task(num_train: int = 256, num_val: int = 64, seed: int = 0, features: int = FEATURES) -> pop.Task:
    """y = x . w_true + noise, fitted by SGD with momentum and weight decay.

    Every size is read from the data the task is given, so that k-fold splits of it train too.
    """
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=features)
    x = rng.normal(size=(num_train + num_val, features)).astype(np.float32)
    y = (x @ w_true + 0.1 * rng.normal(size=len(x))).astype(np.float32)
    data = {"x": x[:num_train], "y": y[:num_train], "val_x": x[num_train:], "val_y": y[num_train:]}

    def sgd(hp):
        return optax.chain(optax.add_decayed_weights(hp["weight_decay"]), optax.sgd(hp["learning_rate"], hp["momentum"]))

    def init(key, hp):
        w = 0.1 * jax.random.normal(key, (features,))
        return {"w": w, "opt": sgd(hp).init(w)}

    def draw_batch(data, key, size):
        # One key per position, so a member's first examples do not depend on the padded batch size.
        num_examples = data["x"].shape[0]
        index = jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (), 0, num_examples))(jnp.arange(size))
        return {"x": data["x"][index], "y": data["y"][index]}

    def train_step(state, hp, batch, key):
        def loss_fn(w):
            return pop.masked_mean((batch["x"] @ w - batch["y"]) ** 2, batch["mask"])

        loss, grad = jax.value_and_grad(loss_fn)(state["w"])
        updates, opt = sgd(hp).update(grad, state["opt"], state["w"])
        return {"w": optax.apply_updates(state["w"], updates), "opt": opt}, {"loss": loss}

    def evaluate(state, hp, data):
        residual = data["val_x"] @ state["w"] - data["val_y"]
        return {"val_error": jnp.mean(residual**2), "val_max": jnp.max(jnp.abs(residual))}

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


def train_toy(configs=CONFIGS, seeds=SEEDS, **options) -> pop.PopulationResult:
    """The toy population trained for STEPS steps, states kept."""
    return pop.train_configs(TASK, configs, seeds, STEPS, keep_states=True, **options)
